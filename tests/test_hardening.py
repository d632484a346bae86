"""The monitor against the open web: each case of the hardening issue, proven end to end.

Every test is named after its case (`test_case_01_…` to `test_case_15_…`; case 14, two
processes on one SQLite file, is not here yet). The cases go through the monitor as a whole:
`refresh_source` with the real HTTP client, extraction workers and database, or `monitor poll`
/ `sources` / `digest` / `run` run as commands, with Slack (tests/slack_standin.py, driven by
the real slack-sdk) and SMTP (aiosmtpd) on 127.0.0.1.

Nothing leaves this machine. Every server is on 127.0.0.1. Addresses the monitor must never
contact appear only as stubbed DNS answers or as IP literals it must refuse before connecting,
and two nets catch a regression before it could send a packet: in this process the autouse
`network` fixture lets sockets connect to 127.0.0.1 only and makes name lookups numeric; in
the monitor's own processes a `sitecustomize` (see `GUARD`) does the same and writes down
every attempt, which the test then requires to be none.
"""

from __future__ import annotations

import asyncio
import codecs
import email
import email.policy
import json
import logging
import multiprocessing
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from html import escape
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import rules, sources
from monitor.cli import cli
from monitor.config import Config, load_config
from monitor.dedupe import canonical_url
from monitor.errors import ConfigError, QueryError, UrlError
from monitor.extract import Extractor
from monitor.fetch import HttpFetcher, system_resolver
from monitor.models import Article, SourceState, Topic
from monitor.notify.digest import send_digest_now
from monitor.notify.email import EmailAlertNotifier, SmtpSender
from monitor.notify.outbox import deliver_due
from monitor.notify.routing import Outputs, configured_outputs
from monitor.pipeline import PollContext, SourceReport, refresh_sources
from monitor.runtime import notifiers, secret_values
from monitor.sources.feed import parse_feed
from monitor.store import Store
from monitor.store.schema import AlertRow, ArticleRow, MatchRow, OutboxRow
from tests.conftest import PROJECT_ROOT, empty_postgres
from tests.slack_standin import SlackStandIn
from tests.smtp import SmtpServer, TlsFiles
from tests.test_dedupe_fuzz import LOOSE, URLISH
from tests.test_fetch import chunk, send_head, serve_encoded, write_raw, zero_bomb
from tests.test_rules_fuzz import QUERY_PIECES, TEXT_PIECES
from tests.web import LocalWeb
from tests.world import KEYWORDS, Story, article_page, days_ago

MB = 1024**2
# A title and a text the shipped keywords tag (balochistan), for items that must be stored.
TAGGED_TITLE = "Protest in Quetta over Balochistan mining royalties"
TAGGED_TEXT = (
    "Traders in Quetta closed their shops on Monday to protest against the mining royalties "
    "Balochistan receives from the Reko Diq project."
)


# --- the network: 127.0.0.1 only ---------------------------------------------------------------


@dataclass
class Network:
    """Every TCP connection this process attempted; `aliases` stand public addresses in for
    the local servers (so a "public" answer can be reached without leaving the machine)."""

    dialed: list[tuple[str, int]] = field(default_factory=list)
    refused: list[tuple[str, int]] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)


