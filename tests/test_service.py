"""`monitor run`: the service as a real process against feeds on 127.0.0.1, and its reload.

Process tests start `monitor run` with a 0.2 s tick (`MONITOR_TICK_SECONDS`) and wait on what
they can observe (the database, /metrics, the process's output) with deadlines, never with
fixed sleeps. The reload decisions are tested without a process, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitor.config import Config, load_config
from monitor.service import (
    Service,
    Timing,
    config_files_hash,
    invalid_config_notice,
    plan_reload,
)
from monitor.store import Store
from monitor.store.schema import AlertRow, ArticleRow, OutboxRow, SourceRow
from tests.conftest import empty_postgres, is_sqlite
from tests.service_harness import Launcher, launcher_for, wait_for
from tests.web import LocalWeb
from tests.world import distinct_story as story
from tests.world import publish, write_config

KEYWORDS = """topics:
  balochistan:
    keywords: [Balochistan]
"""


def count(database: str, query: sa.Select[tuple[int]]) -> int:
    engine = sa.create_engine(database)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(query) or 0)
    finally:
        engine.dispose()


def rows(database: str, query: sa.Executable) -> list[sa.Row[tuple[object, ...]]]:
    engine = sa.create_engine(database)
    try:
        with engine.connect() as connection:
            return list(connection.execute(query))
    finally:
        engine.dispose()


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    yield from launcher_for(tmp_path)


def service_config(
    tmp_path: Path, database: str, sources: list[tuple[str, str]], allow: list[str]
) -> tuple[Path, str]:
    """(config directory, database URL) for `monitor run`, its health on a free port.

    `database` is the `monitor_database_url` fixture's: SQLite, or PostgreSQL with the switch.
    """
    config = write_config(
        tmp_path / "config",
        database_url=database,
        sources=sources,
        allow=allow,
        keywords=KEYWORDS,
        listen="127.0.0.1:0",
    )
    return config, database


# --- the service as a process --------------------------------------------------------------


def test_run_polls_delivers_to_console_and_serves_health_and_metrics(
    tmp_path: Path, monitor_database_url: str, web: LocalWeb, launcher: Launcher
) -> None:
    feed = publish(
        web,
        "Quetta Times",
        [
            story("budget", "Balochistan budget passed", "Balochistan's assembly met."),
            story("cricket", "Cricket final in Lahore", "The crowd cheered every boundary."),
        ],
    )
    config, database = service_config(
        tmp_path, monitor_database_url, [("quetta-times", feed)], [web.host]
    )
    # A row for an output that is not configured stays pending: the backlog shows it.
    store = Store.open(database)
    store.enqueue_notice("earlier", {"kind": "test", "text": "queued"}, ["webhook"], utcnow())
    store.close()

    service = launcher.start(config)
    wait_for(
        lambda: (
            count(database, sa.select(sa.func.count()).where(OutboxRow.alert_id.is_not(None)))
            and not count(
                database,
                sa.select(sa.func.count()).where(
                    OutboxRow.alert_id.is_not(None), OutboxRow.state != "sent"
                ),
            )
        ),
        timeout=60,
        message="the alert to be stored and delivered",
    )
    status, body = service.healthz()
    assert status == 200 and body.startswith("ok"), body

    assert service.metric("monitor_polls_total", source="quetta-times", status="ok") >= 1
    assert service.metric("monitor_articles_new_total", source="quetta-times") == 2
    assert service.metric("monitor_alerts_total", topic="balochistan") == 1
    assert service.metric("monitor_deliveries_total", destination="console", outcome="sent") == 1
    assert service.metric("monitor_delivery_latency_seconds_count", destination="console") == 1
    assert service.metric("monitor_outbox_pending", destination="webhook") == 1
    assert service.metric("monitor_ticks_total") >= 1
    assert service.get("/nowhere")[0] == 404

    wait_for(lambda: "ALERT" in service.stdout(), timeout=10, message="the console alert")
    assert "Balochistan budget passed" in service.stdout()
    assert "Cricket" not in service.stdout()

    status, _ = service.stop(signal.SIGTERM)
    assert status == 0, service.stderr()
    log = service.stderr()
    assert "service_start version=" in log and "outputs=console" in log
    assert log.count("Slack is not configured") == 1
    assert "service_stop reason=SIGTERM" in log


def test_a_second_instance_is_refused_and_a_restart_after_sigkill_is_immediate(
    tmp_path: Path, monitor_database_url: str, web: LocalWeb, launcher: Launcher
) -> None:
    feed = publish(web, "Quetta Times", [story("a", "Budget day", "Numbers were read out.")])
    config, database = service_config(
        tmp_path, monitor_database_url, [("quetta-times", feed)], [web.host]
    )
    first = launcher.start(config)

    second = launcher.run_once(config, "run", timeout=60)
    assert second.returncode == 1, second.stderr
    assert "already running" in second.stderr
    assert str(sa.make_url(database).database) in second.stderr
    assert f"pid {first.pid}" in second.stderr
    assert first.running() and first.healthz()[0] == 200

    first.kill()  # a crash: no cleanup, the kernel drops the lock
    started = time.monotonic()
    third = launcher.start(config)
    assert time.monotonic() - started < 20
    assert third.healthz()[0] == 200
    status, _ = third.stop()
    assert status == 0, third.stderr()


@pytest.mark.postgres
def test_on_postgresql_the_service_runs_and_a_second_instance_is_refused(
    tmp_path: Path, web: LocalWeb, launcher: Launcher, postgres_url: str
) -> None:
    empty_postgres(postgres_url)
    feed = publish(web, "Quetta Times", [story("a", "Balochistan budget", "Numbers.")])
    config = write_config(
        tmp_path / "config",
        database_url=postgres_url,
        sources=[("quetta-times", feed)],
        allow=[web.host],
        keywords=KEYWORDS,
        listen="127.0.0.1:0",
    )
    first = launcher.start(config)
    wait_for(
        lambda: first.metric("monitor_deliveries_total", destination="console", outcome="sent"),
        timeout=60,
        message="the alert delivered",
    )
    second = launcher.run_once(config, "run")
    assert second.returncode == 1, second.stderr
    assert "already running" in second.stderr and f"pid {first.pid}" in second.stderr
    assert first.stop()[0] == 0, first.stderr()


class SlowFeed:
    """A feed that answers only when released (or after 30 s): a fetch in flight on demand."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, handler: BaseHTTPRequestHandler) -> None:
        self.entered.set()
        self.release.wait(30)
        body = b"<rss version='2.0'><channel><title>slow</title></channel></rss>"
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/rss+xml")
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:
            handler.close_connection = True  # the service hung up long ago, as it should


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_exits_0_within_10s_mid_fetch_and_loses_nothing(
    tmp_path: Path,
    monitor_database_url: str,
    web: LocalWeb,
    launcher: Launcher,
    sig: signal.Signals,
) -> None:
    slow = SlowFeed()
    slow_url = web.handle("/slow.xml", slow)
    feed = publish(web, "Quetta Times", [story("a", "Balochistan floods", "Rain fell again.")])
    sources = [("slow", slow_url), ("quetta-times", feed)]
    config, database = service_config(tmp_path, monitor_database_url, sources, [web.host])
    store = Store.open(database)
    store.enqueue_notice("before-console", {"kind": "test", "text": "hello"}, ["console"], utcnow())
    store.enqueue_notice("before-webhook", {"kind": "test", "text": "held"}, ["webhook"], utcnow())
    store.close()
    try:
        service = launcher.start(config)
        wait_for(slow.entered.is_set, timeout=30, message="the slow feed's fetch to start")
        wait_for(
            lambda: count(
                database,
                sa.select(sa.func.count()).where(
                    OutboxRow.alert_id.is_not(None), OutboxRow.state == "sent"
                ),
            ),
            timeout=60,
            message="the other feed's alert to be delivered",
        )

        # `monitor poll` by hand meanwhile does not poll the source the service is polling.
        by_hand = launcher.run_once(config, "poll", "--source", "slow")
        assert by_hand.returncode == 0, by_hand.stderr
        assert "slow: skipped, another process is polling it now" in by_hand.stderr

        status, seconds = service.stop(sig)
        assert status == 0, service.stderr()
        assert seconds < 10, f"took {seconds:.1f}s to stop"
        assert "cancelled=1" in service.stderr()
    finally:
        slow.release.set()

    states = {
        key: state
        for key, state in rows(database, sa.select(OutboxRow.notice_key, OutboxRow.state))
        if key
    }
    assert states == {"before-console": "sent", "before-webhook": "pending"}
    assert {r[0] for r in rows(database, sa.select(OutboxRow.state))} <= {"sent", "pending"}
    assert count(database, sa.select(sa.func.count()).select_from(AlertRow)) == 1
    if is_sqlite(database):
        assert rows(database, sa.text("PRAGMA integrity_check"))[0][0] == "ok"
    # The poll cut short left the slow source due, to be polled again at the next start.
    slow_state = rows(database, sa.select(SourceRow.polls_total).where(SourceRow.name == "slow"))
    assert slow_state in ([], [(0,)])


