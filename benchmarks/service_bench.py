"""Figures 9 and 10: `monitor run` as a process, measured from outside.

    .venv/bin/python -m benchmarks.service_bench [DATA_DIR]

 9  memory: a real `monitor run` on an SQLite file holding 100,000 articles (real text sizes,
    stories, fingerprint bands, a few alerts) polls 1,000 local feeds of real sizes, 5% of them
    with a new item (page fetched and extracted). Peak RSS (VmHWM) of the main process is the
    figure; its worker processes (feed parsing, extraction, the forkserver) are sampled from
    /proc beside it and the total is in the detail line.
10  latency: `monitor run` with the shipped settings (poll.jitter, the 5 s tick, ...) and
    6 sources of `every: 60s`. Items appear in their feeds while it runs, over two intervals:
    half at random moments, half the instant after the monitor read the feed (the worst moment:
    a whole interval to wait). Each item's latency runs from that moment to the Slack stand-in
    receiving its chat.postMessage; the worst is the figure. Each source's topic goes to a
    channel of its own, so that items arriving together do not wait for each other at Slack's
    message a second per channel, which the next figure is about.
10  pace: another `monitor run` finds 4 feeds of 12 new items at once, each feed's topic routed
    to its own channel: 48 alerts queued together. Each channel must get ~1 message a second,
    all four at the same time: the figure is the slowest channel's rate, counted from the first
    message of the burst to that channel's last.

The three run at once to fit the time budget, each in processes of its own: figure 9 (its
database build, its feeds and its `monitor run`) at the lowest CPU priority and the pace run at
a low one, so that the latency run, whose figure is about time, gets the CPU it asks for. Memory
does not depend on CPU priority; figure 9 only takes longer.
"""

from __future__ import annotations

import contextlib
import html
import itertools
import json
import multiprocessing
import os
import random
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from sqlalchemy import create_engine, insert

from benchmarks.report import PROJECT_ROOT, detail, figure, shared_data
from monitor import dedupe
from monitor.store import Store
from monitor.store.schema import (
    AlertRow,
    ArticleRow,
    ArticleUrlRow,
    EntryGuidRow,
    FingerprintBandRow,
    MatchRow,
    OutboxRow,
    SlackThreadRow,
    StoryRow,
)
from tests.service_harness import Launcher, RunningService, wait_for
from tests.slack_standin import SlackStandIn
from tests.web import LocalWeb
from tests.world import KEYWORDS, Story, article_page, distinct_story, rss_feed

BUDGET = 205.0  # seconds for the whole script (all benchmarks together get 10 minutes)

# --- figure 9: sizes ---------------------------------------------------------------------------
SOURCES = 1_000
ARTICLES = 100_000
FEED_PORTS = 8
NEW_ITEM_SHARE = 0.05  # sources with one new item at this poll: page fetched and extracted
FULL_TEXT_SHARE = 0.2  # feeds carrying whole articles (content:encoded style), not summaries
MATCHED_SHARE = 0.03  # stored articles with a topic (matches, alert, a sent Slack message)
RETENTION_DAYS = 89  # stored articles span this many days (retention is 90)
MEMORY_GOAL_MB = 300
SAMPLE_EVERY = 0.2

# --- figure 10: sizes --------------------------------------------------------------------------
# One source per element, each element a topic routed to a channel of its own: items that
# happen to come in together then do not queue behind each other at Slack's message a second per
# channel (that pace is the other figure 10).
LATENCY_ELEMENTS = ("scandium", "yttrium", "lutetium", "terbium", "europium", "gadolinium")
EVERY_S = 60
LATENCY_GOAL_S = 65.0
PACE_TOPICS = ("zirconium", "hafnium", "tantalum", "niobium")
PACE_ITEMS = 12
PACE_GOAL = 0.9  # messages per second, each channel, all at once (the pacer allows 1)


def main() -> None:
    started = time.monotonic()
    data = shared_data()
    corpus = Corpus.load(data)
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    memory = context.Process(target=memory_run, args=(str(data), theirs), name="figure-9")
    memory.start()
    theirs.close()
    with tempfile.TemporaryDirectory(prefix="service-bench-") as tmp:
        root = Path(tmp)
        latency, pace = latency_and_pace(root, corpus, deadline=started + BUDGET - 10)
    memory_result: dict[str, Any] | None = None
    left = max(1.0, started + BUDGET - time.monotonic())
    if ours.poll(left):
        try:
            memory_result = ours.recv()
        except EOFError:
            memory_result = None
    if memory.is_alive():
        memory.terminate()
    memory.join(10)
    report_memory(memory_result)
    report_latency(latency)
    report_pace(pace)
    detail(f"service_bench ran {time.monotonic() - started:.0f} s")


