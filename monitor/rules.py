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

An article's fields are joined into one text, normalised once (`_Folded`) with a map from
normalised offsets back to the original, so the words and the sentence reported come from the
article as written. One Aho-Corasick scan (`_Index`, C-speed) finds every occurrence of every
keyword; only the topics that the keywords present can make true are evaluated, and only the
occurrences a match reports are mapped back to the original (benchmarks/matching_bench.py). A
`Matcher` never changes after it is built, so threads may share it.

Where the project was built with a C compiler, `monitor/_speedups.c` does the work that costs
most in Python beside the automaton: the copy of a text with its spaces, dashes, apostrophes
and other signs replaced (`_spaced`), lower-casing and collapsing runs of spaces
(`_lower_collapsed`), sorting the scan's occurrences into fields (`_Index.scan` of ASCII text),
mapping hits back to the written text (`_Folded.written`), merging a topic's hits into its
words (`_topic_match`) and finding each reported sentence (`_sentence`). Else the Python forms
here do it, with the same results (tests/test_speedups.py).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import operator
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import ahocorasick_rs

from monitor import models
from monitor.errors import QueryError

# The compiled forms of `_sentence_py`, `_written_py`, `_lower_collapsed_py`, `_spaced_py`,
# `_topic_words_py` and of `_Index._scan` over `_Index._ascii_occurrences`, if the build made
# them.
_compiled_sentence: Callable[[str, int, int, frozenset[str]], str] | None = None
_compiled_written: (
    Callable[[str, list[int], list[int], list[tuple[int, int]]], list[str]] | None
) = None
_compiled_lower_collapsed: Callable[[str, int, int, int, list[int], list[int]], str] | None = None
_compiled_spaced: Callable[[str, bytes, str], tuple[str, set[str]]] | None = None
_compiled_topic_words: (
    Callable[
        [list[tuple[list[tuple[int, int]], list[str]]], str, list[int], list[int]],
        tuple[tuple[int, int], tuple[str, ...]],
    ]
    | None
) = None
_compiled_scan_ascii: (
    Callable[
        [list[tuple[int, int, int]], list[int], list[int], bytes, bytes, str, list[int]],
        list[dict[int, list[tuple[int, int, bool]]]],
    ]
    | None
) = None
with contextlib.suppress(ImportError):
    from monitor._speedups import lower_collapsed as _compiled_lower_collapsed
    from monitor._speedups import scan_ascii as _compiled_scan_ascii
    from monitor._speedups import sentence as _compiled_sentence
    from monitor._speedups import spaced as _compiled_spaced
    from monitor._speedups import topic_words as _compiled_topic_words
    from monitor._speedups import written as _compiled_written

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
_WORD_RUN = re.compile(f"{_WORD_CHAR}+")

_DASH_CHARS = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_LETTER = r"[^\W\d_]"
# The white space and dashes of ASCII but the space: alone, each is a space; in a run, the run is.
_ASCII_SPACES = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f-"
_ASCII_BYTES = bytes(range(0x80))
# A run of white space and dashes, once each of them is a space.
_SPACE_RUN = re.compile("(   *)")
# A period between single letters ("U.S." -> "US"): after a letter that follows no word
# character, and before such a letter or after a second one ("U.S.").
_INITIALS_DOT = re.compile(
    rf"\.(?<=(?<!\w){_LETTER}\.)(?:(?={_LETTER}(?!\w))|(?<=(?<!\w){_LETTER}\.{_LETTER}\.))"
)


@functools.cache
def _fold_classes() -> tuple[frozenset[str], frozenset[str], re.Pattern[str]]:
    """The characters beyond ASCII that fold to a space (white space and dashes); those of the
    Basic Multilingual Plane whose folded form may not be their lower case (`_folds_apart`);
    and a pattern of the characters beyond ASCII that folding may do more to than lower case:
    these, the apostrophes, every character beyond the Basic Multilingual Plane (which counts
    as folding apart whatever it is: `_fold_char` says what it becomes), and the characters that
    are no word character (see `_Folded`'s `neutral`).

    Built on first use, once per process: a pass over the Basic Multilingual Plane and the
    compiling of its pattern take some 140 ms.
    """
    spacey: list[str] = []
    apart: list[str] = []
    special: list[str] = []
    for char in map(chr, range(0x80, 0x10000)):
        if char.isspace() or char in _DASH_CHARS:
            spacey.append(char)
        elif char not in _APOSTROPHES and _folds_apart(char):
            apart.append(char)
        elif not (char.isalnum() or char in _APOSTROPHES):  # no word character
            special.append(char)
    special = sorted([*special, *spacey, *apart, *_APOSTROPHES])
    pattern = re.compile(f"[{_char_class(special)}\\U00010000-\\U0010ffff]")
    return frozenset(spacey), frozenset(apart), pattern