def test_config_edits_apply_while_running_and_a_bad_edit_is_reported_once(
    tmp_path: Path, monitor_database_url: str, launcher: Launcher
) -> None:
    with LocalWeb() as site_a, LocalWeb() as site_b:
        feed_a = publish(site_a, "A", [story("a1", "Port works in Gwadar", "Cranes arrived.")])
        feed_b = publish(site_b, "B", [story("b1", "Gwadar port expands", "Ships docked.")])
        config, database = service_config(
            tmp_path, monitor_database_url, [], [site_a.host, site_b.host]
        )
        sources = config / "sources.yaml"
        keywords = config / "keywords.yaml"

        def write_sources(*entries: tuple[str, str]) -> None:
            lines = ["sources:"]
            for name, url in entries:
                lines += [f"  - name: {name}", f"    url: {url}", "    every: 1s"]
            sources.write_text("\n".join(lines) + "\n")

        def alerts_with(topic: str) -> list[str]:
            found = rows(database, sa.select(AlertRow.topics, ArticleRow.link).join(ArticleRow))
            return [str(link) for topics, link in found if topic in topics]  # type: ignore[operator]

        write_sources(("site-a", feed_a))
        service = launcher.start(config)
        wait_for(lambda: site_a.hits("/feed.xml") >= 2, timeout=30, message="site-a polled")
        assert site_b.hits("/feed.xml") == 0

        # A new source and a new topic: picked up without a restart.
        write_sources(("site-a", feed_a), ("site-b", feed_b))
        keywords.write_text(KEYWORDS + "  ports:\n    keywords: [Gwadar]\n")
        wait_for(lambda: alerts_with("ports"), timeout=60, message="an alert from the new keyword")
        # New keywords apply to new articles: site-a's article was stored before the edit.
        assert alerts_with("ports") == [site_b.url("/news/b1")]
        assert "config_reloaded" in service.stderr() and "added=site-b" in service.stderr()

        # An edit that does not validate: logged with FILE:LINE, one notice, the old config runs.
        keywords.write_text(KEYWORDS + "  ports:\n    keywrds: [Gwadar]\n")
        wait_for(
            lambda: "config_invalid" in service.stderr(), timeout=60, message="the bad edit logged"
        )
        assert f'problem="{keywords}:5: unknown key' in service.stderr()
        publish(
            site_a,
            "A",
            [
                story("a1", "Port works in Gwadar", "Cranes arrived."),
                story("a2", "Gwadar fishermen protest", "Boats stayed in harbour."),
            ],
        )
        wait_for(
            lambda: site_a.url("/news/a2") in alerts_with("ports"),
            timeout=60,
            message="polling to go on with the last good keywords",
        )
        service.wait_ticks(15)
        notices = rows(
            database,
            sa.select(OutboxRow.destination, OutboxRow.state).where(
                OutboxRow.notice_key.like("config-invalid:%")
            ),
        )
        assert [tuple(n) for n in notices] == [("console", "sent")]
        assert service.stdout().count("not applied") == 1
        assert service.stderr().count("config_kept") == 1

        # Fixed (with a new topic), plus a setting that needs a restart: the fix applies.
        reloads = service.stderr().count("config_reloaded")
        keywords.write_text(KEYWORDS + "  mines:\n    keywords: [Reko Diq]\n")
        settings = config / "settings.yaml"
        settings.write_text(settings.read_text().replace("127.0.0.1:0", "127.0.0.1:1"))
        # Keywords apply to articles stored after the reload: publish only once it happened.
        wait_for(
            lambda: service.stderr().count("config_reloaded") > reloads,
            timeout=60,
            message="the fixed config to be reloaded",
        )
        publish(site_b, "B", [story("b2", "Reko Diq talks resume", "Lawyers met.")])
        wait_for(lambda: alerts_with("mines"), timeout=60, message="the fixed config to apply")
        assert "config_restart_needed setting=http.listen" in service.stderr()
        assert service.healthz()[0] == 200  # still on the address it started with

        status, _ = service.stop()
        assert status == 0, service.stderr()


