"""How fast and how right dedupe's text fingerprints are, on real articles.

    .venv/bin/python benchmarks/dedupe_bench.py [DATA_DIR]

DATA_DIR is the shared data folder (default: ../shared/data beside the project). Prints:
- fingerprints per second over the five seeds and the 181 article bodies of the
  article-extraction benchmark, beside a classic MinHash of as many `(a*h + b) mod p`
  permutations, and how far the two estimates are from the exact resemblance;
- over every pair of distinct bodies: how many share an LSH band (false candidates, each costing
  storage one comparison) and how many reach the threshold (false duplicates: should be 0);
- the similarity of synthetic re-published copies (own boilerplate, new headline, a paragraph
  dropped) to their originals, and how many of them were found through a shared band.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from monitor import dedupe
from monitor.dedupe import (
    Fingerprint,
    canonical_url,
    is_near_duplicate,
    similarity,
    text_fingerprint,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent

NAV = "Home | World | Business | Sport | Opinion | Technology | Subscribe | Sign in"
BYLINE = "By Staff Reporter | Published 3 October 2025, 10:42am | 4 min read"
READ_MORE = "Read more: Markets rally as the central bank holds rates steady for a third month"
FOOTER = (
    "© 2025 The Example Herald. All rights reserved. Follow us on Facebook, X and Instagram, "
    "and subscribe to our daily newsletter for the top stories delivered to your inbox."
)
NEW_HEADLINE = "Exclusive: what the minerals deal really means for the region"


def republished(text: str) -> str:
    """`text` as another site re-publishes it (the same transformation as tests/test_dedupe.py).

    The middle paragraph is dropped when there are at least three; a short first line is taken
    for the headline and replaced, else a headline is added; boilerplate goes around the body.
    """
    paragraphs = [p.strip() for p in text.splitlines() if p.strip()]
    if len(paragraphs) >= 3:
        del paragraphs[len(paragraphs) // 2]
    if len(paragraphs[0].split()) < 20:
        paragraphs[0] = NEW_HEADLINE
    else:
        paragraphs.insert(0, NEW_HEADLINE)
    body = [paragraphs[0], BYLINE, *paragraphs[1:4], READ_MORE, *paragraphs[4:]]
    return "\n\n".join([NAV, *body, FOOTER])


def shingles(text: str) -> set[str]:
    """The shingle set dedupe hashes; uses its private word splitter to measure the exact value."""
    words = dedupe._words(text)
    n = dedupe.SHINGLE_WORDS
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b)


# A classic MinHash of NUM_HASHES universal hash functions, the baseline for speed and accuracy.
_PRIME = (1 << 61) - 1
_RNG = random.Random(20251001)
_COEFFICIENTS = [
    (_RNG.randrange(1, _PRIME), _RNG.randrange(_PRIME)) for _ in range(dedupe.NUM_HASHES)
]


def classic_signature(text: str) -> list[int]:
    hashes = [
        int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little")
        for s in shingles(text)
    ]
    return [min([(a * h + b) % _PRIME for h in hashes]) for a, b in _COEFFICIENTS]


def classic_similarity(a: list[int], b: list[int]) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def rate(function: Callable[[str], object], texts: Sequence[str], seconds: float) -> float:
    """Calls per CPU second of `function` over `texts`, repeated for at least `seconds`.

    CPU time rather than wall time, so that other work on a shared machine does not count.
    """
    calls = 0
    start = time.process_time()
    while True:
        for text in texts:
            function(text)
        calls += len(texts)
        elapsed = time.process_time() - start
        if elapsed >= seconds:
            return calls / elapsed


def print_speed(name: str, texts: Sequence[str]) -> None:
    words = sum(len(t.split()) for t in texts) / len(texts)
    per_second = rate(text_fingerprint, texts, 1.0)
    classic = rate(classic_signature, texts, 1.0)
    print(
        f"{name}: {len(texts)} texts, {words:.0f} words on average\n"
        f"  text_fingerprint   {per_second:8.0f} /s  {1000 / per_second:6.2f} ms each"
        f"  {1000 / per_second / words * 1500:5.2f} ms per 1,500 words\n"
        f"  classic MinHash    {classic:8.0f} /s  {1000 / classic:6.2f} ms each"
        f"  -> one-permutation hashing is {per_second / classic:.0f}x faster"
    )


def print_estimate_error(pairs: Sequence[tuple[str, str]]) -> None:
    """Mean and worst |estimate - exact Jaccard| of both estimators over `pairs`."""
    ours: list[float] = []
    classic: list[float] = []
    for a, b in pairs:
        exact = jaccard(shingles(a), shingles(b))
        fa, fb = text_fingerprint(a), text_fingerprint(b)
        assert fa is not None and fb is not None
        ours.append(abs(similarity(fa, fb) - exact))
        classic.append(abs(classic_similarity(classic_signature(a), classic_signature(b)) - exact))
    print(
        f"estimate error over {len(pairs)} pairs (|estimate - exact Jaccard|): "
        f"one-permutation mean {statistics.mean(ours):.3f} max {max(ours):.3f}; "
        f"classic mean {statistics.mean(classic):.3f} max {max(classic):.3f}"
    )


def print_false_matches(fingerprints: Sequence[Fingerprint]) -> None:
    pairs = 0
    candidates = 0
    duplicates = 0
    top = 0.0
    bands = [set(f.bands()) for f in fingerprints]
    for i, j in itertools.combinations(range(len(fingerprints)), 2):
        pairs += 1
        candidates += not bands[i].isdisjoint(bands[j])
        score = similarity(fingerprints[i], fingerprints[j])
        duplicates += is_near_duplicate(fingerprints[i], fingerprints[j])
        top = max(top, score)
    print(
        f"distinct-article pairs: {pairs}; sharing a band (false candidates): {candidates} "
        f"({candidates / pairs:.4%}); judged near duplicates (false duplicates): "
        f"{duplicates}; highest similarity {top:.3f}"
    )


def print_copies(name: str, texts: Sequence[str]) -> None:
    scores: list[float] = []
    judged: list[bool] = []
    found = 0
    for text in texts:
        original, copy = text_fingerprint(text), text_fingerprint(republished(text))
        assert original is not None and copy is not None
        scores.append(similarity(original, copy))
        judged.append(is_near_duplicate(original, copy))
        found += not set(original.bands()).isdisjoint(copy.bands())
    detected = sum(judged)
    print(
        f"synthetic copies of {name}: {len(texts)}; similarity min {min(scores):.3f} "
        f"median {statistics.median(scores):.3f} max {max(scores):.3f}; "
        f"near duplicates {detected}/{len(texts)}; sharing a band {found}/{len(texts)}"
    )
    # The boilerplate is a fixed ~80 words and the dropped paragraph a larger share of a short
    # text, so resemblance falls with length: show where.
    for low, high in SIZES:
        members = [
            i
            for i, t in enumerate(texts)
            if low <= len(t.split()) and (high is None or len(t.split()) < high)
        ]
        group = [scores[i] for i in members]
        if group:
            hits = sum(judged[i] for i in members)
            print(
                f"  originals of {low}{'+' if high is None else f'-{high - 1}'} words: "
                f"{len(group)}; "
                f"similarity min {min(group):.3f} median {statistics.median(group):.3f}; "
                f"near duplicates {hits}/{len(group)}"
            )


SIZES: list[tuple[int, int | None]] = [(0, 150), (150, 250), (250, 400), (400, None)]


def main(argv: Sequence[str]) -> int:
    data = Path(argv[1]) if len(argv) > 1 else PROJECT_ROOT.parent / "shared" / "data"
    seeds = [p.read_text(encoding="utf-8") for p in sorted((data / "seeds").glob("*.txt"))]
    truth = json.loads(
        (data / "article-extraction-benchmark" / "ground-truth.json").read_text(encoding="utf-8")
    )
    bodies = [entry["articleBody"] for entry in truth.values()]
    urls = [entry["url"] for entry in truth.values()]
    long_bodies = [b for b in bodies if text_fingerprint(b) is not None]

    print(
        f"dedupe: {dedupe.SHINGLE_WORDS}-word shingles, {dedupe.NUM_HASHES} hashes, "
        f"{dedupe.BANDS} bands x {dedupe.ROWS} rows, threshold {dedupe.THRESHOLD}, "
        f"at least {dedupe.MIN_WORDS} words"
    )
    print(f"ground truth: {len(bodies)} bodies, {len(long_bodies)} long enough to fingerprint")
    print_speed("seeds", seeds)
    print_speed("benchmark bodies", long_bodies)
    print(f"canonical_url: {rate(canonical_url, urls, 0.5):.0f} URLs/s over the benchmark's URLs")

    print_estimate_error(
        [(s, republished(s)) for s in seeds]
        + [(b, republished(b)) for b in long_bodies[:40]]
        + list(itertools.combinations(seeds, 2))
    )
    print("seeds, pairwise:")
    print_false_matches([f for f in map(text_fingerprint, seeds) if f is not None])
    print("benchmark bodies, pairwise:")
    print_false_matches([f for f in map(text_fingerprint, long_bodies) if f is not None])
    print_copies("the seeds", seeds)
    print_copies("the benchmark bodies", long_bodies)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