# --- shared pieces -----------------------------------------------------------------------------


@dataclass
class Corpus:
    """Sentences and article lengths of real articles (the extraction benchmark's bodies)."""

    sentences: list[str]
    lengths: list[int]
    paragraphs: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, data: Path) -> Corpus:
        truth = json.loads(
            (data / "article-extraction-benchmark" / "ground-truth.json").read_text()
        )
        bodies = [str(v["articleBody"]) for v in truth.values() if v.get("articleBody")]
        sentences = [
            s.strip()
            for body in bodies
            for s in re.split(r"(?<=[.!?])\s+", body)
            if 40 <= len(s.strip()) <= 400
        ]
        rng = random.Random(0)
        paragraphs = [" ".join(rng.choices(sentences, k=rng.randint(2, 4))) for _ in range(20_000)]
        return cls(sentences, [len(b) for b in bodies], paragraphs)

    def text(self, rng: random.Random, length: int | None = None) -> str:
        """An article-like text of a real article's length, made of paragraphs of real
        sentences."""
        target = length or rng.choice(self.lengths)
        parts: list[str] = []
        size = 0
        while size < target:
            paragraph = rng.choice(self.paragraphs)
            parts.append(paragraph)
            size += len(paragraph) + 2
        return "\n\n".join(parts)

    def title(self, rng: random.Random) -> str:
        words = rng.choice(self.sentences).rstrip(".!?").split()
        return " ".join(words[: rng.randint(7, 12)])


def settings_file(
    config: Path,
    *,
    database: Path,
    allow: list[str],
    slack_base_url: str | None = None,
    routes: dict[str, str] | None = None,
    fetch: dict[str, Any] | None = None,
) -> None:
    """The shipped settings.yaml with only what a local run must change: the database, the
    status address, the local hosts fetches may reach, the Slack stand-in."""
    yaml = YAML()
    settings = yaml.load((PROJECT_ROOT / "config" / "settings.yaml").read_text())
    settings["database_url"] = f"sqlite:///{database}"
    settings["http"]["listen"] = "127.0.0.1:0"
    settings["fetch"]["private_network_allowlist"] = allow
    settings["fetch"].update(fetch or {})
    if slack_base_url:
        settings["slack"]["base_url"] = slack_base_url
    if routes is not None:
        settings["slack"]["routes"] = routes
    config.mkdir(parents=True, exist_ok=True)
    with (config / "settings.yaml").open("w") as out:
        yaml.dump(settings, out)


def sources_file(config: Path, sources: list[tuple[str, str]], every: str | None = None) -> None:
    lines = ["sources:"]
    for name, url in sources:
        lines += [f"  - name: {name}", f"    url: {url}"]
        if every:
            lines.append(f"    every: {every}")
    (config / "sources.yaml").write_text("\n".join(lines) + "\n")


def topics_yaml(words: tuple[str, ...]) -> str:
    """keywords.yaml with one topic per word, named after it."""
    return "topics:\n" + "".join(f"  {w}:\n    keywords: [{w}]\n" for w in words)


def renice(service: RunningService, niceness: int) -> None:
    """Lower a started service's CPU priority (its worker processes inherit it)."""
    os.setpriority(os.PRIO_PROCESS, service.pid, niceness)


# --- figure 9: memory --------------------------------------------------------------------------


def memory_run(data_dir: str, pipe: Connection) -> None:
    """In a process of its own, at the lowest priority: build the world, run, measure."""
    os.nice(19)
    try:
        result = measure_memory(Path(data_dir))
    except Exception as exc:  # reported by the parent as a failed measurement
        result = {"error": f"{type(exc).__name__}: {exc}"}
    pipe.send(result)
    pipe.close()


@dataclass
class FeedSite:
    """One feed source of figure 9: its current items, and which are stored already."""

    name: str
    web: LocalWeb
    path: str
    full_text: bool
    items: list[tuple[Story, str]] = field(default_factory=list)
    new: list[tuple[Story, str]] = field(default_factory=list)