def test_a_restart_does_not_repoll_sources_that_are_not_due(
    tmp_path: Path, monitor_database_url: str, web: LocalWeb, launcher: Launcher
) -> None:
    feed_a = publish(web, "A", [story("a", "Budget day", "Numbers.")], feed_path="/a.xml")
    feed_b = publish(web, "B", [story("b", "Rain in Quetta", "Clouds.")], feed_path="/b.xml")
    config, _ = service_config(
        tmp_path, monitor_database_url, [("a", feed_a), ("b", feed_b)], [web.host]
    )
    first = launcher.start(config)
    wait_for(
        lambda: (
            first.metric("monitor_polls_total", source="a", status="ok")
            and first.metric("monitor_polls_total", source="b", status="ok")
        ),
        timeout=60,
        message="both sources polled",
    )
    first.wait_ticks(5)
    assert (web.hits("/a.xml"), web.hits("/b.xml")) == (1, 1)
    assert first.stop()[0] == 0

    second = launcher.start(config)
    second.wait_ticks(10)
    assert (web.hits("/a.xml"), web.hits("/b.xml")) == (1, 1)
    assert second.stop()[0] == 0


# --- the parts: reload decisions, leases, the lock, metrics ---------------------------------


def utcnow() -> datetime:
    return datetime.now(UTC)


NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def make_config(
    tmp_path: Path, sources: str, keywords: str = KEYWORDS, settings: str = ""
) -> Config:
    directory = tmp_path / "config"
    directory.mkdir(exist_ok=True)
    (directory / "settings.yaml").write_text(settings or "poll:\n  every: 15m\n")
    (directory / "sources.yaml").write_text(sources)
    (directory / "keywords.yaml").write_text(keywords)
    return load_config(directory, environ={})


SOURCES = """sources:
  - name: a
    url: https://a.example/feed
  - name: b
    url: https://b.example/feed
  - name: c
    url: https://c.example/feed
"""


def test_plan_reload_names_what_changed(tmp_path: Path) -> None:
    old = make_config(tmp_path, SOURCES)
    new = make_config(
        tmp_path,
        """sources:
  - name: a
    url: https://a.example/feed
  - name: b
    url: https://b.example/other-feed
  - name: d
    url: https://d.example/feed
""",
        keywords=KEYWORDS + "  ports:\n    keywords: [Gwadar]\n",
        settings="poll:\n  every: 15m\nfetch:\n  timeout: 10s\nhttp:\n  listen: 127.0.0.1:9999\n",
    )
    plan = plan_reload(old, new, old.settings)
    assert plan.added == ("d",)
    assert plan.removed == ("c",)
    assert plan.changed == ("b",)
    assert plan.topics_changed and plan.fetch_changed
    assert plan.restart_needed == ("http.listen",)


def test_plan_reload_sees_a_new_default_interval_and_nothing_else(tmp_path: Path) -> None:
    old = make_config(tmp_path, SOURCES)
    new = make_config(tmp_path, SOURCES, settings="poll:\n  every: 5m\n")
    plan = plan_reload(old, new, old.settings)
    assert plan.changed == ("a", "b", "c")
    assert not (plan.added or plan.removed or plan.topics_changed or plan.fetch_changed)
    assert plan.restart_needed == ()
    # Compared with the settings the process started with, not with the last edit.
    moved = old.settings.model_copy(update={"database_url": "sqlite:///elsewhere.db"})
    assert plan_reload(old, new, moved).restart_needed == ("database_url",)


def test_config_files_hash_follows_content_only(tmp_path: Path) -> None:
    config = make_config(tmp_path, SOURCES)
    first = config_files_hash(config.directory)
    (config.directory / "keywords.yaml").write_text(KEYWORDS)  # same bytes, new mtime
    assert config_files_hash(config.directory) == first
    (config.directory / "keywords.yaml").write_text(KEYWORDS + "\n")
    assert config_files_hash(config.directory) != first
    (config.directory / "settings.yaml").unlink()
    assert config_files_hash(config.directory) not in (first, "")


