"""Editing sources.yaml as people wrote it: what `monitor sources add` and `remove` change.

The file is a document people keep: comments, blank lines, section headers, their quoting and
indentation. An edit adds or removes one item and changes nothing else. ruamel.yaml's
round-trip loader says where each item of `sources:` begins and which top-level key follows the
list; the edit itself is made on the lines. (A round-trip dump would keep the text too, but it
files the comment lines between two items under the item before them, so removing that item
would take the next section's header away with it.)

Which lines belong to an item: from its `- ` line to its last line that is neither blank nor a
comment at or left of its dash; the blank and comment lines after that introduce what follows
and stay. Comments above an item also stay: nothing people wrote is lost.

The edited text is validated as a whole config (with the other two files) before it replaces
the file, atomically; an edit that would not validate raises ConfigError and changes nothing.
"""

from __future__ import annotations

import dataclasses
import io
import ipaddress
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from monitor import dedupe
from monitor.config import KEYWORDS_FILE, SETTINGS_FILE, SOURCES_FILE, Config, load_config
from monitor.errors import ConfigError, ConfigProblem

_SECOND_LEVEL = frozenset({"com", "co", "org", "net", "gov", "edu", "ac", "gob", "nic"})


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where the `sources:` items stand in the file's lines (0-based)."""

    starts: tuple[int, ...]  # first line of each item
    ends: tuple[int, ...]  # one past the last line of each item
    names: tuple[object, ...]  # each item's `name`, as written
    dash_column: int
    key_column: int


def name_for(url: str) -> str:
    """A source name from a URL's host: `https://www.dawn.com/feeds/home` -> `dawn`,
    `tribune.com.pk` -> `tribune`, `news.example.co.uk` -> `news-example`; an IP address or a
    port other than the default is kept whole (`127-0-0-1-8080`)."""
    parts = urlsplit(dedupe.canonical_url(url))
    host, port = parts.hostname or "", parts.port
    labels = [label for label in re.split(r"[.:]+", host) if label]
    if not _is_ip(host) and len(labels) > 1:
        labels = labels[:-1]  # the top-level domain
        if len(labels) > 1 and labels[-1] in _SECOND_LEVEL:
            labels = labels[:-1]  # com.pk, co.uk, …
        labels = [label for label in labels if label not in ("www", "m", "amp")] or labels
    name = "-".join(labels + ([str(port)] if port else []))
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._")[:80] or "source"


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def add_source(
    directory: Path, *, name: str, url: str, source_type: str, environ: dict[str, str] | None = None
) -> Config:
    """Append a source (`source_type` "feed", the default, is not written) at the end of the
    `sources:` list.

    Returns the validated config with it. Raises ConfigError, changing nothing, when the file
    cannot be edited or the result would not validate (e.g. a duplicate name).
    """
    path = directory / SOURCES_FILE
    text = path.read_bytes().decode("utf-8")  # as written: CRLF stays CRLF
    newline = "\r\n" if "\r\n" in text else "\n"
    layout = _layout(path, text)
    if layout is None:  # `sources: []`: no item to take the indentation from
        fresh = _with_first_item(path, text, name=name, url=url, source_type=source_type)
    else:
        lines = text.splitlines(keepends=True)
        at = layout.ends[-1]
        if at and not lines[at - 1].endswith(("\n", "\r")):
            lines[at - 1] += newline
        block = [f"{' ' * layout.dash_column}- name: {_scalar(name)}{newline}"]
        block.append(f"{' ' * layout.key_column}url: {_scalar(url)}{newline}")
        if source_type != "feed":
            block.append(f"{' ' * layout.key_column}type: {source_type}{newline}")
        fresh = "".join(lines[:at] + block + lines[at:])
    return _replace(directory, fresh, environ)


def remove_source(directory: Path, name: str, environ: dict[str, str] | None = None) -> Config:
    """Remove the source named `name` (its lines; see the module docstring).

    Returns the validated config without it. Raises ConfigError, changing nothing, when there
    is no such source or the result would not validate.
    """
    path = directory / SOURCES_FILE
    text = path.read_bytes().decode("utf-8")  # as written: CRLF stays CRLF
    layout = _layout(path, text)
    if layout is None or name not in layout.names:
        raise ConfigError([ConfigProblem(str(path), 0, f"no source named {name!r}")])
    index = layout.names.index(name)
    lines = text.splitlines(keepends=True)
    fresh = "".join(lines[: layout.starts[index]] + lines[layout.ends[index] :])
    return _replace(directory, fresh, environ)


