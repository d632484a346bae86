"""The compiled forms in monitor/_speedups.c give what their Python references in
monitor/rules.py give, on random text and on the real article bodies, and a Matcher reports the
same with them as without them.

The extension is built by `pip install` where a C compiler is there (the build is optional);
without it these tests skip, unless MONITOR_REQUIRE_SPEEDUPS=1 (CI sets it) makes that a
failure.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.matching_bench import load_articles
from monitor import dedupe, rules
from monitor.models import Topic, TopicMatch

if os.environ.get("MONITOR_REQUIRE_SPEEDUPS") == "1":
    from monitor import _speedups
else:
    _speedups = pytest.importorskip(
        "monitor._speedups", reason="built without a C compiler: rules.py runs its Python forms"
    )

# What sentences, folding and offsets turn on: breaks, closers, openers, white space of every
# kind, initials and titles, letters that case-fold or lower-case to other lengths.
PIECES = [
    *"ab. .!?\"')]\n\r\t\u2028\x85\u201d\u2019\u00bbABc1D(\u201c\u2018_\u00e9\u0130\u017f\ufb06",
    *"\u00a0\u3000\u00ad\u0301\u00df\u212a\U0001d400-\u2014",
    *"\u2013\u02bc\u2032\u2022\u2044\u00ab\U0001f642\u0643\u4e2d",
    "  ",
    "   ",
    "...",
    "U.S.",
    "Dr.",
    "Mr",
    "st",
    "word ",
    "Sept. 28",
]
texts = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)
CHARACTERS = [piece for piece in PIECES if len(piece) == 1]  # those a matcher's keywords may hold


@st.composite
def text_and_hit(draw: st.DrawFn) -> tuple[str, int, int]:
    text = draw(texts)
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, len(text)))
    return text, start, end


@settings(max_examples=3000, deadline=None)
@given(text_and_hit())
def test_sentence_is_the_python_sentence(case: tuple[str, int, int]) -> None:
    text, start, end = case
    assert _speedups.sentence(text, start, end, rules._TITLES) == rules._sentence_py(
        text, start, end
    )


def test_sentence_on_long_texts_clips_and_looks_back_as_python_does() -> None:
    rng = random.Random(20261207)
    for _ in range(3000):
        text = "".join(
            rng.choice([*PIECES, *["word "] * 20]) for _ in range(rng.randrange(80, 900))
        )
        start = rng.randrange(len(text) + 1)
        end = rng.randrange(start, min(len(text), start + 400) + 1)
        expected = rules._sentence_py(text, start, end)
        assert _speedups.sentence(text, start, end, rules._TITLES) == expected
    # A hit of 300 characters or more is the hit alone, cut.
    assert _speedups.sentence("x" * 400, 0, 350, rules._TITLES) == "x" * 300 + "…"


def test_sentence_refuses_a_hit_outside_the_text() -> None:
    with pytest.raises(ValueError, match="not within the text"):
        _speedups.sentence("short", 3, 9, rules._TITLES)


@st.composite
def folded_and_spans(draw: st.DrawFn) -> tuple[rules._Folded, list[tuple[int, int]]]:
    folded = rules._Folded(draw(texts))
    length = len(folded.folded)
    ends = st.integers(-2, length + 2)
    spans = draw(st.lists(st.tuples(ends, ends).map(lambda pair: tuple(sorted(pair))), max_size=5))
    return folded, spans  # type: ignore[return-value]


@settings(max_examples=3000, deadline=None)
@given(folded_and_spans())
def test_written_is_the_python_written(case: tuple[rules._Folded, list[tuple[int, int]]]) -> None:
    folded, spans = case
    marks = folded._fold_marks, folded._orig_marks
    assert _speedups.written(folded.original, *marks, spans) == rules._written_py(
        folded.original, *marks, spans
    )


@settings(max_examples=3000, deadline=None)
@given(text_and_hit(), st.integers(0, 50))
def test_lower_collapsed_is_the_python_form(case: tuple[str, int, int], fold_at: int) -> None:
    text, start, end = case
    compiled_marks: tuple[list[int], list[int]] = ([0], [0])
    python_marks: tuple[list[int], list[int]] = ([0], [0])
    compiled = _speedups.lower_collapsed(text, start, end, fold_at, *compiled_marks)
    assert compiled == rules._lower_collapsed_py(text, start, end, fold_at, *python_marks)
    assert compiled_marks == python_marks
    # A str that is all ASCII says so, or it compares unequal to one that does.
    assert compiled.isascii() == all(ord(c) < 0x80 for c in compiled)


@settings(max_examples=3000, deadline=None)
@given(texts, st.sampled_from(["", "\x01"]), st.frozensets(st.sampled_from(CHARACTERS)))
def test_spaced_is_the_python_form(text: str, neutral: str, keep: frozenset[str]) -> None:
    kinds = rules._kind_table(neutral, keep)
    compiled = _speedups.spaced(text, kinds, neutral)
    assert compiled == rules._spaced_py(text, neutral, keep)
    assert compiled[0].isascii() == all(ord(c) < 0x80 for c in compiled[0])


def test_spaced_is_the_python_form_on_every_character() -> None:
    # Every character of the Basic Multilingual Plane (lone surrogates too) and some beyond it,
    # each between letters, with and without a neutral, with and without being kept.
    characters = [*map(chr, range(0x10000)), "\U0001f642", "\U0001d400", "\U00020000"]
    text = "a".join(characters)
    kept = frozenset(characters[::7])
    for neutral in ("", "\x01", "\x7f"):
        for keep in (frozenset(), kept):
            compiled = _speedups.spaced(text, rules._kind_table(neutral, keep), neutral)
            assert compiled == rules._spaced_py(text, neutral, keep)


def test_a_neutral_that_spacing_would_replace_again_is_refused() -> None:
    for neutral in ("-", " ", "\t", "\u00a0", "ab"):
        with pytest.raises(ValueError, match="not a neutral character"):
            rules._kind_table(neutral, frozenset())


def test_rules_uses_every_compiled_form() -> None:
    # A build from older sources lacks the newer functions; rules.py would then run some of
    # them in Python, correctly but slower, and nothing else would say so.
    for name in COMPILED:
        assert getattr(rules, f"_compiled_{name}") is getattr(_speedups, name), name


def test_topic_words_takes_exact_strings_only() -> None:
    # Hashing or case-folding a str subclass could run Python code that changes the hits while
    # the compiled form reads them.
    class Text(str):
        pass

    folded = rules._Folded("rare earths")
    with pytest.raises(TypeError, match="its text a str"):
        _speedups.topic_words([([(0, 4)], [Text("rare")])], folded.original, [0], [0])


def test_spaced_refuses_a_table_of_another_size() -> None:
    with pytest.raises(ValueError, match="0x10000"):
        _speedups.spaced("text", b"\x00" * 100, "")


@st.composite
def folded_and_hits(draw: st.DrawFn) -> tuple[rules._Folded, list[rules._Hits]]:
    """A folded text and the hits of one to four terms in it: each term's spans in order and
    apart, as a term's are; different terms' may overlap, nest or repeat."""
    folded = rules._Folded(draw(texts))
    length = len(folded.folded)
    hits: list[rules._Hits] = []
    for _ in range(draw(st.integers(1, 4))):
        ends = sorted(draw(st.lists(st.integers(0, length), max_size=10, unique=True)))
        spans = [(ends[i], ends[i + 1]) for i in range(0, len(ends) - 1, 2)]
        hits.append((spans, folded.written(spans)))
    if not any(spans for spans, _ in hits):
        hits[0] = ([(0, length)], folded.written([(0, length)]))
    return folded, hits


@settings(max_examples=3000, deadline=None)
@given(folded_and_hits())
def test_topic_words_is_the_python_form(case: tuple[rules._Folded, list[rules._Hits]]) -> None:
    folded, hits = case
    marks = folded._fold_marks, folded._orig_marks
    assert _speedups.topic_words(hits, folded.original, *marks) == rules._topic_words_py(
        hits, folded
    )


COMPILED = ("sentence", "written", "lower_collapsed", "scan_ascii", "spaced", "topic_words")
TOPICS = [
    Topic(name="places", keywords=("Pakistan*", "Balochistan", "U.S.", "China", "Karachi")),
    Topic(name="minerals", keywords=("rare earth*", "lithium", "copper", "critical mineral*")),
    Topic(name="people", keywords=("Trump", "Sharif", "Munir", "Xi Jinping", "Putin")),
    Topic(name="short", keywords=("US", "EU", "UN", "it", "the")),
    Topic(name="deal", query='"strategic metals" OR (USSM AND NOT title:opinion)'),
    Topic(name="scripts", keywords=("中国", "Москва", "ایران", "Zürich")),
]


def matches_both_ways(
    articles: list[tuple[str, str, str]], monkeypatch: pytest.MonkeyPatch
) -> tuple[list[tuple[TopicMatch, ...]], list[tuple[TopicMatch, ...]]]:
    matcher = rules.compile_topics(TOPICS)
    with_them = [matcher.match(*article) for article in articles]
    with monkeypatch.context() as patched:
        for name in COMPILED:
            patched.setattr(rules, f"_compiled_{name}", None)
        without_them = [matcher.match(*article) for article in articles]
    return with_them, without_them


def test_a_matcher_reports_the_same_with_and_without_them(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    articles = load_articles(shared_data)  # figure 6's: the benchmark pages' bodies and seeds
    with_them, without_them = matches_both_ways(articles, monkeypatch)
    assert with_them == without_them
    assert sum(map(len, with_them)) > len(articles)  # many topics matched, sentences and all


def test_a_matcher_reports_the_same_on_random_text(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(7)
    words = [
        *PIECES,
        "Pakistan's",
        "PAKISTANI",
        "rare-earth",
        "Rare  Earths",
        "u.s.",
        "USSM",
        "Strategic Metals",
        "Copper",
        "中国",
        "Zu\u0308rich",
        "it",
        "The",
        " ",
    ]
    articles = []
    for _ in range(400):
        title, summary, text = (
            "".join(rng.choices(words, k=rng.randrange(n))) for n in (8, 20, 200)
        )
        articles.append((title, summary, text))
    with_them, without_them = matches_both_ways(articles, monkeypatch)
    assert with_them == without_them
    assert sum(map(len, with_them)) > 100


# --- dedupe's min hashes ------------------------------------------------------------------------

# What _WORD splits on and what BLAKE2b's blocks turn on: runs and lone kana and ideographs,
# "_", letters and digits of other scripts, marks, astral characters, a lone surrogate, and
# words long enough that a shingle spans two or three 128-byte blocks.
WORD_PIECES = [
    *"ab _-.1é中か🙂١Ⅻß\u0301\u00a0\u2028\ud800\u0130\ufb06",
    "Balochistan",
    "rare earths",
    "x" * 60,
    "ж" * 70,
    "a b a b a b",  # shingles that repeat
]


def both_min_hashes(folded: str) -> tuple[tuple[list[int], int, int], tuple[list[int], int, int]]:
    compiled = _speedups.min_hashes(
        folded, dedupe.SHINGLE_WORDS, dedupe.NUM_HASHES, dedupe._SHINGLE_PERSON, dedupe._EMPTY
    )
    return compiled, dedupe._min_hashes_py(folded)


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(WORD_PIECES), max_size=80).map("".join))
def test_min_hashes_is_the_python_form(folded: str) -> None:
    compiled, python = both_min_hashes(folded)
    assert compiled == python


def test_min_hashes_splits_words_as_the_regex_does_on_every_character() -> None:
    # Each character alone, then all of them glued: a character taken for a word character, or
    # an ideograph for part of a run, changes the counts of words and shingles.
    every = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    words = []
    for folded in (" ".join(every), "".join(every)):
        compiled, python = both_min_hashes(folded)
        assert compiled == python
        words.append(compiled[2])
    alone, glued = words
    assert alone > glued > 10_000  # each letter and digit a word, then runs of them


def test_min_hashes_on_the_benchmark_texts(shared_data: Path) -> None:
    articles = load_articles(shared_data)
    for title, summary, text in articles:
        compiled, python = both_min_hashes(dedupe._folded(f"{title}\n{summary}\n{text}"))
        assert compiled == python
    fingerprints = [dedupe.text_fingerprint(text) for _, _, text in articles]
    assert sum(f is not None for f in fingerprints) > len(articles) // 2


def test_dedupe_uses_the_compiled_min_hashes() -> None:
    assert dedupe._compiled_min_hashes is _speedups.min_hashes


def test_min_hashes_refuses_what_the_python_form_cannot_mean() -> None:
    with pytest.raises(TypeError):
        _speedups.min_hashes(b"bytes", 4, 126, b"p", 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        _speedups.min_hashes("text", 0, 126, b"p", 0)
    with pytest.raises(ValueError, match="16 bytes"):
        _speedups.min_hashes("text", 4, 126, b"p" * 17, 0)
