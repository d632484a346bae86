"""The one line every benchmark prints per figure, read by `benchmarks/run` and the README table.

    <#> <figure> <value> <goal> PASS|MISS

`figure` and `goal` are written without spaces (underscores instead), so that a line splits on
whitespace into exactly five fields. A MISS is a finding to act on, not a crash: scripts exit 0.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def figure(number: int, name: str, value: str, goal: str, passed: bool) -> str:
    """Print the figure's line (and return it); flushed so `benchmarks/run` shows it at once."""
    line = f"{number} {_token(name)} {_token(value)} {_token(goal)} {'PASS' if passed else 'MISS'}"
    print(line, flush=True)
    return line


def detail(text: str) -> None:
    """A line of context (what was measured, the raw numbers) on stderr, beside the figures."""
    print(f"    {text}", file=sys.stderr, flush=True)


def shared_data(argv: list[str] | None = None) -> Path:
    """The shared data folder: the first argument, $MONITOR_TEST_DATA, or ../shared/data."""
    args = sys.argv[1:] if argv is None else argv
    for candidate in (
        *(Path(a) for a in args[:1] if not a.startswith("-")),
        *(Path(v) for v in [os.environ.get("MONITOR_TEST_DATA", "")] if v),
        PROJECT_ROOT.parent / "shared" / "data",
        Path("/work/shared/data"),
    ):
        if (candidate / "article-extraction-benchmark").is_dir():
            return candidate.resolve()
    raise SystemExit("the shared data folder (../shared/data) was not found; pass it")


def _token(text: str) -> str:
    return "_".join(str(text).split()) or "-"
