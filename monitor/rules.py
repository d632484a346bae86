"""The keyword and query language of keywords.yaml, compiled once into a `Matcher` (pure, no I/O).

A topic lists `keywords` (any of them matches) or a boolean `query`, plus optional `exclude`
(any of them vetoes the topic) and `require` (at least one must also be present).

Keywords and query terms follow one set of rules:

- case-insensitive and whole-word (`USSM` does not match `USSMART`);
- a trailing `*` is a prefix (`Baloch*` matches `Baloch`, `Balochs`, `Balochistan`);
- hyphens, dashes and runs of white space are one space (`"rare earth"` matches `Rare-Earth`),
  periods between single letters vanish (`US` matches `U.S.`), diacritics are ignored both ways
  (`Quetta` matches `Quéttä`), typographic apostrophes are `'`, Arabic and Persian forms of
  yeh and kaf are one;
- words of scripts written without spaces (CJK, Thai, ...) match as substrings, since they have
  no word boundaries; every other script (Latin, Arabic, Cyrillic, ...) matches whole words.

Queries: `AND`, `OR`, `NOT` (upper case), parentheses, `"quoted phrases"` and `title:` (a term,
phrase or parenthesised group looked for in the title alone). Adjacent terms mean AND; NOT binds
tighter than AND, AND tighter than OR. A query must have a term outside NOT, because a match is
shown by the words that matched.

A match reports the keywords (or positive query terms) found, as written in the article: body
text first, then summary, then title, repeats dropped whatever their case; and the sentence
around the first of them. `require` and `exclude` words are context and are not reported.

Text is normalised once per field (`_Folded`), keeping a map from normalised offsets back to the
original, so the words and the sentence reported come from the article as written. A `Matcher`
never changes after it is built, so threads may share it.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from monitor import models
from monitor.errors import QueryError

# --- normalisation -----------------------------------------------------------------------------

# Scripts written without spaces between words (Thai, Lao, Tibetan, Myanmar, Khmer, Hangul, kana,
# CJK ideographs): their keywords match as substrings, and their letters do not glue a Latin or
# Arabic word to its neighbour ("在Balochistan地区").
_NO_SPACE = (
    "\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1100-\u11ff\u1780-\u17ff\u2e80-\u2fdf"
    "\u3040-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff"
    "\U00020000-\U0003134f"
)
_WORD_CHAR = f"[^\\W{_NO_SPACE}]"
_IS_WORD_CHAR = re.compile(_WORD_CHAR)

_DASH_CHARS = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_DASHES = re.escape(_DASH_CHARS)
_LETTER = r"[^\W\d_]"

# The spots of a text that folding changes beyond lower-casing ASCII: a run of white space and
# dashes (-> one space), a period between single letters ("U.S." -> "US"), a run of non-ASCII
# characters. Every alternative shares one first character class, the only form the regex engine
# can skip ahead with; the alternatives then tell apart what that character began. Plain spaces
# and periods are in the class, so the alternatives reject a lone space or a sentence's period.
_SPECIAL = re.compile(
    rf"[\t\n\x0b\x0c\r\x1c-\x1f {_DASHES}.\u0080-\U0010ffff]"
    rf"(?:(?<=[\s{_DASHES}])(?:(?<=[^ ])|(?=[\s{_DASHES}]))[\s{_DASHES}]*"
    rf"|(?<=(?<!\w){_LETTER}\.)(?:(?={_LETTER}(?!\w))|(?<=(?<!\w){_LETTER}\.{_LETTER}\.))"
    rf"|(?<=[^\s{_DASHES}.])[^\x00-\x7f\s{_DASHES}]*)"
)

# The diacritics dropped: the combining marks used with Latin, Greek and Cyrillic letters, and
# Arabic vowel marks and tatweel. Marks of other scripts (Indic vowel signs, Thai tones, kana
# voicing) are part of the letter and stay.
_DIACRITICS = re.compile(
    "[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
    "\u0610-\u061a\u0640\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e4\u06e7\u06e8\u06ea-\u06ed]"
)
_APOSTROPHES = frozenset("\u2018\u2019\u02bc\u2032")
# Arabic and Persian/Urdu keyboards write yeh and kaf with different code points; a keyword
# typed on one must find text typed on the other.
_ARABIC_VARIANTS = {"\u064a": "\u06cc", "\u0649": "\u06cc", "\u0643": "\u06a9"}


@functools.lru_cache(maxsize=8192)
def _fold_char(char: str) -> str:
    """One non-ASCII character as matching sees it: no diacritics, compatibility forms, case."""
    if char in _APOSTROPHES:
        return "'"
    if char in _ARABIC_VARIANTS:
        return _ARABIC_VARIANTS[char]
    if unicodedata.category(char) == "Cf":  # soft hyphen, zero-width (non-)joiners, bidi marks
        return ""
    plain = _DIACRITICS.sub("", unicodedata.normalize("NFKD", char))
    # NFC puts back what NFKD took apart but we keep (Hangul syllables, kana with voicing marks).
    return unicodedata.normalize("NFC", plain).casefold()


class _Folded:
    """A text folded for matching, with the way back from its offsets to the original's.

    The map is piecewise: at `_fold_marks[i]` in the folded text is `_orig_marks[i]` in the
    original, and from there both advance together up to the next mark. Folding adds a mark
    wherever it changes a length.
    """

    __slots__ = ("_fold_marks", "_orig_marks", "folded", "original")

    def __init__(self, original: str) -> None:
        self.original = original
        pieces: list[str] = []
        fold_marks = [0]
        orig_marks = [0]
        length = 0  # of the folded text so far
        done = 0  # original offset folded so far
        for match in _SPECIAL.finditer(original):
            start, end = match.span()
            # Between special spots the text is ASCII, where lower() keeps every offset.
            pieces.append(original[done:start].lower())
            length += start - done
            first = original[start]
            if first == ".":
                replaced = [("", end)]
            elif first.isspace() or first in _DASH_CHARS:
                replaced = [(" ", end)]
            else:
                replaced = [(_fold_char(c), i + 1) for i, c in enumerate(match.group(), start)]
            for piece, piece_end in replaced:
                pieces.append(piece)
                length += len(piece)
                if length - fold_marks[-1] != piece_end - orig_marks[-1]:
                    fold_marks.append(length)
                    orig_marks.append(piece_end)
            done = end
        pieces.append(original[done:].lower())
        self.folded = "".join(pieces)
        self._fold_marks = fold_marks
        self._orig_marks = orig_marks

    def original_offset(self, offset: int) -> int:
        """The original offset of folded `offset`; characters folded away before it are skipped."""
        index = bisect_right(self._fold_marks, offset) - 1
        mapped = self._orig_marks[index] + offset - self._fold_marks[index]
        if index + 1 < len(self._orig_marks):
            # Inside a piece that folding made longer ("ß" -> "ss"): stay within the piece.
            mapped = min(mapped, self._orig_marks[index + 1])
        return mapped


# --- keywords ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _KeywordSpec:
    """A checked keyword: its folded text and whether it is a prefix (`Baloch*`)."""

    folded: str
    prefix: bool


def _parse_keyword(keyword: str) -> _KeywordSpec:
    """Check `keyword` and fold it; QueryError positions are offsets into `keyword`."""
    body = keyword.strip()
    offset = len(keyword) - len(keyword.lstrip())
    if not body:
        raise QueryError("empty keyword", 0)
    quote = body.find('"')
    if quote >= 0:
        raise QueryError(
            "a keyword cannot hold '\"' (a keyword is a phrase already: drop the quotes)",
            offset + quote,
        )
    star = body.find("*")
    if star >= 0 and star != len(body) - 1:
        raise QueryError("'*' may only end a keyword, as in Baloch*", offset + star)
    prefix = star >= 0
    if prefix:
        body = body[:-1]
        if not body:
            raise QueryError("a lone '*' would match every word", offset)
    folded = _Folded(body).folded
    if prefix and not re.fullmatch(r"[^\W_]", folded[-1:]):
        raise QueryError("'*' must follow a letter or digit", offset + len(body))
    folded = folded.strip()
    if not re.search(r"[^\W_]", folded):
        raise QueryError("a keyword needs a letter or digit", offset)
    return _KeywordSpec(folded, prefix)


def check_keyword(keyword: str) -> None:
    """Raise QueryError when `keyword` cannot be used: empty, a lone `*`, `*` not at the end,
    quotes inside, or no letter or digit at all."""
    _parse_keyword(keyword)


def _keyword_pattern(spec: _KeywordSpec) -> re.Pattern[str]:
    """The regex finding `spec` in folded text.

    The pattern starts with the keyword itself so the regex engine can skip ahead to it; the
    whole-word check on its left is a look-behind over the keyword plus one character.
    """
    literal = re.escape(spec.folded)
    pattern = literal
    if _IS_WORD_CHAR.fullmatch(spec.folded[0]):
        pattern += f"(?<!{_WORD_CHAR}{literal})"
    if _IS_WORD_CHAR.fullmatch(spec.folded[-1]):
        pattern += f"{_WORD_CHAR}*" if spec.prefix else f"(?!{_WORD_CHAR})"
    return re.compile(pattern)


# --- queries -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Term:
    """A keyword or quoted phrase (keyword rules apply); `title_only` for `title:` terms."""

    keyword: str
    title_only: bool = False


@dataclass(frozen=True, slots=True)
class Not:
    """True when `child` is false; words inside it are never reported."""

    child: QueryNode


@dataclass(frozen=True, slots=True)
class And:
    """True when every child is."""

    children: tuple[QueryNode, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """True when any child is."""

    children: tuple[QueryNode, ...]


QueryNode: TypeAlias = Term | Not | And | Or

_OPERATORS = frozenset({"AND", "OR", "NOT"})
_MAX_DEPTH = 100  # nesting of parentheses and NOTs; deeper is a mistake, not a query

_TOKEN = re.compile(
    r'(?P<open>\()|(?P<close>\))|(?P<phrase>"[^"]*")|(?P<quote>")'
    r'|(?P<field>(?i:title):)|(?P<word>[^\s()"]+)'
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # open | close | phrase | field | word | AND | OR | NOT
    text: str  # a phrase's text is without its quotes
    position: int


def _tokenize(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    for match in _TOKEN.finditer(query):  # white space matches nothing, so it is skipped
        kind, text = next((k, v) for k, v in match.groupdict().items() if v is not None)
        if kind == "quote":
            raise QueryError("unclosed quote", match.start())
        if kind == "phrase":
            text = text[1:-1]
        elif kind == "word" and text in _OPERATORS:
            kind = text
        tokens.append(_Token(kind, text, match.start()))
    return tokens


class _Parser:
    """Recursive descent over the tokens: or := and (OR and)*; and := not (AND? not)*;
    not := NOT not | primary; primary := term | phrase | title: primary | ( or )."""

    def __init__(self, query: str) -> None:
        self._tokens = _tokenize(query)
        self._next = 0
        self._depth = 0
        self._title_only = False

    def parse(self) -> QueryNode:
        if not self._tokens:
            raise QueryError("empty query", 0)
        node = self._or()
        extra = self._peek()
        if extra is not None:  # _or stops early only at a ')' nobody opened
            raise QueryError("')' without a matching '('", extra.position)
        if not _has_positive_term(node):
            first_not = next(t for t in self._tokens if t.kind == "NOT")
            raise QueryError("the query needs a term outside NOT", first_not.position)
        return node

    def _peek(self) -> _Token | None:
        return self._tokens[self._next] if self._next < len(self._tokens) else None

    def _take(self) -> _Token:
        token = self._tokens[self._next]
        self._next += 1
        return token

    def _starts_operand(self, token: _Token | None) -> bool:
        return token is not None and token.kind in ("open", "phrase", "field", "word", "NOT")

    def _operand_after(self, operator: _Token) -> None:
        if not self._starts_operand(self._peek()):
            raise QueryError(f"{operator.text} must be followed by a term", operator.position)

    def _or(self) -> QueryNode:
        children = [self._and()]
        while (token := self._peek()) is not None and token.kind == "OR":
            self._take()
            self._operand_after(token)
            children.append(self._and())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def _and(self) -> QueryNode:
        children = [self._not()]
        while (token := self._peek()) is not None and (
            token.kind == "AND" or self._starts_operand(token)
        ):
            if token.kind == "AND":
                self._take()
                self._operand_after(token)
            children.append(self._not())
        return children[0] if len(children) == 1 else And(tuple(children))

    def _not(self) -> QueryNode:
        token = self._peek()
        if token is None or token.kind != "NOT":
            return self._primary()
        self._take()
        self._operand_after(token)
        self._enter(token)
        child = self._not()
        self._depth -= 1
        return Not(child)

    def _primary(self) -> QueryNode:
        token = self._take()  # callers have checked that a token follows
        if token.kind in ("word", "phrase"):
            return self._term(token)
        if token.kind == "field":
            return self._title(token)
        if token.kind == "open":
            return self._group(token)
        if token.kind == "close":
            raise QueryError("')' without a matching '('", token.position)
        raise QueryError(f"{token.text} must come between two terms", token.position)

    def _term(self, token: _Token) -> Term:
        # A phrase's text starts after its opening quote.
        start = token.position + (1 if token.kind == "phrase" else 0)
        if token.kind == "phrase" and not token.text.strip():
            raise QueryError("empty phrase", token.position)
        try:
            check_keyword(token.text)
        except QueryError as exc:
            raise QueryError(exc.message, start + (exc.position or 0)) from exc
        return Term(token.text.strip(), self._title_only)

    def _title(self, token: _Token) -> QueryNode:
        following = self._peek()
        if following is None or following.kind not in ("word", "phrase", "open"):
            raise QueryError("title: must be followed by a term, a phrase or '('", token.position)
        outer, self._title_only = self._title_only, True
        node = self._primary()
        self._title_only = outer
        return node

    def _group(self, token: _Token) -> QueryNode:
        following = self._peek()
        if following is None:
            raise QueryError("'(' is never closed", token.position)
        if following.kind == "close":
            raise QueryError("empty parentheses", token.position)
        self._enter(token)
        node = self._or()
        self._depth -= 1
        closing = self._peek()
        if closing is None or closing.kind != "close":
            raise QueryError("'(' is never closed", token.position)
        self._take()
        return node

    def _enter(self, token: _Token) -> None:
        self._depth += 1
        if self._depth > _MAX_DEPTH:
            raise QueryError(f"nested more than {_MAX_DEPTH} deep", token.position)


def _has_positive_term(node: QueryNode) -> bool:
    if isinstance(node, Term):
        return True
    if isinstance(node, Not):
        return False
    return any(_has_positive_term(child) for child in node.children)


def _terms_of(node: QueryNode) -> Iterator[Term]:
    if isinstance(node, Term):
        yield node
    elif isinstance(node, Not):
        yield from _terms_of(node.child)
    else:
        for child in node.children:
            yield from _terms_of(child)


def parse_query(query: str) -> QueryNode:
    """Parse a boolean query; QueryError carries the 0-based position of the problem."""
    return _Parser(query).parse()


# --- matching ----------------------------------------------------------------------------------

# Fields in the order a match is reported from: the body's sentence tells most.
_TEXT, _SUMMARY, _TITLE = 0, 1, 2
_ALL_FIELDS = (_TEXT, _SUMMARY, _TITLE)
_TITLE_ONLY = (_TITLE,)

_Hit: TypeAlias = tuple[int, int, int]  # field, start, end (folded offsets)


@dataclass(frozen=True, slots=True)
class _CompiledTerm:
    index: int  # into the per-article cache of hits
    pattern: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    query: QueryNode
    exclude: tuple[_CompiledTerm, ...]
    require: tuple[_CompiledTerm, ...]


class _Article:
    """One article's three fields, folded once, with the hits of each term found so far."""

    __slots__ = ("_hits", "fields")

    def __init__(self, title: str, summary: str, text: str) -> None:
        self.fields = (_Folded(text), _Folded(summary), _Folded(title))  # _TEXT, _SUMMARY, _TITLE
        self._hits: dict[tuple[int, int], list[tuple[int, int]]] = {}

    def hits(self, term: _CompiledTerm, fields: tuple[int, ...]) -> list[_Hit]:
        found: list[_Hit] = []
        for field in fields:
            key = (term.index, field)
            spans = self._hits.get(key)
            if spans is None:
                spans = [m.span() for m in term.pattern.finditer(self.fields[field].folded)]
                self._hits[key] = spans
            found.extend((field, start, end) for start, end in spans)
        return found