def measure_memory(data: Path) -> dict[str, Any]:
    corpus = Corpus.load(data)
    rng = random.Random(9)
    with tempfile.TemporaryDirectory(prefix="service-bench-9-") as tmp, contextlib_webs() as webs:
        root = Path(tmp)
        database = root / "monitor.db"
        config = root / "config"
        t0 = time.monotonic()
        sites = build_feeds(corpus, rng, webs)
        settings_file(
            config,
            database=database,
            allow=[w.host for w in webs],
            # Each local port is the same host to the fetcher's per-host limit; 1,000 real
            # sources sit on hundreds of hosts, where `concurrency` is what binds.
            fetch={"per_host": 32},
        )
        sources_file(config, [(s.name, s.web.url(s.path)) for s in sites])
        (config / "keywords.yaml").write_text(KEYWORDS)
        feed_bytes = [len(s.web.routes[s.path].body) for s in sites]
        built = build_database(database, sites, corpus, rng)
        build_s = time.monotonic() - t0
        db_mb = sum(p.stat().st_size for p in root.glob("monitor.db*")) / 2**20

        launcher = Launcher(root)
        try:
            service = launcher.start(config, tick=None)
            sampler = Sampler(service.pid)
            sampler.start()
            run_t0 = time.monotonic()
            wait_for(
                lambda: polls_done(service) >= SOURCES,
                timeout=600,
                message="every source polled once",
                interval=2.0,
            )
            all_polled_s = time.monotonic() - run_t0
            # Its alerts delivered (to the console), a few more ticks of the steady state.
            time.sleep(6)
            sampler.stop()
            main_hwm = read_status(service.pid).get("VmHWM", 0)
            statuses = polls_by_status(service)
            service.stop()
        finally:
            launcher.cleanup()
    return {
        "main_hwm_kb": main_hwm,
        "main_peak_kb": sampler.main_peak,
        "total_peak_kb": sampler.total_peak,
        "total_pss_peak_kb": sampler.total_pss_peak,
        "workers_peak_kb": sampler.workers_peak,
        "worker_processes": len(sampler.seen_workers),
        "hwm_sum_kb": main_hwm + sum(sampler.worker_hwm.values()),
        "build_s": build_s,
        "all_polled_s": all_polled_s,
        "statuses": statuses,
        "db_mb": db_mb,
        "articles": built["articles"],
        "bands": built["bands"],
        "stories": built["stories"],
        "new_items": sum(len(s.new) for s in sites),
        "feed_kb_mean": sum(feed_bytes) / len(feed_bytes) / 1024,
        "feed_kb_max": max(feed_bytes) / 1024,
    }


class contextlib_webs:
    """FEED_PORTS local web servers, started and stopped together."""

    def __enter__(self) -> list[LocalWeb]:
        self.webs = [LocalWeb() for _ in range(FEED_PORTS)]
        for web in self.webs:
            web.__enter__()
        return self.webs

    def __exit__(self, *exc: object) -> None:
        for web in self.webs:
            web.__exit__(None, None, None)


def build_feeds(corpus: Corpus, rng: random.Random, webs: list[LocalWeb]) -> list[FeedSite]:
    """1,000 feeds of 20-60 items; a fifth carry whole articles, the rest summaries. One in 20
    has one item the database has not seen, whose page is served too."""
    now = datetime.now(UTC)
    sites = []
    for number in range(SOURCES):
        web = webs[number % len(webs)]
        site = FeedSite(f"feed-{number:04d}", web, f"/s{number}/feed.xml", rng.random() < 0.2)
        count = rng.randint(20, 60)
        for item in range(count):
            published = now - timedelta(hours=item * rng.uniform(0.5, 3))
            story = Story(
                f"s{number}-{item}",
                corpus.title(rng),
                tuple(corpus.text(rng).split("\n\n")),
                published,
            )
            site.items.append((story, web.url(f"/s{number}/news/{story.slug}")))
        if rng.random() < NEW_ITEM_SHARE:
            story = distinct_story(
                f"s{number}-new",
                f"{corpus.title(rng)} as Balochistan talks resume",
                "Officials in Quetta discussed rare earth mining royalties.",
                age_days=0.01,
            )
            url = web.url(f"/s{number}/news/{story.slug}")
            web.add(f"/s{number}/news/{story.slug}", article_page(story, site.name, url))
            site.new.append((story, url))
        web.add(
            site.path,
            feed_body(site),
            content_type="application/rss+xml; charset=utf-8",
            etag=f'"{number}-1"',
        )
        sites.append(site)
    return sites


def feed_body(site: FeedSite) -> str:
    if not site.full_text:
        return rss_feed(site.name, site.web.url("/"), [*site.new, *site.items])
    # A full-text feed: rss_feed's items with the whole article as the description.
    entries = []
    for story, url in [*site.new, *site.items]:
        entries.append(
            f"<item><title>{html.escape(story.title)}</title><link>{html.escape(url)}</link>"
            f'<guid isPermaLink="true">{html.escape(url)}</guid>'
            f"<pubDate>{format_datetime(story.published)}</pubDate>"
            f"<description>{html.escape(story.text)}</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        f"<title>{site.name}</title><link>{site.web.url('/')}</link>"
        "<description>Latest news</description>\n" + "\n".join(entries) + "\n</channel></rss>"
    )