@pytest.fixture(autouse=True)
def network(monkeypatch: pytest.MonkeyPatch) -> Iterator[Network]:
    """Sockets may connect to 127.0.0.1 (and Unix sockets) only; name lookups are numeric.

    A connection anywhere else is refused here and fails the test: if the monitor's own guard
    ever regresses, this keeps the packet on the machine and says so.
    """
    net = Network()
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def checked(sock: socket.socket, address: Any) -> Any:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return address
        host, port = str(address[0]), int(address[1])
        net.dialed.append((host, port))
        target = net.aliases.get(host, host)
        if target != "127.0.0.1":
            net.refused.append((host, port))
            raise ConnectionRefusedError(f"test network: {host}:{port} is off limits")
        return (target, port, *address[2:])

    def connect(sock: socket.socket, address: Any) -> None:
        real_connect(sock, checked(sock, address))

    def connect_ex(sock: socket.socket, address: Any) -> int:
        return real_connect_ex(sock, checked(sock, address))

    def numeric_getaddrinfo(
        host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> Any:
        return real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", numeric_getaddrinfo)
    yield net
    assert net.refused == [], f"the monitor tried to connect to {net.refused}"


class StubDns:
    """DNS for the monitor's fetcher: the names in `answers` answer from their script (one
    answer per lookup, the last one repeating); anything else goes to the monitor's own
    resolver, where (lookups being numeric here) IP literals answer themselves and names fail.
    """

    def __init__(self, answers: dict[str, list[list[str]]] | None = None) -> None:
        self.answers = answers or {}
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        script = self.answers.get(host)
        if script is None:
            return await system_resolver(host, port)
        self.asked.append(host)
        return script[min(self.asked.count(host), len(script)) - 1]


# The monitor's own processes get the same net from this sitecustomize (on PYTHONPATH).
GUARD = r"""
import os, socket

_log = os.environ["HARDENING_GUARD_LOG"]
_connect, _connect_ex, _getaddrinfo = (
    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
)

def _checked(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] != "127.0.0.1":
        with open(_log, "a") as log:
            log.write(f"{os.getpid()} {address[0]}:{address[1]}\n")
        raise ConnectionRefusedError(f"test network: {address[0]} is off limits")
    return address

socket.socket.connect = lambda sock, address: _connect(sock, _checked(sock, address))
socket.socket.connect_ex = lambda sock, address: _connect_ex(sock, _checked(sock, address))
socket.getaddrinfo = lambda host, port, family=0, type=0, proto=0, flags=0: _getaddrinfo(
    host, port, family, type, proto, flags | socket.AI_NUMERICHOST
)

# Case 13's exception path: a bug in the pipeline whose message carries an entry's link.
if os.environ.get("HARDENING_CRASH_ON_ARTICLE"):
    import monitor.pipeline

    async def _crash(source, candidate, ctx):
        raise RuntimeError(f"simulated bug while reading {candidate.entry.link}")

    monitor.pipeline._read_article = _crash
"""


@dataclass
class Run:
    """A finished `monitor` command: its exit status and everything it wrote."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def run_monitor(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Run]]:
    """`run_monitor(config_dir, "poll", env={...}, stop_after=None)`: `python -m monitor …` with
    only the environment given (plus PATH), behind the network guard. With `stop_after`, the
    command gets SIGTERM after that many seconds (for long-running commands)."""
    guard_dir = tmp_path_factory.mktemp("guard")
    (guard_dir / "sitecustomize.py").write_text(GUARD)
    attempts = guard_dir / "attempts.log"

    def run(
        config: Path, *args: str, env: dict[str, str] | None = None, stop_after: float | None = None
    ) -> Run:
        environ = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", str(guard_dir)),
            "PYTHONPATH": str(guard_dir),
            "HARDENING_GUARD_LOG": str(attempts),
            "MONITOR_CONFIG_DIR": str(config),
            **(env or {}),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "monitor", *args],
            cwd=PROJECT_ROOT,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=stop_after or 300)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            stdout, stderr = process.communicate(timeout=60)
        return Run(tuple(args), process.returncode, stdout, stderr)

    yield run
    tried = attempts.read_text() if attempts.exists() else ""
    assert tried == "", f"the monitor tried to connect beyond 127.0.0.1:\n{tried}"


# --- a monitor in this process -----------------------------------------------------------------


@dataclass
class Monitor:
    """A config directory, its database, and polls of it in this process."""

    directory: Path
    config: Config
    store: Store
    dns: StubDns
    extractor: Extractor
    clock: Callable[[], datetime] | None = None

    def poll(self, *names: str) -> dict[str, SourceReport]:
        """One pass over the named sources (default: all), as `monitor poll` makes it."""
        chosen = [s for s in self.config.sources if not names or s.name in names]

        async def run() -> list[SourceReport]:
            extra: dict[str, Any] = {"clock": self.clock} if self.clock else {}
            async with HttpFetcher(
                self.config.settings.fetch, resolver=self.dns, **extra
            ) as fetcher:
                outputs = configured_outputs(self.config.settings, {})
                ctx = PollContext(self.config, self.store, fetcher, self.extractor, outputs)
                if self.clock:
                    ctx.clock = self.clock
                return await refresh_sources(chosen, ctx)

        return {report.source: report for report in asyncio.run(run())}

    def state(self, name: str) -> SourceState:
        return self.store.source_state(name)

    def articles(self, source: str | None = None) -> list[sa.Row[Any]]:
        """The stored articles (of one source), oldest first."""
        query = sa.select(ArticleRow).order_by(ArticleRow.id)
        if source is not None:
            query = query.where(ArticleRow.source == source)
        with self.store.engine.connect() as db:
            return list(db.execute(query).all())

    def count(self, model: Any) -> int:
        with self.store.engine.connect() as db:
            return int(db.scalar(sa.select(sa.func.count()).select_from(model)) or 0)

    def command(self, *args: str) -> str:
        """`monitor ARGS --config DIR` in this process; its output (logging left as it was)."""
        saved = {
            name: (logger.handlers[:], logger.level, logger.propagate)
            for name, logger in (
                ("", logging.getLogger()),
                ("monitor", logging.getLogger("monitor")),
            )
        }
        try:
            result = CliRunner().invoke(cli, [args[0], "--config", str(self.directory), *args[1:]])
        finally:
            for name, (handlers, level, propagate) in saved.items():
                logger = logging.getLogger(name or None)
                logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate
        assert result.exit_code == 0, result.output
        return result.output


def write_config(
    directory: Path,
    sources: Sequence[tuple[str, str]],
    *,
    database_url: str,
    allow: Sequence[str] = (),
    fetch: dict[str, Any] | None = None,
    settings_extra: dict[str, Any] | None = None,
    keywords: str = KEYWORDS,
) -> Path:
    """settings.yaml (as JSON, which YAML reads), sources.yaml and keywords.yaml."""
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "database_url": database_url,
        "timezone": "Asia/Karachi",
        "poll": {"every": "15m", "jitter": "0s"},
        "fetch": {"timeout": "20s", "private_network_allowlist": list(allow), **(fetch or {})},
        "http": {"listen": ""},
        **(settings_extra or {}),
    }
    (directory / "settings.yaml").write_text(json.dumps(document, indent=2))
    listed = [{"name": name, "url": url} for name, url in sources]
    (directory / "sources.yaml").write_text(json.dumps({"sources": listed}, indent=2))
    (directory / "keywords.yaml").write_text(keywords)
    return directory


@pytest.fixture(scope="module")
def extractor() -> Iterator[Extractor]:
    """The real extraction workers, shared by the in-process polls of this file."""
    with Extractor(workers=2) as workers:
        yield workers


@pytest.fixture
def make_monitor(tmp_path: Path, extractor: Extractor) -> Iterator[Callable[..., Monitor]]:
    """`make_monitor(sources, allow=[...], fetch={...}, dns=StubDns(...))`: a monitor on SQLite."""
    opened: list[Store] = []

    def make(
        source_list: Sequence[tuple[str, str]],
        *,
        dns: StubDns | None = None,
        clock: Callable[[], datetime] | None = None,
        workers: Extractor | None = None,
        **options: Any,
    ) -> Monitor:
        home = tmp_path / f"monitor-{len(opened)}"
        database = f"sqlite:///{home / 'monitor.db'}"
        directory = write_config(home / "config", source_list, database_url=database, **options)
        config = load_config(directory, environ={})
        store = Store.open(config.settings.database_url)
        opened.append(store)
        return Monitor(directory, config, store, dns or StubDns(), workers or extractor, clock)

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def other_web() -> Iterator[LocalWeb]:
    """A second server on another port of 127.0.0.1."""
    with LocalWeb() as local:
        yield local


def rss(items: Sequence[str]) -> bytes:
    """An RSS 2.0 feed around `items`."""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        "<title>Test feed</title><link>https://news.example.org/</link>\n"
        + "\n".join(items)
        + "\n</channel></rss>\n"
    ).encode()


def rss_item(title: str, link: str, summary: str = "") -> str:
    """An RSS item; the summary is text (escaped once, as XML)."""
    return (
        f"<item><title>{escape(title)}</title><link>{escape(link)}</link>"
        f"<description>{escape(summary)}</description></item>"
    )


def serve_feed(web: LocalWeb, path: str, items: Sequence[str]) -> str:
    return web.add(path, rss(items), content_type="application/rss+xml; charset=utf-8")


# --- fetching ----------------------------------------------------------------------------------


def test_case_01_body_over_max_bytes_chunked_and_content_length(
    make_monitor: Callable[..., Monitor], web: LocalWeb
) -> None:
    """A listing over max_bytes, sent chunked or announced by Content-Length, fails its source
    with a clear error and nothing of it is parsed; an article page over it falls back to the
    feed's text. The endless chunked stream is left as soon as the cap is passed."""
    cap = 256 * MB
    sent = [0]
    done = threading.Event()

    def endless_feed(h: BaseHTTPRequestHandler) -> None:
        # A valid feed that never ends: were any of it parsed, its items would be stored.
        try:
            send_head(h, "Content-Type: application/rss+xml", "Transfer-Encoding: chunked")
            write_raw(h, chunk(rss([]).split(b"</channel>")[0]))
            items = "".join(
                rss_item(TAGGED_TITLE, web.url(f"/endless/{n}"), TAGGED_TEXT) for n in range(200)
            ).encode()
            while sent[0] < cap and write_raw(h, chunk(items)):
                sent[0] += len(items)
            h.close_connection = True
        finally:
            done.set()

    def announced(h: BaseHTTPRequestHandler) -> None:
        # Announces 50 MB, sends 1 KB, hangs up: only the header can have refused it.
        send_head(h, "Content-Type: application/rss+xml", f"Content-Length: {50 * MB}")
        write_raw(h, rss([rss_item(TAGGED_TITLE, web.url("/announced/1"), TAGGED_TEXT)])[:1024])
        h.close_connection = True

    web.handle("/chunked.xml", endless_feed)
    web.handle("/announced.xml", announced)
    web.handle("/news/huge-page", announced)
    good = serve_feed(
        web, "/good.xml", [rss_item(TAGGED_TITLE, web.url("/news/huge-page"), TAGGED_TEXT)]
    )
    monitor = make_monitor(
        [
            ("chunked", web.url("/chunked.xml")),
            ("announced", web.url("/announced.xml")),
            ("good", good),
        ],
        allow=[web.host],
        fetch={"max_bytes": "1MB"},
    )

    reports = monitor.poll()

    assert done.wait(10), "the server never saw the monitor hang up"
    assert sent[0] < cap // 4, f"the monitor read on to {sent[0]} bytes"
    for name, expected in (("chunked", "body larger than"), ("announced", "Content-Length")):
        assert reports[name].status == "failed"
        assert expected in (reports[name].error or "") and "max_bytes" in (
            reports[name].error or ""
        )
        state = monitor.state(name)
        assert state.consecutive_failures == 1 and state.last_error == reports[name].error
        assert monitor.articles(name) == []  # nothing parsed, nothing stored
    assert reports["good"].status == "ok"
    (article,) = monitor.articles("good")
    assert article.text_from == "feed"  # its page was over the cap: the feed's text instead
    shown = monitor.command("sources")
    assert re.search(r"chunked\s+feed\s+failing", shown) and "body larger than" in shown
    assert re.search(r"announced\s+feed\s+failing", shown)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
def test_case_02_compression_bomb_is_stopped_by_decoded_size_in_bounded_memory(
    make_monitor: Callable[..., Monitor], web: LocalWeb, encoding: str
) -> None:
    """A 200 KB body that inflates to 200 MB fails its source at the decoded cap, and the poll's
    memory stays under twice the cap; the same bomb as an article page costs the article only
    its page text."""
    bomb = zero_bomb(200, encoding)
    assert len(bomb) < 400 * 1024
    serve_encoded(web, "/bomb.xml", bomb, encoding)
    serve_encoded(web, "/news/bomb-page", bomb, encoding)
    good = serve_feed(
        web, "/good.xml", [rss_item(TAGGED_TITLE, web.url("/news/bomb-page"), TAGGED_TEXT)]
    )
    cap = 4 * MB
    monitor = make_monitor(
        [("bomb", web.url("/bomb.xml")), ("good", good)],
        allow=[web.host],
        fetch={"max_bytes": "4MB"},
    )

    peaks = {}
    reports = {}
    for name in ("bomb", "good"):
        tracemalloc.start()
        try:
            reports.update(monitor.poll(name))
            peaks[name] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert reports["bomb"].status == "failed"
    assert "body larger than" in (reports["bomb"].error or "")
    assert monitor.articles("bomb") == []
    (article,) = monitor.articles("good")
    assert article.text_from == "feed"
    for name, peak in peaks.items():
        assert peak < 2 * cap, f"{name}: peak traced memory {peak / MB:.1f} MB"


def test_case_03_dripping_server_hits_the_whole_request_timeout(
    make_monitor: Callable[..., Monitor], web: LocalWeb
) -> None:
    """A server that sends a byte every half second is cut off by fetch.timeout (httpx's read
    timeout alone would wait forever), as a listing and as an article page; the other sources
    of the same poll are not held up."""
    stop = threading.Event()

    def drip(h: BaseHTTPRequestHandler) -> None:
        send_head(h, "Content-Type: application/rss+xml", "Content-Length: 100000")
        for _ in range(240):
            if stop.wait(0.5) or not write_raw(h, b" "):
                break
        h.close_connection = True

    web.handle("/drip.xml", drip)
    web.handle("/news/drip-page", drip)
    good = serve_feed(
        web, "/good.xml", [rss_item(TAGGED_TITLE, web.url("/news/drip-page"), TAGGED_TEXT)]
    )
    monitor = make_monitor(
        [("drip", web.url("/drip.xml")), ("good", good)], allow=[web.host], fetch={"timeout": "2s"}
    )
    started = time.monotonic()
    try:
        reports = monitor.poll()
    finally:
        stop.set()
    elapsed = time.monotonic() - started

    assert reports["drip"].status == "failed"
    assert "fetch.timeout (2s)" in (reports["drip"].error or "")
    assert reports["good"].status == "ok"
    (article,) = monitor.articles("good")
    assert article.text_from == "feed"  # its page dripped: the feed's text instead
    assert elapsed < 30, f"the poll took {elapsed:.1f}s with a 2s timeout"  # drips go on 120 s


def test_case_04_redirect_loops_and_chains_longer_than_max_redirects_are_stopped(
    make_monitor: Callable[..., Monitor], web: LocalWeb
) -> None:
    """A loop, a self-redirect and a chain one longer than max_redirects fail their sources
    without following on; a chain of exactly max_redirects arrives."""
    web.redirect("/loop-a", "/loop-b")
    web.redirect("/loop-b", "/loop-a")
    web.redirect("/self", "/self", status=301)
    for i in range(6):
        web.redirect(f"/long{i}", f"/long{i + 1}")
        web.redirect(f"/short{i}", f"/short{i + 1}" if i < 4 else "/feed.xml")
    serve_feed(web, "/long6", [rss_item(TAGGED_TITLE, web.url("/never"), TAGGED_TEXT)])
    serve_feed(web, "/feed.xml", [rss_item(TAGGED_TITLE, web.url("/news/1"), TAGGED_TEXT)])
    monitor = make_monitor(
        [
            ("loop", web.url("/loop-a")),
            ("self", web.url("/self")),
            ("long", web.url("/long0")),
            ("short", web.url("/short0")),
        ],
        allow=[web.host],
        fetch={"max_redirects": 5},
    )

    reports = monitor.poll()

    assert "redirect loop" in (reports["loop"].error or "")
    assert "redirect loop" in (reports["self"].error or "")
    assert "more than 5 redirects" in (reports["long"].error or "")
    assert web.hits("/long6") == 0  # the sixth hop was never taken
    # A loop is seen in the Location that closes it: no hop is asked for twice.
    assert (web.hits("/loop-a"), web.hits("/loop-b"), web.hits("/self")) == (1, 1, 1)
    assert reports["short"].status == "ok" and reports["short"].new == 1
    for name in ("loop", "self", "long"):
        assert reports[name].status == "failed" and monitor.articles(name) == []


def test_case_05_private_redirect_hop_is_refused_before_connecting(
    make_monitor: Callable[..., Monitor], web: LocalWeb, other_web: LocalWeb, network: Network
) -> None:
    """127.0.0.1:A is allowlisted, 127.0.0.1:B is not: a listing or an article link on A that
    redirects to B, or an article link straight to B, is refused before connecting; B records
    no request, and nothing but A was ever dialed."""
    other_web.add("/feed.xml", rss([rss_item(TAGGED_TITLE, other_web.url("/x"), TAGGED_TEXT)]))
    other_web.add("/news/internal", "internal admin page")
    web.redirect("/hop.xml", other_web.url("/feed.xml"))
    web.redirect("/news/hop", other_web.url("/news/internal"))
    listing = serve_feed(
        web,
        "/listing.xml",
        [
            rss_item(TAGGED_TITLE, other_web.url("/news/internal"), TAGGED_TEXT),
            rss_item("Reko Diq talks resume in Quetta", web.url("/news/hop"), TAGGED_TEXT),
        ],
    )
    monitor = make_monitor([("hop", web.url("/hop.xml")), ("listing", listing)], allow=[web.host])

    reports = monitor.poll()

    assert reports["hop"].status == "failed"
    assert "not a public address" in (reports["hop"].error or "")
    assert "private_network_allowlist" in (reports["hop"].error or "")
    assert reports["listing"].status == "ok" and reports["listing"].new == 2
    assert {a.text_from for a in monitor.articles("listing")} == {"feed"}
    assert other_web.requests == []
    assert {port for _, port in network.dialed} == {web.server.server_address[1]}


# Forbidden answers, one per kind the guard must know: loopback, private, link-local (cloud
# metadata), CGNAT, multicast, unspecified, broadcast, IPv6 loopback / unspecified / unique-local
# / link-local / multicast, IPv4-mapped and NAT64 forms of forbidden IPv4 addresses.
FORBIDDEN = [
    "127.0.0.1", "127.5.5.5", "10.1.2.3", "172.16.0.1", "192.168.0.10", "169.254.169.254",
    "100.64.0.1", "224.0.0.251", "0.0.0.0", "255.255.255.255", "::1", "::", "fd12:3456::1",
    "fe80::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",
]  # fmt: skip
PUBLIC = "93.184.216.34"  # stands for "a public server"; the test network routes it locally


def test_case_05_forbidden_addresses_are_refused_before_any_connection(
    make_monitor: Callable[..., Monitor], web: LocalWeb, network: Network
) -> None:
    """Sources whose host resolves (stubbed DNS) to a forbidden address, or is one written as
    a literal, fail as refused and are never dialed, even with 127.0.0.1:PORT allowlisted
    (the allowlist is about the URL's host). Of a mixed answer only the public address is
    dialed."""
    port = web.server.server_address[1]
    serve_feed(web, "/feed.xml", [rss_item(TAGGED_TITLE, web.url("/news/1"), TAGGED_TEXT)])
    mixed_link = f"http://mixed.test:{port}/news/1"
    serve_feed(web, "/mixed.xml", [rss_item(TAGGED_TITLE, mixed_link, TAGGED_TEXT)])
    names = {f"h{i}.test": answer for i, answer in enumerate(FORBIDDEN)}
    literals = [
        "10.0.0.1", "169.254.169.254", "[::1]", "[fd00::1]", "0.0.0.0", "[::ffff:127.0.0.1]",
        "127.1", "100.64.0.1",
    ]  # fmt: skip
    sources_list = [(f"dns-{i}", f"http://{name}:{port}/feed.xml") for i, name in enumerate(names)]
    sources_list += [(f"ip-{i}", f"http://{ip}:{port}/feed.xml") for i, ip in enumerate(literals)]
    sources_list += [("mixed", f"http://mixed.test:{port}/mixed.xml")]
    dns = StubDns({name: [[answer]] for name, answer in names.items()})
    dns.answers["mixed.test"] = [["169.254.169.254", "10.0.0.1", PUBLIC]]
    network.aliases[PUBLIC] = "127.0.0.1"
    monitor = make_monitor(sources_list, allow=[web.host], dns=dns)

    reports = monitor.poll()

    for name, _url in sources_list[:-1]:
        assert reports[name].status == "failed", (name, reports[name])
        assert "not a public address" in (reports[name].error or ""), (name, reports[name])
        assert monitor.articles(name) == []
    assert reports["mixed"].status == "ok", reports["mixed"]
    assert set(network.dialed) == {(PUBLIC, port)}  # the mixed feed and its page, nothing else
    assert [request.path for request in web.requests] == ["/mixed.xml", "/news/1"]


def test_case_05_dns_rebinding_is_refused_on_the_address_connected_to(
    make_monitor: Callable[..., Monitor], web: LocalWeb, network: Network
) -> None:
    """A name that answered a public address at one poll and loopback at the next is refused
    at the second: the check is on the address the connection is made to, at connect time."""
    port = web.server.server_address[1]
    serve_feed(web, "/feed.xml", [rss_item(TAGGED_TITLE, web.url("/news/1"), TAGGED_TEXT)])
    network.aliases[PUBLIC] = "127.0.0.1"
    dns = StubDns({"rebind.test": [[PUBLIC], ["127.0.0.1"]]})
    monitor = make_monitor(
        [("rebind", f"http://rebind.test:{port}/feed.xml")], allow=[web.host], dns=dns
    )

    first = monitor.poll()["rebind"]
    second = monitor.poll()["rebind"]

    assert first.status == "ok" and first.new == 1
    assert second.status == "failed" and "resolves to 127.0.0.1" in (second.error or "")
    assert dns.asked == ["rebind.test", "rebind.test"]
    assert web.hits("/feed.xml") == 1
    assert [host for host, _ in network.dialed].count(PUBLIC) == 1


def test_case_05_non_http_schemes_are_refused(
    make_monitor: Callable[..., Monitor], web: LocalWeb, other_web: LocalWeb, tmp_path: Path
) -> None:
    """A source that is not http(s) is a config error; a redirect hop to file:, gopher:, ftp:,
    data: or javascript: fails its source without anything being read."""
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-c5a1")
    with pytest.raises(ConfigError, match="must start with http:// or https://"):
        write_config(tmp_path / "bad", [("file", secret.as_uri())], database_url="sqlite://")
        load_config(tmp_path / "bad", environ={})
    targets = {
        "file": secret.as_uri(),
        "gopher": f"gopher://127.0.0.1:{other_web.server.server_address[1]}/_GET",
        "ftp": f"ftp://127.0.0.1:{other_web.server.server_address[1]}/",
        "data": "data:application/rss+xml;base64,PHJzcz48L3Jzcz4=",
        "javascript": "javascript:alert(1)",
    }
    for name, target in targets.items():
        web.redirect(f"/{name}", target)
    monitor = make_monitor(
        [(name, web.url(f"/{name}")) for name in targets],
        allow=[web.host, other_web.host],
    )

    reports = monitor.poll()

    for name in targets:
        assert reports[name].status == "failed", reports[name]
        assert f"refusing to fetch a {name} URL" in (reports[name].error or ""), reports[name]
    assert other_web.requests == []


def test_case_05_private_hosts_are_reached_only_when_allowed_on_purpose(
    make_monitor: Callable[..., Monitor], web: LocalWeb, other_web: LocalWeb, network: Network
) -> None:
    """An allowlisted host name (any port) that resolves to a private address is fetched; so
    is anything with allow_private_networks, which SECURITY.md warns about."""
    network.aliases["10.20.30.40"] = "127.0.0.1"
    port = web.server.server_address[1]
    serve_feed(web, "/feed.xml", [rss_item(TAGGED_TITLE, web.url("/news/1"), TAGGED_TEXT)])
    serve_feed(other_web, "/feed.xml", [rss_item(TAGGED_TITLE, other_web.url("/n/2"), TAGGED_TEXT)])
    dns = StubDns({"feeds.internal": [["10.20.30.40"]]})
    named = make_monitor(
        [("internal", f"http://feeds.internal:{port}/feed.xml")],
        allow=["feeds.internal"],
        dns=dns,
    )
    assert named.poll()["internal"].status == "ok"
    anything = make_monitor(
        [("open", other_web.url("/feed.xml"))], fetch={"allow_private_networks": True}
    )
    assert anything.poll()["open"].status == "ok"


def test_case_06_retry_after_delays_the_next_poll_capped_at_a_day(
    make_monitor: Callable[..., Monitor], web: LocalWeb
) -> None:
    """429 and 503 with Retry-After in seconds or as an HTTP date: the source is not due again
    before that moment (the scheduler's `due_sources` says so), and never later than a day on."""
    now = datetime.now(UTC).replace(microsecond=0)
    day = timedelta(hours=24)
    answers = {
        "seconds": (429, "7200", timedelta(hours=2)),
        "date": (503, format_datetime(now + timedelta(hours=3), usegmt=True), timedelta(hours=3)),
        "far-seconds": (429, str(10 * 86400), day),
        "far-date": (503, format_datetime(now + timedelta(days=5), usegmt=True), day),
        "huge": (429, "9" * 40, day),
    }
    for name, (status, retry_after, _) in answers.items():
        web.add(f"/{name}", "busy", status=status, headers={"Retry-After": retry_after})
    monitor = make_monitor(
        [(name, web.url(f"/{name}")) for name in answers], allow=[web.host], clock=lambda: now
    )

    reports = monitor.poll()

    for name, (status, _, wait) in answers.items():
        assert reports[name].status == "failed" and f"HTTP {status}" in (reports[name].error or "")
        state = monitor.state(name)
        assert state.next_poll_at == now + wait, name
        assert state.retry_after_until == now + wait, name
        early = now + wait - timedelta(seconds=1)
        assert monitor.store.due_sources([name], early) == [], name
        assert monitor.store.due_sources([name], now + wait) == [name], name


# --- parsing -----------------------------------------------------------------------------------


def entity_attacks(secret: Path, link: str) -> dict[str, bytes]:
    """Feeds that expand entities exponentially or quadratically, or read a file through one."""
    laughs = '<!ENTITY lol0 "lol">' + "".join(
        "<!ENTITY lol{} {!r}>".format(i, f"&lol{i - 1};" * 10) for i in range(1, 10)
    )
    big = "x" * 50_000
    bodies = {
        "billion-laughs": (laughs, "&lol9;"),
        "quadratic": (f'<!ENTITY big "{big}">', "&big;" * 50_000),
        "external-file": (f'<!ENTITY xxe SYSTEM "{secret.as_uri()}">', "&xxe;"),
        "external-parameter": (f'<!ENTITY % xxe SYSTEM "{secret.as_uri()}"> %xxe;', "&xxe;"),
    }
    attacks = {
        name: (
            f'<?xml version="1.0"?>\n<!DOCTYPE rss [{declarations}]>\n'
            f'<rss version="2.0"><channel><title>{use}</title><item><title>{TAGGED_TITLE} {use}'
            f"</title><link>{link}</link><description>{use}</description></item></channel></rss>"
        ).encode()
        for name, (declarations, use) in bodies.items()
    }
    # Encodings that hide the declarations from a byte search.
    attacks["billion-laughs-utf16"] = codecs.BOM_UTF16_LE + attacks["billion-laughs"].decode(
        "utf-8"
    ).encode("utf-16-le")
    return attacks


def test_case_07_billion_laughs_and_external_entities_are_refused_within_a_second(
    make_monitor: Callable[..., Monitor], web: LocalWeb, tmp_path: Path
) -> None:
    """Entity bombs and external entities (file://) are refused before any parser expands or
    reads them, in well under a second each; their sources fail saying why, nothing of them is
    stored, and the file's content is nowhere."""
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-e7d1-DO-NOT-LEAK\n")
    attacks = entity_attacks(secret, web.url("/news/1"))
    for name, body in attacks.items():
        web.add(f"/{name}.xml", body, content_type="application/rss+xml")
    monitor = make_monitor([(name, web.url(f"/{name}.xml")) for name in attacks], allow=[web.host])

    for name, body in attacks.items():
        started = time.monotonic()
        parsed = parse_feed(body, web.url(f"/{name}.xml"))
        assert time.monotonic() - started < 1.0, name
        assert parsed.failed and parsed.entries == (), name
    started = time.monotonic()
    reports = monitor.poll()
    elapsed = time.monotonic() - started

    assert elapsed < 10
    for name in attacks:
        assert reports[name].status == "failed"
        assert reports[name].error == "feed declares XML entities; refused"
    assert monitor.count(ArticleRow) == 0
    assert web.hits("/news/1") == 0
    with monitor.store.engine.connect() as db:
        stored = repr([db.execute(sa.text(f"SELECT * FROM {t}")).all() for t in ("sources",)])
    assert "SECRET-e7d1" not in stored and "lollol" not in stored


GOLDEN_FEEDS = Path(__file__).parent / "data" / "feeds"


def test_case_08_bad_charsets_truncation_junk_and_html_keep_complete_items_and_say_why(
    make_monitor: Callable[..., Monitor], web: LocalWeb
) -> None:
    """Lying, missing and wrong charset declarations, a truncated feed, junk after the root and
    an HTML page served as a feed: no crash, every complete item kept (and decoded right), and
    `monitor sources` says for each what was wrong. The HTML page is no feed at all: failing."""
    cafe = "Café in Quetta reopens after the Balochistan protests"
    bodies: dict[str, tuple[bytes, str]] = {
        name: (
            (GOLDEN_FEEDS / f"{name}.{'html' if name == 'html-page' else 'xml'}").read_bytes(),
            "text/html; charset=utf-8" if name == "html-page" else "application/rss+xml",
        )
        for name in ("wrong-charset", "truncated", "junk-after-root", "html-page")
    }
    bodies["html-as-rss"] = (bodies["html-page"][0], "application/rss+xml; charset=utf-8")

    def undeclared(link: str) -> bytes:
        return rss([rss_item(cafe, link)]).replace(b' encoding="utf-8"', b"")

    bodies["missing-charset"] = (
        undeclared("https://news.example.org/cafe-1").decode().encode("windows-1252"),
        "text/xml",
    )
    bodies["charset-lie"] = (
        undeclared("https://news.example.org/cafe-2"),
        "application/rss+xml; charset=us-ascii",
    )
    for name, (body, content_type) in bodies.items():
        web.add(f"/{name}", body, content_type=content_type)
    monitor = make_monitor([(name, web.url(f"/{name}")) for name in bodies], allow=[web.host])

    reports = monitor.poll()

    expected = {
        "wrong-charset": "declared charset utf-8 but bytes are windows-1252",
        "truncated": "not well-formed XML: no element found (line 21)",
        "junk-after-root": "not well-formed XML: junk after document element (line 13)",
        "missing-charset": "no charset declared and bytes are not utf-8; read as windows-1252",
        "charset-lie": "declared charset us-ascii but bytes are utf-8",
    }
    for name, problem in expected.items():
        assert reports[name].status == "ok", reports[name]
        assert monitor.state(name).last_problem == problem
    for name in ("html-page", "html-as-rss"):
        assert reports[name].status == "failed"
        assert monitor.state(name).last_error == "not a feed (HTML page)"
    kept = {name: [a.title for a in monitor.articles(name)] for name in bodies}
    assert kept["truncated"] == ["First complete item", "Second complete item"]
    assert kept["junk-after-root"] and len(kept["junk-after-root"]) == 1
    assert kept["wrong-charset"] == ["Pakistan’s “rare earth” offer – a café debate"]
    assert kept["missing-charset"] == [cafe] and kept["charset-lie"] == [cafe]
    assert kept["html-page"] == kept["html-as-rss"] == []

    shown = {line.split()[0]: line for line in monitor.command("sources").splitlines()[1:]}
    for name, problem in expected.items():
        assert re.match(rf"{name}\s+feed\s+ok\s", shown[name]) and problem in shown[name]
    for name in ("html-page", "html-as-rss"):
        assert re.match(rf"{name}\s+feed\s+failing\s", shown[name])
        assert "not a feed (HTML page)" in shown[name]


def test_case_08_a_feed_built_to_be_slow_to_parse_fails_at_the_parse_deadline(
    make_monitor: Callable[..., Monitor], web: LocalWeb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Megabytes of tiny elements keep feedparser busy for many seconds (10 MB: a minute). The
    parse runs in a worker with a deadline (20 s; 1 s here): past it the worker is killed, the
    source fails saying so, and the other sources of the poll go on meanwhile."""
    monkeypatch.setattr(sources, "PARSE_DEADLINE", 1.0)
    slow = rss(["<a/>" * 1_500_000])  # 6 MB: well over half a minute of feedparser
    web.add("/slow.xml", slow, content_type="application/rss+xml")
    good = serve_feed(web, "/good.xml", [rss_item(TAGGED_TITLE, web.url("/news/1"), TAGGED_TEXT)])
    monitor = make_monitor([("slow", web.url("/slow.xml")), ("good", good)], allow=[web.host])

    started = time.monotonic()
    reports = monitor.poll()
    elapsed = time.monotonic() - started

    assert reports["slow"].status == "failed"
    assert reports["slow"].error == f"parsing the {len(slow)} byte body took over 1 s; gave up"
    assert reports["good"].status == "ok" and reports["good"].new == 1
    assert elapsed < 20, f"the poll took {elapsed:.1f}s with a 1 s parse deadline"
    # The stopped worker is gone, not left computing beside its replacement.
    parse_workers = [p for p in multiprocessing.active_children() if p.name == "parse-worker"]
    assert len(parse_workers) <= sources._parsers.size


BAD_LINKS = {
    "no link, no guid": "",
    "guid that is no link": '<guid isPermaLink="false">tag:news.example.org,2025:77</guid>',
    "javascript link": "<link>javascript:alert(document.cookie)</link>",
    "data link": "<link>data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==</link>",
    "mixed-case javascript": "<link>  JaVaScRiPt:alert(1)</link>",
    "entity-spelled javascript": "<link>&#106;ava&#9;script:alert(1)</link>",
    "vbscript link": "<link>vbscript:msgbox(1)</link>",
    "javascript permalink guid": "<guid>javascript:alert(1)</guid>",
    "mailto link": "<link>mailto:editor@news.example.org</link>",
    "link without host": "<link>http://</link>",
}


def test_case_09_items_without_a_usable_link_are_never_stored_or_alerted(
    web: LocalWeb, tmp_path: Path, run_monitor: Callable[..., Run]
) -> None:
    """Through `monitor poll`: RSS, Atom and JSON Feed items with no link or GUID, or with
    javascript:, data:, vbscript:, mailto: or host-less links, all tagged by their titles,
    leave no article, alert or outbox row and are shown nowhere; the one good item of each
    feed is stored and alerted."""
    rss_items = [
        f"<item><title>Bad {i}: {label} about Balochistan</title>{element}"
        f"<description>{TAGGED_TEXT}</description></item>"
        for i, (label, element) in enumerate(BAD_LINKS.items())
    ]
    rss_items.append(rss_item(f"Good RSS: {TAGGED_TITLE}", web.url("/news/rss"), TAGGED_TEXT))
    serve_feed(web, "/feed.rss", rss_items)
    atom = f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom</title><id>urn:x</id>
<entry><title>Bad atom: javascript about Balochistan</title><id>urn:uuid:1</id>
  <link href="javascript:alert(1)"/><summary>{TAGGED_TEXT}</summary></entry>
<entry><title>Bad atom: data about Balochistan</title><id>urn:uuid:2</id>
  <link rel="alternate" href="data:text/html,hi"/><summary>{TAGGED_TEXT}</summary></entry>
<entry><title>Good Atom: {TAGGED_TITLE}</title><id>urn:uuid:3</id>
  <link href="{web.url("/news/atom")}"/><summary>{TAGGED_TEXT}</summary></entry>
</feed>"""
    web.add("/feed.atom", atom, content_type="application/atom+xml")
    items = [
        {"id": "1", "url": "javascript:alert(1)", "title": "Bad json: javascript Balochistan"},
        {"id": "data:text/html,x", "title": "Bad json: data id about Balochistan"},
        {"id": "3", "title": "Bad json: no url about Balochistan"},
        {"id": "4", "url": web.url("/news/json"), "title": f"Good JSON: {TAGGED_TITLE}"},
    ]
    for item in items:
        item["content_text"] = TAGGED_TEXT
    json_feed = {"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": items}
    web.add("/feed.json", json.dumps(json_feed), content_type="application/feed+json")
    database = tmp_path / "monitor.db"
    config = write_config(
        tmp_path / "config",
        [(kind, web.url(f"/feed.{kind}")) for kind in ("rss", "atom", "json")],
        database_url=f"sqlite:///{database}",
        allow=[web.host],
    )

    result = run_monitor(config, "poll")

    assert result.returncode == 0, result.stderr
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.connect() as db:
        articles = db.execute(sa.select(ArticleRow.title, ArticleRow.link, ArticleRow.url)).all()
        alerts = db.scalar(sa.select(sa.func.count()).select_from(AlertRow))
        outbox = db.scalar(sa.select(sa.func.count()).select_from(OutboxRow))
    engine.dispose()
    assert sorted(a.title.split(":")[0] for a in articles) == ["Good Atom", "Good JSON", "Good RSS"]
    assert all(a.link.startswith("http://127.0.0.1:") for a in articles)
    assert (alerts, outbox) == (3, 3)
    assert result.stdout.count("ALERT") == 3
    assert "Bad" not in result.output
    for scheme in ("javascript", "data:", "vbscript", "mailto"):
        assert scheme not in result.output.lower()
    assert {r.path for r in web.requests} <= {
        "/feed.rss", "/feed.atom", "/feed.json", "/news/rss", "/news/atom", "/news/json",
    }  # fmt: skip


# Pages that are not the article, whose boilerplate names the shipped keywords (the outlet is
# "The Balochistan Herald", its menu links to Balochistan and Quetta).
NAV = """<header><nav><a href="/">Home</a> <a href="/balochistan">Balochistan</a>
<a href="/quetta">Quetta</a> <a href="/business">Business</a> <a href="/sport">Sport</a></nav>
</header>"""
FOOTER = "<footer><p>© 2025 The Balochistan Herald. All rights reserved.</p></footer>"
WALLS = {
    "cookie-wall": f"""<!DOCTYPE html><html lang="en"><head>
<title>Cricket board names squad | The Balochistan Herald</title></head><body>{NAV}
<div class="consent"><h2>We value your privacy</h2>
<p>The Balochistan Herald and our 143 partners use cookies and similar technologies to store and
access information on your device, to personalise content and ads from Quetta and across
Balochistan, to provide social media features and to analyse our traffic.</p>
<p>By continuing to use this site you consent to our use of cookies. You can change your choice
at any time by choosing Manage privacy settings at the bottom of any page of the Balochistan
Herald website, or read more in our cookie policy.</p>
<p>We and our partners process data to provide: use precise geolocation data, actively scan
device characteristics for identification, store and access information on a device,
personalised ads and content, ad and content measurement, audience insights and product
development.</p>
<p><button>Accept all cookies</button> <button>Manage your privacy settings</button></p></div>
{FOOTER}</body></html>""",
    "paywall": f"""<!DOCTYPE html><html lang="en"><head>
<title>Cricket board names squad for the home series</title></head><body>{NAV}
<main><article><h1>Cricket board names squad for the home series</h1>
<p>The selectors named a fifteen-man squad on Monday for the three-match home series,
recalling two fast bowlers who missed the tour.</p>
<p>The captain said the side would train in Lahore for a week before the first match.</p>
<div class="paywall"><p>Subscribe to continue reading. This story is exclusively for
subscribers.</p><p>Already a subscriber? Log in</p>
<p>Start your free trial today for full access to reporting from Balochistan and beyond.</p>
</div></article>
<aside><h3>Most read</h3><ul><li><a href="/b/1">Balochistan budget: what the province gets</a>
</li><li><a href="/b/2">Quetta traders strike over royalties</a></li>
<li><a href="/b/3">Gwadar port expansion approved</a></li></ul></aside></main>
{FOOTER}</body></html>""",
    "empty": f"""<!DOCTYPE html><html lang="en"><head><title>The Balochistan Herald</title>
</head><body>{NAV}<main><article></article></main>{FOOTER}</body></html>""",
    "login-wall": f"""<!DOCTYPE html><html lang="en"><head>
<title>Sign in | The Balochistan Herald</title></head><body>{NAV}
<main><h1>Sign in to continue</h1><form><label>Email</label><input name="e">
<label>Password</label><input type="password" name="p"><p>Remember me</p>
<p>Forgot your password?</p><p>Don't have an account? Register for free news from Quetta and
all of Balochistan.</p></form></main>{FOOTER}</body></html>""",
}
CRICKET = "The selectors named a fifteen-man squad for the three-match home series."
REAL_ARTICLE = (
    TAGGED_TEXT,
    "Shopkeepers in the city's main bazaar kept their shutters down from morning until late "
    "afternoon, and transporters joined the strike by parking their trucks on the highway.",
    "The provincial government said talks with the traders' association would resume on "
    "Wednesday, and that a share of the royalties would go to the districts near the mine.",
    "Opposition lawmakers called for the agreement to be laid before the provincial assembly, "
    "saying the terms had never been debated in public.",
)


def test_case_10_walls_and_empty_pages_fall_back_to_the_feed_and_never_match_boilerplate(
    make_monitor: Callable[..., Monitor],
    web: LocalWeb,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cookie wall, a paywall teaser, a login wall and an empty page, all full of the
    keywords in their menus and walls: the article keeps the feed's text (`text_from=feed`,
    logged as such) and gets no topic, since its feed item names none. When the feed item does
    name one, the topic comes from the feed's words; a real article page is still read."""
    monkeypatch.setattr(logging.getLogger("monitor"), "propagate", True)
    caplog.set_level(logging.INFO, logger="monitor")
    items = []
    for name, page in WALLS.items():
        web.add(f"/news/{name}", page)
        items.append(
            rss_item(f"Cricket board names squad ({name})", web.url(f"/news/{name}"), CRICKET)
        )
    web.add("/news/tagged-wall", WALLS["cookie-wall"])
    items.append(
        rss_item("Squad named after Quetta camp", web.url("/news/tagged-wall"), "Camp in Quetta.")
    )
    story = Story("real", TAGGED_TITLE, REAL_ARTICLE, days_ago(1))
    web.add("/news/real", article_page(story, "The Balochistan Herald", web.url("/news/real")))
    items.append(rss_item("Traders close shops", web.url("/news/real"), "Shops shut."))
    feed = serve_feed(web, "/feed.xml", items)
    monitor = make_monitor([("herald", feed)], allow=[web.host])

    report = monitor.poll()["herald"]

    assert report.status == "ok" and report.new == len(WALLS) + 2
    articles = {a.link.rsplit("/", 1)[1]: a for a in monitor.articles()}
    with monitor.store.engine.connect() as db:
        topics = {(m.article_id, m.topic): m.sentence for m in db.execute(sa.select(MatchRow))}
        alerted = set(db.scalars(sa.select(AlertRow.article_id)))
    for name in WALLS:
        article = articles[name]
        assert article.text_from == "feed", name
        assert article.text == CRICKET, name
        assert not any(key[0] == article.id for key in topics), name
        assert article.id not in alerted, name
    tagged = articles["tagged-wall"]
    assert tagged.text_from == "feed"
    assert topics[(tagged.id, "balochistan")] in (
        "Squad named after Quetta camp",
        "Camp in Quetta.",
    )
    assert articles["real"].text_from == "page" and (articles["real"].id, "balochistan") in topics
    logged = [r for r in caplog.records if getattr(r, "event", None) == "article"]
    by_url = {r.fields["url"].rsplit("/", 1)[1]: r.fields["text_from"] for r in logged}
    assert {name: by_url[name] for name in WALLS} == dict.fromkeys(WALLS, "feed")


def test_case_10_a_page_built_to_be_slow_to_extract_falls_back_to_the_feed_at_the_deadline(
    make_monitor: Callable[..., Monitor], web: LocalWeb
) -> None:
    """Half a million short paragraphs keep trafilatura busy for some 40 s. Extraction has a
    deadline per page (20 s; 1 s here): past it the worker is killed and the article keeps the
    feed's text, tagged from the feed's words."""
    web.add("/news/slow", b"<html><body>" + b"<p>word " * 500_000 + b"</body></html>")
    feed = serve_feed(
        web, "/feed.xml", [rss_item(TAGGED_TITLE, web.url("/news/slow"), TAGGED_TEXT)]
    )
    with Extractor(workers=1, deadline=1.0) as quick:
        monitor = make_monitor([("slow", feed)], allow=[web.host], workers=quick)
        started = time.monotonic()
        report = monitor.poll()["slow"]
        elapsed = time.monotonic() - started

    assert report.status == "ok" and report.new == 1 and report.alerts == 1
    (article,) = monitor.articles("slow")
    assert article.text_from == "feed" and article.text == TAGGED_TEXT
    assert elapsed < 20, f"the poll took {elapsed:.1f}s with a 1 s extraction deadline"


# --- output ------------------------------------------------------------------------------------

HOSTILE_TITLE = (
    "<!channel> *Balochistan* <@U123ABC> & <https://evil.example/x|click here> `rm -rf` "
    "_it_ ~st~ <#C0123|general>"
)
HOSTILE_SUMMARY = (
    "<!here> Quetta traders: ```drop table``` > quoted <!subteam^S123|@team> *bold* & "
    "<mailto:boss@evil.example|mail> in Balochistan."
)
ZWSP = "\u200b"


def mrkdwn_strings(value: Any) -> Iterator[str]:
    """Every mrkdwn text in a Slack payload: `text`, and each text object in the blocks."""
    if isinstance(value, dict):
        if value.get("type") == "mrkdwn":
            assert value.get("verbatim") is True, value  # Slack must not auto-link anything
            yield value["text"]
        for key, inner in value.items():
            if key in ("blocks", "elements", "text") and not isinstance(inner, str):
                yield from mrkdwn_strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from mrkdwn_strings(inner)


def as_shown(mrkdwn: str) -> str:
    """What Slack shows for our mrkdwn: entities decoded, zero-width spaces invisible."""
    return mrkdwn.replace(ZWSP, "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@pytest.mark.parametrize("mode", ["bot-token", "webhook"])
def test_case_11_hostile_titles_and_snippets_are_literal_in_slack(
    web: LocalWeb,
    slack: SlackStandIn,
    tmp_path: Path,
    run_monitor: Callable[..., Run],
    mode: str,
) -> None:
    """Through `monitor poll` and the real slack-sdk: a title and a snippet full of `<!channel>`,
    `<@U…>`, `<#C…>`, `<!subteam…>`, `<url|text>`, `&`, `*`, `_`, `~` and backticks are shown
    as typed. The JSON Slack receives mentions no one, links nothing but the article, formats
    nothing but our own bold, and asks Slack to auto-link and unfurl nothing."""
    link = web.url("/news/hostile")  # not served: the snippet comes from the feed
    serve_feed(web, "/feed.xml", [rss_item(HOSTILE_TITLE, link, escape(HOSTILE_SUMMARY))])
    config = write_config(
        tmp_path / "config",
        [("hostile", web.url("/feed.xml"))],
        database_url=f"sqlite:///{tmp_path / 'monitor.db'}",
        allow=[web.host],
        settings_extra={"slack": {"base_url": slack.base_url, "channel": "#news-alerts"}},
    )
    env = (
        {"SLACK_BOT_TOKEN": slack.token}
        if mode == "bot-token"
        else {"SLACK_WEBHOOK_URL": slack.webhook_url}
    )

    result = run_monitor(config, "poll", env=env)

    assert result.returncode == 0, result.output
    (call,) = slack.calls("chat.postMessage" if mode == "bot-token" else "webhook")
    body = call.json or {}
    assert body["unfurl_links"] is False and body["unfurl_media"] is False
    assert not body.get("link_names") and body.get("parse") in (None, "none")
    if mode == "bot-token":
        assert body["metadata"]["event_payload"]["url"] == link
    texts = [body["text"], *mrkdwn_strings(body["blocks"])]
    for text in texts:
        for control in ("<!", "<@", "<#"):
            assert control not in text, (control, text)
        for target in re.findall(r"<([^<>]*)>", text):
            assert target.startswith(f"{link}|"), target  # the article's link, nothing else
        # Every *, _, ~ and backtick that came from the article sits between zero-width
        # spaces, which stop Slack from reading it as formatting; only our own bold is left.
        ours = re.sub(f"{ZWSP}[*_~`]{ZWSP}", "", text).replace(link, "")
        assert not re.search(r"[_~`]", ours), text
        assert re.fullmatch(r"[^*]*(\*[^*]+\*[^*]*)*", ours), text
    shown = " ".join(as_shown(text) for text in texts)
    assert HOSTILE_TITLE in shown
    # The snippet, with the matched words (Quetta, Balochistan) in our bold.
    assert (
        "*Quetta* traders: ```drop table``` > quoted <!subteam^S123|@team> *bold* & "
        "<mailto:boss@evil.example|mail> in *Balochistan*." in shown
    )


INJECTED_TITLE = (
    "Ships sail from Gwadar\r\nBcc: victim@evil.example\r\nX-Injected: yes\n\nbody"
    "\u2028Cc: other@evil.example\x85Reply-To: x@evil.example\x0bTo: more@evil.example"
)
HTML_IN_TEXT = (
    "<script>alert(1)</script> Quetta traders met in <b>Balochistan</b> today "
    '<img src=x onerror="alert(2)"> <a href="javascript:alert(3)">more</a> & so on.'
)


class Markup(HTMLParser):
    """The elements of an HTML document and its text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [value or "" for name, value in attrs if name in ("href", "src")]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def check_email(raw: bytes, recipients: tuple[str, ...], rcpt_tos: tuple[str, ...]) -> Markup:
    """One Subject, From, To; no header of the title's; only the configured recipients; the
    HTML part holds no element from the article. Returns the HTML part, parsed."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    names = [line.split(":", 1)[0].lower() for line in head.split("\r\n") if line[:1] not in " \t"]
    for name in ("subject", "from", "to", "date", "message-id"):
        assert names.count(name) == 1, (name, head)
    assert not {"bcc", "cc", "reply-to", "x-injected"} & set(names), head
    assert rcpt_tos == recipients
    message = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert [a.addr_spec for a in message["To"].addresses] == list(recipients)
    (html,) = [p.get_content() for p in message.walk() if p.get_content_type() == "text/html"]
    markup = Markup(html)
    assert not {"script", "img", "b"} & set(markup.tags), markup.tags
    assert all(link.startswith(("https://", "http://")) for link in markup.links), markup.links
    return markup


def test_case_12_a_title_with_crlf_bcc_gives_one_subject_and_no_extra_recipient(
    smtp_server: SmtpServer, tls_files: TlsFiles, tmp_path: Path
) -> None:
    """Stored as it came (no feed parser in between to flatten it): a title carrying CR LF,
    LF, NEL, U+2028 and vertical tab before header lines, and article text full of HTML. The
    alert email (through the outbox) and the digest each have one Subject, go to the configured
    recipients only, and show the HTML as text."""
    email_settings = {
        "smtp_host": smtp_server.host,
        "smtp_port": smtp_server.port,
        "security": "starttls",
        "from": "News Monitor <monitor@example.org>",
        "alerts_to": ["alerts@example.org"],
        "digest": {"to": ["team@example.org", "desk@example.org"], "at": "08:00"},
    }
    database = f"sqlite:///{tmp_path / 'monitor.db'}"
    directory = write_config(
        tmp_path / "config", [], database_url=database, settings_extra={"email": email_settings}
    )
    config = load_config(directory, environ=smtp_server.environ)
    now = datetime.now(UTC)
    article = Article(
        url="https://news.example.org/ships",
        link="https://news.example.org/ships",
        source="herald",
        outlet="news.example.org",
        title=INJECTED_TITLE,
        summary=HTML_IN_TEXT,
        text=HTML_IN_TEXT,
        text_from="feed",
        published=now - timedelta(hours=1),
    )
    matches = rules.compile_topics(config.topics).match(
        article.title, article.summary, article.text
    )
    assert matches  # Gwadar, Quetta, Balochistan
    store = Store.open(database)
    try:
        # Seen half an hour ago: the digest leaves out the last minute, which may still settle.
        seen = now - timedelta(minutes=30)
        store.save_article(article, matches, None, None, lambda topics: ("email",), seen)
        sender = SmtpSender(
            config.settings.email,
            environ=smtp_server.environ,
            ssl_context=tls_files.client_context(),
        )
        notifier = EmailAlertNotifier(config.settings, sender)
        delivered = deliver_due(store, {"email": notifier}, lambda: datetime.now(UTC))
        digest = send_digest_now(store, config, sender, datetime.now(UTC))
    finally:
        store.close()

    assert delivered.sent == 1 and digest.status == "sent", (delivered, digest)
    alert_mail, digest_mail = smtp_server.received
    check_email(alert_mail.raw, ("alerts@example.org",), alert_mail.rcpt_tos)
    markup = check_email(
        digest_mail.raw, ("team@example.org", "desk@example.org"), digest_mail.rcpt_tos
    )
    shown = " ".join("".join(markup.text).split())
    assert "Ships sail from Gwadar Bcc: victim@evil.example X-Injected: yes body" in shown
    assert "<script>alert(1)</script> Quetta traders met in <b>Balochistan</b>" in shown


def test_case_12_html_in_article_text_shows_as_text_end_to_end(
    web: LocalWeb,
    smtp_server: SmtpServer,
    tls_files: TlsFiles,
    tmp_path: Path,
    run_monitor: Callable[..., Run],
) -> None:
    """Through `monitor poll` (one email per alert) and `monitor digest --send`: a JSON Feed
    title with CR LF and a Bcc line, an article page whose text shows HTML (written as
    entities, so it is text on the page): one Subject, the configured recipients only, and the
    HTML shown as text in the digest."""
    paragraphs = "".join(f"<p>{escape(p)}</p>" for p in (HTML_IN_TEXT, *REAL_ARTICLE))
    web.add(
        "/news/1",
        f"<html><head><title>x</title></head><body><article>{paragraphs}</article></body></html>",
    )
    item = {"id": "1", "url": web.url("/news/1"), "title": INJECTED_TITLE, "content_text": "Gwadar"}
    feed = {"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": [item]}
    web.add("/feed.json", json.dumps(feed), content_type="application/feed+json")
    email_settings = {
        "smtp_host": smtp_server.host,
        "smtp_port": smtp_server.port,
        "from": "News Monitor <monitor@example.org>",
        "alerts_to": ["alerts@example.org"],
        "digest": {"to": ["team@example.org"], "at": "08:00"},
    }
    config = write_config(
        tmp_path / "config",
        [("herald", web.url("/feed.json"))],
        database_url=f"sqlite:///{tmp_path / 'monitor.db'}",
        allow=[web.host],
        settings_extra={"email": email_settings},
    )
    env = {**smtp_server.environ, "SSL_CERT_FILE": str(tls_files.ca)}

    polled = run_monitor(config, "poll", env=env)
    # The digest leaves out the last minute (alerts may still settle): date the alert back
    # instead of waiting.
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'monitor.db'}")
    with engine.begin() as db:
        db.execute(sa.update(AlertRow).values(created_at=datetime.now(UTC) - timedelta(minutes=5)))
    engine.dispose()
    sent = run_monitor(config, "digest", "--send", env=env)

    assert polled.returncode == 0 and sent.returncode == 0, polled.output + sent.output
    alert_mail, digest_mail = smtp_server.received
    check_email(alert_mail.raw, ("alerts@example.org",), alert_mail.rcpt_tos)
    markup = check_email(digest_mail.raw, ("team@example.org",), digest_mail.rcpt_tos)
    shown = " ".join("".join(markup.text).split())
    assert "Ships sail from Gwadar Bcc: victim@evil.example X-Injected: yes body" in shown
    assert "<script>alert(1)</script> Quetta traders met in <b>Balochistan</b>" in shown


# --- secrets -----------------------------------------------------------------------------------

# Recognisable values; each holds a marker no legitimate output contains.
SLACK_TOKEN = "xoxb-1111-2222-LEAKSLACKTOKEN7q"
WEBHOOK_URL = "https://hooks.slack.test/services/T0/B0/LEAKWEBHOOK8r"
SMTP_PASSWORD = "pw!LEAKSMTPPASS9s#"
PG_PASSWORD = "LEAKPGPASS0t"
MARKERS = ("LEAKSLACKTOKEN", "LEAKWEBHOOK", "LEAKSMTPPASS", "LEAKPGPASS")


def leaks(text: str) -> list[str]:
    return [marker for marker in MARKERS if marker in text]


@dataclass(frozen=True)
class Command:
    """One `monitor` command of case 13: its arguments, extra environment, expected status."""

    name: str
    args: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    status: int = 0
    logs: bool = False  # it writes log lines: run in both log formats, not only in text
    stop_after: float | None = None  # SIGTERM after this many seconds (long-running commands)
    before: Callable[[], None] | None = None  # run first (e.g. to let time pass in the database)


def secret_commands(closed_port: int, settle: Callable[[], None]) -> list[Command]:
    """Every command, on every path that handles a secret or an error. Adding one is a line."""
    unreachable = f"postgresql+psycopg://postgres:{PG_PASSWORD}@127.0.0.1:{closed_port}/none"
    unparsable = f"postgresql+psycopg://postgres:{PG_PASSWORD}@127.0.0.1:port/none"
    return [
        Command("check", ("check",)),
        # A bug in the pipeline whose message holds an article link carrying the token.
        Command("crash", ("-v", "poll"), env={"HARDENING_CRASH_ON_ARTICLE": "1"}, logs=True),
        # Slack refuses the token (invalid_auth), SMTP refuses the login (535).
        Command("poll", ("-v", "poll"), logs=True),
        Command("sources", ("sources",)),
        Command("alerts", ("alerts",)),
        # The digest prints the story's link, which carries the token.
        Command("digest", ("digest",), before=settle),
        Command("send", ("digest", "--send"), status=1, logs=True),
        Command("run", ("run",), stop_after=10, logs=True),  # the service, stopped by SIGTERM
        # The database refuses the connection, or its URL does not parse: errors on the way in.
        Command("no-db", ("-v", "poll"), env={"MONITOR_DATABASE_URL": unreachable}, status=1),
        Command("bad-db", ("sources",), env={"MONITOR_DATABASE_URL": unparsable}, status=1),
    ]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_case_13_secrets_never_appear_in_any_output_of_a_run(
    web: LocalWeb,
    slack: SlackStandIn,
    start_smtp_server: Callable[..., SmtpServer],
    tls_files: TlsFiles,
    postgres_url: str,
    closed_port: int,
    tmp_path: Path,
    run_monitor: Callable[..., Run],
    log_format: str,
) -> None:
    """With a Slack token, a webhook URL, an SMTP password and a PostgreSQL password set, every
    command of a run (each failure path included: Slack's invalid_auth, a refused SMTP login, a
    source URL carrying the token, a redirect loop that quotes it, a crash whose message holds
    it, a database that refuses the connection) writes none of them: not to stdout, not to the
    logs (text or JSON), not into what it stores and shows later."""
    empty_postgres(postgres_url)
    database_url = sa.engine.make_url(postgres_url).set(password=PG_PASSWORD)
    smtp = start_smtp_server("starttls", credentials=("monitor", "the-right-password"))
    web.redirect("/loop", f"/loop?token={SLACK_TOKEN}")  # quotes the token back in its error
    serve_feed(
        web,
        "/feed.xml",
        [rss_item(TAGGED_TITLE, web.url(f"/news/1?token={SLACK_TOKEN}"), TAGGED_TEXT)],
    )
    email_settings = {
        "smtp_host": smtp.host,
        "smtp_port": smtp.port,
        "from": "News Monitor <monitor@example.org>",
        "alerts_to": ["alerts@example.org"],
        "digest": {"to": ["team@example.org"]},
    }
    config = write_config(
        tmp_path / "config",
        [
            ("looping", web.url(f"/loop?token={SLACK_TOKEN}")),
            ("tokenised", web.url(f"/feed.xml?token={SLACK_TOKEN}")),
        ],
        database_url="sqlite:///unused.db",  # $MONITOR_DATABASE_URL wins
        allow=[web.host],
        settings_extra={
            "slack": {"base_url": slack.base_url, "channel": "#news-alerts"},
            "email": email_settings,
        },
    )
    env = {
        "SLACK_BOT_TOKEN": SLACK_TOKEN,  # not the stand-in's: Slack answers invalid_auth
        "SLACK_WEBHOOK_URL": WEBHOOK_URL,
        "SMTP_USERNAME": "monitor",
        "SMTP_PASSWORD": SMTP_PASSWORD,  # not the server's: 535
        "MONITOR_DATABASE_URL": database_url.render_as_string(hide_password=False),
        "SSL_CERT_FILE": str(tls_files.ca),
        **({"MONITOR_LOG_FORMAT": "json"} if log_format == "json" else {}),
    }

    def settle() -> None:
        # The digest leaves out the last minute: date the alerts back instead of waiting.
        engine = sa.create_engine(postgres_url)
        with engine.begin() as db:
            db.execute(
                sa.update(AlertRow).values(created_at=datetime.now(UTC) - timedelta(minutes=5))
            )
        engine.dispose()

    runs: dict[str, Run] = {}
    for command in secret_commands(closed_port, settle):
        if log_format == "json" and not command.logs:
            continue  # the same output as in the text run: only log lines change
        if command.before is not None:
            command.before()
        run = run_monitor(
            config, *command.args, env={**env, **command.env}, stop_after=command.stop_after
        )
        assert run.returncode == command.status, (command, run.output)
        assert leaks(run.output) == [], (command.args, run.output)
        runs[command.name] = run

    # The paths above were really taken: the errors are there, their secrets are not.
    assert "simulated bug while reading" in runs["crash"].output
    assert "redirect loop" in runs["poll"].output and "invalid_auth" in runs["poll"].output
    assert "refused the login" in runs["poll"].output
    assert "sending failed" in runs["send"].output
    assert "service_start" in runs["run"].output and "service_stop" in runs["run"].output
    # SMTP_USERNAME is "monitor", a plain word and no secret: lines holding it are whole.
    assert "monitor/pipeline.py" in runs["crash"].stderr  # the traceback's frames
    if log_format == "json":
        assert any(line.startswith("{") for line in runs["crash"].stderr.splitlines())
    else:
        assert "/news/1?token=[redacted]" in runs["digest"].output
        assert "database error" in runs["no-db"].output
        assert "invalid database_url" in runs["bad-db"].output
    engine = sa.create_engine(postgres_url)
    with engine.connect() as db:
        stored = repr(
            [db.execute(sa.text(f"SELECT * FROM {t}")).all() for t in ("sources", "outbox")]
        )
    engine.dispose()
    assert leaks(stored) == []


def test_case_13_reprs_of_config_settings_and_notifiers_hide_secrets(
    slack: SlackStandIn,
    smtp_server: SmtpServer,
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """repr() and str() of the Config, its Settings, the outputs, every notifier and sender,
    the HTTP client and the database engine, with every secret set."""
    database_url = sa.engine.make_url(postgres_url).set(password=PG_PASSWORD)
    for name, value in {
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_WEBHOOK_URL": WEBHOOK_URL,
        "SMTP_USERNAME": "monitor",
        "SMTP_PASSWORD": SMTP_PASSWORD,
        "MONITOR_DATABASE_URL": database_url.render_as_string(hide_password=False),
    }.items():
        monkeypatch.setenv(name, value)
    directory = write_config(
        tmp_path / "config",
        [("herald", "https://news.example.org/feed.xml")],
        database_url="sqlite:///unused.db",
        settings_extra={
            "slack": {"base_url": slack.base_url},
            "email": {"smtp_host": smtp_server.host, "alerts_to": ["alerts@example.org"]},
        },
    )
    config = load_config(directory)
    assert PG_PASSWORD in config.settings.database_url  # the value is there, to be used
    outputs = configured_outputs(config.settings)
    store = Store.open(config.settings.database_url)
    try:
        webhook_only = Outputs(False, True, False, False)
        shown = [
            config,
            config.settings,
            config.settings.email,
            config.settings.slack,
            outputs,
            notifiers(config, outputs, store=store),
            notifiers(config, webhook_only, store=store),
            SmtpSender(config.settings.email),  # type: ignore[arg-type]
            HttpFetcher(config.settings.fetch),
            store.engine,
        ]
        for thing in shown:
            assert leaks(repr(thing)) == [] and leaks(str(thing)) == [], repr(thing)
    finally:
        store.close()


def test_case_13_an_smtp_username_is_hidden_when_it_is_a_key_not_a_plain_word(
    tmp_path: Path,
) -> None:
    """Some providers' SMTP usernames are access keys (AWS SES, Postmark): hidden like the
    password. A plain word ("monitor") is no secret, and hiding it would garble every line."""
    directory = write_config(
        tmp_path / "config",
        [],
        database_url="sqlite:///unused.db",
        settings_extra={"email": {"alerts_to": ["alerts@example.org"]}},
    )
    config = load_config(directory, environ={})

    for username, hidden in (("monitor", False), ("AKIAIOSFODNN7EXAMPLE", True)):
        environ = {"SMTP_USERNAME": username, "SMTP_PASSWORD": SMTP_PASSWORD}
        values = secret_values(config, environ)
        assert SMTP_PASSWORD in values
        assert (username in values) is hidden, username


def test_case_13_a_secret_pasted_where_its_variable_name_goes_is_not_echoed(
    tmp_path: Path, run_monitor: Callable[..., Run]
) -> None:
    """`slack.token_env: xoxb-…` (the token instead of its variable's name) is a config error
    that `monitor check` reports on its line without quoting the value. (A secret made of
    letters and digits alone cannot be told from a misspelt name, and is quoted as one: to
    the person who wrote it into the file.)"""
    config = write_config(
        tmp_path / "config",
        [],
        database_url="sqlite:///unused.db",
        settings_extra={
            "slack": {"token_env": SLACK_TOKEN},
            "email": {"password_env": SMTP_PASSWORD, "digest": {"to": ["team@example.org"]}},
        },
    )

    result = run_monitor(config, "check")

    assert result.returncode == 2
    assert "slack.token_env: must be the name of an environment variable" in result.output
    assert "email.password_env: must be the name of an environment variable" in result.output
    assert leaks(result.output) == []


# --- fuzzing -----------------------------------------------------------------------------------
# tests/test_rules_fuzz.py and tests/test_dedupe_fuzz.py hold more properties of the same kind.

FUZZ = settings(max_examples=300, deadline=None)
queries = st.one_of(st.text(max_size=60), st.lists(QUERY_PIECES, max_size=16).map(" ".join))
texts = st.one_of(st.text(max_size=200), st.lists(TEXT_PIECES, max_size=40).map("".join))


@FUZZ
@given(queries, texts)
def test_case_15_query_parser_raises_nothing_but_query_error(query: str, text: str) -> None:
    """Whatever is typed as a query or a keyword: parsed and usable on any text, or refused with
    QueryError (pointing into the input); nothing else ever escapes."""
    for check in (rules.parse_query, rules.check_keyword):
        try:
            check(query)
        except QueryError as exc:
            assert exc.position is None or 0 <= exc.position <= len(query)
    for topic in (Topic("q", query=query), Topic("k", keywords=(query,), exclude=(query,))):
        try:
            matcher = rules.compile_topics((topic,))
        except QueryError:
            continue
        for found in matcher.match(text, text, text):
            assert found.topic == topic.name and found.words


URL_PREFIXES = ["", "http://", "https://", "https://dawn.com", "https://dawn.com/?", "//"]
urls = st.one_of(
    st.from_regex(URLISH),
    st.from_regex(LOOSE),
    st.builds(lambda prefix, rest: prefix + rest, st.sampled_from(URL_PREFIXES), st.text()),
)


@FUZZ
@given(urls, st.sampled_from([None, "https://www.dawn.com/news/", "http://[::1]/a/b"]))
def test_case_15_url_canonicaliser_raises_only_url_error_and_is_idempotent(
    url: str, base: str | None
) -> None:
    """canonical_url gives an http(s) URL that canonicalises to itself, or raises UrlError."""
    try:
        canonical = canonical_url(url, base)
    except UrlError:
        return
    assert canonical.startswith(("http://", "https://"))
    assert canonical_url(canonical) == canonical


JUNK = [
    b"<", b"&", b"]]>", b"<![CDATA[", b"<!DOCTYPE rss [", b"<!ENTITY a 'b'>", b"\x00", b"\xff\xfe",
    b"\xc3", b"&#xD800;", b"&amp", b"<item>", b"</channel>", b"<link>javascript:x</link>",
    b"<?xml version='1.0'?>", b'xml:base="data:x/"', b"\r\n" * 50,
]  # fmt: skip
ENCODINGS = [
    b"utf-8", b"utf-16", b"utf-32", b"us-ascii", b"iso-8859-1", b"windows-1252", b"koi8-r",
    b"shift_jis", b"gb2312", b"utf-7", b"punycode", b"idna", b"rot13", b"base64", b"bogus-9",
]  # fmt: skip
DECLARED = re.compile(rb"""encoding\s*=\s*["'][^"']*["']""")


def mutate(body: bytes, rng: random.Random) -> bytes:
    """`body` hit by one to three of: byte flips, truncation, a duplicated chunk, inserted junk,
    an encoding declaration swapped (or added) for another."""
    for _ in range(rng.randint(1, 3)):
        size = len(body)
        operation = rng.choice(["flip", "truncate", "duplicate", "junk", "declaration"])
        if operation == "flip" and size:
            data = bytearray(body)
            for _ in range(rng.randint(1, 20)):
                data[rng.randrange(size)] ^= 1 << rng.randrange(8)
            body = bytes(data)
        elif operation == "truncate" and size:
            body = body[: rng.randrange(size)]
        elif operation == "duplicate" and size:
            start = rng.randrange(size)
            piece = body[start : start + rng.randint(1, 4096)]
            at = rng.randrange(size)
            body = body[:at] + piece * rng.randint(1, 3) + body[at:]
        elif operation == "junk":
            at = rng.randrange(size + 1)
            body = body[:at] + rng.choice(JUNK) + body[at:]
        else:
            declaration = b'encoding="%s"' % rng.choice(ENCODINGS)
            if DECLARED.search(body[:200]):
                body = DECLARED.sub(declaration, body, count=1)
            else:
                body = b"<?xml version='1.0' %s?>\n" % declaration + body
    return body


def test_case_15_every_shared_feed_mutated_at_random_parses_without_raising(
    shared_data: Path,
) -> None:
    """Every feed of ../shared/data (sample-feeds, rss-parser-feeds, feedparser-fixtures),
    twice, mutated at random with a fixed seed: parse_feed never raises, and gives only unique
    absolute http(s) links with one-line titles, and no entries when it finds no feed."""
    folders = ("sample-feeds", "rss-parser-feeds", "feedparser-fixtures")
    files = sorted(
        path
        for folder in folders
        for path in (shared_data / folder).rglob("*")
        if path.is_file() and path.suffix != ".md" and path.name != "LICENSE"
    )
    assert len(files) > 150
    rng = random.Random(15)  # fixed: a failure names its file and is reproduced by a rerun
    started = time.monotonic()
    for path in files:
        original = path.read_bytes()
        for attempt in range(2):
            body = mutate(original, rng)
            where = f"{path.relative_to(shared_data)} (mutant {attempt})"
            try:
                parsed = parse_feed(body, "https://feeds.example.org/feed.xml")
            except Exception as exc:  # the property: nothing escapes, whatever the bytes
                raise AssertionError(f"{where}: {exc!r}") from exc
            links = [entry.link for entry in parsed.entries]
            assert len(links) == len(set(links)), where
            for entry in parsed.entries:
                assert re.match(r"https?://[^/?#\s]", entry.link, re.IGNORECASE), (where, entry)
                assert "\n" not in entry.title, where
            assert not (parsed.failed and parsed.entries), where
    assert time.monotonic() - started < 120
