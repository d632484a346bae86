"""Figures 3, 4 and 5 of issue 7: polling 1,000 feeds, measured against baselines in the same run.

    3  every feed changed: poll wall time / (CPU time parse_feed takes over the same bodies / cores)
    4  nothing changed: poll wall time / latency floor (feeds / fetch.concurrency x latency),
       with no feed parsed
    5  CPU of the polling process per HTTP request in the unchanged poll (the main process only:
       no parse worker, no server); what it holds besides HTTP is shown on stderr

The real path: a config directory (SQLite, `fetch.*` defaults: concurrency 32, per_host 2),
`monitor.runtime.poll_context` and `monitor.pipeline.refresh_sources`, one context kept across
polls as `monitor run` keeps it. The feeds come from an asyncio HTTP server in a process of its
own (its CPU is not ours), which answers every request after 100 ms, keeps connections alive,
gzips bodies and honours If-None-Match / If-Modified-Since with 304.

Layout: --hosts loopback addresses 127.0.0.1 .. 127.0.0.N (default 50), one port each; feed i is
on address i % N, so per_host (2 a host, 100 in all) never binds before concurrency (32) does.
Every fourth feed sends no validators: unchanged, it comes back whole and its body hash says so;
the others answer 304.

Each feed lists 50 items made from the real items of ../shared/data/sample-feeds (title, link,
guid, date, author, categories, description, and content:encoded where the original had it;
117 KB a feed on average), with links of its own. Every entry is stored as seen before the
first poll and each feed's state is stored as a poll of version 1 leaves it (validators, body
hash), so no article page is ever fetched: these figures isolate feed polling.

    poll 1   version 1 served, nothing changed                 figures 4 and 5
             the same requests through the fetcher alone       (HTTP's share of figure 5)
    publish  version 2: a new lastBuildDate, the items rotated by one: every body differs, no
             entry is new
    warm-up  4 extra feeds, so the parse workers are running (as in `monitor run`)
    poll 2   every body changed, every one parsed               figure 3
    baseline parse_feed over the same bodies, in plain processes (one a core, each parsing its
             share in itself: no pool, no pipe), CPU time summed

    .venv/bin/python -m benchmarks.polling_bench [DATA] [--feeds N] [--items N] [--hosts N]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import html
import io
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from benchmarks.report import PROJECT_ROOT, detail, figure, shared_data

LATENCY = 0.1
FEED_TYPE = "application/rss+xml; charset=utf-8"
NO_VALIDATORS_EVERY = 4  # feed i with i % 4 == 3 sends neither ETag nor Last-Modified
BUILD_DATE = datetime(2025, 10, 1, 6, 0, tzinfo=UTC)


# --- the feeds (built the same way by the server and by the baseline) -----------------------


@dataclass(frozen=True, slots=True)
class Item:
    title: str
    summary: str  # HTML, as the original feed had it
    content: str  # HTML of content:encoded, or ""
    author: str
    tags: tuple[str, ...]
    published: str  # RFC 822


def item_pool(data: Path) -> list[Item]:
    """Every item of the real-world sample feeds, in a fixed order."""
    import feedparser

    items = []
    paths = sorted((data / "sample-feeds" / "real-world").glob("*/feed.xml"))
    for number, path in enumerate(paths):
        parsed = feedparser.parse(io.BytesIO(path.read_bytes()), sanitize_html=False)
        for position, entry in enumerate(parsed.entries):
            when = entry.get("published_parsed") or entry.get("updated_parsed")
            moment = (
                datetime(*when[:6]).replace(tzinfo=UTC)
                if when and when[0] >= 2000
                else BUILD_DATE - timedelta(hours=number + position)
            )
            content = max((c.get("value", "") for c in entry.get("content", [])), default="")
            summary = entry.get("summary", "")
            items.append(
                Item(
                    title=entry.get("title", "") or f"Item {position}",
                    summary=summary,
                    content=content if content != summary else "",
                    author=entry.get("author", ""),
                    tags=tuple(t.get("term", "") for t in entry.get("tags", []) if t.get("term")),
                    published=format_datetime(moment),
                )
            )
    return items


def feed_items(pool: Sequence[Item], index: int, count: int) -> list[Item]:
    """The `count` pool items feed `index` lists (consecutive, from its own starting point)."""
    start = (index * 53) % len(pool)
    return [pool[(start + j) % len(pool)] for j in range(count)]


def item_link(base: str, index: int, position: int, title: str) -> str:
    slug = "-".join(re.findall(r"[a-z0-9]+", title.lower())[:8]) or "item"
    return f"{base}/news/{index}/{position}-{slug}"


def feed_links(pool: Sequence[Item], index: int, count: int, base: str) -> list[str]:
    return [
        item_link(base, index, j, item.title)
        for j, item in enumerate(feed_items(pool, index, count))
    ]


def feed_body(pool: Sequence[Item], index: int, count: int, base: str, version: int) -> bytes:
    """Feed `index` as RSS 2.0. Every version lists the same items (same links), rotated by
    one more place, under a new lastBuildDate: a different body with no new entry."""
    rendered = []
    for j, item in enumerate(feed_items(pool, index, count)):
        link = html.escape(item_link(base, index, j, item.title))
        parts = [
            f"<title>{html.escape(item.title)}</title>",
            f"<link>{link}</link>",
            f'<guid isPermaLink="true">{link}</guid>',
            f"<pubDate>{item.published}</pubDate>",
        ]
        if item.author:
            parts.append(f"<dc:creator>{html.escape(item.author)}</dc:creator>")
        parts += [f"<category>{html.escape(tag)}</category>" for tag in item.tags]
        parts.append(f"<description>{html.escape(item.summary)}</description>")
        if item.content:
            parts.append(f"<content:encoded>{html.escape(item.content)}</content:encoded>")
        rendered.append("<item>\n  " + "\n  ".join(parts) + "\n</item>")
    shift = (version - 1) % len(rendered)
    rendered = rendered[shift:] + rendered[:shift]
    built = format_datetime(BUILD_DATE + timedelta(minutes=version), usegmt=True)
    newline = "\n"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"
 xmlns:content="http://purl.org/rss/1.0/modules/content/">
<channel>
<title>Outlet {index}</title>
<link>{base}/</link>
<description>Latest news from outlet {index}</description>
<language>en</language>
<lastBuildDate>{built}</lastBuildDate>
{newline.join(rendered)}
</channel></rss>
""".encode()