class Matcher:
    """Topics compiled for matching articles; build it with `compile_topics`."""

    def __init__(self, rules: Sequence[_Rule], terms: dict[str, _CompiledTerm]) -> None:
        self._rules = tuple(rules)
        self._terms = terms  # keyword as written -> compiled term
        self.topics: tuple[str, ...] = tuple(rule.name for rule in rules)

    def match(self, title: str, summary: str, text: str) -> tuple[models.TopicMatch, ...]:
        """The topics the article matches, in config order, with the words and the sentence."""
        article = _Article(title, summary, text)
        matches: list[models.TopicMatch] = []
        for rule in self._rules:
            matched, hits = self._evaluate(rule.query, article)
            if not (matched and hits):
                continue
            if any(article.hits(term, _ALL_FIELDS) for term in rule.exclude):
                continue
            if rule.require and not any(article.hits(t, _ALL_FIELDS) for t in rule.require):
                continue
            matches.append(_topic_match(rule.name, hits, article))
        return tuple(matches)

    def _evaluate(self, node: QueryNode, article: _Article) -> tuple[bool, list[_Hit]]:
        """Whether `node` holds for the article, and the hits of its positive terms that count.

        OR does not stop at its first true child, so every alternative present is reported.
        """
        if isinstance(node, Term):
            fields = _TITLE_ONLY if node.title_only else _ALL_FIELDS
            hits = article.hits(self._terms[node.keyword], fields)
            return bool(hits), hits
        if isinstance(node, Not):
            matched, _ = self._evaluate(node.child, article)
            return not matched, []
        collected: list[_Hit] = []
        any_true = False
        for child in node.children:
            matched, hits = self._evaluate(child, article)
            if matched:
                any_true = True
                collected.extend(hits)
            elif isinstance(node, And):
                return False, []
        return any_true, collected


