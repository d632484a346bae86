"""The crash loop: `monitor run` killed with SIGKILL again and again, then checked for losses and
doubles. Used by tests/test_crash.py (CI) and scripts/crash_loop.py (long runs).

    with CrashWorld(workdir, database_url, seed) as world:   # outlets, Slack, SMTP, config
        report = CrashLoop(world, options).run()               # kill/restart cycles, then quiet
        report.problems                                        # [] when every guarantee held

The world, all on 127.0.0.1:
- three outlets (LocalWeb), each an RSS feed and article pages, every response a little slow so
  that polls take a moment; the feeds grow as the loop goes on. Articles are written from a
  seeded RNG: stories on the users' topics, copies of a story on other outlets (follow-ups in
  the story's Slack thread), and unrelated news that must not alert;
- the Slack stand-in (tests/slack_standin.py) in bot-token mode, slow on chat.postMessage both
  before it stores the message and after (so a kill lands before Slack took it, or after it took
  it and before the monitor heard back), with accept-then-drop, 429 and 500 faults now and then;
- a real SMTP server (aiosmtpd, STARTTLS + AUTH) that records a message and only then waits
  before answering "250" (a kill there leaves a message delivered but not known to be), with a
  4xx now and then;
- a config whose daily digest is already due (`email.digest.at` passed today) and whose alerts
  also go by email (`alerts_to`).

Each cycle picks (seeded) when to kill: after a random delay, or once a Slack post, an SMTP
session or a feed request is in flight; the digest's own send is targeted once. What was really
in flight at the kill is recorded from the servers' side, not assumed.

While the process is dead the loop may fast-forward the database's clock for the outbox
(`fast_forward`): a row left `sending` by the dead process is made older than IN_FLIGHT_GRACE
(2 minutes), and before the final run every back-off is made due. Waiting those minutes for real
changes nothing the checks look at (the process cannot tell a restart two minutes later from this)
and would make each cycle minutes long; scripts/crash_loop.py --real-time runs without it.

Then `monitor run` runs until nothing is left to do and stops with SIGTERM, and `verify` checks
every guarantee against what the servers received and what the database holds.
"""

from __future__ import annotations

import asyncio
import random
import re
import signal
import string
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from monitor.store.schema import (
    AlertRow,
    ArticleRow,
    DigestRow,
    OutboxRow,
    SlackThreadRow,
)
from monitor.store.store import IN_FLIGHT_GRACE
from tests.service_harness import Launcher, RunningService
from tests.slack_standin import SlackStandIn, _Answer
from tests.smtp import TLS_FILES, SmtpServer
from tests.web import LocalWeb
from tests.world import Story, article_page, rss_feed

OUTLETS = ("margalla-post", "sindh-ledger", "khyber-wire")
OUTLET_NAMES = {
    "margalla-post": "Margalla Post",
    "sindh-ledger": "Sindh Ledger",
    "khyber-wire": "Khyber Wire",
}
CHANNELS = ("#news-alerts", "#ussm-watch")
ROUTES = {"ussm": "#ussm-watch"}
DIGEST_SUBJECT = "News digest for "
KEYWORDS = """topics:
  balochistan:
    keywords: [Balochistan, Baluchistan, "Baloch*", Quetta, Gwadar, Reko Diq]
  rare-earth:
    keywords: ["rare earth", "rare earths", neodymium, praseodymium, "critical minerals"]
    exclude: ["rare earth magnet ETF"]
  ussm:
    keywords: ["US Strategic Metals", USSM]
    require: [Pakistan, Pakistani, Islamabad, "Frontier Works", refinery, Balochistan]
"""
# One sentence per topic: what makes an article match it.
TOPIC_SENTENCES = {
    "balochistan": (
        "Officials in Quetta said the Balochistan cabinet would review the mining leases.",
        "Provincial ministers in Balochistan met tribal elders about the Reko Diq road.",
        "Port workers in Gwadar said the Baloch fishing families were not consulted.",
    ),
    "rare-earth": (
        "Exporters expect rare earth shipments and neodymium output to rise next year.",
        "The ministry listed critical minerals, praseodymium among them, for new licences.",
        "Analysts said rare earths would dominate the next round of trade talks.",
    ),
    "ussm": (
        "Pakistan and US Strategic Metals signed an agreement on a refinery near Karachi.",
        "Islamabad said USSM engineers would visit the refinery site next month.",
        "A Pakistani delegation discussed the USSM memorandum in Washington.",
    ),
}
# Words for filler sentences: none is a keyword, so only TOPIC_SENTENCES make an article match.
FILLER = """
account advisers afternoon agency agreement airport analysts annual answer archive assembly
auditors authority average balance bankers barrier basin bench board border bridge briefing
budget bulletin bureau cabinet canal capacity capital cargo census chamber channel charter
circuit citizens clerks coast committee commodity company contract corridor council court
credit crops customs dealers debate decade delegates demand deputy desert director district
docks drivers drought economy editors election engineers estimate exchange experts exports
factory farmers ferry finance fishermen fleet forecast freight fuel funding governor grain
harbour highway hospital imports income industry inflation inquiry inspectors investors
journey judges labour ledger lenders licence market mayor merchants minister monsoon motorway
notice officers orchard output parliament passengers pension permit pipeline planners police
policy portfolio power premium pressure prices prosecutors province railway rainfall ranchers
reform region registry reservoir revenue river salaries savings schedule schools season
secretary sector senate shipping shortage spokesman statement subsidy suppliers survey tariff
taxes teachers tenders terminal textile timber traders traffic transport treasury tribunal
trucks union valley vendors village voters wages warehouse water weather wheat workers yield
""".split()  # noqa: SIM905 (a list literal of 180 words would be 180 lines)
VERBS = """approved argued asked blocked cited cleared cut delayed doubled expected extended
filed gained halted lifted named noted opened ordered praised raised rejected reported
reviewed signed slowed stopped studied tabled urged warned""".split()  # noqa: SIM905


