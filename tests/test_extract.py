"""monitor.extract: golden pages, hostile bytes, article_from, the process pool, and extraction
quality on the shared article-extraction benchmark (the acceptance gate)."""

from __future__ import annotations

import asyncio
import gzip
import json
import multiprocessing
import os
import random
import re
import signal
import statistics
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trafilatura

from monitor.dedupe import text_fingerprint
from monitor.extract import MIN_WORDS, Extractor, article_from, extract_page, pool_size
from monitor.models import Article, Entry, ExtractedPage

PAGES = Path(__file__).parent / "data" / "pages"
GOLDEN = sorted(path.stem for path in PAGES.glob("*.json"))
ARTICLE_URL = "https://ledger.example/2025/10/03/karachi-desalination-plant-korangi?utm_source=rss"
TOKEN = re.compile(r"\w+", re.UNICODE)


def golden(name: str) -> tuple[bytes, dict[str, object]]:
    """A golden page's bytes and its expectation file."""
    case = json.loads((PAGES / f"{name}.json").read_text(encoding="utf-8"))
    return (PAGES / f"{name}.html").read_bytes(), case


# --- golden pages -----------------------------------------------------------------------------


def test_golden_pages_cover_the_cases() -> None:
    assert {"article", "consent-wall", "paywall", "empty", "login", "lying-charset"} <= set(GOLDEN)


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_page(name: str) -> None:
    html, case = golden(name)
    page = extract_page(html, str(case["url"]))
    expected = case["expected"]
    if expected is None:
        assert page is None, f"{name}: {case['about']}"
        return
    assert isinstance(expected, dict)
    published = expected["published"]
    assert page == ExtractedPage(
        text="\n\n".join(expected["paragraphs"]),
        title=expected["title"],
        published=datetime.fromisoformat(published) if published else None,
        language=expected["language"],
        canonical_url=expected["canonical_url"],
    ), f"{name}: {case['about']}"


def test_article_page_fields() -> None:
    html, case = golden("article")
    page = extract_page(html, str(case["url"]))
    assert page is not None
    # the boilerplate around the story stays out
    for boilerplate in ("Share on Facebook", "More from City", "newsletter", "All rights reserved"):
        assert boilerplate not in page.text
    assert page.published is not None
    assert page.published.utcoffset() == timedelta(0)
    assert page.published == datetime(2025, 10, 3, 4, 15, tzinfo=UTC)  # 09:15 at +05:00
    # the relative canonical link is resolved against the fetched URL, its query dropped
    assert (
        page.canonical_url == "https://ledger.example/2025/10/03/karachi-desalination-plant-korangi"
    )


def test_lying_charset_is_decoded_as_utf8() -> None:
    html, case = golden("lying-charset")
    assert b"charset=iso-8859-1" in html
    page = extract_page(html, str(case["url"]))
    assert page is not None
    assert "کراچی: واٹر اینڈ سیوریج کارپوریشن" in page.text
    assert "Ã" not in page.text  # no mojibake from reading UTF-8 as Latin-1


@pytest.mark.parametrize("name", ["consent-wall", "login"])
def test_walls_are_rejected_by_their_phrases_not_only_their_length(name: str) -> None:
    """These pages' text passes the word count, so only the wall phrases can reject them."""
    html, case = golden(name)
    text = trafilatura.extract(html, include_comments=False) or ""
    assert len(TOKEN.findall(text)) >= MIN_WORDS
    assert extract_page(html, str(case["url"])) is None


@pytest.mark.parametrize(
    "sentence",
    [
        "A spokesman said something went wrong with the signage last time.",
        "Access denied to heavy trucks kept the route open, he added.",
        "Police counted 404 vehicles on the road on Monday night.",
        "Pakistan is already a member of the regional road network.",
        "Drivers can create an account on the authority's app to get alerts.",
        "Officials said they would accept all complaints by email.",
    ],
)
def test_news_sense_of_wall_words_keeps_a_short_article(sentence: str) -> None:
    html, case = golden("brief")
    marker = b"the quietest hours of the week."
    html = html.replace(marker, marker + b" " + sentence.encode())
    page = extract_page(html, str(case["url"]))
    assert page is not None
    assert sentence in page.text


