"""Extraction quality and speed: plain trafilatura.extract() against monitor.extract, side by side.

    .venv/bin/python benchmarks/extraction_bench.py [SHARED_DATA_DIR]

SHARED_DATA_DIR defaults to ../shared/data beside the project root and must hold
article-extraction-benchmark/ (html/<sha>.html.gz and ground-truth.json). Prints the mean and
median bag-of-words token F1 against the ground truth (a page with no result scores 0), pages
per second of each run in this one process, and pages per second of `Extractor` with a process
pool against one worker process and against this process alone.

Every speed is the best of `ROUNDS` passes over all pages, because a shared machine's noise only
ever slows a pass down. The pool cannot beat the cores' real parallelism, so the same ratio is
printed for a pure-Python loop as a yardstick: on virtual CPUs that share a physical core both
stay near 1x.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import trafilatura

from monitor.extract import Extractor, extract_page, pool_size

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 3
TOKEN = re.compile(r"\w+", re.UNICODE)

Page = tuple[str, bytes, str, str]  # sha, html, url, ground-truth article body


def load_pages(data_dir: Path) -> list[Page]:
    """Every benchmark page with its URL and ground-truth article body."""
    bench = data_dir / "article-extraction-benchmark"
    truth = json.loads((bench / "ground-truth.json").read_text(encoding="utf-8"))
    return [
        (
            sha,
            gzip.decompress((bench / "html" / f"{sha}.html.gz").read_bytes()),
            item["url"],
            item["articleBody"],
        )
        for sha, item in sorted(truth.items())
    ]


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


def run_serial(
    pages: list[Page], extract: Callable[[bytes, str], str | None]
) -> tuple[list[float], float]:
    """F1 per page and pages per second of `extract` run in this process."""
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        texts = [extract(html, url) for _, html, url, _ in pages]
        best = min(best, time.perf_counter() - started)
    f1s = [token_f1(text, truth) for text, (*_, truth) in zip(texts, pages, strict=True)]
    return f1s, len(pages) / best


def pool_rate(pages: list[Page], workers: int) -> float:
    """Pages per second of `Extractor(workers)`, all pages in flight at once, pool warmed first."""

    async def run() -> float:
        with Extractor(workers) as extractor:
            # start every worker and let each import trafilatura before the clock runs
            warm_up = pages[: 4 * workers]
            await asyncio.gather(*(extractor.extract(html, url) for _, html, url, _ in warm_up))
            best = float("inf")
            for _ in range(ROUNDS):
                started = time.perf_counter()
                await asyncio.gather(*(extractor.extract(html, url) for _, html, url, _ in pages))
                best = min(best, time.perf_counter() - started)
            return len(pages) / best

    return asyncio.run(run())


def spin(n: int) -> int:
    """Pure-Python CPU work, the yardstick for how much a process pool can gain here."""
    return sum(range(n))


def cpu_speedup(workers: int) -> float:
    """How much faster `workers` processes run `workers` equal CPU-bound jobs than one process."""
    jobs = [5_000_000] * workers
    with ProcessPoolExecutor(1) as one, ProcessPoolExecutor(workers) as many:
        timings = []
        for pool in (one, many):
            list(pool.map(spin, [1] * workers))  # start the workers
            best = float("inf")
            for _ in range(ROUNDS):
                started = time.perf_counter()
                list(pool.map(spin, jobs))
                best = min(best, time.perf_counter() - started)
            timings.append(best)
    return timings[0] / timings[1]


def page_text(html: bytes, url: str) -> str | None:
    page = extract_page(html, url)
    return page.text if page is not None else None


def main() -> None:
    data_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else PROJECT_ROOT.parent / "shared" / "data"
    # trafilatura logs a warning for every page it discards; the scores say it all here
    logging.disable(logging.WARNING)
    pages = load_pages(data_dir)
    print(f"{len(pages)} pages from {data_dir / 'article-extraction-benchmark'}")

    run_serial(pages[:10], page_text)  # warm imports and caches for both runs
    plain_f1, plain_rate = run_serial(pages, lambda html, url: trafilatura.extract(html, url=url))
    ours_f1, ours_rate = run_serial(pages, page_text)

    print(f"{'':28}{'F1 mean':>9}{'F1 median':>11}{'no result':>11}{'pages/s':>9}")
    for name, f1s, rate in (
        ("trafilatura.extract()", plain_f1, plain_rate),
        ("monitor.extract_page()", ours_f1, ours_rate),
    ):
        print(
            f"{name:28}{statistics.mean(f1s):9.4f}{statistics.median(f1s):11.4f}"
            f"{sum(f == 0 for f in f1s):11d}{rate:9.1f}"
        )

    workers = pool_size()
    one_worker = pool_rate(pages, 1)
    pooled = pool_rate(pages, workers)
    print(
        f"\nExtractor pages/s: {workers} workers {pooled:.1f}, 1 worker {one_worker:.1f}, "
        f"in-process {ours_rate:.1f}\n"
        f"pool speed-up: {pooled / ours_rate:.2f}x over in-process, "
        f"{pooled / one_worker:.2f}x over 1 worker ({workers} cores usable; "
        f"a pure-Python loop gains {cpu_speedup(workers):.2f}x on them)"
    )


if __name__ == "__main__":
    main()