# --- articles ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One article on one outlet: `story` names the real-world story it reports (copies on other
    outlets share it); `topics` are the topics it must be tagged with (empty: unrelated)."""

    story: str
    outlet: str
    article: Story
    topics: frozenset[str]

    @property
    def path(self) -> str:
        return f"/news/{self.article.slug}"


class Newsroom:
    """Writes articles from a seeded RNG: every story's text is its own (random filler words, so
    two stories never look alike), a copy keeps the text under another headline."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.count = 0

    def _sentence(self) -> str:
        words = [self.rng.choice(FILLER) for _ in range(self.rng.randint(9, 15))]
        words.insert(self.rng.randint(1, 3), self.rng.choice(VERBS))
        return " ".join(words).capitalize() + "."

    def _paragraph(self) -> str:
        return " ".join(self._sentence() for _ in range(3))

    def story(self, topics: frozenset[str]) -> Story:
        self.count += 1
        paragraphs = [self._paragraph() for _ in range(7)]
        for topic in sorted(topics):
            # In the first or the last paragraph: a copy keeps both (see `copy`).
            sentence = self.rng.choice(TOPIC_SENTENCES[topic])
            index = self.rng.choice((0, -1))
            paragraphs[index] = f"{paragraphs[index]} {sentence}"
        head = " ".join(self.rng.choice(FILLER) for _ in range(4)).capitalize()
        tag = "".join(self.rng.choice(string.ascii_lowercase) for _ in range(6))
        return Story(
            f"s{self.count}-{tag}",
            f"{head} {self.rng.choice(VERBS)} in report {self.count}",
            tuple(paragraphs),
            datetime.now(UTC) - timedelta(minutes=self.rng.randint(1, 300)),
        )

    def copy(self, original: Story) -> Story:
        """Another outlet's copy: its own headline, intro and footer, one paragraph dropped."""
        self.count += 1
        kept = list(original.paragraphs)
        del kept[self.rng.randrange(1, len(kept) - 1)]
        return Story(
            f"c{self.count}-{original.slug}",
            f"Copy {self.count}: {original.title.lower()}",
            (
                "Our correspondent files this report with agency input.",
                *kept,
                "This report first appeared elsewhere and is republished with permission.",
            ),
            datetime.now(UTC) - timedelta(minutes=self.rng.randint(0, 60)),
        )


# --- servers that can be slow, and say what is in flight ------------------------------------------