def _topic_match(name: str, hits: list[_Hit], article: _Article) -> models.TopicMatch:
    spans = _merge(hits)
    words: list[str] = []
    seen: set[str] = set()
    for field, start, end in spans:
        folded = article.fields[field]
        original = folded.original
        word = _collapse(original[folded.original_offset(start) : folded.original_offset(end)])
        if word.casefold() not in seen:
            seen.add(word.casefold())
            words.append(word)
    field, start, end = spans[0]
    folded = article.fields[field]
    sentence = _sentence(
        folded.original, folded.original_offset(start), folded.original_offset(end)
    )
    return models.TopicMatch(topic=name, words=tuple(words), sentence=sentence)


def _merge(hits: list[_Hit]) -> list[_Hit]:
    """Hits in report order, overlapping ones joined (`rare earth` inside `rare earths`)."""
    merged: list[_Hit] = []
    for field, start, end in sorted(hits):
        if merged and merged[-1][0] == field and start < merged[-1][2]:
            last = merged[-1]
            merged[-1] = (field, last[1], max(last[2], end))
        else:
            merged.append((field, start, end))
    return merged


# --- sentences ---------------------------------------------------------------------------------

_SENTENCE_MAX = 300
_WHITE_SPACE = re.compile(r"\s+")
_SENTENCE_BREAK = re.compile(r"[.!?]+[\"'”’»)\]]*(?=\s)|[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")
_INITIALS = re.compile(r"(?:[^\W\d_]\.)*[^\W\d_]")
# Titles written before a name: their period is followed by a capital but ends no sentence.
_TITLE_WORDS = "mr mrs ms dr prof st gen lt col capt sgt maj rep sen gov pres rev hon vs"
_TITLES = frozenset(_TITLE_WORDS.split())