def test_timing_from_env() -> None:
    assert Timing.from_env({}) == Timing()
    assert Timing.from_env({"MONITOR_TICK_SECONDS": "0.5"}) == Timing(tick=0.5, deliver=0.5)
    assert Timing.from_env({"MONITOR_TICK_SECONDS": "soon"}) == Timing()
    assert Timing.from_env({"MONITOR_TICK_SECONDS": "0"}) == Timing()
    assert Timing().stalled_after == 60 and Timing(tick=30).stalled_after == 300


def test_the_invalid_config_notice_lists_problems_as_file_line(tmp_path: Path) -> None:
    from monitor.errors import ConfigError, ConfigProblem

    problems = [ConfigProblem("config/keywords.yaml", i, f"bad {i}") for i in range(1, 13)]
    notice = invalid_config_notice(Path("config"), ConfigError(problems))
    assert notice["kind"] == "config_invalid"
    assert "12 problem(s)" in notice["text"]
    assert "config/keywords.yaml:1: bad 1" in notice["text"]
    assert "config/keywords.yaml:11" not in notice["text"]
    assert "… and 2 more" in notice["text"]


def test_check_config_applies_valid_edits_and_reports_a_bad_one_once(
    tmp_path: Path, store: Store
) -> None:
    config = make_config(tmp_path, SOURCES)
    keywords = config.directory / "keywords.yaml"

    async def scenario() -> None:
        service = Service(config, store, environ={})
        try:
            # The first look only learns the files; the same bytes twice are settled.
            assert await service.check_config() == "settling"
            assert await service.check_config() == "same"
            assert await service.check_config() == "unchanged"

            keywords.write_text(KEYWORDS + "  ports:\n    keywords: [Gwadar]\n")
            assert await service.check_config() == "settling"
            assert await service.check_config() == "applied"
            assert {t.name for t in service.config.topics} == {"balochistan", "ports"}

            keywords.write_text("topics:\n  ports:\n    keywrds: [Gwadar]\n")
            outcomes = [await service.check_config() for _ in range(6)]
            assert outcomes == [
                "settling",
                "invalid",
                "unchanged",
                "unchanged",
                "unchanged",
                "unchanged",
            ]
            assert {t.name for t in service.config.topics} == {"balochistan", "ports"}
        finally:
            if service._fetcher is not None:
                await service._fetcher.aclose()

    asyncio.run(scenario())
    due = store.due_deliveries(utcnow() + timedelta(seconds=1))
    notices = [d for d in due if d.notice and d.notice.get("kind") == "config_invalid"]
    assert len(notices) == 1 and notices[0].destination == "console"
    assert "keywords.yaml:3: unknown key 'keywrds'" in notices[0].notice["text"]  # type: ignore[index]

    # The same broken bytes seen by another process (a restart) queue nothing new.
    async def restart() -> None:
        service = Service(config, store, environ={})
        assert [await service.check_config() for _ in range(2)] == ["settling", "invalid"]

    asyncio.run(restart())
    due = store.due_deliveries(utcnow() + timedelta(seconds=1))
    assert sum(1 for d in due if d.notice and d.notice.get("kind") == "config_invalid") == 1


@pytest.mark.parametrize("email", [True, False], ids=["email", "no-email"])
def test_the_digest_job_runs_every_interval_only_while_email_has_a_digest_recipient(
    tmp_path: Path, store: Store, email: bool
) -> None:
    settings = "email:\n  digest:\n    to: [team@example.org]\n" if email else ""
    config = make_config(tmp_path, "sources: []\n", settings=settings)
    calls: list[datetime] = []
    timing = Timing(tick=0.05, deliver=0.05, digest=0.1, grace=1)

    async def scenario() -> str:
        loop = asyncio.get_running_loop()
        enough = asyncio.Event()

        def digest(_store: Store, _config: Config, now: datetime) -> None:
            calls.append(now)  # in the service's worker thread
            if len(calls) >= 3:
                loop.call_soon_threadsafe(enough.set)

        service = Service(config, store, digest_job=digest, timing=timing, environ={})

        async def stop_soon() -> None:
            # With email: after three calls; without: after five digest intervals of nothing.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(enough.wait(), timeout=10 if email else 0.5)
            service.request_stop("test")

        stopper = asyncio.create_task(stop_soon())
        reason = await asyncio.wait_for(service.run(), timeout=30)
        await stopper
        return reason

    assert asyncio.run(scenario()) == "test"
    if email:
        assert len(calls) >= 3 and all(c.tzinfo is UTC for c in calls)
    else:
        assert calls == []
