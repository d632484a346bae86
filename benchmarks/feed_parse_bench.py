"""Entries per second: `parse_feed` against plain `feedparser.parse`, side by side in one run.

Both read the 24 real-world feeds of ../shared/data/sample-feeds (1,047 entries) from memory.
`parse_feed` does more per entry (decoding checks, the entity guard, HTML to plain text, link and
date checks) but skips feedparser's HTML sanitizer and relative-link rewriting, which plain
`feedparser.parse` runs by default.

    .venv/bin/python benchmarks/feed_parse_bench.py [--rounds N]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

import feedparser

from monitor.sources.feed import parse_feed

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FEED_URL = "https://feeds.example.org/feed.xml"


def entries_per_second(
    parse: Callable[[bytes], int], bodies: list[bytes], rounds: int
) -> tuple[int, float]:
    """Entries one pass over every body yields, and the best of `rounds` passes in entries/s."""
    best = float("inf")
    entries = 0
    for _ in range(rounds):
        started = time.perf_counter()
        entries = sum(parse(body) for body in bodies)
        best = min(best, time.perf_counter() - started)
    return entries, entries / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="passes per parser (best counts)")
    parser.add_argument(
        "--data",
        type=Path,
        default=PROJECT_ROOT.parent / "shared" / "data",
        help="the shared data folder (default: ../shared/data)",
    )
    args = parser.parse_args()

    paths = sorted((args.data / "sample-feeds").glob("real-world/*/feed.xml"))
    if not paths:
        print(f"no feeds under {args.data / 'sample-feeds' / 'real-world'}", file=sys.stderr)
        return 1
    bodies = [path.read_bytes() for path in paths]

    total, ours = entries_per_second(
        lambda body: len(parse_feed(body, FEED_URL).entries), bodies, args.rounds
    )
    _, plain = entries_per_second(
        lambda body: len(feedparser.parse(io.BytesIO(body)).entries), bodies, args.rounds
    )

    print(f"{len(bodies)} feeds, {total} entries, best of {args.rounds} rounds")
    print(f"parse_feed            {ours:9.0f} entries/s")
    print(f"feedparser.parse      {plain:9.0f} entries/s")
    print(f"ratio parse_feed / feedparser.parse: {ours / plain:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