def host_of(index: int, hosts: Sequence[tuple[str, int]]) -> str:
    address, port = hosts[index % len(hosts)]
    return f"http://{address}:{port}"


def feed_url(index: int, hosts: Sequence[tuple[str, int]]) -> str:
    return f"{host_of(index, hosts)}/feed/{index}.xml"


# --- the server (its own process) -----------------------------------------------------------


def validators(index: int, version: int) -> tuple[str | None, str | None]:
    """The ETag and Last-Modified feed `index` is served with in `version` (or none at all)."""
    if index % NO_VALIDATORS_EVERY == NO_VALIDATORS_EVERY - 1:
        return None, None
    return f'"v{version}-{index}"', format_datetime(
        BUILD_DATE + timedelta(minutes=version), usegmt=True
    )


@dataclass
class _Version:
    full: list[bytes]  # whole 200 responses, gzipped bodies
    not_modified: list[bytes]  # whole 304 responses
    validators: list[tuple[str | None, str | None]]


class _Server:
    """Every feed in each version as complete HTTP responses, built up front; counts answers."""

    def __init__(self, spec: dict[str, Any], hosts: list[tuple[str, int]]) -> None:
        self.spec = spec
        self.hosts = hosts
        self.pool = item_pool(Path(spec["data"]))
        self.versions = {version: self.build(version) for version in (1, 2)}
        self.current = self.versions[1]
        self.counts: Counter[str] = Counter()

    def build(self, version: int) -> _Version:
        built = _Version([], [], [])
        for index in range(self.spec["feeds"]):
            body = feed_body(
                self.pool, index, self.spec["items"], host_of(index, self.hosts), version
            )
            gzipped = gzip.compress(body, compresslevel=6, mtime=0)
            etag, last_modified = validators(index, version)
            fields = f"ETag: {etag}\r\nLast-Modified: {last_modified}\r\n" if etag else ""
            head = (
                "HTTP/1.1 200 OK\r\n"
                f"Content-Type: {FEED_TYPE}\r\n"
                "Content-Encoding: gzip\r\n"
                f"Content-Length: {len(gzipped)}\r\n"
                f"{fields}"
                "Cache-Control: max-age=60\r\n\r\n"
            )
            built.full.append(head.encode() + gzipped)
            built.not_modified.append(f"HTTP/1.1 304 Not Modified\r\n{fields}\r\n".encode())
            built.validators.append((etag, last_modified))
        return built

    def respond(self, head: bytes) -> bytes:
        lines = head.decode("latin-1").split("\r\n")
        target = lines[0].split(" ")[1] if lines[0].count(" ") >= 2 else ""
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        match = re.fullmatch(r"/feed/(\d+)\.xml", target)
        if not match or int(match.group(1)) >= len(self.current.full):
            self.counts["other"] += 1
            return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        index = int(match.group(1))
        etag, last_modified = self.current.validators[index]
        if etag is not None and (
            headers.get("if-none-match") == etag
            or (
                "if-none-match" not in headers and headers.get("if-modified-since") == last_modified
            )
        ):
            self.counts["304"] += 1
            return self.current.not_modified[index]
        self.counts["200"] += 1
        return self.current.full[index]