class Activity:
    """What the servers are doing right now (requests in flight) and have done, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight: Counter[str] = Counter()
        self.seen: Counter[str] = Counter()
        self.finished: dict[str, float] = {}  # kind -> monotonic time the last one ended

    @contextmanager
    def busy(self, kind: str) -> Iterator[None]:
        with self._lock:
            self.in_flight[kind] += 1
            self.seen[kind] += 1
        try:
            yield
        finally:
            with self._lock:
                self.in_flight[kind] -= 1
                self.finished[kind] = time.monotonic()

    def now(self) -> set[str]:
        with self._lock:
            return {kind for kind, n in self.in_flight.items() if n > 0}

    def since(self, kind: str) -> float:
        """Seconds since the last `kind` ended (infinite when none did)."""
        with self._lock:
            ended = self.finished.get(kind)
        return float("inf") if ended is None else time.monotonic() - ended


def quiet(server: ThreadingHTTPServer) -> None:
    """No traceback on stderr when a killed client leaves a connection half-way."""
    server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]


class SlowSlack(SlackStandIn):
    """The Slack stand-in, slow on chat.postMessage: `before` seconds before it stores the
    message, `after` seconds between storing it and answering."""

    def __init__(self, activity: Activity, before: float, after: float) -> None:
        super().__init__()
        quiet(self.server)
        self.activity = activity
        self.before = before
        self.after = after

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        method = handler.path.rsplit("/", 1)[-1].split("?")[0]
        with self.activity.busy(f"slack:{method}"):
            if method == "chat.postMessage":
                time.sleep(self.before)
            super()._handle(handler)

    def _respond(self, handler: BaseHTTPRequestHandler, answer: _Answer) -> None:
        if handler.path.endswith("chat.postMessage") and answer.status == 200 and not answer.drop:
            with self.activity.busy("slack:answer-pending"):
                time.sleep(self.after)
        super()._respond(handler, answer)


def slow_smtp(server: SmtpServer, activity: Activity, delay: float) -> None:
    """Make `server` record each message and only then, `delay` seconds later, answer it."""
    handler = server._handler
    original = handler.handle_DATA

    async def handle_data(smtp: Any, session: Any, envelope: Any) -> str:
        digest = DIGEST_SUBJECT.encode() in envelope.original_content
        with activity.busy("smtp:digest" if digest else "smtp:alert"):
            reply: str = await original(smtp, session, envelope)
            await asyncio.sleep(delay)
            return reply

    handler.handle_DATA = handle_data  # type: ignore[method-assign,assignment]


class Outlet:
    """One outlet on its own LocalWeb: a feed of its items, newest first, and their pages."""

    def __init__(self, name: str, activity: Activity, delay: float) -> None:
        self.name = name
        self.display = OUTLET_NAMES[name]
        self.web = LocalWeb()
        quiet(self.web.server)
        self.activity = activity
        self.delay = delay
        self.items: list[Item] = []

    def _serve(self, path: str, body: bytes, content_type: str) -> None:
        kind = "web:feed" if path == "/feed.xml" else "web:page"

        def answer(handler: BaseHTTPRequestHandler) -> None:
            with self.activity.busy(kind):
                time.sleep(self.delay)
                try:
                    handler.send_response(200)
                    handler.send_header("Content-Type", content_type)
                    handler.send_header("Content-Length", str(len(body)))
                    handler.end_headers()
                    handler.wfile.write(body)
                except OSError:
                    handler.close_connection = True  # the poller was killed meanwhile

        self.web.handle(path, answer)

    @property
    def feed_url(self) -> str:
        return self.web.url("/feed.xml")

    def publish(self, item: Item) -> None:
        url = self.web.url(item.path)
        self._serve(item.path, article_page(item.article, self.display, url).encode(), "text/html")
        self.items.append(item)
        entries = [(i.article, self.web.url(i.path)) for i in reversed(self.items)]
        feed = rss_feed(self.display, self.web.url("/"), entries)
        self._serve("/feed.xml", feed.encode(), "application/rss+xml; charset=utf-8")


# --- the world ----------------------------------------------------------------------------------


def digest_zone(now: datetime | None = None) -> str:
    """The users' timezone, unless it is close to midnight there: then a fixed-offset zone where
    it is mid-day, so that a run never spans two local days (two digests would be right then)."""
    now = now or datetime.now(UTC)
    local = now.astimezone(ZoneInfo("Asia/Karachi"))
    if 1 <= local.hour <= 21:
        return "Asia/Karachi"
    offset = 12 - now.hour  # hours east of UTC where it is about noon now
    if offset == 0:
        return "Etc/GMT"
    return f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"  # POSIX signs are inverted


class CrashWorld:
    """Outlets, Slack, SMTP and a config directory for `monitor run` on `database_url`."""

    def __init__(
        self,
        workdir: Path,
        database_url: str,
        seed: int,
        *,
        slack_delay: tuple[float, float] = (0.15, 0.25),
        smtp_delay: float = 0.3,
        page_delay: float = 0.05,
        poll_every: str = "1s",
    ) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.rng = random.Random(seed)
        self.newsroom = Newsroom(self.rng)
        self.activity = Activity()
        self.slack = SlowSlack(self.activity, *slack_delay)
        self.smtp = SmtpServer("starttls", TLS_FILES, ("crash-test", f"pw-{seed}-secret"))
        self.smtp_delay = smtp_delay
        self.outlets = {name: Outlet(name, self.activity, page_delay) for name in OUTLETS}
        self.poll_every = poll_every
        self.zone = digest_zone()
        self.config = workdir / "config"
        self._stack = ExitStack()

    def __enter__(self) -> Self:
        self._stack.enter_context(self.slack)
        self._stack.enter_context(self.smtp)
        slow_smtp(self.smtp, self.activity, self.smtp_delay)
        for outlet in self.outlets.values():
            self._stack.enter_context(outlet.web)
        self.write_config()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    @property
    def env(self) -> dict[str, str]:
        return {
            "SLACK_BOT_TOKEN": self.slack.token,
            "SSL_CERT_FILE": str(TLS_FILES.ca),
            **self.smtp.environ,
        }

    def write_config(self) -> None:
        self.config.mkdir(parents=True, exist_ok=True)
        hosts = ", ".join(f'"{o.web.host}"' for o in self.outlets.values())
        routes = ", ".join(f'{topic}: "{channel}"' for topic, channel in ROUTES.items())
        # Already due: the digest goes out at the first start (and never again that day).
        local = datetime.now(UTC).astimezone(ZoneInfo(self.zone))
        at = (local - timedelta(minutes=30)).strftime("%H:%M")
        (self.config / "settings.yaml").write_text(
            f"""database_url: {self.database_url}
timezone: {self.zone}
poll:
  every: 15m
  jitter: 0s
fetch:
  timeout: 20s
  private_network_allowlist: [{hosts}]
http:
  listen: "127.0.0.1:0"
slack:
  base_url: {self.slack.base_url}
  channel: "#news-alerts"
  routes: {{{routes}}}
email:
  smtp_host: {self.smtp.host}
  smtp_port: {self.smtp.port}
  security: starttls
  from: "News Monitor <monitor@example.org>"
  alerts_to: [alerts@example.org]
  digest:
    to: [team@example.org]
    at: "{at}"
