# The compiled forms of seven pure functions of monitor/rules.py and monitor/dedupe.py (see
# _speedups.c).

def sentence(text: str, start: int, end: int, titles: frozenset[str]) -> str: ...
def written(
    original: str, fold_marks: list[int], orig_marks: list[int], spans: list[tuple[int, int]]
) -> list[str]: ...
def lower_collapsed(
    text: str, start: int, end: int, fold_at: int, fold_marks: list[int], orig_marks: list[int]
) -> str: ...
def scan_ascii(
    matches: list[tuple[int, int, int]],
    pattern_of: list[int],
    shift_of: list[int],
    right_edges: bytes,
    word_chars: bytes,
    folded: str,
    ends: list[int],
) -> list[dict[int, list[tuple[int, int, bool]]]]: ...
def spaced(original: str, kinds: bytes, neutral: str) -> tuple[str, set[str]]: ...
def topic_words(
    hits: list[tuple[list[tuple[int, int]], list[str]]],
    original: str,
    fold_marks: list[int],
    orig_marks: list[int],
) -> tuple[tuple[int, int], tuple[str, ...]]: ...
def min_hashes(
    folded: str, width: int, bins: int, person: bytes, empty: int
) -> tuple[list[int], int, int]: ...
