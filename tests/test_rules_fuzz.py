"""Property tests for the rules: whatever people type as a keyword or query, and whatever text
an article holds, the rules answer or raise QueryError, and every reported word is really there."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import rules
from monitor.errors import QueryError
from monitor.models import Topic

FUZZ = settings(max_examples=200, deadline=None)

# Pieces that exercise the syntax and the folding more often than random characters would.
QUERY_PIECES = st.sampled_from(
    ["a", "Baloch*", "*", " ", "(", ")", '"', "AND", "OR", "NOT", "title:", "rare earth", "-", "é"]
)
TEXT_PIECES = st.sampled_from(
    [
        "Baloch",
        "istan",
        "rare",
        "earth",
        "U.S.",
        "US",
        "Strategic Metals",
        "Quéttä",
        "Que\u0301tta",
        "ß",
        "ﬁ",
        "稀土",
        "بلوچستان",
        "\u00ad",
        " ",
        "  ",
        "\n",
        "-",
        "—",
        ".",
        ". ",
        "’",
        "ETF",
    ]
)
TOPICS = (
    Topic("balochistan", keywords=("Balochistan", "Baloch*", "Quetta", "بلوچستان", "稀土")),
    Topic("rare-earth", keywords=("rare earth", "rare-earth elements"), exclude=("ETF",)),
    Topic("ussm", keywords=("US Strategic Metals", "USSM", "ss", "fi")),
    Topic("query", query='("rare earth" OR Baloch*) AND NOT title:ETF'),
)

queries = st.one_of(st.text(max_size=40), st.lists(QUERY_PIECES, max_size=12).map(" ".join))
texts = st.one_of(st.text(max_size=200), st.lists(TEXT_PIECES, max_size=40).map("".join))


@FUZZ
@given(queries)
def test_parse_query_returns_or_raises_query_error(query: str) -> None:
    try:
        rules.parse_query(query)
    except QueryError as exc:
        assert exc.position is not None and 0 <= exc.position <= len(query)


@FUZZ
@given(st.lists(st.one_of(st.text(max_size=12), QUERY_PIECES), min_size=1, max_size=5))
def test_compile_topics_works_or_raises_query_error(keywords: list[str]) -> None:
    topic = Topic("t", keywords=tuple(keywords), exclude=tuple(keywords[:1]))
    try:
        matcher = rules.compile_topics((topic,))
    except QueryError as exc:
        assert "topic 't'" in exc.message
    else:
        matcher.match("", "", " ".join(keywords))


def collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@FUZZ
@given(texts, texts, texts)
def test_match_reports_only_words_that_are_there(title: str, summary: str, text: str) -> None:
    found = rules.compile_topics(TOPICS).match(title, summary, text)
    fields = [collapse(field) for field in (title, summary, text)]
    for topic_match in found:
        assert topic_match.words
        for word in topic_match.words:
            assert any(word in field for field in fields), word
        first = topic_match.words[0]
        assert first in topic_match.sentence or topic_match.sentence.endswith("…")


@FUZZ
@given(texts)
def test_folding_maps_back_in_order(text: str) -> None:
    folded = rules._Folded(text)
    offsets = [folded.original_offset(i) for i in range(len(folded.folded) + 1)]
    assert offsets == sorted(offsets)
    assert all(0 <= offset <= len(text) for offset in offsets)


@FUZZ
@given(st.one_of(st.text(max_size=20), TEXT_PIECES))
def test_a_usable_keyword_matches_itself_between_spaces(keyword: str) -> None:
    try:
        rules.check_keyword(keyword)
    except QueryError:
        return
    written = keyword.strip().removesuffix("*")
    found = rules.compile_topics((Topic("t", keywords=(keyword,)),)).match(
        "", "", f"say {written} now"
    )
    assert found, written


# Keyword topics only: `exclude`, `require` and queries look at the article as a whole.
KEYWORD_TOPICS = tuple(topic for topic in TOPICS if topic.keywords and not topic.exclude)


@FUZZ
@given(texts, texts, texts)
def test_fields_match_as_if_each_were_alone(title: str, summary: str, text: str) -> None:
    """An article's fields are matched together; a keyword topic matches when one of them does,
    with the words of each in report order (text, summary, title) and the first sentence."""
    matcher = rules.compile_topics(KEYWORD_TOPICS)
    together = {found.topic: found for found in matcher.match(title, summary, text)}
    alone = [
        matcher.match("", "", text),
        matcher.match("", summary, ""),
        matcher.match(title, "", ""),
    ]
    for topic in KEYWORD_TOPICS:
        matches = [found for field in alone for found in field if found.topic == topic.name]
        if not matches:
            assert topic.name not in together
            continue
        words: list[str] = []
        for found in matches:
            words += [w for w in found.words if w.casefold() not in {v.casefold() for v in words}]
        assert together[topic.name].words == tuple(words)
        assert together[topic.name].sentence == matches[0].sentence