def test_canonical_must_be_http() -> None:
    html, _ = golden("article")
    html = html.replace(
        b'href="/2025/10/03/karachi-desalination-plant-korangi"', b'href="javascript:void(0)"'
    )
    page = extract_page(html, ARTICLE_URL)
    assert page is not None
    assert page.canonical_url is None


def test_published_time_without_offset_is_utc() -> None:
    html, _ = golden("article")
    html = html.replace(b'content="2025-10-03T09:15:00+05:00"', b'content="2025-10-03T09:15:00"')
    page = extract_page(html, ARTICLE_URL)
    assert page is not None
    assert page.published == datetime(2025, 10, 3, 9, 15, tzinfo=UTC)


# --- hostile bytes ------------------------------------------------------------------------------

_RNG = random.Random(20251003)
_WORDS = b"word " * 200
HOSTILE = {
    "empty": b"",
    "whitespace": b" \n\t\r\n ",
    "nul bytes": b"\x00" * 4096,
    "random bytes": _RNG.randbytes(200_000),
    "png": b"\x89PNG\r\n\x1a\n" + _RNG.randbytes(5000),
    "truncated gzip": b"\x1f\x8b\x08" + _RNG.randbytes(3000),
    "plain text": b"just some plain text without any markup " * 30,
    # past libxml2's 10 MB limit for one text node
    "huge attribute value": b'<html><body><div data-x="'
    + b"a" * 12_000_000
    + b'"><p>'
    + _WORDS
    + b"</p></div></body></html>",
    "deep nesting": b"<html><body>" + b"<div>" * 100_000 + b"<p>" + _WORDS + b"</p></body></html>",
    "attribute bomb": b"<html><body><p "
    + b" ".join(b"a%d=1" % i for i in range(50_000))
    + b">x</p></body></html>",
    "lone surrogate": b"<html><body><article><p>\xed\xa0\x80 "
    + _WORDS
    + b"</p></article></body></html>",
    "xml declaration": b'<?xml version="1.0" encoding="utf-8"?><html><body><p>'
    + _WORDS
    + b"</p></body></html>",
    "utf-16": "<html><body><p>".encode("utf-16") + ("hello world " * 100).encode("utf-16-le"),
    "malformed canonical": b'<html><head><link rel="canonical" href="http://[::1"></head>'
    b"<body><article><p>" + _WORDS + b"</p></article></body></html>",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_bytes_never_raise(name: str) -> None:
    started = time.perf_counter()
    page = extract_page(HOSTILE[name], "https://ledger.example/x")
    # 50,000 attributes would stall libxml2 for over a minute without the guard
    assert time.perf_counter() - started < 10
    if page is not None:
        assert page.text
        assert page.canonical_url is None


@pytest.mark.parametrize(
    "name", ["empty", "nul bytes", "random bytes", "png", "truncated gzip", "attribute bomb"]
)
def test_garbage_is_no_article(name: str) -> None:
    assert extract_page(HOSTILE[name], "https://ledger.example/x") is None


def test_library_failure_gives_none(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("lxml fell over")

    monkeypatch.setattr(trafilatura, "extract", broken)
    html, _ = golden("article")
    assert extract_page(html, ARTICLE_URL) is None


# --- article_from -------------------------------------------------------------------------------

ENTRY = Entry(
    link="https://ledger.example/2025/10/03/korangi?utm_source=rss",
    title="  Karachi water board\n opens   desalination plant ",
    summary="The plant will supply\n\n50 million gallons a day.  ",
    guid="ledger-1234",
    published=datetime(2025, 10, 3, 4, 0, tzinfo=UTC),
)
PAGE = ExtractedPage(
    text="First paragraph.\n\nSecond paragraph.",
    title="Page title",
    published=datetime(2025, 10, 3, 4, 15, tzinfo=UTC),
    language="en",
    canonical_url="https://ledger.example/2025/10/03/korangi",
)
URL = "https://ledger.example/2025/10/03/korangi"
ALIASES = ("https://ledger.example/amp/korangi",)


def build(entry: Entry, page: ExtractedPage | None) -> Article:
    return article_from(
        entry,
        page,
        source="ledger",
        outlet="The Harbour Ledger",
        url=URL,
        link=entry.link,
        aliases=ALIASES,
    )


def test_article_from_page() -> None:
    article = build(ENTRY, PAGE)
    assert article.text_from == "page"
    assert article.text == PAGE.text
    assert article.title == "Karachi water board opens desalination plant"
    assert article.summary == "The plant will supply 50 million gallons a day."
    assert article.published == ENTRY.published  # the feed's date wins
    assert article.language == "en"
    assert article.guid == "ledger-1234"
    assert (article.url, article.link, article.source, article.outlet, article.aliases) == (
        URL,
        ENTRY.link,
        "ledger",
        "The Harbour Ledger",
        ALIASES,
    )


def test_article_from_page_fills_what_the_feed_left_out() -> None:
    bare = Entry(link=ENTRY.link, title=" \n ", summary="")
    article = build(bare, PAGE)
    assert article.title == "Page title"
    assert article.published == PAGE.published
    assert article.summary == ""


def test_article_from_feed_without_page() -> None:
    article = build(ENTRY, None)
    assert article.text_from == "feed"
    assert article.text == "The plant will supply\n\n50 million gallons a day."
    assert article.title == "Karachi water board opens desalination plant"
    assert article.summary == "The plant will supply 50 million gallons a day."
    assert article.published == ENTRY.published
    assert article.language is None
    assert article.guid == "ledger-1234"
    assert article.aliases == ALIASES


def test_article_from_feed_without_page_or_date() -> None:
    bare = Entry(link=ENTRY.link, title="Title only")
    article = article_from(
        bare, None, source="s", outlet="o", url="https://a.example/", link="https://a.example/"
    )
    assert (article.title, article.text, article.summary, article.published) == (
        "Title only",
        "",
        "",
        None,
    )
    assert article.aliases == ()


# --- Extractor ----------------------------------------------------------------------------------


def children() -> set[int]:
    return {process.pid for process in multiprocessing.active_children() if process.pid}


def test_pool_size_is_the_usable_cores() -> None:
    expected = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )
    assert pool_size() == expected >= 1


def test_extractor_rejects_no_workers() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Extractor(0)


def test_extractor_runs_in_worker_processes_and_closes() -> None:
    names = ["article", "lying-charset", "paywall", "chinese-article"]
    cases = [golden(name) for name in names]
    before = children()

    async def run(extractor: Extractor) -> tuple[list[ExtractedPage | None], set[int]]:
        assert children() == before  # the pool starts with the first page, not before
        pages = await asyncio.gather(
            *(extractor.extract(html, str(case["url"])) for html, case in cases)
        )
        return list(pages), children() - before

    with Extractor(workers=2) as extractor:
        pages, workers = asyncio.run(run(extractor))
    assert pages == [extract_page(html, str(case["url"])) for html, case in cases]
    # Each page's fingerprint, band keys computed, came from the worker with it.
    fingerprinted = [page for page in pages if page is not None and page.fingerprint]
    assert len(fingerprinted) >= 2
    for page in fingerprinted:
        assert page.fingerprint == text_fingerprint(page.text)
        assert page.fingerprint._bands is not None
    assert workers, "no worker process was started"
    assert os.getpid() not in workers
    assert not children() & workers, "close() left workers running"
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(extractor.extract(b"", ARTICLE_URL))


def kill_and_reap(pids: set[int]) -> None:
    """SIGKILL each worker, as the kernel's OOM killer would, and wait until it is gone."""
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    for process in multiprocessing.active_children():
        if process.pid in pids:
            process.join(10)


def test_extractor_replaces_a_worker_killed_while_idle() -> None:
    html, case = golden("article")
    url = str(case["url"])
    before = children()

    async def run(extractor: Extractor) -> list[ExtractedPage | None]:
        first = await extractor.extract(html, url)
        kill_and_reap(children() - before)
        again = await extractor.extract(html, url)  # a new worker: the page is not lost
        return [first, again]

    with Extractor(workers=1) as extractor:
        first, again = asyncio.run(run(extractor))
    assert first is not None
    assert again == first


def test_extractor_gives_none_for_a_page_whose_worker_dies() -> None:
    html, case = golden("article")
    url = str(case["url"])
    before = children()

    async def run(extractor: Extractor) -> list[ExtractedPage | None]:
        slow = asyncio.ensure_future(extractor.extract(SLOW_PAGE, url))
        for _ in range(200):  # the worker starts with the page
            if children() - before:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        kill_and_reap(children() - before)
        return [await slow, await extractor.extract(html, url)]

    with Extractor(workers=1) as extractor:
        died, after = asyncio.run(run(extractor))
    assert died is None  # this page falls back to the feed's text
    assert after == extract_page(html, url)


# Half a million short paragraphs (4 MB): trafilatura spends some 40 s on them.
SLOW_PAGE = b"<html><body>" + b"<p>word " * 500_000 + b"</body></html>"


def test_extractor_stops_a_page_past_its_deadline_and_goes_on() -> None:
    html, case = golden("article")
    url = str(case["url"])
    before = children()

    async def run(extractor: Extractor) -> tuple[ExtractedPage | None, ExtractedPage | None, float]:
        started = time.monotonic()
        stopped = await extractor.extract(SLOW_PAGE, url)
        elapsed = time.monotonic() - started
        return stopped, await extractor.extract(html, url), elapsed

    with Extractor(workers=1, deadline=1.0) as extractor:
        stopped, after, elapsed = asyncio.run(run(extractor))
    assert stopped is None
    assert elapsed < 20  # the deadline plus starting a worker, not the ~40 s the page takes
    assert after == extract_page(html, url)
    assert not children() - before, "a stopped worker was left running"


# --- quality on the shared benchmark (acceptance gate) ------------------------------------------


def token_f1(predicted: str | None, truth: str) -> float:
    """Bag-of-words F1 of lower-cased `\\w+` tokens; None or no overlap scores 0."""
    pred = Counter(TOKEN.findall((predicted or "").lower()))
    gold = Counter(TOKEN.findall(truth.lower()))
    overlap = sum((pred & gold).values())
    if overlap == 0:
        return 0.0
    precision = overlap / sum(pred.values())
    recall = overlap / sum(gold.values())
    return 2 * precision * recall / (precision + recall)


@pytest.fixture(scope="session")
def benchmark_scores(shared_data: Path) -> dict[str, float]:
    """Token F1 of extract_page per benchmark page, extracted once through the process pool."""
    bench = shared_data / "article-extraction-benchmark"
    truth = json.loads((bench / "ground-truth.json").read_text(encoding="utf-8"))

    async def run(extractor: Extractor) -> list[ExtractedPage | None]:
        return list(
            await asyncio.gather(
                *(
                    extractor.extract(
                        gzip.decompress((bench / "html" / f"{sha}.html.gz").read_bytes()),
                        item["url"],
                    )
                    for sha, item in truth.items()
                )
            )
        )

    with Extractor() as extractor:
        pages = asyncio.run(run(extractor))
    return {
        sha: token_f1(page.text if page else None, item["articleBody"])
        for (sha, item), page in zip(truth.items(), pages, strict=True)
    }


def test_benchmark_mean_f1(benchmark_scores: dict[str, float]) -> None:
    assert len(benchmark_scores) == 181
    mean = statistics.mean(benchmark_scores.values())
    assert mean >= 0.92, f"mean token F1 {mean:.4f} < 0.92"


def test_benchmark_articles_are_not_rejected(benchmark_scores: dict[str, float]) -> None:
    """Every benchmark page is a real article: the no-article rules must keep them all."""
    rejected = [sha for sha, score in benchmark_scores.items() if score == 0]
    assert rejected == []