"""
        )
        lines = ["sources:"]
        for outlet in self.outlets.values():
            lines += [
                f"  - name: {outlet.name}",
                f"    url: {outlet.feed_url}",
                f"    every: {self.poll_every}",
            ]
        (self.config / "sources.yaml").write_text("\n".join(lines) + "\n")
        (self.config / "keywords.yaml").write_text(KEYWORDS)

    # --- news ---------------------------------------------------------------------------------

    def items(self) -> list[Item]:
        return [item for outlet in self.outlets.values() for item in outlet.items]

    def publish_news(self) -> Item:
        """One more article somewhere: a new story (most often), another outlet's copy of a
        story (a follow-up), or unrelated news."""
        roll = self.rng.random()
        # Copies are made from a story's original (the item that named the story).
        stories = {i.story: i for i in self.items() if i.topics and i.article.slug == i.story}
        if roll < 0.3 and stories:
            original = stories[self.rng.choice(sorted(stories))]
            carried = {i.outlet for i in self.items() if i.story == original.story}
            free = [name for name in OUTLETS if name not in carried]
            if free:
                copy = self.newsroom.copy(original.article)
                item = Item(original.story, self.rng.choice(free), copy, original.topics)
                self.outlets[item.outlet].publish(item)
                return item
        if roll < 0.85:
            pool = sorted(TOPIC_SENTENCES)
            topics = frozenset(self.rng.sample(pool, self.rng.choice((1, 1, 2, 3))))
        else:
            topics = frozenset()
        article = self.newsroom.story(topics)
        item = Item(article.slug, self.rng.choice(OUTLETS), article, topics)
        self.outlets[item.outlet].publish(item)
        return item


# --- the database, from outside -------------------------------------------------------------------


def engine_for(database_url: str) -> sa.Engine:
    url = sa.engine.make_url(database_url)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return sa.create_engine(url, poolclass=NullPool)


def fast_forward(engine: sa.Engine, *, backoffs: bool) -> int:
    """While no process runs: make rows left `sending` older than IN_FLIGHT_GRACE (as if the
    restart came two minutes later) and, with `backoffs`, every pending retry due now. Returns
    how many rows were changed: none when the kill came before the first run's migration made
    the outbox."""
    now = datetime.now(UTC)
    changed = 0
    if not sa.inspect(engine).has_table(OutboxRow.__tablename__):
        return changed
    with engine.begin() as db:
        result = db.execute(
            sa.update(OutboxRow)
            .where(OutboxRow.state == "sending")
            .values(sending_at=now - IN_FLIGHT_GRACE - timedelta(seconds=1))
        )
        changed += result.rowcount
        if backoffs:
            result = db.execute(
                sa.update(OutboxRow)
                .where(OutboxRow.state == "pending", OutboxRow.next_attempt_at > now)
                .values(next_attempt_at=now)
            )
            changed += result.rowcount
    return changed


def outstanding(engine: sa.Engine) -> dict[str, int]:
    """Outbox rows not yet sent, by state (empty when everything went out)."""
    try:
        with engine.connect() as db:
            rows = db.execute(
                sa.select(OutboxRow.state, sa.func.count())
                .where(OutboxRow.state != "sent")
                .group_by(OutboxRow.state)
            ).all()
    except sa.exc.OperationalError:
        return {"database not ready": 1}
    except sa.exc.ProgrammingError:
        return {"no schema yet": 1}
    return {str(state): int(n) for state, n in rows}


def stored_links(engine: sa.Engine) -> set[str]:
    try:
        with engine.connect() as db:
            return {str(link) for link in db.scalars(sa.select(ArticleRow.link))}
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        return set()


def digest_states(engine: sa.Engine) -> dict[str, str]:
    try:
        with engine.connect() as db:
            return {
                str(d): str(s)
                for d, s in db.execute(sa.select(DigestRow.digest_date, DigestRow.state))
            }
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):
        return {}


# --- the loop -------------------------------------------------------------------------------------

KILL_MODES = ("random", "slack", "smtp", "poll")
KILL_WEIGHTS = (4, 3, 1.5, 1.5)
SENDS = ("slack", "smtp")  # the modes that aim a kill at a delivery in flight


def min_send_kills(cycles: int) -> int:
    """How many kills of a loop must land in the middle of a send (Slack or SMTP)."""
    return max(3, cycles // 6)


FAULTS = ("slack-drop", "slack-429", "slack-500", "history-drop", "smtp-451")


@dataclass
class CrashOptions:
    cycles: int = 30
    seed: int = 0
    tick: float = 0.2
    # `random` kills: a quarter while it starts (0.4 x this after the spawn), the rest this
    # long (x 0.6) after it logged service_start.
    kill_window: tuple[float, float] = (0.3, 5.0)
    wait_for_work: float = 8.0  # seconds a targeted kill waits for its moment
    initial_items: int = 8
    news_per_cycle: tuple[int, ...] = (0, 1, 1, 2)
    fault_rate: float = 0.25  # chance of one injected fault per cycle (early cycles only)
    fault_cycles: float = 0.6  # faults only in this first share of the cycles
    fast_forward: bool = True
    final_timeout: float = 240.0


@dataclass
class CrashReport:
    seed: int
    database: str
    cycles: int = 0
    kills: Counter[str] = field(default_factory=Counter)  # what was in flight at each kill
    modes: Counter[str] = field(default_factory=Counter)  # how each kill was timed
    faults: Counter[str] = field(default_factory=Counter)
    refused_restarts: int = 0
    fast_forwarded: int = 0
    published: int = 0
    articles: int = 0
    alerts: int = 0
    followups: int = 0
    slack_messages: int = 0
    slack_duplicates: int = 0
    emails: int = 0
    email_repeats: int = 0  # alert emails received more than once (at least once, see verify)
    digests_received: int = 0
    digest_states: dict[str, str] = field(default_factory=dict)
    integrity: str = "not checked"
    seconds: float = 0.0
    final_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        kills = ", ".join(f"{k}={n}" for k, n in sorted(self.kills.items()))
        modes = ", ".join(f"{k}={n}" for k, n in sorted(self.modes.items()))
        faults = ", ".join(f"{k}={n}" for k, n in sorted(self.faults.items())) or "none"
        lines = [
            f"crash loop: seed={self.seed} database={self.database} cycles={self.cycles} "
            f"in {self.seconds:.0f}s (final run {self.final_seconds:.0f}s)",
            f"  kills timed: {modes}",
            f"  in flight at the kill: {kills}",
            f"  faults injected: {faults}; refused restarts: {self.refused_restarts}; "
            f"rows fast-forwarded: {self.fast_forwarded}",
            f"  published {self.published} articles, stored {self.articles}; "
            f"alerts {self.alerts} ({self.followups} follow-ups)",
            f"  slack messages {self.slack_messages}, duplicates {self.slack_duplicates}",
            f"  alert emails {self.emails}, received more than once {self.email_repeats} "
            "(allowed: at least once, same Message-ID)",
            f"  digests received {self.digests_received}, recorded {self.digest_states}",
            f"  integrity: {self.integrity}",
            f"  problems: {len(self.problems)}",
        ]
        lines += [f"    - {p}" for p in self.problems[:50]]
        return "\n".join(lines)


MOMENTS = (
    ("slack:chat.postMessage", "slack post (before Slack took it)"),
    ("slack:answer-pending", "slack post (taken, not yet answered)"),
    ("slack:conversations.history", "slack history check"),
    ("slack:conversations.replies", "slack history check"),
    ("smtp:alert", "alert email (received, not yet answered)"),
    ("smtp:digest", "digest email (received, not yet answered)"),
    ("web:feed", "poll: feed fetch"),
    ("web:page", "poll: article fetch"),
)


def moments(service: RunningService, activity: Activity) -> list[str]:
    """What the process was doing when killed, as far as the servers can tell (often several
    things at once: polls and deliveries run side by side)."""
    busy = activity.now()
    if "slack:answer-pending" in busy:
        busy.discard("slack:chat.postMessage")  # the same call, in its later phase
    found = list(dict.fromkeys(label for kind, label in MOMENTS if kind in busy))
    if "web:page" not in busy and activity.since("web:page") < 1.0:
        found.append("poll: extracting or storing")  # an article page came in < 1 s ago
    if not found:
        started = "service_start" in service.stderr()
        found.append("nothing on the wire" if started else "starting up")
    return found


class CrashLoop:
    def __init__(
        self,
        world: CrashWorld,
        options: CrashOptions,
        log: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self.world = world
        self.options = options
        self.log = log
        self.rng = random.Random(options.seed * 7919 + 1)
        self.launcher = Launcher(world.workdir)
        self.engine = engine_for(world.database_url)
        self.report = CrashReport(options.seed, sa.engine.make_url(world.database_url).drivername)
        self._digest_targeted = False
        self._modes = self._kill_modes()

    def _kill_modes(self) -> list[str]:
        """Each cycle's kill mode, drawn by KILL_WEIGHTS, with at least `MIN_SEND_KILLS` (and
        one to spare: a targeted kill can find nothing in flight) aimed at a send, which by
        chance alone ten cycles fell short of one time in ten."""
        cycles = self.options.cycles
        modes = self.rng.choices(KILL_MODES, KILL_WEIGHTS, k=cycles)
        aimed = sum(mode in SENDS for mode in modes)
        others = [cycle for cycle, mode in enumerate(modes) if mode not in SENDS]
        self.rng.shuffle(others)
        for cycle in others[: max(0, min_send_kills(cycles) + 1 - aimed)]:
            modes[cycle] = "slack"
        return modes

    def run(self) -> CrashReport:
        started = time.monotonic()
        try:
            for _ in range(self.options.initial_items):
                self.world.publish_news()
            for cycle in range(self.options.cycles):
                self._cycle(cycle)
            final = time.monotonic()
            self._final_run()
            self.report.final_seconds = time.monotonic() - final
        finally:
            self.launcher.cleanup()
        self.report.seconds = time.monotonic() - started
        verify(self.world, self.engine, self.report)
        self.engine.dispose()
        return self.report

    def _start(self) -> RunningService:
        """`monitor run`, started again at once (not waiting for it: kills may come early)."""
        return self.launcher.start(
            self.world.config, tick=self.options.tick, env=self.world.env, wait_healthy=False
        )

    def _cycle(self, cycle: int) -> None:
        options, rng, world = self.options, self.rng, self.world
        if cycle < options.cycles * options.fault_cycles and rng.random() < options.fault_rate:
            self._inject(rng.choice(FAULTS))
        mode = self._modes[cycle]
        if not self._digest_targeted and cycle < 3 and rng.random() < 0.5 and mode not in SENDS:
            mode = "digest"
            self._digest_targeted = True
        publish_now = rng.random() < 0.5
        news = rng.choice(options.news_per_cycle)
        if mode in ("poll", *SENDS):
            news = max(news, 1)  # something new to fetch, extract, store and send
        if publish_now:
            for _ in range(news):
                world.publish_news()
        service = self._start()
        if not publish_now:
            for _ in range(news):
                world.publish_news()
        delay = rng.uniform(*options.kill_window)
        extra = rng.random()
        self._wait_for_moment(service, mode, delay, extra)
        seen = moments(service, world.activity)
        exited = service.process.poll()
        service.kill()  # SIGKILL: no handler, no cleanup, as a crash
        service.cleanup()  # and the rest of its session (extraction workers)
        if exited is not None and "already running" in service.stderr():
            self.report.refused_restarts += 1  # the dead process's lock was still held
        if exited is not None:
            self.report.problems.append(
                f"cycle {cycle}: monitor run exited by itself ({exited}): "
                f"{service.stderr().strip()[-500:]}"
            )
        self.report.modes[mode] += 1
        self.report.kills.update(seen)
        self.report.cycles += 1
        if options.fast_forward:
            self.report.fast_forwarded += fast_forward(self.engine, backoffs=False)
        self.log(f"cycle {cycle + 1}/{options.cycles}: {mode} kill during {'; '.join(seen)}")
        # Requests of the dead process that the servers are still answering end first, so the
        # next cycle's targeted kill waits for the new process's own work.
        deadline = time.monotonic() + 5
        while world.activity.now() and time.monotonic() < deadline:
            time.sleep(0.01)

    def _wait_for_moment(
        self, service: RunningService, mode: str, delay: float, extra: float
    ) -> None:
        """Sleep until the moment this cycle's kill is meant for (or give up waiting)."""
        activity = self.world.activity
        if mode == "random":
            if extra < 0.25:  # while it starts: imports, migrations, the lock, the first tick
                time.sleep(delay * 0.4)
                return
            deadline = time.monotonic() + self.options.wait_for_work
            while time.monotonic() < deadline and service.running():
                if "service_start" in service.stderr():
                    break
                time.sleep(0.02)
            time.sleep(delay * 0.6)
            return
        wanted = {
            "slack": ("slack:chat.postMessage", "slack:answer-pending"),
            "smtp": ("smtp:alert", "smtp:digest"),
            "poll": ("web:page",),
            "digest": ("smtp:digest",),
        }[mode]
        deadline = time.monotonic() + self.options.wait_for_work
        while time.monotonic() < deadline and service.running():
            if activity.now() & set(wanted):
                break
            time.sleep(0.005)
        else:
            return
        # Somewhere inside the call: before Slack stores the message, or after (the answer not
        # yet sent); after the SMTP server recorded the message, before it answered.
        window = {
            "slack": self.world.slack.before + self.world.slack.after,
            "smtp": self.world.smtp_delay,
            "digest": self.world.smtp_delay,
            "poll": 0.6,
        }[mode]
        time.sleep(extra * window)

    def _inject(self, fault: str) -> None:
        slack, smtp = self.world.slack, self.world.smtp
        if fault == "slack-drop":
            slack.fail_next("drop")
        elif fault == "slack-429":
            slack.fail_next("ratelimited", retry_after=1)
        elif fault == "slack-500":
            slack.fail_next("server_error")
        elif fault == "history-drop":
            slack.fail_next("drop", method="conversations.history")
        elif fault == "smtp-451":
            smtp.fail_next("451 4.3.0 try again later")
        self.report.faults[fault] += 1

    def _final_run(self) -> None:
        """Start once more and let it run until every article is stored, every row sent and the
        day's digest settled; then stop it with SIGTERM (exit 0)."""
        if self.options.fast_forward:
            self.report.fast_forwarded += fast_forward(self.engine, backoffs=True)
        service = self._start()
        service.wait_healthy(timeout=60)  # fails, with its log, if it was refused or crashed
        want = {self.world.outlets[i.outlet].web.url(i.path) for i in self.world.items()}

        def settled() -> bool:
            if not service.running():
                raise AssertionError(f"monitor run exited:\n{service.stderr()[-2000:]}")
            return (
                not outstanding(self.engine)
                and want <= stored_links(self.engine)
                and any(s in ("sent", "unknown") for s in digest_states(self.engine).values())
            )

        deadline = time.monotonic() + self.options.final_timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            if settled():
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 2.0:  # and it stays so for 2 seconds
                    break
            else:
                quiet_since = None
            time.sleep(0.2)
        else:
            self.report.problems.append(
                f"not settled within {self.options.final_timeout:.0f}s: outbox "
                f"{outstanding(self.engine)}, articles missing "
                f"{len(want - stored_links(self.engine))}, digests {digest_states(self.engine)}"
            )
        status, _ = service.stop(signal.SIGTERM)
        if status != 0:
            self.report.problems.append(f"final monitor run exited {status} on SIGTERM")
        log = "\n".join(without_orphan_forkserver(s.stderr()) for s in self.launcher.started)
        for bad in ("database is locked", "job_crashed", "Traceback"):
            if bad in log:
                line = next(x for x in log.splitlines() if bad in x)
                self.report.problems.append(f"{bad!r} in the service's log: {line[:300]}")


