"""The keyword/query language of keywords.yaml: one table per rule of CONTRACT.md, then the
user's own topics against the five seed articles."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor import rules
from monitor.errors import QueryError
from monitor.models import Topic, TopicMatch
from monitor.rules import And, Not, Or, Term

# The user's real topics, exactly as configured.
TOPICS = (
    Topic(
        "balochistan",
        keywords=("Balochistan", "Baluchistan", "Baloch*", "Quetta", "Gwadar", "بلوچستان"),
    ),
    Topic(
        "rare-earth",
        keywords=(
            "rare earth",
            "rare earths",
            "rare-earth elements",
            "neodymium",
            "praseodymium",
            "dysprosium",
            "lanthanum",
            "critical minerals",
            "critical mineral",
        ),
        exclude=("rare earth magnet ETF",),
    ),
    Topic(
        "ussm",
        keywords=("US Strategic Metals", "USSM"),
        require=("Pakistan", "Pakistani", "Islamabad", "Frontier Works", "refinery", "Balochistan"),
    ),
)

# What /work/shared/data/README.md says each seed is about.
SEED_TOPICS = {
    "000": ("balochistan", "rare-earth"),
    "001": ("balochistan", "rare-earth"),
    "002": ("balochistan", "rare-earth", "ussm"),
    "003": ("rare-earth", "ussm"),
    "004": ("balochistan", "rare-earth", "ussm"),
}


def match_one(topic: Topic, text: str, *, title: str = "", summary: str = "") -> TopicMatch | None:
    """The match of the single `topic`, or None."""
    found = rules.compile_topics((topic,)).match(title, summary, text)
    return found[0] if found else None


def keyword_words(keyword: str, text: str) -> tuple[str, ...] | None:
    found = match_one(Topic("t", keywords=(keyword,)), text)
    return found.words if found else None


# --- keywords ----------------------------------------------------------------------------------

KEYWORD_CASES = [
    # whole word, any case
    ("USSM", "USSM signs a deal", ("USSM",), "acronym"),
    ("USSM", "USSMART sells phones", None, "not-inside-longer-word"),
    ("REE", "REE prices rose", ("REE",), "short-word"),
    ("REE", "down the street", None, "not-inside-street"),
    ("ree", "the REE market", ("REE",), "case-insensitive"),
    ("Frontier Works", "the FRONTIER WORKS Organisation", ("FRONTIER WORKS",), "phrase-case"),
    ("G7", "the G7 summit", ("G7",), "digits"),
    ("G7", "the G77 group", None, "digits-whole-word"),
    ("Balochistan", "Pakistan’s Balochistan’s mines", ("Balochistan",), "possessive"),
    ("Pakistan's", "Pakistan’s army", ("Pakistan’s",), "typographic-apostrophe"),
    # phrases across hyphens and white space
    ("rare earth", "Rare-Earth supply", ("Rare-Earth",), "hyphen"),
    ("rare earth", "rare  earth supply", ("rare earth",), "double-space"),
    ("rare earth", "rare\nearth supply", ("rare earth",), "line-break"),
    ("rare earth", "rare – earth supply", ("rare – earth",), "spaced-dash"),
    ("rare-earth elements", "rare earth elements", ("rare earth elements",), "hyphen-in-keyword"),
    ("rare earth", "rareearth", None, "glued"),
    ("rare earth", "rare earthworms", None, "phrase-whole-word"),
    # periods in acronyms
    ("US Strategic Metals", "U.S. Strategic Metals said", ("U.S. Strategic Metals",), "u.s."),
    ("US Strategic Metals", "U.S Strategic Metals said", ("U.S Strategic Metals",), "u.s-no-end"),
    ("U.S. Strategic Metals", "US Strategic Metals said", ("US Strategic Metals",), "kw-periods"),
    # diacritics, both ways
    ("Quetta", "snow in Quéttä", ("Quéttä",), "text-diacritics"),
    ("Quéttä", "snow in Quetta", ("Quetta",), "keyword-diacritics"),
    ("Quetta", "QUÉTTA", ("QUÉTTA",), "upper-diacritics"),
    ("Quetta", "Que\u0301tta", ("Que\u0301tta",), "combining-accent"),
    ("Quetta", "Quet\u00adta", ("Quet\u00adta",), "soft-hyphen"),
    # prefixes
    ("Baloch*", "the Balochistan province", ("Balochistan",), "prefix-longer"),
    ("Baloch*", "the Balochs said", ("Balochs",), "prefix-plural"),
    ("Baloch*", "a Baloch leader", ("Baloch",), "prefix-itself"),
    ("Baloch*", "a Baloch-led march", ("Baloch",), "prefix-stops-at-hyphen"),
    ("Baloch*", "antiBaloch", None, "prefix-starts-a-word"),
    # non-Latin scripts
    ("بلوچستان", "قال إن بلوچستان، غنية", ("بلوچستان",), "arabic-between-punctuation"),
    ("بلوچستان", "صوبہ بلوچستان میں", ("بلوچستان",), "urdu-running-text"),
    ("بلوچستان", "وبلوچستان", None, "arabic-whole-word"),
    ("كراچي", "کراچی میں", ("کراچی",), "arabic-persian-letter-forms"),
    ("稀土", "中国稀土出口增长", ("稀土",), "cjk-substring"),
    ("稀土", "中国的稀有金属", None, "cjk-absent"),
    ("ปากีสถาน", "ประเทศปากีสถานส่งออก", ("ปากีสถาน",), "thai-substring"),
    ("Balochistan", "在Balochistan地区", ("Balochistan",), "latin-beside-cjk"),
]


@pytest.mark.parametrize(
    ("keyword", "text", "words"),
    [case[:3] for case in KEYWORD_CASES],
    ids=[case[3] for case in KEYWORD_CASES],
)
def test_keyword(keyword: str, text: str, words: tuple[str, ...] | None) -> None:
    assert keyword_words(keyword, text) == words


CHECK_KEYWORD_ERRORS = [
    ("", 0, "empty"),
    ("   ", 0, "blank"),
    ("*", 0, "lone-star"),
    ("  *", 2, "lone-star-indented"),
    ("Bal*och", 3, "star-inside"),
    ("*Baloch", 0, "star-first"),
    ("Baloch**", 6, "two-stars"),
    ("rare *", 5, "star-after-space"),
    ('"rare earth"', 0, "quoted"),
    ("-", 0, "no-letters"),
    ("\u0301", 0, "only-a-combining-mark"),
]


@pytest.mark.parametrize(
    ("keyword", "position"),
    [case[:2] for case in CHECK_KEYWORD_ERRORS],
    ids=[case[2] for case in CHECK_KEYWORD_ERRORS],
)
def test_check_keyword_rejects(keyword: str, position: int) -> None:
    with pytest.raises(QueryError) as caught:
        rules.check_keyword(keyword)
    assert caught.value.position == position


@pytest.mark.parametrize(
    "keyword", ["Baloch*", "rare-earth elements", "U.S.", "稀土", "بلوچستان", "C++", "G7"]
)
def test_check_keyword_accepts(keyword: str) -> None:
    rules.check_keyword(keyword)


# --- exclude and require -----------------------------------------------------------------------

RARE_EARTH, USSM = TOPICS[1], TOPICS[2]

CONTEXT_CASES = [
    # (topic, title, summary, text, matches?)
    (RARE_EARTH, "", "", "Rare earth output rose.", True, "keyword"),
    (RARE_EARTH, "", "", "Buy the rare earth magnet ETF now.", False, "exclude"),
    (
        RARE_EARTH,
        "",
        "",
        "Rare earth rose. Also: Rare-Earth Magnet ETF.",
        False,
        "exclude-elsewhere",
    ),
    (RARE_EARTH, "Rare earth magnet ETF", "", "Rare earth output rose.", False, "exclude-in-title"),
    (RARE_EARTH, "", "rare earth magnet ETF", "Rare earth output rose.", False, "exclude-summary"),
    (RARE_EARTH, "", "", "rare earth magnet exports", True, "exclude-needs-whole-phrase"),
    (USSM, "", "", "USSM announced a deal.", False, "require-none-present"),
    (USSM, "USSM", "USSM news", "USSM announced a deal.", False, "require-none-anywhere"),
    (USSM, "", "", "USSM announced a deal with Pakistan.", True, "require-one-present"),
    (USSM, "", "", "USSM will build a refinery.", True, "require-another-one"),
    (USSM, "Islamabad talks", "", "USSM announced a deal.", True, "require-in-title"),
    (USSM, "", "in Balochistan", "USSM announced a deal.", True, "require-in-summary"),
    (USSM, "", "", "USSM in Pakistanis' eyes", False, "require-whole-word"),
]


@pytest.mark.parametrize(
    ("topic", "title", "summary", "text", "matches"),
    [case[:5] for case in CONTEXT_CASES],
    ids=[case[5] for case in CONTEXT_CASES],
)
def test_exclude_and_require(
    topic: Topic, title: str, summary: str, text: str, matches: bool
) -> None:
    assert (match_one(topic, text, title=title, summary=summary) is not None) is matches


# --- queries -----------------------------------------------------------------------------------

PARSE_CASES = [
    ("ETF", Term("ETF"), "term"),
    ('"rare earth"', Term("rare earth"), "phrase"),
    ("a b", And((Term("a"), Term("b"))), "implicit-and"),
    ("a AND b c", And((Term("a"), Term("b"), Term("c"))), "and-chain"),
    ("a OR b c", Or((Term("a"), And((Term("b"), Term("c"))))), "and-binds-tighter-than-or"),
    ("a b OR c", Or((And((Term("a"), Term("b"))), Term("c"))), "or-after-and"),
    ("NOT a b", And((Not(Term("a")), Term("b"))), "not-binds-tightest"),
    ("a OR NOT b c", Or((Term("a"), And((Not(Term("b")), Term("c"))))), "not-and-or"),
    ("(a OR b) c", And((Or((Term("a"), Term("b"))), Term("c"))), "parentheses"),
    ("title:ETF", Term("ETF", title_only=True), "title-term"),
    ('title:"rare earth"', Term("rare earth", title_only=True), "title-phrase"),
    (
        "title:(a OR b) c",
        And((Or((Term("a", title_only=True), Term("b", title_only=True))), Term("c"))),
        "title-group",
    ),
    ("Baloch* and", And((Term("Baloch*"), Term("and"))), "lower-case-operators-are-words"),
    (
        '("rare earth" OR REE) AND (Pakistan OR Balochistan) AND NOT title:ETF',
        And(
            (
                Or((Term("rare earth"), Term("REE"))),
                Or((Term("Pakistan"), Term("Balochistan"))),
                Not(Term("ETF", title_only=True)),
            )
        ),
        "contract-example",
    ),
]


@pytest.mark.parametrize(
    ("query", "tree"), [case[:2] for case in PARSE_CASES], ids=[case[2] for case in PARSE_CASES]
)
def test_parse_query(query: str, tree: rules.QueryNode) -> None:
    assert rules.parse_query(query) == tree


QUERY_ERRORS = [
    ("", 0, "empty"),
    ("   ", 0, "blank"),
    ("(a OR b", 0, "unclosed-paren"),
    ("a (b", 2, "unclosed-inner-paren"),
    ("a OR b)", 6, "unopened-paren"),
    ("()", 0, "empty-parens"),
    ('"rare earth', 0, "unclosed-quote"),
    ('a "b', 2, "unclosed-second-quote"),
    ('""', 0, "empty-phrase"),
    ("a AND", 2, "dangling-and"),
    ("AND a", 0, "leading-and"),
    ("a OR OR b", 2, "double-or"),
    ("a OR", 2, "dangling-or"),
    ("NOT", 0, "lone-not"),
    ("a NOT", 2, "dangling-not"),
    ("(a AND) b", 3, "and-before-paren"),
    ("title:", 0, "title-alone"),
    ("title: NOT a", 0, "title-before-not"),
    ("NOT a", 0, "only-negative"),
    ("a*b", 1, "star-inside-term"),
    ("x *", 2, "lone-star-term"),
    ('"rare *"', 6, "star-after-space-in-phrase"),
    ("(" * 150 + "a" + ")" * 150, 100, "too-deep"),
]


@pytest.mark.parametrize(
    ("query", "position"),
    [case[:2] for case in QUERY_ERRORS],
    ids=[case[2] for case in QUERY_ERRORS],
)
def test_parse_query_errors(query: str, position: int) -> None:
    with pytest.raises(QueryError) as caught:
        rules.parse_query(query)
    assert caught.value.position == position


CONTRACT_QUERY = '("rare earth" OR REE) AND (Pakistan OR Balochistan) AND NOT title:ETF'

QUERY_CASES = [
    # (query, title, text, words or None)
    ('"rare earth" AND Pakistan', "", "Pakistan sells rare earths", None, "and-needs-both"),
    ('"rare earth" AND Pakistan', "", "Pakistan's rare earth", ("Pakistan", "rare earth"), "and"),
    ("USSM OR REE", "", "REE output", ("REE",), "or-one"),
    ("USSM OR REE", "", "USSM and REE", ("USSM", "REE"), "or-reports-every-alternative"),
    ("Pakistan NOT ETF", "", "Pakistan ETF", None, "not-present"),
    ("Pakistan NOT ETF", "", "Pakistan rare earths", ("Pakistan",), "not-absent"),
    ("rare earth", "", "Earth is rare", ("Earth", "rare"), "implicit-and-any-order"),
    ("rare and earth", "", "rare earth", None, "lower-case-and-is-a-word"),
    ("a OR b AND c", "", "a", ("a",), "precedence-or-side"),
    ("a OR b AND c", "", "b", None, "precedence-and-side-incomplete"),
    ("a OR b AND c", "", "c b", ("c", "b"), "precedence-and-side"),
    ("NOT a b", "", "b", ("b",), "not-precedence"),
    ("NOT a b", "", "a b", None, "not-precedence-vetoed"),
    ("a AND NOT b OR c", "", "a b c", ("c",), "false-branch-words-not-reported"),
    ("(a OR b) AND NOT (c OR d)", "", "b", ("b",), "negated-group-absent"),
    ("(a OR b) AND NOT (c OR d)", "", "b d", None, "negated-group-present"),
    ("Baloch* AND Pakistan", "", "Balochs of Pakistan", ("Balochs", "Pakistan"), "prefix"),
    ("title:ETF", "Rare earth ETF", "nothing", ("ETF",), "title-in-title"),
    ("title:ETF", "Rare earths", "an ETF", None, "title-not-in-text"),
    ('title:"rare earth"', "Rare-Earth rally", "", ("Rare-Earth",), "title-phrase"),
    (
        "title:(USSM OR REE) Pakistan",
        "USSM deal",
        "in Pakistan",
        ("Pakistan", "USSM"),
        "title-group",
    ),
    (CONTRACT_QUERY, "Pakistan and REE", "", ("Pakistan", "REE"), "contract-title"),
    (CONTRACT_QUERY, "News", "Balochistan's rare earth", ("Balochistan", "rare earth"), "contract"),
    (CONTRACT_QUERY, "Rare earth ETF", "Balochistan's rare earth", None, "contract-title-etf"),
    (
        CONTRACT_QUERY,
        "News",
        "Balochistan's rare earth ETF",
        ("Balochistan", "rare earth"),
        "etf-body",
    ),
]


@pytest.mark.parametrize(
    ("query", "title", "text", "words"),
    [case[:4] for case in QUERY_CASES],
    ids=[case[4] for case in QUERY_CASES],
)
def test_query_topic(query: str, title: str, text: str, words: tuple[str, ...] | None) -> None:
    found = match_one(Topic("q", query=query), text, title=title)
    assert (found.words if found else None) == words


def test_query_topic_takes_exclude_and_require() -> None:
    topic = Topic("q", query="USSM OR REE", exclude=("ETF",), require=("Pakistan",))
    assert match_one(topic, "REE in Pakistan") is not None
    assert match_one(topic, "REE in Pakistan ETF") is None
    assert match_one(topic, "REE in Chile") is None


def test_query_that_holds_without_a_word_is_no_match() -> None:
    # "a OR NOT b" holds for an article with neither, but there is no word to show.
    assert match_one(Topic("q", query="a OR NOT b"), "nothing here") is None
    assert match_one(Topic("q", query="a OR NOT b"), "an a") is not None


# --- fields and the characters beside a keyword --------------------------------------------------
# An article's three fields are folded and scanned as one text, and characters that are no word
# character and in no keyword all look alike to matching: neither may change what is found.

FIELD_CASES = [
    # (keyword, title, summary, text, words or None)
    ("rare earth", "rare", "earth", "", None, "phrase-across-title-and-summary"),
    ("rare earth", "", "rare", "earth", None, "phrase-across-summary-and-text"),
    ("US", "U.", "S. deal", "", None, "initials-across-fields"),
    ("Baloch*", "", "Baloch", "istan", ("Baloch",), "prefix-stops-at-the-field"),
    ("USSM", "", "", "USSM\x00deal", ("USSM",), "control-character-in-text"),
    ("a\x00b", "a", "b", "", None, "keyword-holding-a-control-character-across-fields"),
    ("a\x00b", "", "", "say a\x00b", ("a\x00b",), "keyword-holding-a-control-character"),
    ("us", "", "", "the business of busy users", None, "short-keyword-inside-words"),
    ("us", "", "", "“us”, •us• and (us)", ("us",), "short-keyword-beside-punctuation"),
    ("“quoted”", "", "", "a “quoted” word", ("“quoted”",), "keyword-holding-curly-quotes"),
    ("“quoted”", "", "", "a quoted word", None, "curly-quotes-are-not-any-punctuation"),
    ("S&P 500", "", "", "the S&P 500 rose", ("S&P 500",), "keyword-holding-punctuation"),
    ("S&P 500", "", "", "the S P 500 and S+P 500", None, "punctuation-is-not-any-other"),
    ("e.g.", "", "", "fruit, e.g. apples", ("e.g.",), "keyword-ending-with-a-period"),
    ("C++", "", "", "in C++, and C+", ("C++",), "keyword-ending-with-symbols"),
    ("Pakistan", "", "", "Москва и Pakistan’s deal", ("Pakistan",), "latin-in-cyrillic-text"),
    ("Москва", "", "", "«Москва» и Pakistan", ("Москва",), "cyrillic-between-guillemets"),
    ("us", "", "", "Москва: us, but not campus", ("us",), "short-keyword-in-text-beyond-ascii"),
]


@pytest.mark.parametrize(
    ("keyword", "title", "summary", "text", "words"),
    [case[:5] for case in FIELD_CASES],
    ids=[case[5] for case in FIELD_CASES],
)
def test_fields_and_characters_beside_keywords(
    keyword: str, title: str, summary: str, text: str, words: tuple[str, ...] | None
) -> None:
    found = match_one(Topic("t", keywords=(keyword,)), text, title=title, summary=summary)
    assert (found.words if found else None) == words


# --- words and sentences -----------------------------------------------------------------------

BALOCHISTAN, RARE = TOPICS[0], TOPICS[1]

REPORT_CASES = [
    # (topic, title, summary, text, words, sentence)
    (
        TOPICS[2],
        "",
        "",
        "First line. The U.S. Strategic Metals deal was signed in Islamabad. More news.",
        ("U.S. Strategic Metals",),
        "The U.S. Strategic Metals deal was signed in Islamabad.",
        "acronym-is-no-sentence-end",
    ),
    (
        BALOCHISTAN,
        "",
        "",
        "Balochistan is vast. BALOCHISTAN again! Its capital is Quetta; balochistan.",
        ("Balochistan", "Quetta"),
        "Balochistan is vast.",
        "first-appearance-first-no-repeats",
    ),
    (
        BALOCHISTAN,
        "",
        "",
        "Some Balochs met. Balochistan and the Baloch.",
        ("Balochs", "Balochistan", "Baloch"),
        "Some Balochs met.",
        "prefix-words",
    ),
    (
        RARE,
        "",
        "",
        "Prices fell.\nThe   rare earths\tmarket grew fast\nNext line",
        ("rare earths",),
        "The rare earths market grew fast",
        "line-break-ends-sentence-and-white-space-collapses",
    ),
    (
        RARE,
        "",
        "",
        "They met Dr. Ali and Donald J. Trump about rare earths? Yes. Later.",
        ("rare earths",),
        "They met Dr. Ali and Donald J. Trump about rare earths?",
        "titles-and-initials",
    ),
    (
        RARE,
        "",
        "",
        "It shipped Sept. 28 with rare-earth elements. Done.",
        ("rare-earth elements",),
        "It shipped Sept. 28 with rare-earth elements.",
        "period-before-digit-is-no-end",
    ),
    (
        RARE,
        "",
        "",
        "He said “rare earth.” Then he left.",
        ("rare earth",),
        "He said “rare earth.”",
        "sentence-ends-after-closing-quote",
    ),
    (
        RARE,
        "Rare earths in the title",
        "Rare earths in the summary. Second.",
        "Body sentence with rare earths. Second.",
        ("rare earths",),
        "Body sentence with rare earths.",
        "sentence-from-text-first",
    ),
    (
        RARE,
        "Rare earths in the title",
        "Summary with rare earths. Second.",
        "The body says nothing.",
        ("rare earths",),
        "Summary with rare earths.",
        "sentence-from-summary-next",
    ),
    (
        RARE,
        "Rare earths in the title",
        "Nothing here.",
        "Nothing there.",
        ("Rare earths",),
        "Rare earths in the title",
        "sentence-from-title-last",
    ),
]


@pytest.mark.parametrize(
    ("topic", "title", "summary", "text", "words", "sentence"),
    [case[:6] for case in REPORT_CASES],
    ids=[case[6] for case in REPORT_CASES],
)
def test_words_and_sentence(
    topic: Topic,
    title: str,
    summary: str,
    text: str,
    words: tuple[str, ...],
    sentence: str,
) -> None:
    assert match_one(topic, text, title=title, summary=summary) == TopicMatch(
        topic.name, words, sentence
    )


def test_long_sentence_is_cut_around_the_match() -> None:
    before = " ".join(f"word{i}" for i in range(100))
    after = " ".join(f"more{i}" for i in range(100))
    found = match_one(RARE, f"{before} rare earths {after}.")
    assert found is not None
    sentence = found.sentence
    assert sentence.startswith("…word") and sentence.endswith("…")
    assert "rare earths" in sentence
    assert len(sentence) <= 302
    # Cut at word boundaries: every word shown is whole.
    shown = sentence.strip("…").split()
    assert all(w in [*before.split(), "rare", "earths", *after.split()] for w in shown)
    # The match sits in the middle.
    middle = sentence.index("rare earths") + len("rare earths") // 2
    assert abs(middle - len(sentence) // 2) < 20


def test_sentence_near_the_start_keeps_the_start() -> None:
    after = " ".join(f"more{i}" for i in range(100))
    found = match_one(RARE, f"The rare earths {after}.")
    assert found is not None
    assert found.sentence.startswith("The rare earths more0 more1")
    assert found.sentence.endswith("…") and len(found.sentence) <= 301


# --- compiling ---------------------------------------------------------------------------------


def test_matcher_lists_topics_and_matches_in_config_order() -> None:
    matcher = rules.compile_topics(TOPICS)
    assert matcher.topics == ("balochistan", "rare-earth", "ussm")
    found = matcher.match("", "", "USSM, Pakistan, rare earths and Quetta")
    assert [m.topic for m in found] == ["balochistan", "rare-earth", "ussm"]


def test_compile_is_cached_on_equal_config() -> None:
    first = rules.compile_topics(TOPICS)
    rebuilt = tuple(Topic(t.name, t.keywords, t.exclude, t.require, t.query) for t in TOPICS)
    assert rules.compile_topics(list(rebuilt)) is first
    assert rules.compile_topics(TOPICS[:2]) is not first


COMPILE_ERRORS = [
    (Topic("bad", keywords=("Bal*och",)), "'Bal*och'", 3, "bad-keyword"),
    (Topic("bad", keywords=("ok",), exclude=("*",)), "'*'", 0, "bad-exclude"),
    (Topic("bad", keywords=("ok",), require=("",)), "''", 0, "bad-require"),
    (Topic("bad", query="a AND"), "query", 2, "bad-query"),
    (Topic("bad", query="a", exclude=("x*y",)), "'x*y'", 1, "bad-exclude-of-query"),
    (Topic("bad"), "keywords", None, "nothing-to-match"),
    (Topic("bad", keywords=("a",), query="b"), "not both", None, "keywords-and-query"),
]


@pytest.mark.parametrize(
    ("topic", "mentions", "position"),
    [case[:3] for case in COMPILE_ERRORS],
    ids=[case[3] for case in COMPILE_ERRORS],
)
def test_compile_errors_name_the_topic(topic: Topic, mentions: str, position: int | None) -> None:
    with pytest.raises(QueryError) as caught:
        rules.compile_topics((TOPICS[0], topic))
    assert "topic 'bad'" in caught.value.message
    assert mentions in caught.value.message
    assert caught.value.position == position


# --- the user's seed articles ------------------------------------------------------------------


def test_seed_articles_get_the_topics_a_reader_would_give(shared_data: Path) -> None:
    matcher = rules.compile_topics(TOPICS)
    seeds = sorted((shared_data / "seeds").glob("*.txt"))
    assert [seed.name[:3] for seed in seeds] == sorted(SEED_TOPICS)
    for seed in seeds:
        text = seed.read_text(encoding="utf-8")
        found = matcher.match(text.splitlines()[0], "", text)
        assert tuple(m.topic for m in found) == SEED_TOPICS[seed.name[:3]], seed.name
        for topic_match in found:
            assert topic_match.words and topic_match.sentence
            assert topic_match.words[0] in topic_match.sentence


def test_seed_003_is_ussm_without_balochistan(shared_data: Path) -> None:
    (seed,) = (shared_data / "seeds").glob("003_*.txt")
    text = seed.read_text(encoding="utf-8")
    found = {m.topic: m for m in rules.compile_topics(TOPICS).match("", "", text)}
    assert "balochistan" not in found
    assert found["ussm"].words == ("US Strategic Metals", "USSM")
    assert found["ussm"].sentence.startswith("The $500 million memorandum of understanding")


def test_seed_002_finds_us_strategic_metals_with_periods(shared_data: Path) -> None:
    (seed,) = (shared_data / "seeds").glob("002_*.txt")
    found = {
        m.topic: m for m in rules.compile_topics(TOPICS).match("", "", seed.read_text("utf-8"))
    }
    assert found["ussm"].words == ("U.S. Strategic Metals",)