# --- internals ---------------------------------------------------------------------------------


def _load(path: Path, text: str) -> Any:
    try:
        return YAML(typ="rt").load(text)
    except YAMLError as exc:
        raise ConfigError([ConfigProblem(str(path), 1, f"YAML error: {exc}")]) from exc


def _layout(path: Path, text: str) -> _Layout | None:
    """Where the items are; None for an empty flow list (`sources: []`)."""
    data = _load(path, text)
    items = data.get("sources") if isinstance(data, CommentedMap) else None
    if isinstance(items, CommentedSeq) and not items:
        return None
    if not isinstance(items, CommentedSeq) or items.fa.flow_style():
        where = data.lc.key("sources")[0] + 1 if isinstance(data, CommentedMap) else 1
        message = "`sources:` is not a block list of sources (`  - name: …`); edit it by hand"
        raise ConfigError([ConfigProblem(str(path), where, message)])
    lines = text.splitlines(keepends=True)
    keys = list(data.keys())
    following = keys.index("sources") + 1
    list_end = data.lc.key(keys[following])[0] if following < len(keys) else len(lines)
    starts = tuple(items.lc.item(i)[0] for i in range(len(items)))
    key_column = items.lc.item(0)[1]
    dash_column = lines[starts[0]].index("-")
    ends = tuple(
        _item_end(lines, start, starts[i + 1] if i + 1 < len(starts) else list_end, dash_column)
        for i, start in enumerate(starts)
    )
    names = tuple(item.get("name") if isinstance(item, CommentedMap) else None for item in items)
    return _Layout(starts, ends, names, dash_column, key_column)


def _item_end(lines: list[str], start: int, limit: int, dash_column: int) -> int:
    """One past the item's last own line: blank lines and comments at or left of the dash
    before `limit` belong to what follows."""
    end = limit
    while end > start + 1:
        line = lines[end - 1]
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if stripped and not (stripped.startswith("#") and indent <= dash_column):
            break
        end -= 1
    return end


def _with_first_item(path: Path, text: str, *, name: str, url: str, source_type: str) -> str:
    """`sources: []` made a block list holding one source, in ruamel's round-trip."""
    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    yaml.preserve_quotes = True
    data = _load(path, text)
    item = CommentedMap(name=name, url=url)
    if source_type != "feed":
        item["type"] = source_type
    data["sources"] = CommentedSeq([item])
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    return buffer.getvalue()


def _scalar(value: str) -> str:
    """`value` as a YAML scalar: plain when the config loader reads it back as this very
    string, else double-quoted (`2024`, `null`, `a: b` and `x #y` would read as something else;
    a JSON string is a valid YAML one)."""
    try:
        plain = "\n" not in value and YAML(typ="rt").load(value) == value
    except YAMLError:
        plain = False
    return value if plain else json.dumps(value, ensure_ascii=False)


def _replace(directory: Path, text: str, environ: dict[str, str] | None) -> Config:
    """Validate `text` as sources.yaml next to the other two files, then put it in place."""
    with tempfile.TemporaryDirectory(prefix="monitor-sources-") as scratch:
        trial = Path(scratch)
        for other in (SETTINGS_FILE, KEYWORDS_FILE):
            if (directory / other).exists():
                shutil.copyfile(directory / other, trial / other)
        (trial / SOURCES_FILE).write_text(text, encoding="utf-8", newline="")
        try:
            config = load_config(trial, environ)
        except ConfigError as exc:
            # Problems name the real files, not the scratch copies.
            raise ConfigError(
                [
                    ConfigProblem(str(directory / Path(p.file).name), p.line, p.message)
                    for p in exc.problems
                ]
            ) from None
    target = directory / SOURCES_FILE
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".sources-", suffix=".yaml")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        shutil.copymode(target, temporary)
        Path(temporary).replace(target)  # atomic: readers see the old file or the new one
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return dataclasses.replace(config, directory=directory)