FORKSERVER_EOF = re.compile(
    r"Traceback \(most recent call last\):\n(?:[ \t].*\n)*?"
    r'[ \t]+File ".*multiprocessing/(?:forkserver|reduction)\.py".*\n(?:[ \t].*\n)*EOFError\n?'
)


def without_orphan_forkserver(log: str) -> str:
    """The log without the traceback Python's forkserver (the extraction pool's) prints when
    the process that started it was killed while it was reading from it: EOF on its socket.
    That is the standard library noticing the SIGKILL, not the monitor failing."""
    return FORKSERVER_EOF.sub("", log)


# --- the checks -----------------------------------------------------------------------------------


def verify(world: CrashWorld, engine: sa.Engine, report: CrashReport) -> None:
    """Every guarantee, against what the servers received and what the database holds; each
    failure is a line in `report.problems`."""
    problems = report.problems
    _check_integrity(engine, report)
    with engine.connect() as db:
        alerts = {row.id: row for row in db.execute(sa.select(AlertRow))}
        articles = {row.id: row for row in db.execute(sa.select(ArticleRow))}
        outbox = list(db.execute(sa.select(OutboxRow)))
        threads = {(r.story_id, r.channel): r.ts for r in db.execute(sa.select(SlackThreadRow))}
        digests = list(db.execute(sa.select(DigestRow)))
    report.articles = len(articles)
    report.alerts = len(alerts)
    report.followups = sum(1 for a in alerts.values() if a.kind == "followup")

    # Nothing lost on the way in: every article published is stored, with the right story/alert.
    items = world.items()
    report.published = len(items)
    by_link = {a.link: a for a in articles.values()}
    alert_of = {a.article_id: a for a in alerts.values()}
    story_ids: dict[str, set[int]] = {}
    for item in items:
        link = world.outlets[item.outlet].web.url(item.path)
        article = by_link.get(link)
        if article is None:
            problems.append(f"article never stored: {link}")
            continue
        story_ids.setdefault(item.story, set()).add(article.story_id)
        alert = alert_of.get(article.id)
        if item.topics and alert is None:
            problems.append(f"no alert for matching article {link}")
        if not item.topics and alert is not None:
            problems.append(f"alert {alert.id} for unrelated article {link}")
        if alert is not None and set(alert.topics) != item.topics:
            problems.append(f"alert {alert.id} has topics {alert.topics}, want {item.topics}")
    for story, ids in story_ids.items():
        if len(ids) != 1:
            problems.append(f"story {story} split over stories {sorted(ids)}")
    owners: Counter[int] = Counter(next(iter(ids)) for ids in story_ids.values() if len(ids) == 1)
    problems += [f"stories merged into story {sid}" for sid, n in owners.items() if n > 1]

    # Every alert delivered: one outbox row per destination, every row sent.
    expected: dict[int, set[str]] = {
        alert_id: {
            *(f"slack:{ROUTES.get(t, '#news-alerts')}" for t in alert.topics),
            "email",
        }
        for alert_id, alert in alerts.items()
    }
    rows_of: dict[int, dict[str, Any]] = {}
    for row in outbox:
        if row.alert_id is not None:
            rows_of.setdefault(row.alert_id, {})[row.destination] = row
        if row.state != "sent":
            problems.append(f"outbox row {row.id} ({row.destination}) is {row.state}")
    for alert_id, destinations in expected.items():
        have = set(rows_of.get(alert_id, {}))
        if have != destinations:
            problems.append(f"alert {alert_id} has outbox rows for {have}, want {destinations}")

    # Slack: exactly one message per alert and channel; follow-ups in their story's thread.
    name_of = {world.slack.channel_id(c): c for c in CHANNELS}
    posted: dict[tuple[str, int], list[Any]] = {}
    notices: Counter[int] = Counter()
    for message in world.slack.messages():
        metadata = message.metadata or {}
        payload = metadata.get("event_payload") or {}
        if metadata.get("event_type") == "news_alert":
            key = (name_of.get(message.channel, message.channel), int(payload["alert_id"]))
            posted.setdefault(key, []).append(message)
        elif metadata.get("event_type") == "news_notice":
            notices[int(payload["outbox_id"])] += 1
        else:
            problems.append(f"a Slack message without our metadata: {message.text[:80]}")
    report.slack_messages = len(world.slack.messages())
    for (channel, alert_id), messages in posted.items():
        if len(messages) > 1:
            report.slack_duplicates += len(messages) - 1
            problems.append(
                f"alert {alert_id} posted {len(messages)} times in {channel}: "
                + ", ".join(m.ts for m in messages)
            )
        if alert_id not in alerts:
            problems.append(f"Slack holds alert {alert_id} that the database does not")
    report.slack_duplicates += sum(n - 1 for n in notices.values() if n > 1)
    for alert_id, alert in alerts.items():
        for destination in sorted(expected[alert_id]):
            if not destination.startswith("slack:"):
                continue
            channel = destination.removeprefix("slack:")
            messages = posted.get((channel, alert_id), [])
            if not messages:
                problems.append(f"alert {alert_id} never reached {channel}")
                continue
            message = messages[0]
            sent_row = rows_of.get(alert_id, {}).get(destination)
            if sent_row is not None and sent_row.external_id != message.ts:
                problems.append(
                    f"alert {alert_id} in {channel}: recorded ts {sent_row.external_id}, "
                    f"Slack has {message.ts}"
                )
            thread = threads.get((alert.story_id, channel))
            if thread is None:
                problems.append(f"story {alert.story_id} has no thread recorded in {channel}")
            elif message.ts != thread and message.thread_ts != thread:
                problems.append(
                    f"alert {alert_id} ({alert.kind}) in {channel} is not in its story's thread "
                    f"{thread} (thread_ts {message.thread_ts})"
                )
            if alert.kind == "story" and message.thread_ts is not None:
                problems.append(f"story alert {alert_id} posted as a reply in {channel}")
    for (story_id, channel), ts in threads.items():
        roots = [
            m
            for (c, a), ms in posted.items()
            for m in ms
            if c == channel and a in alerts and alerts[a].story_id == story_id and m.top_level
        ]
        if [m.ts for m in roots] != [ts]:
            problems.append(
                f"story {story_id} in {channel}: top-level messages {[m.ts for m in roots]}, "
                f"thread {ts}"
            )

    # Email: the alert emails are at least once (SMTP cannot be asked what arrived): a copy
    # again only for a row claimed more than once, always with the row's own Message-ID.
    received = world.smtp.received
    by_id: Counter[str] = Counter(str(r.message["Message-ID"]) for r in received)
    email_rows = {
        row.external_id: row for row in outbox if row.destination == "email" and row.alert_id
    }
    report.emails = sum(n for mid, n in by_id.items() if mid.startswith("<alert."))
    for row in outbox:
        if row.destination != "email" or row.state != "sent":
            continue
        copies = by_id.get(str(row.external_id), 0)
        if copies == 0:
            problems.append(f"outbox row {row.id} sent, but its email never arrived")
        if copies > 1:
            report.email_repeats += 1
            if copies > row.attempts:
                problems.append(
                    f"email of outbox row {row.id} arrived {copies} times in {row.attempts} "
                    "attempts"
                )
    for message_id in by_id:
        if message_id.startswith("<alert.") and message_id not in email_rows:
            problems.append(f"an alert email no outbox row sent: {message_id}")

    # The digest: at most one per local day, never twice; sent means it arrived once.
    digest_mails = [r for r in received if str(r.message["Subject"]).startswith(DIGEST_SUBJECT)]
    report.digests_received = len(digest_mails)
    by_day: Counter[str] = Counter(
        str(r.message["Subject"]).split(":")[0].removeprefix(DIGEST_SUBJECT) for r in digest_mails
    )
    problems += [f"{n} digests received for {day}" for day, n in by_day.items() if n > 1]
    digest_ids: Counter[str] = Counter(str(r.message["Message-ID"]) for r in digest_mails)
    problems += [f"digest {mid} received {n} times" for mid, n in digest_ids.items() if n > 1]
    report.digest_states = {str(d.digest_date): str(d.state) for d in digests}
    for digest in digests:
        copies = digest_ids.get(digest.message_id, 0)
        if digest.state == "sent" and copies != 1:
            problems.append(f"digest of {digest.digest_date} is sent but arrived {copies} times")
        if digest.state not in ("sent", "unknown"):
            problems.append(f"digest of {digest.digest_date} ended {digest.state}")
    if not digests:
        problems.append("no digest was recorded although it was due")