def _char_class(chars: Sequence[str]) -> str:
    """The inside of a regex character class holding `chars` (sorted), as ranges."""
    ranges: list[list[int]] = []
    for code in map(ord, chars):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return "".join(
        re.escape(chr(low)) if low == high else f"{re.escape(chr(low))}-{re.escape(chr(high))}"
        for low, high in ranges
    )


def _folds_apart(char: str) -> bool:
    """Whether `_fold_char(char)` may differ from `char.lower()`: white space, dashes and the
    apostrophes aside, which fold to a space and "'"."""
    return bool(
        unicodedata.decomposition(char)  # accents, ligatures, compatibility forms
        or char.casefold() != char.lower()  # "ß" -> "ss"
        or char == "\u03a3"  # "Σ": str.lower() makes it "ς" at the end of a word, fold "σ"
        or unicodedata.category(char) == "Cf"
        or char in _ARABIC_VARIANTS
        or _DIACRITICS.match(char)
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

    Folding is lower case, except at a few spots: a run of white space and dashes is one space
    (a lone one is a space too), a period between single letters vanishes ("U.S." -> "US"),
    and the characters that fold apart (`_fold_classes`: accents, ligatures, soft hyphens...)
    are folded one by one (`_fold_char`), in place when they stay one character. The spots are
    found with C-speed `str` and `bytes` work over a copy where every white space character and
    dash is a space and every apostrophe "'"; between them `str.lower` is the fold and keeps
    every offset.

    The map is piecewise: at `_fold_marks[i]` in the folded text is `_orig_marks[i]` in the
    original, and from there both advance together up to the next mark. Folding adds a mark
    wherever it changes a length.
    """

    __slots__ = ("_fold_marks", "_orig_marks", "folded", "original")

    def __init__(
        self, original: str, neutral: str = "", keep: frozenset[str] = frozenset()
    ) -> None:
        self.original = original
        # Most texts are ASCII once their quotes and dashes are replaced, and lower-casing
        # ASCII is many times faster.
        spaced, apart = _spaced(original, neutral, keep)
        # The spots where folding changes the length, but runs of spaces: (start, end, folded
        # form). Runs are collapsed between them (`_collapse_runs`).
        spots: list[tuple[int, int, str]] = []
        if "." in spaced:
            spots.extend((dot.start(), dot.end(), "") for dot in _INITIALS_DOT.finditer(spaced))
        in_place: list[tuple[str, str]] = []
        for char in apart:
            folded_char = _fold_char(char)
            # In place when it stays one character that lower case keeps, and that is neither a
            # space (no run of spaces takes it in) nor itself replaced in this text ("𐐥" -> "𐑍"
            # -> ...).
            stays_one = len(folded_char) == 1 and folded_char.lower() == folded_char != " "
            if stays_one and (folded_char == char or folded_char not in apart):
                if folded_char != char:
                    in_place.append((char, folded_char))
                continue
            at = spaced.find(char)
            while at >= 0:
                spots.append((at, at + 1, folded_char))
                at = spaced.find(char, at + 1)
        # Only once the spots are found: a character folded in place might read as a period or
        # a letter to the scan above, and it does not for the original scan.
        for char, folded_char in in_place:
            spaced = spaced.replace(char, folded_char)
        pieces: list[str] = []
        fold_marks = [0]
        orig_marks = [0]
        length = 0  # of the folded text so far
        done = 0  # original offset folded so far
        for start, end, replacement in [*sorted(spots), (len(spaced), len(spaced), "")]:
            between = _lower_collapsed(spaced, done, start, length, fold_marks, orig_marks)
            pieces.append(between)
            pieces.append(replacement)
            length += len(between) + len(replacement)
            if length - fold_marks[-1] != end - orig_marks[-1]:
                fold_marks.append(length)
                orig_marks.append(end)
            done = end
        self.folded = "".join(pieces)
        self._fold_marks = fold_marks
        self._orig_marks = orig_marks

    def written(self, spans: list[tuple[int, int]]) -> list[str]:
        """The original text of each folded span, its ends mapped as by `original_offset`."""
        if len(self._fold_marks) == 1:  # nothing folded to another length
            return [self.original[start:end] for start, end in spans]
        if _compiled_written is not None:
            return _compiled_written(self.original, self._fold_marks, self._orig_marks, spans)
        return _written_py(self.original, self._fold_marks, self._orig_marks, spans)

    def folded_offset(self, offset: int) -> int:
        """The folded offset of original `offset`, at a character that folds to itself."""
        index = bisect_right(self._orig_marks, offset) - 1
        return self._fold_marks[index] + offset - self._orig_marks[index]

    def original_offset(self, offset: int) -> int:
        """The original offset of folded `offset`; characters folded away before it are skipped."""
        index = bisect_right(self._fold_marks, offset) - 1
        mapped = self._orig_marks[index] + offset - self._fold_marks[index]
        if index + 1 < len(self._orig_marks):
            # Inside a piece that folding made longer ("ß" -> "ss"): stay within the piece.
            mapped = min(mapped, self._orig_marks[index + 1])
        return mapped


def _spaced(original: str, neutral: str, keep: frozenset[str]) -> tuple[str, set[str]]:
    """A copy of `original` of the same length where every white space character and dash is
    a space, every apostrophe but the letter "ʼ" is "'", and `neutral` stands for the
    characters beyond ASCII that are no word character and not in `keep`; and the characters
    that fold apart (`_fold_classes`, and every one beyond the Basic Multilingual Plane), left
    as they are for `_Folded` to fold one by one."""
    if _compiled_spaced is not None and not original.isascii():
        return _compiled_spaced(original, _kind_table(neutral, keep), neutral)
    return _spaced_py(original, neutral, keep)


def _spaced_py(original: str, neutral: str, keep: frozenset[str]) -> tuple[str, set[str]]:
    """`_spaced` in Python, the reference the compiled form agrees with: a `str.replace` for
    each character to replace that is present (C speed, a few times faster than on the UTF-8
    bytes), found in the characters beyond ASCII (ASCII bytes are never part of another
    character in UTF-8)."""
    spaced = original
    apart: set[str] = set()
    if not original.isascii():
        _, _, special = _fold_classes()
        beyond_ascii = (
            original.encode("utf-8", "surrogatepass")
            .translate(None, _ASCII_BYTES)
            .decode("utf-8", "surrogatepass")
        )
        for char in set(special.findall(beyond_ascii)):
            kind = _special_kind(char)
            if kind == _SPACE:
                replacement = " "
            elif kind == _APOSTROPHE:
                replacement = "'"
            elif kind == _APART:
                apart.add(char)
                continue
            elif neutral and char not in keep:
                replacement = neutral
            else:
                continue
            spaced = spaced.replace(char, replacement)
    for char in _ASCII_SPACES:
        if char in spaced:
            spaced = spaced.replace(char, " ")
    return spaced, apart


# What `_spaced` does with a character beyond ASCII that `_fold_classes`'s pattern finds, and
# (`_NEUTRAL`, `_PLAIN`) in a kind table of the compiled form.
_PLAIN, _SPACE, _APOSTROPHE, _APART, _NO_WORD, _NEUTRAL = range(6)


def _special_kind(char: str) -> int:
    """`_SPACE`, `_APOSTROPHE`, `_APART` or `_NO_WORD`, for a character `_fold_classes`'s
    pattern finds."""
    spacey, folds_apart, _ = _fold_classes()
    if char in spacey:
        return _SPACE
    if char in _APOSTROPHES and char != "\u02bc":
        return _APOSTROPHE
    if char in folds_apart or char > "\uffff" or char == "\u02bc":
        return _APART
    return _NO_WORD


@functools.lru_cache(maxsize=16)
def _kind_table(neutral: str, keep: frozenset[str]) -> bytes:
    """For the compiled `_spaced`: what it does with each character of the Basic Multilingual
    Plane, for this `neutral` and `keep` (`_PLAIN` where nothing: a word character, or no word
    character kept). Every character beyond it folds apart. Cached: a matcher folds all its
    articles with one `neutral` and `keep`, and a table takes ~0.1 ms once `_base_kind_table`
    has been built (~10 ms, once per process).

    `neutral` is none or one of `_SEPARATORS`, as `_Index` chooses it: one that `_spaced_py`
    itself would replace again (a space or dash) would make the two differ."""
    if neutral and (len(neutral) != 1 or neutral not in _SEPARATORS):
        raise ValueError(f"not a neutral character: {neutral!r}")
    no_word = bytes([_NEUTRAL if neutral else _PLAIN])
    table = bytearray(_base_kind_table().translate(bytes.maketrans(bytes([_NO_WORD]), no_word)))
    for char in keep:
        if char <= "\uffff" and table[ord(char)] == _NEUTRAL:
            table[ord(char)] = _PLAIN
    return bytes(table)


@functools.cache
def _base_kind_table() -> bytes:
    """What `_spaced` does with each character of the Basic Multilingual Plane whatever the
    `neutral` and `keep`: `_SPACE` for the white space and dashes of ASCII, `_special_kind` of
    the characters beyond ASCII that `_fold_classes`'s pattern finds, `_PLAIN` for the others."""
    table = bytearray(0x10000)
    for char in _ASCII_SPACES:
        table[ord(char)] = _SPACE
    _, _, special = _fold_classes()
    for char in special.findall("".join(map(chr, range(0x80, 0x10000)))):
        table[ord(char)] = _special_kind(char)
    return bytes(table)


def _written_py(
    original: str, fold_marks: list[int], orig_marks: list[int], spans: list[tuple[int, int]]
) -> list[str]:
    """`_Folded.written` in Python, the reference the compiled form agrees with (written out,
    not by `original_offset`: a call for each of the thousands of ends is a cost of its own)."""
    last_mark = len(fold_marks) - 1
    ends: list[int] = []
    for offset in itertools.chain.from_iterable(spans):
        mark = bisect_right(fold_marks, offset) - 1
        mapped = orig_marks[mark] + offset - fold_marks[mark]
        if mark < last_mark and mapped > orig_marks[mark + 1]:
            mapped = orig_marks[mark + 1]
        ends.append(mapped)
    return [original[start:end] for start, end in zip(ends[::2], ends[1::2], strict=True)]


def _lower_collapsed(
    text: str, start: int, end: int, fold_at: int, fold_marks: list[int], orig_marks: list[int]
) -> str:
    """`text[start:end]` lower-cased with each run of spaces one space, and a mark after each
    run added to the marks, the piece being at `fold_at` in the folded text."""
    if _compiled_lower_collapsed is not None:
        return _compiled_lower_collapsed(text, start, end, fold_at, fold_marks, orig_marks)
    return _lower_collapsed_py(text, start, end, fold_at, fold_marks, orig_marks)


def _lower_collapsed_py(
    text: str, start: int, end: int, fold_at: int, fold_marks: list[int], orig_marks: list[int]
) -> str:
    """`_lower_collapsed` in Python, the reference the compiled form agrees with."""
    piece = text[start:end].lower()
    if "  " in piece:
        piece = _collapse_runs(piece, fold_at, start, fold_marks, orig_marks)
    return piece


def _collapse_runs(
    text: str, fold_at: int, orig_at: int, fold_marks: list[int], orig_marks: list[int]
) -> str:
    """`text` with each run of spaces one space, and a mark after each run (a run always
    shortens the text) added to the marks, `text` being at `fold_at` in the folded text and at
    `orig_at` in the original. C-speed work, whatever the number of runs (a paragraph break is
    one)."""
    parts_and_runs = _SPACE_RUN.split(text)  # text, run, text, run, ..., text
    parts = parts_and_runs[::2]
    lengths = list(map(len, parts[:-1]))  # the text before each run, from the last one
    runs = map(len, parts_and_runs[1::2])
    fold_after = itertools.accumulate(
        map(operator.add, lengths, itertools.repeat(1)), initial=fold_at
    )
    orig_after = itertools.accumulate(map(operator.add, lengths, runs), initial=orig_at)
    next(fold_after), next(orig_after)  # where `text` starts is no mark
    fold_marks.extend(fold_after)
    orig_marks.extend(orig_after)
    return " ".join(parts)


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


@dataclass(frozen=True, slots=True)
class _CompiledTerm:
    """A keyword ready to look for in folded text.

    A match is the folded keyword where its ends are whole-word (a word character at its edge
    has none beside it; a prefix runs on to the end of its word).
    """

    index: int  # into the per-article caches
    literal: str  # the folded keyword
    prefix: bool
    left: bool  # its first character is a word character
    right: bool  # its last character is one

    @classmethod
    def of(cls, index: int, spec: _KeywordSpec) -> _CompiledTerm:
        left = bool(_IS_WORD_CHAR.match(spec.folded))
        right = bool(_IS_WORD_CHAR.match(spec.folded[-1]))
        return cls(index, spec.folded, spec.prefix, left, right)


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


def _positive_terms(node: QueryNode) -> Iterator[Term]:
    """The terms outside NOT: those a match is shown by."""
    if isinstance(node, Term):
        yield node
    elif not isinstance(node, Not):
        for child in node.children:
            yield from _positive_terms(child)


def parse_query(query: str) -> QueryNode:
    """Parse a boolean query; QueryError carries the 0-based position of the problem."""
    return _Parser(query).parse()


# --- matching ----------------------------------------------------------------------------------

# Fields in the order a match is reported from: the body's sentence tells most.
_TEXT, _SUMMARY, _TITLE = 0, 1, 2
_ALL_FIELDS = (_TEXT, _SUMMARY, _TITLE)
_TITLE_ONLY = (_TITLE,)

# Hits of a keyword: their (start, end) folded offsets in order, and the text written there.
_Hits: TypeAlias = tuple[list[tuple[int, int]], list[str]]


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    query: QueryNode
    exclude: tuple[_CompiledTerm, ...]
    require: tuple[_CompiledTerm, ...]
    keywords: tuple[_CompiledTerm, ...] | None  # a `keywords` topic's terms; None for a query
    positive: frozenset[int]  # the terms outside NOT: a match needs one of them present


class _Index:
    """Where a folded text holds each term, from one scan for all their literals at once.

    An Aho-Corasick automaton (C-speed, every occurrence of every literal, overlapping ones
    too) finds the candidates; a candidate counts where its ends are whole-word, checked on the
    characters beside it.

    Text in ASCII, as most is once folded (see `_Folded`'s `neutral`), is scanned as bytes, whose
    offsets are those of its characters (`AhoCorasick` maps every byte of a text to its
    character first), in a copy where each character that is no word character and in no
    keyword is the separator, with one in front. A literal that starts with a word character is
    looked for after each character that may then stand before it, so it is found only where it
    starts a word: keywords short enough to sit inside many words ("us" in "business") would
    otherwise make most of the candidates.
    """

    def __init__(self, terms: Sequence[_CompiledTerm]) -> None:
        # One pattern per literal: a keyword and a prefix may share one ("Baloch", "Baloch*").
        patterns: dict[str, int] = {}
        self.pattern_of: dict[int, int] = {}  # term index -> pattern
        for term in terms:
            self.pattern_of[term.index] = patterns.setdefault(term.literal, len(patterns))
        self._edges = [(False, False)] * len(patterns)  # (left, right) of each pattern
        self._terms_of: list[list[_CompiledTerm]] = [[] for _ in patterns]
        for term in terms:
            pattern = self.pattern_of[term.index]
            self._edges[pattern] = (term.left, term.right)
            self._terms_of[pattern].append(term)
        # The characters of the keywords; the others are told apart only as word characters or
        # not (see `_Folded`'s `neutral`).
        self.keep = frozenset("".join(patterns))
        # What joins an article's fields into one text to fold and scan, and stands for the
        # other characters that are no word character: no word character, white space or
        # period (no word, run of spaces or initials spans two fields), and in no keyword (no
        # keyword is found across two fields).
        self.separator = next(c for c in _SEPARATORS if c not in self.keep)
        # For text beyond ASCII, the rarer case: an NFA, a few MB smaller than a DFA.
        self._automaton = (
            ahocorasick_rs.AhoCorasick(
                list(patterns), implementation=ahocorasick_rs.Implementation.ContiguousNFA
            )
            if patterns
            else None
        )
        ascii_non_word = [chr(c) for c in range(0x80) if not _IS_WORD_CHAR.match(chr(c))]
        self._to_scan = bytes.maketrans(
            "".join(c for c in ascii_non_word if c not in self.keep).encode(),
            self.separator.encode() * sum(c not in self.keep for c in ascii_non_word),
        )
        before_word = [self.separator, *(c for c in ascii_non_word if c in self.keep)]
        ascii_patterns: list[bytes] = []
        # For each pattern of the ASCII automaton: its literal's pattern, and how far its
        # literal's start is from its own in the folded text (the scanned text has the
        # separator in front).
        self._ascii_pattern: list[int] = []
        self._ascii_shift: list[int] = []
        for literal, pattern in patterns.items():
            if literal.isascii():
                for before in before_word if self._edges[pattern][0] else [""]:
                    ascii_patterns.append((before + literal).encode())
                    self._ascii_pattern.append(pattern)
                    self._ascii_shift.append(len(before) - 1)
        self._right_edges = bytes(right for _, right in self._edges)  # for scan_ascii
        self._ascii_automaton = (
            ahocorasick_rs.BytesAhoCorasick(ascii_patterns, implementation=_DFA)
            if ascii_patterns
            else None
        )

    def scan(self, folded: str, ends: Sequence[int]) -> list[dict[int, list[_Occurrence]]]:
        """For each field of `folded` (the fields joined by `separator`, each ending at its
        offset in `ends`), the occurrences of each pattern that start a word (or need not)."""
        if not folded.isascii():
            return self._scan(folded, ends, self._occurrences(folded))
        if _compiled_scan_ascii is not None:
            return _compiled_scan_ascii(
                self._ascii_matches(folded),
                self._ascii_pattern,
                self._ascii_shift,
                self._right_edges,
                _ASCII_WORD_TABLE,
                folded,
                list(ends),
            )
        return self._scan(folded, ends, self._ascii_occurrences(folded))

    def _ascii_matches(self, folded: str) -> list[tuple[int, int, int]]:
        """The ASCII automaton's (pattern, start, end) in the scanned copy of `folded`."""
        if self._ascii_automaton is None:
            return []
        scanned = (self.separator + folded).encode("ascii").translate(self._to_scan)
        return self._ascii_automaton.find_matches_as_indexes(scanned, overlapping=True)

    def _ascii_occurrences(self, folded: str) -> list[tuple[int, int, int]]:
        """(pattern, start, end) of each occurrence that starts a word, in the order of ends."""
        pattern_of, shift_of = self._ascii_pattern, self._ascii_shift
        return [
            (pattern_of[found], start + shift_of[found], end - 1)
            for found, start, end in self._ascii_matches(folded)
        ]

    def _occurrences(self, folded: str) -> Iterator[tuple[int, int, int]]:
        """(pattern, start, end) of each occurrence that starts a word, in the order of ends."""
        if self._automaton is None:
            return
        edges = self._edges
        for pattern, start, end in self._automaton.find_matches_as_indexes(
            folded, overlapping=True
        ):
            if edges[pattern][0] and start:
                before = folded[start - 1]
                if before in _ASCII_WORD_CHARS or (before > "\x7f" and _is_wide_word_char(before)):
                    continue
            yield pattern, start, end

    def _scan(
        self, folded: str, ends: Sequence[int], occurrences: Iterable[tuple[int, int, int]]
    ) -> list[dict[int, list[_Occurrence]]]:
        found: list[dict[int, list[_Occurrence]]] = [{} for _ in ends]
        edges = self._edges
        last = len(folded) - 1
        field = 0
        in_field = found[0]
        field_end = ends[0]
        # Occurrences come in the order of their ends, so field by field.
        for pattern, start, end in occurrences:
            whole = True
            if edges[pattern][1] and end <= last:
                after = folded[end]
                whole = not (
                    after in _ASCII_WORD_CHARS or (after > "\x7f" and _is_wide_word_char(after))
                )
            while end > field_end:
                field += 1
                in_field = found[field]
                field_end = ends[field]
            if pattern in in_field:
                in_field[pattern].append((start, end, whole))
            else:
                in_field[pattern] = [(start, end, whole)]
        return found

    def present(self, found: dict[int, list[_Occurrence]]) -> set[int]:
        """The indexes of the terms that `found` (see `scan`) holds: a prefix wherever its
        literal starts a word, a keyword where it is a whole word too."""
        present: set[int] = set()
        for pattern, occurrences in found.items():
            for term in self._terms_of[pattern]:
                if term.prefix or True in map(_WHOLE, occurrences):  # C-speed `any`
                    present.add(term.index)
        return present


_Occurrence: TypeAlias = tuple[int, int, bool]  # start, end, whole word at the end too
_WHOLE = operator.itemgetter(2)
# The control characters that are no white space.
_SEPARATORS = "".join(map(chr, [*range(0x09), *range(0x0E, 0x1C), 0x7F]))
_DFA = ahocorasick_rs.Implementation.DFA
# Word characters of ASCII, looked up without a call; other characters go through the regex.
_ASCII_WORD_CHARS = frozenset(c for c in map(chr, range(0x80)) if _IS_WORD_CHAR.match(c))
_ASCII_WORD_TABLE = bytes(chr(c) in _ASCII_WORD_CHARS for c in range(0x80))  # for scan_ascii


@functools.lru_cache(maxsize=4096)
def _is_wide_word_char(char: str) -> bool:
    return bool(_IS_WORD_CHAR.match(char))


class _Article:
    """One article's three fields, folded and scanned as one text (fields joined by the index's
    separator: the same as one by one, with less work for each), with the terms each field
    holds and their hits. Folded offsets are into the joined text."""

    __slots__ = (
        "_found",
        "_hits",
        "_index",
        "_sentences",
        "_starts",
        "folded",
        "originals",
        "present",
        "present_anywhere",
    )

    def __init__(self, title: str, summary: str, text: str, index: _Index) -> None:
        self.originals = (text, summary, title)  # _TEXT, _SUMMARY, _TITLE
        self._index = index
        self.folded = _Folded(index.separator.join(self.originals), index.separator, index.keep)
        # Where each field starts in the joined original, and where it ends in the folded text.
        self._starts = (0, len(text) + 1, len(text) + len(summary) + 2)
        ends = [self.folded.folded_offset(start - 1) for start in self._starts[1:]]
        self._found = index.scan(self.folded.folded, [*ends, len(self.folded.folded)])
        self.present = tuple(index.present(found) for found in self._found)
        self.present_anywhere = self.present[0].union(*self.present[1:])
        self._hits: dict[tuple[int, tuple[int, ...]], _Hits] = {}
        self._sentences: dict[tuple[int, int], str] = {}

    def has(self, term: _CompiledTerm, fields: tuple[int, ...]) -> bool:
        return any(term.index in self.present[field] for field in fields)

    def hits(self, term: _CompiledTerm, fields: tuple[int, ...]) -> _Hits:
        """Where `term` is in `fields`, in order, and the text written there."""
        key = (term.index, fields)
        hits = self._hits.get(key)
        if hits is None:
            spans: list[tuple[int, int]] = []
            for field in fields:
                if term.index in self.present[field]:
                    spans += self._spans_of(term, field)
            hits = self._hits[key] = (spans, self.folded.written(spans))
        return hits

    def _spans_of(self, term: _CompiledTerm, field: int) -> list[tuple[int, int]]:
        """Where `term` is in the field: leftmost first and not overlapping, as a regex of the
        keyword with whole-word look-arounds finds them (a prefix runs on to the end of its
        word)."""
        spans: list[tuple[int, int]] = []
        folded = self.folded.folded
        after = 0  # where the last span ended
        extend = term.prefix and term.right
        for start, end, whole in self._found[field][self._index.pattern_of[term.index]]:
            if start < after or not (whole or term.prefix):
                continue
            if extend and (rest := _WORD_RUN.match(folded, end)):
                end = rest.end()
            spans.append((start, end))
            after = end
        return spans

    def sentence(self, hit: tuple[int, int]) -> str:
        """The sentence around a hit, as reported (topics often share their first hit)."""
        sentence = self._sentences.get(hit)
        if sentence is None:
            start = self.folded.original_offset(hit[0])
            end = self.folded.original_offset(hit[1])
            field = bisect_right(self._starts, start) - 1
            shift = self._starts[field]
            sentence = self._sentences[hit] = _sentence(
                self.originals[field], start - shift, end - shift
            )
        return sentence


class Matcher:
    """Topics compiled for matching articles; build it with `compile_topics`."""

    def __init__(self, rules: Sequence[_Rule], terms: dict[str, _CompiledTerm]) -> None:
        self._rules = tuple(rules)
        self._terms = terms  # keyword as written -> compiled term
        self._index = _Index(list({term.index: term for term in terms.values()}.values()))
        # The rules a term can make true: only they are evaluated for an article.
        self._rules_of: dict[int, list[int]] = {}
        for position, rule in enumerate(self._rules):
            for index in rule.positive:
                self._rules_of.setdefault(index, []).append(position)
        self.topics: tuple[str, ...] = tuple(rule.name for rule in rules)

    def match(self, title: str, summary: str, text: str) -> tuple[models.TopicMatch, ...]:
        """The topics the article matches, in config order, with the words and the sentence."""
        article = _Article(title, summary, text, self._index)
        present = article.present_anywhere
        candidates = {p for index in present for p in self._rules_of.get(index, ())}
        matches: list[models.TopicMatch] = []
        for position in sorted(candidates):
            rule = self._rules[position]
            positives: list[tuple[_CompiledTerm, tuple[int, ...]]]
            if rule.keywords is not None:
                positives = [(t, _ALL_FIELDS) for t in rule.keywords if t.index in present]
            else:
                matched, positives = self._evaluate(rule.query, article)
                if not matched:
                    continue
            if not positives or any(term.index in present for term in rule.exclude):
                continue
            if rule.require and not any(term.index in present for term in rule.require):
                continue
            hits = [article.hits(term, fields) for term, fields in positives]
            matches.append(_topic_match(rule.name, hits, article))
        return tuple(matches)

    def _evaluate(
        self, node: QueryNode, article: _Article
    ) -> tuple[bool, list[tuple[_CompiledTerm, tuple[int, ...]]]]:
        """Whether `node` holds for the article, and its positive terms that count, with the
        fields they count in.

        OR does not stop at its first true child, so every alternative present is reported.
        """
        if isinstance(node, Term):
            term = self._terms[node.keyword]
            fields = _TITLE_ONLY if node.title_only else _ALL_FIELDS
            found = article.has(term, fields)
            return found, [(term, fields)] if found else []
        if isinstance(node, Not):
            matched, _ = self._evaluate(node.child, article)
            return not matched, []
        collected: list[tuple[_CompiledTerm, tuple[int, ...]]] = []
        any_true = False
        for child in node.children:
            matched, positives = self._evaluate(child, article)
            if matched:
                any_true = True
                collected.extend(positives)
            elif isinstance(node, And):
                return False, []
        return any_true, collected


def _topic_match(name: str, hits: list[_Hits], article: _Article) -> models.TopicMatch:
    """The match of a topic shown by `hits`, those of each of its terms."""
    folded = article.folded
    if _compiled_topic_words is not None:
        first, words = _compiled_topic_words(
            hits, folded.original, folded._fold_marks, folded._orig_marks
        )
    else:
        first, words = _topic_words_py(hits, folded)
    return models.TopicMatch(topic=name, words=words, sentence=article.sentence(first))


def _topic_words_py(hits: list[_Hits], folded: _Folded) -> tuple[tuple[int, int], tuple[str, ...]]:
    """The first span of a topic's terms' hits (joined with those it overlaps) and the words
    they found, repeats dropped whatever their case. In the joined text, the order of offsets
    is the order a match is reported in: body text, summary, title. The reference the compiled
    form agrees with."""
    spans, written = hits[0] if len(hits) == 1 else _merge(hits, folded)
    words: list[str] = []
    seen: set[str] = set()
    for text in dict.fromkeys(written):  # without repeats, as most are
        word = _collapse(text)
        if word.casefold() not in seen:
            seen.add(word.casefold())
            words.append(word)
    return spans[0], tuple(words)


def _merge(hits: list[_Hits], folded: _Folded) -> _Hits:
    """The hits of several terms in order, overlapping ones joined (`rare earth` inside
    `rare earths`) and their text read anew."""
    spans: list[tuple[int, int]] = []
    written: list[str] = []
    joined: set[int] = set()
    every = zip(
        itertools.chain.from_iterable(span for span, _ in hits),
        itertools.chain.from_iterable(text for _, text in hits),
        strict=True,
    )
    for (start, end), text in sorted(every):
        if spans and start < spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
            joined.add(len(spans) - 1)
        else:
            spans.append((start, end))
            written.append(text)
    for at in joined:
        written[at] = _written_at(folded, *spans[at])
    return spans, written


def _written_at(folded: _Folded, start: int, end: int) -> str:
    return folded.original[folded.original_offset(start) : folded.original_offset(end)]


# --- sentences ---------------------------------------------------------------------------------

_SENTENCE_MAX = 300
_WHITE_SPACE = re.compile(r"\s+")
_LINE_BREAKS = "\\n\\r\\v\\f\\x1c-\\x1e\\x85\\u2028\\u2029"
# A run of ".!?" and the closing quotes or brackets after it, before white space; or a line
# break. Written to start with one character class, the only start the regex engine can skip
# ahead to (`[.!?]+...|[\n...]` is tried at every character).
_SENTENCE_BREAK = re.compile(
    rf"[.!?{_LINE_BREAKS}](?:(?<=[.!?])[.!?]*[\"'”’»)\]]*(?=\s)|(?<=[{_LINE_BREAKS}]))"
)
_INITIALS = re.compile(r"(?:[^\W\d_]\.)*[^\W\d_]")
# Titles written before a name: their period is followed by a capital but ends no sentence.
_TITLE_WORDS = "mr mrs ms dr prof st gen lt col capt sgt maj rep sen gov pres rev hon vs"
_TITLES = frozenset(_TITLE_WORDS.split())
_OPENERS = re.compile(r"[\s(\"'“‘]")  # what stands before a word
# How far before a hit the start of its sentence is looked for first.
_LOOK_BACK = 300


def _collapse(text: str) -> str:
    return _one_space(text).strip()


def _one_space(text: str) -> str:
    """Every run of white space one space; most texts have none to change. (White space but
    the space is not printable.)"""
    if text.isprintable() and "  " not in text:
        return text
    return _WHITE_SPACE.sub(" ", text)


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
    word = _OPENERS.split(text[max(0, brk.start() - 12) : brk.start()])[-1]
    return not (_INITIALS.fullmatch(word) or word.casefold() in _TITLES)


def _sentence(text: str, start: int, end: int) -> str:
    """The sentence of `text` around [start, end), white space collapsed, cut to ~300 chars."""
    if _compiled_sentence is not None:
        return _compiled_sentence(text, start, end, _TITLES)
    return _sentence_py(text, start, end)


def _sentence_py(text: str, start: int, end: int) -> str:
    """`_sentence` in Python: the reference the compiled form agrees with."""
    first, last = _sentence_bounds(text, start, end)
    before = _one_space(text[first:start]).lstrip()
    hit = _collapse(text[start:end])
    after = _one_space(text[end:last]).rstrip()
    return _clip(before, hit, after)


def _sentence_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    """Where the sentence around [start, end) begins and ends: after the last break before it
    that ends a sentence (else at 0), and through the first such break after it (else at the
    end of the text).

    Breaks are looked for from a space some way before `start`, and from further back only
    when no sentence ends in between: a break never holds a space, so past one the breaks are
    the ones a scan from the start of the text finds.
    """
    look_back = _LOOK_BACK
    while True:
        origin = text.rfind(" ", 0, start - look_back) + 1 if start > look_back else 0
        before: list[re.Match[str]] = []
        last = len(text)
        for brk in _SENTENCE_BREAK.finditer(text, origin):
            if brk.end() <= start:
                before.append(brk)
            elif brk.start() >= end and _ends_sentence(text, brk):
                last = brk.end()
                break
        for brk in reversed(before):  # the last one that ends a sentence
            if _ends_sentence(text, brk):
                return brk.end(), last
        if origin == 0:
            return 0, last
        look_back *= 4


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


# The config in use and the one before it: a reload that changes nothing else, or puts back the
# keywords it had, compiles nothing. No more: a compiled matcher of 1,000 keywords holds ~11 MB
# (its automata).
@functools.lru_cache(maxsize=2)
def _compile(topics: tuple[models.Topic, ...]) -> Matcher:
    terms: dict[str, _CompiledTerm] = {}
    by_spec: dict[_KeywordSpec, _CompiledTerm] = {}  # one term for "Baloch*" and "baloch*"

    def compiled(keyword: str) -> _CompiledTerm:
        if keyword not in terms:
            try:
                spec = _parse_keyword(keyword)
            except QueryError as exc:
                raise QueryError(f"keyword {keyword!r}: {exc.message}", exc.position) from exc
            if spec not in by_spec:
                by_spec[spec] = _CompiledTerm.of(len(by_spec), spec)
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
        positive = frozenset(terms[term.keyword].index for term in _positive_terms(query))
        keywords = None
        if topic.query is None:
            keywords = tuple({terms[k].index: terms[k] for k in topic.keywords}.values())
        rules.append(_Rule(topic.name, query, exclude, require, keywords, positive))
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