def build_database(
    database: Path, sites: list[FeedSite], corpus: Corpus, rng: random.Random
) -> dict[str, int]:
    """`monitor`'s own Store creates and migrates the schema; the 100,000 articles then go in
    with bulk inserts through SQLAlchemy core: every feed item the database has seen, and older
    articles no feed lists any more, spread over the last 89 days."""
    url = f"sqlite:///{database}"
    Store.open(url).close()
    engine = create_engine(url)
    current = [(site, story, link) for site in sites for story, link in site.items]
    older = ARTICLES - len(current)
    now = datetime.now(UTC)
    topics = ("balochistan", "rare-earth", "ussm")
    ids = itertools.count(1)
    story_ids = itertools.count(1)
    counts = {"articles": 0, "bands": 0, "stories": 0}

    def article_rows() -> Iterator[dict[str, Any]]:
        for site, story, link in current:  # what the feeds list: looked up by this URL
            yield article(site.name, link, dedupe.canonical_url(link), story, story.published)
        for n in range(older):
            site = sites[n % len(sites)]
            # These links are their own canonical form (checked on the first one).
            link = site.web.url(f"{site.path.rsplit('/', 1)[0]}/news/old-{n}")
            assert n or dedupe.canonical_url(link) == link
            age = timedelta(days=rng.uniform(1, RETENTION_DAYS))
            story = Story(f"old-{n}", corpus.title(rng), (corpus.text(rng),), now - age)
            yield article(site.name, link, link, story, story.published)

    recent_stories: list[int] = []
    outlets: dict[str, str] = {}

    def article(
        source: str, link: str, url: str, story: Story, published: datetime
    ) -> dict[str, Any]:
        title, text = story.title, story.text
        seen = min(published + timedelta(minutes=rng.uniform(1, 30)), now)
        # Most articles are a story of their own; some are another outlet's copy of a story.
        if recent_stories and rng.random() < 0.15:
            story_id, new_story = rng.choice(recent_stories[-500:]), False
        else:
            story_id, new_story = next(story_ids), True
            recent_stories.append(story_id)
        # A random MinHash signature: what distinct texts give, without hashing 100,000 texts.
        signature = tuple(rng.getrandbits(64) for _ in range(dedupe.NUM_HASHES))
        if source not in outlets:
            outlets[source] = dedupe.outlet_of(link)
        outlet = outlets[source]
        return {
            "id": next(ids),
            "url": url,
            "link": link,
            "source": source,
            "outlet": outlet,
            "guid": link,
            "title": title,
            "summary": text[: rng.randint(150, 400)],
            "text": text,
            "text_from": "page",
            "language": "en",
            "published_at": published,
            "first_seen_at": seen,
            "story_id": story_id,
            "new_story": new_story,
            "fingerprint": dedupe.Fingerprint(signature, text.count(" ") + 1),
            "title_key": dedupe.title_key(title, outlet)[:400],
        }

    with engine.connect() as connection:
        # Setup only: no journal, no syncing, a big cache. The service's own connections
        # switch the file back to WAL when they open it.
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-200000"):
            connection.exec_driver_sql(f"PRAGMA {pragma}")
        connection.commit()
        batch: list[dict[str, Any]] = []
        for row in article_rows():
            batch.append(row)
            if len(batch) == 5_000:
                insert_batch(connection, batch, topics, rng, counts)
                batch = []
        if batch:
            insert_batch(connection, batch, topics, rng, counts)
    engine.dispose()
    return counts


def insert_batch(
    connection: Any,
    batch: list[dict[str, Any]],
    topics: tuple[str, ...],
    rng: random.Random,
    counts: dict[str, int],
) -> None:
    stories = [
        {
            "id": r["story_id"],
            "title": r["title"],
            "url": r["link"],
            "created_at": r["first_seen_at"],
        }
        for r in batch
        if r["new_story"]
    ]
    articles = [
        {
            **{k: v for k, v in r.items() if k not in ("new_story", "fingerprint")},
            "fingerprint": r["fingerprint"].to_bytes(),
        }
        for r in batch
    ]
    urls = [{"url": r["url"], "article_id": r["id"]} for r in batch]
    guids = [{"source": r["source"], "guid": r["guid"], "article_id": r["id"]} for r in batch]
    bands = sorted((band, r["id"]) for r in batch for band in set(r["fingerprint"].bands()))
    matches, alerts, outbox, threads = [], [], [], []
    for r in batch:
        if rng.random() >= MATCHED_SHARE:
            continue
        topic = rng.choice(topics)
        matches.append(
            {
                "article_id": r["id"],
                "topic": topic,
                "words": [topic],
                "sentence": r["text"][:200],
            }
        )
        if r["new_story"]:
            ts = f"{r['first_seen_at'].timestamp():.6f}"
            alerts.append(
                {
                    "id": r["id"],
                    "story_id": r["story_id"],
                    "article_id": r["id"],
                    "kind": "story",
                    "outlet": r["outlet"],
                    "topics": [topic],
                    "created_at": r["first_seen_at"],
                }
            )
            outbox.append(
                {
                    "alert_id": r["id"],
                    "destination": "slack:#news-alerts",
                    "state": "sent",
                    "attempts": 1,
                    "next_attempt_at": r["first_seen_at"],
                    "created_at": r["first_seen_at"],
                    "sending_at": r["first_seen_at"],
                    "sent_at": r["first_seen_at"],
                    "external_id": ts,
                }
            )
            threads.append({"story_id": r["story_id"], "channel": "#news-alerts", "ts": ts})
    with connection.begin():
        for table, rows in (
            (StoryRow, stories),
            (ArticleRow, articles),
            (ArticleUrlRow, urls),
            (EntryGuidRow, guids),
            (MatchRow, matches),
            (AlertRow, alerts),
            (OutboxRow, outbox),
            (SlackThreadRow, threads),
        ):
            if rows:
                connection.execute(insert(table.__table__), rows)  # type: ignore[attr-defined]
        # Four million plain integer pairs: straight to the driver's executemany.
        connection.exec_driver_sql(
            f"INSERT INTO {FingerprintBandRow.__tablename__} (band, article_id) VALUES (?, ?)",
            bands,
        )
    counts["articles"] += len(articles)
    counts["bands"] += len(bands)
    counts["stories"] += len(stories)