ORPHANS = {
    "articles without their story": "SELECT count(*) FROM articles a "
    "LEFT JOIN stories s ON s.id = a.story_id WHERE s.id IS NULL",
    "alerts without their article": "SELECT count(*) FROM alerts x "
    "LEFT JOIN articles a ON a.id = x.article_id WHERE a.id IS NULL",
    "alerts without their story": "SELECT count(*) FROM alerts x "
    "LEFT JOIN stories s ON s.id = x.story_id WHERE s.id IS NULL",
    "outbox rows without their alert": "SELECT count(*) FROM outbox o "
    "LEFT JOIN alerts x ON x.id = o.alert_id WHERE o.alert_id IS NOT NULL AND x.id IS NULL",
    "outbox rows with neither alert nor notice": "SELECT count(*) FROM outbox "
    "WHERE alert_id IS NULL AND notice_key IS NULL",
    "article URLs without their article": "SELECT count(*) FROM article_urls u "
    "LEFT JOIN articles a ON a.id = u.article_id WHERE a.id IS NULL",
    "entry GUIDs without their article": "SELECT count(*) FROM entry_guids g "
    "LEFT JOIN articles a ON a.id = g.article_id WHERE a.id IS NULL",
    "matches without their article": "SELECT count(*) FROM matches m "
    "LEFT JOIN articles a ON a.id = m.article_id WHERE a.id IS NULL",
    "fingerprint bands without their article": "SELECT count(*) FROM fingerprint_bands b "
    "LEFT JOIN articles a ON a.id = b.article_id WHERE a.id IS NULL",
    "Slack threads without their story": "SELECT count(*) FROM slack_threads t "
    "LEFT JOIN stories s ON s.id = t.story_id WHERE s.id IS NULL",
    "stories without an article": "SELECT count(*) FROM stories s "
    "WHERE NOT EXISTS (SELECT 1 FROM articles a WHERE a.story_id = s.id)",
    "articles not reachable by their own URL": "SELECT count(*) FROM articles a "
    "WHERE NOT EXISTS (SELECT 1 FROM article_urls u WHERE u.article_id = a.id)",
    "alerts without any outbox row": "SELECT count(*) FROM alerts x "
    "WHERE NOT EXISTS (SELECT 1 FROM outbox o WHERE o.alert_id = x.id)",
    "matching articles without an alert on a story that has none from their outlet": (
        "SELECT count(*) FROM articles a WHERE EXISTS (SELECT 1 FROM matches m "
        "WHERE m.article_id = a.id) AND NOT EXISTS (SELECT 1 FROM alerts x "
        "WHERE x.story_id = a.story_id AND x.outlet = a.outlet)"
    ),
}


def _check_integrity(engine: sa.Engine, report: CrashReport) -> None:
    results = []
    with engine.connect() as db:
        if engine.dialect.name == "sqlite":
            integrity = [str(r[0]) for r in db.exec_driver_sql("PRAGMA integrity_check")]
            results.append(f"integrity_check {','.join(integrity)}")
            if integrity != ["ok"]:
                report.problems.append(f"PRAGMA integrity_check: {integrity}")
            broken = list(db.exec_driver_sql("PRAGMA foreign_key_check"))
            results.append(f"foreign_key_check {len(broken)} rows")
            if broken:
                report.problems.append(f"PRAGMA foreign_key_check: {broken[:5]}")
        for name, query in ORPHANS.items():
            count = int(db.scalar(sa.text(query)) or 0)
            if count:
                report.problems.append(f"{count} {name}")
        results.append(f"{len(ORPHANS)} orphan checks")
    report.integrity = "; ".join(results)