def _collapse(text: str) -> str:
    return _WHITE_SPACE.sub(" ", text).strip()


def _ends_sentence(text: str, brk: re.Match[str]) -> bool:
    """Whether a break found by _SENTENCE_BREAK really ends a sentence."""
    mark = brk.group()
    if mark[0] not in ".!?":  # a line break
        return True
    following = text[brk.end() : brk.end() + 20].lstrip()[:1]
    if following.islower() or following.isdigit():  # "Sept. 28", "approx. five"
        return False
    if mark[0] != "." or mark.startswith(".."):
        return True
    # "U.S. Strategic", "Donald J. Trump", "Dr. Baloch": the period closes the word, not the
    # sentence.
    word = re.split(r"[\s(\"'“‘]", text[max(0, brk.start() - 12) : brk.start()])[-1]
    return not (_INITIALS.fullmatch(word) or word.casefold() in _TITLES)


def _sentence(text: str, start: int, end: int) -> str:
    """The sentence of `text` around [start, end), white space collapsed, cut to ~300 chars."""
    first, last = 0, len(text)
    for brk in _SENTENCE_BREAK.finditer(text):
        if brk.end() <= start:
            if _ends_sentence(text, brk):
                first = brk.end()
        elif brk.start() >= end and _ends_sentence(text, brk):
            last = brk.end()
            break
    before = _WHITE_SPACE.sub(" ", text[first:start]).lstrip()
    hit = _collapse(text[start:end])
    after = _WHITE_SPACE.sub(" ", text[end:last]).rstrip()
    return _clip(before, hit, after)