def polls_done(service: RunningService) -> float:
    return sum(
        value
        for (name, _labels), value in service.metrics().items()
        if name == "monitor_polls_total"
    )


def polls_by_status(service: RunningService) -> dict[str, int]:
    counts: dict[str, int] = {}
    for (name, labels), value in service.metrics().items():
        if name == "monitor_polls_total":
            status = dict(labels).get("status", "?")
            counts[status] = counts.get(status, 0) + int(value)
    return counts


def read_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM, ... of a process, in kB ({} when it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key.startswith("Vm") and rest.strip().endswith("kB"):
            values[key] = int(rest.split()[0])
    return values


def read_pss(pid: int) -> int:
    """Proportional set size in kB: shared pages (the forkserver's, its workers') counted once
    across the processes that share them, so the sum over processes is their real footprint."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    found = re.search(r"^Pss:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) if found else 0


def session_processes(session: int) -> dict[int, int]:
    """{pid: parent pid} of every process in `session` (the service and its workers)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == session:
            found[int(entry.name)] = int(fields[1])
    return found


class Sampler(threading.Thread):
    """RSS of the service and of every process of its session, every SAMPLE_EVERY seconds."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.main_peak = 0
        self.total_peak = 0
        self.total_pss_peak = 0
        self.workers_peak = 0
        self.worker_hwm: dict[int, int] = {}
        self.seen_workers: set[int] = set()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(SAMPLE_EVERY):
            self.sample()

    def sample(self) -> None:
        total = workers = pss = 0
        for pid in session_processes(self.pid):
            status = read_status(pid)
            rss = status.get("VmRSS", 0)
            total += rss
            pss += read_pss(pid)
            if pid == self.pid:
                self.main_peak = max(self.main_peak, rss)
            else:
                workers += rss
                self.seen_workers.add(pid)
                self.worker_hwm[pid] = max(self.worker_hwm.get(pid, 0), status.get("VmHWM", 0))
        self.total_peak = max(self.total_peak, total)
        self.total_pss_peak = max(self.total_pss_peak, pss)
        self.workers_peak = max(self.workers_peak, workers)

    def stop(self) -> None:
        self.sample()
        self._done.set()
        self.join()


def report_memory(result: dict[str, Any] | None) -> None:
    if result is None or "error" in result:
        why = "no answer in time" if result is None else result["error"]
        detail(f"figure 9 could not be measured: {why}")
        figure(9, "monitor_run_RSS_1000_sources_100k_articles", "n/a", "≤300MB", False)
        return
    main_mb = result["main_hwm_kb"] / 1024
    figure(
        9,
        "monitor_run_RSS_1000_sources_100k_articles",
        f"{main_mb:.0f}MB",
        f"≤{MEMORY_GOAL_MB}MB",
        main_mb <= MEMORY_GOAL_MB,
    )
    detail(
        f"figure 9: main process peak RSS (VmHWM) {main_mb:.0f} MB; with its "
        f"{result['worker_processes']} worker/forkserver processes at most "
        f"{result['total_peak_kb'] / 1024:.0f} MB RSS at once, "
        f"{result['total_pss_peak_kb'] / 1024:.0f} MB PSS (shared pages once; sampled every "
        f"{SAMPLE_EVERY} s; workers alone {result['workers_peak_kb'] / 1024:.0f} MB RSS; every "
        f"process's own peak summed {result['hwm_sum_kb'] / 1024:.0f} MB)"
    )
    detail(
        f"figure 9: {result['articles']:,} articles, {result['stories']:,} stories, "
        f"{result['bands']:,} fingerprint bands, database {result['db_mb']:.0f} MB, built in "
        f"{result['build_s']:.0f} s; feeds {result['feed_kb_mean']:.0f} KB on average "
        f"(largest {result['feed_kb_max']:.0f} KB), {result['new_items']} with a new item; "
        f"all {SOURCES} polled {result['all_polled_s']:.0f} s after start "
        f"(nice 19), outcomes {result['statuses']}"
    )


# --- figure 10: latency and pace ---------------------------------------------------------------


class LiveFeed:
    """A feed whose items appear while the monitor runs, recording when it was read."""

    def __init__(self, web: LocalWeb, name: str, path: str) -> None:
        self.web = web
        self.name = name
        self.path = path
        self.items: list[tuple[Story, str]] = []
        self.reads: list[float] = []
        self.armed: list[Story] = []  # to appear right after the next read
        self.published: dict[str, float] = {}  # item URL -> when it appeared
        self._lock = threading.Lock()
        self._version = 0
        self._body = b""
        web.handle(path, self._serve)

    def add(self, story: Story) -> str:
        """Put `story` on the site and in the feed; returns its URL (time noted)."""
        url = self.web.url(f"/{self.name}/news/{story.slug}")
        self.web.add(f"/{self.name}/news/{story.slug}", article_page(story, self.name, url))
        with self._lock:
            self.items.insert(0, (story, url))
            self._version += 1
            self._body = rss_feed(self.name, self.web.url("/"), self.items).encode()
            self.published[url] = time.time()
        return url

    def arm(self, story: Story) -> None:
        with self._lock:
            self.armed.append(story)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        with self._lock:
            body, etag = self._body, f'"v{self._version}"'
        if handler.headers.get("If-None-Match") == etag:
            handler.send_response(304)
            handler.send_header("ETag", etag)
            handler.end_headers()
        else:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/rss+xml; charset=utf-8")
            handler.send_header("Content-Length", str(len(body)))
            handler.send_header("ETag", etag)
            handler.end_headers()
            handler.wfile.write(body)
        handler.wfile.flush()
        with self._lock:
            self.reads.append(time.time())
            armed, self.armed = self.armed, []
        for story in armed:  # the worst moment: the monitor has just read the feed
            self.add(story)


@dataclass
class LatencyResult:
    latencies: dict[str, float]  # item URL -> seconds from appearing to Slack
    kinds: dict[str, str]  # item URL -> "random" | "after-read"
    missing: dict[str, float]  # item URL -> seconds waited without a message
    read_gaps: list[float]
    error: str | None = None


@dataclass
class PaceResult:
    times: dict[str, list[float]]  # channel -> arrival times of chat.postMessage
    expected: int
    error: str | None = None


def latency_and_pace(
    root: Path, corpus: Corpus, deadline: float
) -> tuple[LatencyResult, PaceResult]:
    launcher = Launcher(root)
    try:
        latency_channels = ("news-alerts", *(f"{e}-desk" for e in LATENCY_ELEMENTS))
        with (
            LocalWeb() as web,
            SlackStandIn(channels=latency_channels) as slack,
            LocalWeb() as pace_web,
        ):
            pace_channels = tuple(f"{t}-watch" for t in PACE_TOPICS)
            with SlackStandIn(channels=("news-alerts", *pace_channels)) as pace_slack:
                feeds, service = start_latency(root / "latency", launcher, web, slack, corpus)
                pace_service = start_pace(
                    root / "pace", launcher, pace_web, pace_slack, pace_channels
                )
                plan = schedule_items(feeds)
                pace = finish_pace(pace_service, pace_slack, pace_channels, deadline)
                latency = finish_latency(feeds, service, slack, plan, deadline)
                return latency, pace
    finally:
        launcher.cleanup()


def start_latency(
    root: Path, launcher: Launcher, web: LocalWeb, slack: SlackStandIn, corpus: Corpus
) -> tuple[list[LiveFeed], RunningService]:
    rng = random.Random(10)
    feeds = [LiveFeed(web, f"{e}-news", f"/{e}-news/feed.xml") for e in LATENCY_ELEMENTS]
    for feed in feeds:  # what each feed lists before: nothing the keywords catch
        for number in range(3):
            feed.add(
                Story(
                    f"{feed.name}-old-{number}",
                    f"Cricket board names the squad for the home series {number}",
                    tuple(corpus.text(rng, 1500).split("\n\n")),
                    datetime.now(UTC) - timedelta(hours=number + 1),
                )
            )
    config = root / "config"
    settings_file(
        config,
        database=root / "monitor.db",
        allow=[web.host],
        slack_base_url=slack.base_url,
        routes={e: f"#{e}-desk" for e in LATENCY_ELEMENTS},
    )
    sources_file(config, [(f.name, f.web.url(f.path)) for f in feeds], every=f"{EVERY_S}s")
    (config / "keywords.yaml").write_text(topics_yaml(LATENCY_ELEMENTS))
    service = launcher.start(config, tick=None, env={"SLACK_BOT_TOKEN": slack.token})
    return feeds, service


@dataclass
class Schedule:
    """The latency run's items: their kind by URL, and the timers that publish them."""

    kinds: dict[str, str] = field(default_factory=dict)
    timers: list[threading.Timer] = field(default_factory=list)
    start: float = field(default_factory=time.monotonic)
    error: str | None = None


def schedule_items(feeds: list[LiveFeed]) -> Schedule:
    """Once every feed was read: two items per feed over the next two intervals."""
    rng = random.Random(11)
    try:
        wait_for(lambda: all(f.reads for f in feeds), timeout=30, message="every feed read once")
    except AssertionError as exc:
        return Schedule(error=str(exc))
    plan = Schedule()
    kinds, timers = plan.kinds, plan.timers
    for element, feed in zip(LATENCY_ELEMENTS, feeds, strict=True):
        sentence = f"Officials in Quetta discussed the {element} deposits of Balochistan."
        after_read = distinct_story(
            f"{feed.name}-after-read",
            f"The {element} item appears right after the feed was read",
            sentence,
            age_days=0,
        )
        at_random = distinct_story(
            f"{feed.name}-random",
            f"The {element} item appears at a random moment",
            sentence,
            age_days=0,
        )
        kinds[feed.web.url(f"/{feed.name}/news/{after_read.slug}")] = "after-read"
        kinds[feed.web.url(f"/{feed.name}/news/{at_random.slug}")] = "random"
        # Over two intervals: armed during the first (it appears after the next read),
        # or at a random moment of the second.
        timers.append(threading.Timer(rng.uniform(0, 0.9 * EVERY_S), feed.arm, (after_read,)))
        timers.append(threading.Timer(rng.uniform(EVERY_S, 2 * EVERY_S), feed.add, (at_random,)))
    for timer in timers:
        timer.start()
    return plan


def finish_latency(
    feeds: list[LiveFeed],
    service: RunningService,
    slack: SlackStandIn,
    plan: Schedule,
    deadline: float,
) -> LatencyResult:
    """Wait for every item's message (until the deadline)."""
    if plan.error:
        service.stop()
        return LatencyResult({}, {}, {}, [], error=plan.error)
    kinds, timers = plan.kinds, plan.timers
    published: dict[str, float] = {}

    def arrived() -> dict[str, float]:
        found = {}
        for call in slack.calls("chat.postMessage"):
            payload = ((call.json or {}).get("metadata") or {}).get("event_payload") or {}
            found[str(payload.get("url"))] = call.at
        return found

    def all_in() -> bool:
        published.update({u: t for f in feeds for u, t in f.published.items() if u in kinds})
        if len(published) < len(kinds):
            return False
        messages = arrived()
        return all(dedupe.canonical_url(u) in messages for u in kinds)

    with contextlib.suppress(AssertionError):  # what is missing then is reported
        wait_for(
            all_in,
            timeout=max(1.0, deadline - time.monotonic()),
            message="every item's message",
            interval=0.2,
        )
    for timer in timers:
        timer.cancel()
    messages = arrived()
    now = time.time()
    latencies, missing = {}, {}
    for url in kinds:
        at = published.get(url)
        if at is None:
            missing[url] = 0.0
        elif (sent := messages.get(dedupe.canonical_url(url))) is not None:
            latencies[url] = sent - at
        else:
            missing[url] = now - at
    gaps = [b - a for f in feeds for a, b in itertools.pairwise(f.reads)]
    detail(
        f"figure 10: latency run took {time.monotonic() - plan.start:.0f} s after the first reads"
    )
    service.stop()
    return LatencyResult(latencies, kinds, missing, gaps)


def start_pace(
    root: Path,
    launcher: Launcher,
    web: LocalWeb,
    slack: SlackStandIn,
    channels: tuple[str, ...],
) -> RunningService:
    """4 feeds, each of 12 new items of its own topic, the topic routed to its own channel."""
    feeds = []
    for topic in PACE_TOPICS:
        stories = [
            distinct_story(
                f"{topic}-{n}",
                f"The {topic} shipment number {n} leaves the port",
                f"The {topic} shipment was announced in Karachi on Monday.",
                age_days=0.01,
            )
            for n in range(PACE_ITEMS)
        ]
        items = []
        for story in stories:
            url = web.url(f"/{topic}/news/{story.slug}")
            web.add(f"/{topic}/news/{story.slug}", article_page(story, topic, url))
            items.append((story, url))
        feeds.append(
            (
                topic,
                web.add(
                    f"/{topic}/feed.xml",
                    rss_feed(topic, web.url("/"), items),
                    content_type="application/rss+xml; charset=utf-8",
                ),
            )
        )
    config = root / "config"
    settings_file(
        config,
        database=root / "monitor.db",
        allow=[web.host],
        slack_base_url=slack.base_url,
        routes={t: f"#{c}" for t, c in zip(PACE_TOPICS, channels, strict=True)},
    )
    sources_file(config, feeds)
    (config / "keywords.yaml").write_text(topics_yaml(PACE_TOPICS))
    service = launcher.start(
        config, tick=None, env={"SLACK_BOT_TOKEN": slack.token}, wait_healthy=False
    )
    renice(service, 10)
    service.wait_healthy()
    return service


def finish_pace(
    service: RunningService, slack: SlackStandIn, channels: tuple[str, ...], deadline: float
) -> PaceResult:
    expected = len(PACE_TOPICS) * PACE_ITEMS
    try:
        wait_for(
            lambda: len(slack.calls("chat.postMessage")) >= expected,
            timeout=max(1.0, min(deadline - time.monotonic(), 120)),
            message=f"{expected} messages",
            interval=0.2,
        )
        error = None
    except AssertionError as exc:
        error = str(exc)
    times = {c: [m.at for m in slack.messages(f"#{c}")] for c in channels}
    service.stop()
    return PaceResult(times, expected, error)


def report_latency(result: LatencyResult) -> None:
    values = list(result.latencies.values())
    waited = list(result.missing.values())
    worst = max([*values, *waited], default=float("nan"))
    complete = not result.missing and not result.error and values
    value = f"{worst:.1f}s" if not result.missing else f">{worst:.0f}s"
    figure(
        10,
        f"item_to_Slack_worst_latency_{EVERY_S}s_poll",
        value,
        f"≤{LATENCY_GOAL_S:.0f}s",
        bool(complete) and worst <= LATENCY_GOAL_S,
    )
    by_kind: dict[str, list[float]] = {}
    for url, seconds in result.latencies.items():
        by_kind.setdefault(result.kinds[url], []).append(seconds)
    parts = [
        f"{kind}: " + ", ".join(f"{s:.1f}" for s in sorted(secs))
        for kind, secs in sorted(by_kind.items())
    ]
    detail(f"figure 10: latency per item (s), {'; '.join(parts) or 'none'}")
    if result.missing:
        detail(f"figure 10: {len(result.missing)} item(s) had no message; waited {waited}")
    if result.error:
        detail(f"figure 10: {result.error}")
    if result.read_gaps:
        detail(
            f"figure 10: gaps between reads of a feed {min(result.read_gaps):.1f}.."
            f"{max(result.read_gaps):.1f} s (every: {EVERY_S}s, shipped jitter and tick)"
        )


def report_pace(result: PaceResult) -> None:
    everyone = sorted(t for times in result.times.values() for t in times)
    rates = {}  # from the burst's first message anywhere: channels taking turns count as slow
    own = {}  # from the channel's own first message: must not pass Slack's 1 a second
    gaps = []
    for channel, times in result.times.items():
        if len(times) >= 2 and everyone:
            rates[channel] = (len(times) - 1) / max(times[-1] - everyone[0], 1e-9)
            own[channel] = (len(times) - 1) / max(times[-1] - times[0], 1e-9)
            gaps += [b - a for a, b in itertools.pairwise(times)]
    got = sum(len(t) for t in result.times.values())
    slowest = min(rates.values(), default=0.0)
    fastest = max(own.values(), default=0.0)
    min_gap = min(gaps, default=float("nan"))
    figure(
        10,
        f"Slack_rate_slowest_of_{len(PACE_TOPICS)}_channels_at_once",
        f"{slowest:.2f}msg/s",
        f"≥{PACE_GOAL}msg/s_each_(1/s_pace)",
        got == result.expected and slowest >= PACE_GOAL and fastest <= 1.05,
    )
    span = everyone[-1] - everyone[0] if everyone else float("nan")
    detail(
        f"figure 10: {got}/{result.expected} messages over {span:.1f} s; per channel "
        + ", ".join(
            f"{c} {len(t)} msgs, last at +{t[-1] - everyone[0]:.1f} s"
            for c, t in result.times.items()
            if t
        )
        + f"; fastest channel {fastest:.2f} msg/s, shortest gap {min_gap:.2f} s (as received)"
    )
    if result.error:
        detail(f"figure 10: {result.error}")


if __name__ == "__main__":
    sys.exit(main())