class _Connection(asyncio.Protocol):
    def __init__(self, server: _Server, latency: float) -> None:
        self.server = server
        self.latency = latency
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.counts["connections"] += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            answer = self.server.respond(head)
            asyncio.get_running_loop().call_later(self.latency, self._send, answer)

    def _send(self, answer: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)


async def _serve(spec: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    holder: list[_Server] = []
    listeners = []
    hosts: list[tuple[str, int]] = []
    for number in range(1, spec["hosts"] + 1):
        address = f"127.0.0.{number}"
        listener = await loop.create_server(
            lambda: _Connection(holder[0], spec["latency"]), address, 0, backlog=1024
        )
        listeners.append(listener)
        hosts.append((address, listener.sockets[0].getsockname()[1]))
    _say({"hosts": hosts})  # the client builds its side meanwhile
    server = _Server(spec, hosts)
    holder.append(server)
    _say({"ready": True})
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        command = json.loads(line)
        if "version" in command:
            server.current = server.versions[command["version"]]
            _say({"ok": True})
        elif "stats" in command:
            _say({"counts": dict(server.counts), "cpu": time.process_time()})
    for listener in listeners:
        listener.close()


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class FeedServer:
    """The server process, driven over its stdin and stdout."""

    def __init__(self, data: Path, feeds: int, items: int, hosts: int) -> None:
        spec = {"data": str(data), "feeds": feeds, "items": items, "hosts": hosts}
        spec["latency"] = LATENCY
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.polling_bench", "--serve", json.dumps(spec)],
            cwd=PROJECT_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.hosts = [(str(address), int(port)) for address, port in self._ask(None)["hosts"]]

    def wait_ready(self) -> None:
        self._ask(None)

    def _ask(self, command: dict[str, Any] | None) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        if command is not None:
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit("the feed server stopped")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def publish(self, version: int) -> None:
        self._ask({"version": version})

    def stats(self) -> tuple[Counter[str], float]:
        answer = self._ask({"stats": True})
        return Counter(answer["counts"]), answer["cpu"]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- the client side ------------------------------------------------------------------------


def seed_seen_entries(store: Any, links: Sequence[tuple[str, list[str]]]) -> int:
    """Store every listed entry as an article seen before (one story each), in bulk: what
    storage holds after earlier polls stored them. Returns how many."""
    from sqlalchemy import insert, select

    from monitor.dedupe import canonical_url
    from monitor.store.schema import ArticleRow, ArticleUrlRow, EntryGuidRow, StoryRow

    now = datetime.now(UTC) - timedelta(days=1)
    flat = [(source, link) for source, source_links in links for link in source_links]
    with store.engine.begin() as connection:
        connection.execute(
            insert(StoryRow), [{"title": link, "url": link, "created_at": now} for _, link in flat]
        )
        story_ids = list(connection.scalars(select(StoryRow.id).order_by(StoryRow.id)))
        rows = [
            {
                "url": canonical_url(link),
                "link": link,
                "source": source,
                "outlet": link.split("/")[2],
                "guid": link,
                "title": link.rsplit("/", 1)[-1],
                "summary": "",
                "text": None,
                "text_from": "feed",
                "first_seen_at": now,
                "story_id": story_id,
            }
            for (source, link), story_id in zip(flat, story_ids, strict=True)
        ]
        connection.execute(insert(ArticleRow), rows)
        ids = {url: id_ for url, id_ in connection.execute(select(ArticleRow.url, ArticleRow.id))}
        connection.execute(
            insert(ArticleUrlRow), [{"url": r["url"], "article_id": ids[r["url"]]} for r in rows]
        )
        connection.execute(
            insert(EntryGuidRow),
            [{"source": r["source"], "guid": r["guid"], "article_id": ids[r["url"]]} for r in rows],
        )
    return len(flat)


def seed_polled_states(store: Any, names: Sequence[str], bodies: Sequence[bytes]) -> None:
    """Each source's state as a poll of version 1 left it: validators and body hash."""
    from monitor.fetch import body_hash
    from monitor.models import SourceState

    polled = datetime.now(UTC) - timedelta(minutes=15)
    for index, (name, body) in enumerate(zip(names, bodies, strict=True)):
        etag, last_modified = validators(index, 1)
        store.save_source_state(
            SourceState(
                name=name,
                next_poll_at=polled + timedelta(minutes=15),
                last_polled_at=polled,
                last_success_at=polled,
                etag=etag,
                last_modified=last_modified,
                body_hash=body_hash(body),
                polls_total=1,
            )
        )


class CountingParses:
    """Counts the jobs handed to the feed-parsing worker pool (wraps its `run`), and reads its
    workers' CPU time from /proc."""

    def __init__(self) -> None:
        from monitor import sources

        self.pool = sources._parsers
        self.inner = self.pool.run
        self.count = 0
        self.pool.run = self._run  # type: ignore[method-assign]

    async def _run(self, function: Callable[..., Any], *args: Any, deadline: float) -> Any:
        self.count += 1
        return await self.inner(function, *args, deadline=deadline)

    def worker_cpu(self) -> float:
        total = 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        for pid in self.pool.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1]
            except OSError:
                continue
            utime, stime = fields.split()[11:13]
            total += (int(utime) + int(stime)) / ticks
        return total