def _clip(before: str, hit: str, after: str) -> str:
    """Join the three, cutting `before` and `after` at word boundaries to fit _SENTENCE_MAX."""
    if len(hit) >= _SENTENCE_MAX:
        return hit[:_SENTENCE_MAX] + "…"
    room = _SENTENCE_MAX - len(hit)
    if len(before) + len(after) <= room:
        return before + hit + after
    # Centre the hit, giving one side's unused share to the other.
    keep_before = min(len(before), max(room // 2, room - len(after)))
    keep_after = min(len(after), room - keep_before)
    if keep_before < len(before):
        tail = before[len(before) - keep_before :]
        if not before[len(before) - keep_before - 1].isspace() and " " in tail:
            tail = tail[tail.index(" ") + 1 :]
        before = "…" + tail
    if keep_after < len(after):
        head = after[:keep_after]
        if not after[keep_after].isspace() and " " in head:
            head = head[: head.rindex(" ")]
        after = head + "…"
    return before + hit + after


# --- compiling ---------------------------------------------------------------------------------


def compile_topics(topics: Sequence[models.Topic]) -> Matcher:
    """Compile the topics of one config version; an equal config gives the same Matcher.

    Raises QueryError naming the topic when a keyword or query cannot be used.
    """
    return _compile(tuple(topics))


@functools.lru_cache(maxsize=8)
def _compile(topics: tuple[models.Topic, ...]) -> Matcher:
    terms: dict[str, _CompiledTerm] = {}
    by_spec: dict[_KeywordSpec, _CompiledTerm] = {}  # one regex for "Baloch*" and "baloch*"

    def compiled(keyword: str) -> _CompiledTerm:
        if keyword not in terms:
            try:
                spec = _parse_keyword(keyword)
            except QueryError as exc:
                raise QueryError(f"keyword {keyword!r}: {exc.message}", exc.position) from exc
            if spec not in by_spec:
                by_spec[spec] = _CompiledTerm(len(by_spec), _keyword_pattern(spec))
            terms[keyword] = by_spec[spec]
        return terms[keyword]

    rules: list[_Rule] = []
    for topic in topics:
        try:
            query = _topic_query(topic)
            for term in _terms_of(query):
                compiled(term.keyword)
            exclude = tuple(compiled(keyword) for keyword in topic.exclude)
            require = tuple(compiled(keyword) for keyword in topic.require)
        except QueryError as exc:
            raise QueryError(f"topic {topic.name!r}: {exc.message}", exc.position) from exc
        rules.append(_Rule(topic.name, query, exclude, require))
    return Matcher(rules, terms)


def _topic_query(topic: models.Topic) -> QueryNode:
    """The topic as one query: its `query`, or its keywords joined by OR."""
    if topic.query is not None:
        if topic.keywords:
            raise QueryError("a topic takes `keywords` or `query`, not both")
        try:
            return parse_query(topic.query)
        except QueryError as exc:
            raise QueryError(f"query: {exc.message}", exc.position) from exc
    if not topic.keywords:
        raise QueryError("a topic needs `keywords` or `query`")
    return Or(tuple(Term(keyword) for keyword in topic.keywords))