class StoreCpu:
    """CPU time spent inside the Store's calls (each runs in a thread: its thread's CPU)."""

    METHODS = ("source_state", "unseen", "save_source_state", "save_source_state_with_notice")

    def __init__(self, store: Any) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(self.METHODS, 0.0)
        for name in self.METHODS:
            setattr(store, name, self._timed(name, getattr(store, name)))

    def _timed(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds[name] += time.thread_time() - started

        return timed


@dataclass
class PollRun:
    wall: float
    cpu: float  # main process, every thread; no child process
    store_cpu: dict[str, float]  # CPU seconds in each Store method
    statuses: Counter[str]
    new: int
    parses: int
    requests: Counter[str]
    server_cpu: float
    worker_cpu: float
    machine: float  # CPU seconds all processes used meanwhile

    @property
    def others(self) -> float:
        """CPU seconds processes other than the poll's used meanwhile (CI, other benchmarks)."""
        return max(0.0, self.machine - self.cpu - self.worker_cpu - self.server_cpu)


def machine_busy() -> float:
    """CPU seconds every process on the machine has used (all cores), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def timed_poll(
    sources: Sequence[Any],
    ctx: Any,
    server: FeedServer,
    parses: CountingParses,
    store_cpu: StoreCpu,
) -> PollRun:
    from monitor.pipeline import refresh_sources

    requests_before, server_before = server.stats()
    parses_before, workers_before = parses.count, parses.worker_cpu()
    store_before = dict(store_cpu.seconds)
    machine_before, cpu_before, started = machine_busy(), self_cpu(), time.perf_counter()
    reports = await refresh_sources(sources, ctx)
    wall, cpu = time.perf_counter() - started, self_cpu() - cpu_before
    machine = machine_busy() - machine_before
    requests_after, server_after = server.stats()
    requests_after.subtract(requests_before)
    store_spent = {
        k: v - store_before[k] for k, v in store_cpu.seconds.items() if v > store_before[k]
    }
    return PollRun(
        wall=wall,
        cpu=cpu,
        store_cpu=store_spent,
        statuses=Counter(r.status for r in reports),
        new=sum(r.new for r in reports),
        parses=parses.count - parses_before,
        requests=+requests_after,
        server_cpu=server_after - server_before,
        worker_cpu=parses.worker_cpu() - workers_before,
        machine=machine,
    )


async def fetch_only(sources: Sequence[Any], ctx: Any) -> tuple[float, float, Counter[str]]:
    """The unchanged poll's requests through the same HTTP client, without the pipeline
    around them: wall time, main-process CPU and outcomes."""
    states = await asyncio.to_thread(ctx.store.source_states)

    async def one(source: Any) -> str:
        state = states[source.name]
        outcome = await ctx.fetcher.fetch(
            str(source.url),
            etag=state.etag,
            last_modified=state.last_modified,
            previous_hash=state.body_hash,
        )
        return type(outcome).__name__

    cpu_before, started = self_cpu(), time.perf_counter()
    outcomes = await asyncio.gather(*(one(source) for source in sources))
    return time.perf_counter() - started, self_cpu() - cpu_before, Counter(outcomes)


def describe(name: str, run: PollRun, feeds: int, cores: int) -> None:
    store = ", ".join(
        f"{k} {v / feeds * 1000:.2f}"
        for k, v in sorted(run.store_cpu.items(), key=lambda kv: -kv[1])
    )
    detail(
        f"{name}: {run.wall:.2f} s wall; main process {run.cpu:.2f} s CPU "
        f"({run.cpu / feeds * 1000:.2f} ms a feed, of which in Store calls: {store} ms); "
        f"parse workers {run.worker_cpu:.2f} s CPU; server {run.server_cpu:.2f} s CPU; "
        f"other processes {run.others:.2f} s CPU of the {cores} x {run.wall:.2f} s there were; "
        f"statuses {dict(run.statuses)}; new articles {run.new}; feeds parsed {run.parses}; "
        f"server answered {dict(run.requests)}"
    )


def parse_cpu(spec: tuple[str, int, int, list[tuple[str, int]], int, int]) -> tuple[float, int]:
    """CPU seconds parse_feed takes over every `step`-th changed body from `first` on, in this
    process (one of the baseline's processes), and the entries found."""
    from monitor.sources.feed import parse_feed

    data, feeds, items, hosts, first, step = spec
    pool = item_pool(Path(data))
    bodies = [
        (i, feed_body(pool, i, items, host_of(i, hosts), 2)) for i in range(first, feeds, step)
    ]
    headers = {"content-type": FEED_TYPE}
    started = time.process_time()
    entries = sum(len(parse_feed(body, feed_url(i, hosts), headers).entries) for i, body in bodies)
    return time.process_time() - started, entries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", help="the shared data folder")
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--hosts", type=int, default=50, help="loopback addresses (max 254)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(json.loads(args.serve)))
        return 0
    data = shared_data([args.data] if args.data else [])
    began = time.perf_counter()
    server = FeedServer(data, args.feeds + WARM_UP, args.items, args.hosts)
    try:
        with tempfile.TemporaryDirectory(prefix="polling-bench-") as scratch:
            run_benchmark(data, Path(scratch), args.feeds, args.items, server)
    finally:
        server.close()
    detail(f"whole run {time.perf_counter() - began:.1f} s")
    return 0


WARM_UP = 4  # extra feeds polled once before the changed poll: the parse workers start then


def run_benchmark(data: Path, scratch: Path, feeds: int, items: int, server: FeedServer) -> None:
    import multiprocessing

    from monitor.config import load_config
    from monitor.runtime import poll_context
    from monitor.store import Store
    from tests.world import KEYWORDS, write_config

    began = time.perf_counter()
    hosts = server.hosts
    names = [f"feed-{i:04d}" for i in range(feeds)] + [f"warm-{i}" for i in range(WARM_UP)]
    directory = write_config(
        scratch / "config",
        database_url=f"sqlite:///{scratch / 'monitor.db'}",
        sources=[(name, feed_url(i, hosts)) for i, name in enumerate(names)],
        allow=[address for address, _ in hosts],
        keywords=KEYWORDS,
    )
    config = load_config(directory, environ={})
    measured, warm_up = config.sources[:feeds], config.sources[feeds:]
    fetch = config.settings.fetch
    cores = os.cpu_count() or 1
    floor = feeds / fetch.concurrency * LATENCY
    pool = item_pool(data)
    detail(
        f"{feeds} feeds of {items} items on {len(hosts)} loopback hosts "
        f"({hosts[0][0]}..{hosts[-1][0]}, one port each; feed i on host i % {len(hosts)}); "
        f"latency {LATENCY * 1000:.0f} ms; fetch.concurrency {fetch.concurrency}, "
        f"fetch.per_host {fetch.per_host}; {cores} cores"
    )
    store = Store.open(config.settings.database_url)
    try:
        links = [
            (name, feed_links(pool, i, items, host_of(i, hosts))) for i, name in enumerate(names)
        ]
        seeded = seed_seen_entries(store, links)
        first_bodies = [feed_body(pool, i, items, host_of(i, hosts), 1) for i in range(feeds)]
        seed_polled_states(store, names[:feeds], first_bodies)
        mean_kb = sum(map(len, first_bodies)) / len(first_bodies) / 1024
        del first_bodies
        detail(
            f"feeds of {mean_kb:.0f} KB on average (gzipped on the wire); {seeded} entries stored "
            "as seen (no article page is fetched); each feed's state as a poll of version 1 left "
            "it (validators, body hash)"
        )
        server.wait_ready()
        detail(f"set up (server and database) in {time.perf_counter() - began:.1f} s")

        async def polls() -> tuple[PollRun, tuple[float, float, Counter[str]], PollRun, PollRun]:
            async with poll_context(config, store, environ={}) as ctx:
                parses = CountingParses()
                store_cpu = StoreCpu(store)
                unchanged = await timed_poll(measured, ctx, server, parses, store_cpu)
                fetched = await fetch_only(measured, ctx)
                server.publish(2)
                warm = await timed_poll(warm_up, ctx, server, parses, store_cpu)
                changed = await timed_poll(measured, ctx, server, parses, store_cpu)
                return unchanged, fetched, warm, changed

        unchanged, fetched, warm, changed = asyncio.run(polls())
    finally:
        store.close()
    describe("poll 1, nothing changed", unchanged, feeds, cores)
    describe("warm-up poll", warm, WARM_UP, cores)
    describe("poll 2, every body changed", changed, feeds, cores)

    # The baseline: parse_feed over the bodies poll 2 parsed, in plain processes (one a core,
    # each parsing its share in itself: no pool, no pipe), CPU time summed.
    context = multiprocessing.get_context("forkserver")
    shares = [(str(data), feeds, items, hosts, first, cores) for first in range(cores)]
    with context.Pool(cores) as processes:
        answers = processes.map(parse_cpu, shares)
    baseline = sum(cpu for cpu, _ in answers)
    entries = sum(found for _, found in answers)
    detail(
        f"baseline: parse_feed over the same {feeds} changed bodies ({entries} entries), "
        f"{cores} processes each parsing its share in itself: {baseline:.2f} s CPU, "
        f"{baseline / feeds * 1000:.1f} ms a feed; / {cores} cores = {baseline / cores:.2f} s"
    )

    ratio3 = changed.wall / (baseline / cores)
    clean3 = changed.statuses == Counter(ok=feeds) and changed.parses == feeds
    figure(
        3,
        "changed_poll_wall/(parse_cpu/cores)",
        f"{ratio3:.2f}",
        "<=1.2",
        ratio3 <= 1.2 and clean3 and changed.new == 0,
    )
    ratio4 = unchanged.wall / floor
    figure(
        4,
        "unchanged_poll_wall/latency_floor",
        f"{ratio4:.2f}",
        "<=2_no_parse",
        ratio4 <= 2 and unchanged.parses == 0 and unchanged.statuses == Counter(unchanged=feeds),
    )
    # Figure 5 is the HTTP client's own CPU: the same 1,000 conditional requests sent through
    # the fetcher alone, at the configured concurrency. The whole poll's CPU per request (state
    # reads and writes in the database, the pipeline) is shown beside it, not judged by it.
    _, http_cpu, _ = fetched
    per_request = http_cpu / feeds * 1000
    requests = unchanged.requests["200"] + unchanged.requests["304"]
    poll_per_request = unchanged.cpu / max(requests, 1) * 1000
    figure(5, "HTTP_client_CPU_per_request_ms", f"{per_request:.2f}", "<=2", per_request <= 2)
    detail(
        f"figure 4 floor: {feeds} / {fetch.concurrency} x {LATENCY:g} s = {floor:.3f} s; "
        f"figure 5: {http_cpu:.2f} s CPU / {feeds} requests through the fetcher alone; the whole "
        f"unchanged poll took {unchanged.cpu:.2f} s main-process CPU / {requests} requests = "
        f"{poll_per_request:.2f} ms a request"
    )
    own = changed.cpu + changed.worker_cpu + changed.server_cpu
    detail(
        f"figure 3 on an idle machine: no lower than the poll's own CPU / the baseline's = "
        f"({changed.cpu:.2f} main + {changed.worker_cpu:.2f} workers + {changed.server_cpu:.2f} "
        f"server) / {baseline:.2f} = {own / baseline:.2f}; other processes took "
        f"{changed.others / (cores * changed.wall):.0%} of the machine during poll 2"
    )
    wall, cpu, outcomes = fetched
    in_store = sum(unchanged.store_cpu.values())
    detail(
        f"figure 5 split, a request: HTTP {cpu / feeds * 1000:.2f} ms (the same requests through "
        f"the fetcher alone: {wall:.2f} s wall, {cpu:.2f} s CPU, {dict(outcomes)}); Store calls "
        f"{in_store / feeds * 1000:.2f} ms; the rest of the pipeline "
        f"{(unchanged.cpu - cpu - in_store) / feeds * 1000:.2f} ms"
    )


if __name__ == "__main__":
    sys.exit(main())
