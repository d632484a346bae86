"""Delivery guarantees under crashes: `monitor run` killed with SIGKILL at random moments.

The crash loop (tests/crash_harness.py) starts `monitor run` against three outlets on
127.0.0.1 whose feeds grow, the Slack stand-in in bot-token mode (slow, with accept-then-drop,
429 and 500 faults), and a real SMTP server (STARTTLS + AUTH) with the daily digest already due
and `alerts_to` set; it kills the process at random moments, some timed for a Slack post, an
SMTP send, an article being fetched and stored, or the digest's own send, restarts it at once,
and in the end lets it run until nothing is left to do. While the process is dead, the row it
left `sending` is aged past IN_FLIGHT_GRACE (2 minutes) instead of waiting for it, and before the
final run the back-offs are made due: the same code paths, minutes sooner (see the harness;
`scripts/crash_loop.py --real-time` runs without it). Then it checks:

- every article published is stored, in the right story, and every matching one has its alert;
- every alert has one outbox row per destination, and every row is `sent`;
- Slack holds exactly one message per alert and channel (none twice, compared by the alert_id
  in the message metadata), the outbox recorded that message's ts, a follow-up is a reply in its
  story's thread, and a story has one top-level message per channel;
- alert emails are AT LEAST ONCE: SMTP cannot be asked what arrived, so a row whose send was cut
  off after the server took the message is sent again, with the same Message-ID (mail clients
  show one). What the code guarantees, and what is asserted: every sent row's Message-ID
  arrived, and never more often than the row was attempted; no email arrives that no row sent;
- the digest: at most one email per local day (by subject and by Message-ID), one row per day,
  `sent` (arrived exactly once) or `unknown` (cut off mid-send: arrived once or not at all, and
  never sent again);
- the database: `PRAGMA integrity_check` ok, `PRAGMA foreign_key_check` empty (SQLite), and no
  orphan rows on either database; no "database is locked", crash or traceback in any log.

The seed is random per run and printed with the summary (on failure, or with `pytest -s`);
`MONITOR_CRASH_SEED=N` replays a run's articles, faults and kill plan (the exact moments of the
kills follow the processes, so they differ a little). scripts/crash_loop.py runs longer loops.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import empty_postgres
from tests.crash_harness import (
    CrashLoop,
    CrashOptions,
    CrashReport,
    CrashWorld,
    engine_for,
    fast_forward,
    min_send_kills,
    outstanding,
    stored_links,
    verify,
)
from tests.service_harness import Launcher, launcher_for, service_env, wait_for

SEED_ENV = "MONITOR_CRASH_SEED"

pytestmark = pytest.mark.slow


def crash_seed() -> int:
    raw = os.environ.get(SEED_ENV)
    return int(raw) if raw else random.SystemRandom().randrange(1_000_000)


def crash_loop(workdir: Path, database_url: str, cycles: int) -> CrashReport:
    seed = crash_seed()
    # Shown with any failure, including an exception that ends the loop before its report.
    print(f"replay with {SEED_ENV}={seed}")
    lines: list[str] = []
    with CrashWorld(workdir, database_url, seed) as world:
        report = CrashLoop(world, CrashOptions(cycles=cycles, seed=seed), lines.append).run()
    print("\n".join(lines))
    print(report.summary())
    return report


def assert_guarantees(report: CrashReport, cycles: int) -> None:
    replay = f"replay with {SEED_ENV}={report.seed}\n{report.summary()}"
    assert report.problems == [], replay
    assert report.cycles == cycles, replay
    assert report.refused_restarts == 0, replay
    assert report.slack_duplicates == 0, replay
    assert report.digests_received <= 1, replay
    assert report.alerts >= 10 and report.followups >= 1, replay
    # The loop did what it claims: kills landed in the middle of sends.
    mid_send = sum(n for moment, n in report.kills.items() if moment.startswith(("slack", "alert")))
    assert mid_send >= min_send_kills(cycles), replay


def test_fast_forward_before_the_first_migration_changes_nothing(tmp_path: Path) -> None:
    # A kill while the first run starts can come before its migration has made any table.
    engine = engine_for(f"sqlite:///{tmp_path / 'monitor.db'}")
    try:
        assert fast_forward(engine, backoffs=True) == 0
        assert outstanding(engine) == {"database not ready": 1}
    finally:
        engine.dispose()


def test_sigkill_at_random_moments_loses_nothing_and_doubles_nothing(tmp_path: Path) -> None:
    cycles = 30
    report = crash_loop(tmp_path, f"sqlite:///{tmp_path / 'monitor.db'}", cycles)
    assert_guarantees(report, cycles)
    assert "integrity_check ok" in report.integrity


@pytest.mark.postgres
def test_sigkill_at_random_moments_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    empty_postgres(postgres_url)
    cycles = 10
    report = crash_loop(tmp_path, postgres_url, cycles)
    assert_guarantees(report, cycles)


# --- hardening case 14: `monitor poll` while `monitor run` delivers, on one SQLite file ------


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    yield from launcher_for(tmp_path)


def monitor_poll(config: Path, cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "--config", str(config), "poll"],
        cwd=cwd,
        env=service_env(0.2, env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_case_14_two_processes_write_the_same_sqlite_file(
    tmp_path: Path, launcher: Launcher
) -> None:
    """`monitor poll`, six times, three at once, while `monitor run` polls and delivers to a
    slowish Slack: every process writes the same SQLite file (articles, alerts, leases, outbox
    claims and results). None fails with "database is locked", all exit 0, nothing is delivered
    twice, and the file is intact."""
    seed = crash_seed()
    database = tmp_path / "monitor.db"
    # monitor run polls every 20 s here: the articles published for the polls are stored by them.
    with CrashWorld(
        tmp_path,
        f"sqlite:///{database}",
        seed,
        slack_delay=(0.1, 0.1),
        smtp_delay=0.05,
        poll_every="20s",
    ) as world:
        for _ in range(15):
            world.publish_news()
        service = launcher.start(world.config, env=world.env)
        engine = engine_for(world.database_url)
        try:
            wait_for(lambda: world.slack.messages(), timeout=60, message="monitor run delivering")
            outputs: list[tuple[int, str]] = []
            posted_before = len(world.slack.messages())
            for _ in range(2):
                for _ in range(4):
                    world.publish_news()  # new articles for the polls to store and deliver
                polls = [monitor_poll(world.config, tmp_path, world.env) for _ in range(3)]
                for poll in polls:
                    stdout, stderr = poll.communicate(timeout=120)
                    outputs.append((poll.returncode, stdout + stderr))
            posted_during = len(world.slack.messages()) - posted_before

            want = {world.outlets[i.outlet].web.url(i.path) for i in world.items()}
            wait_for(
                lambda: not outstanding(engine) and want <= stored_links(engine),
                timeout=180,
                message="every article stored and every alert delivered",
            )
            status, _ = service.stop()
        finally:
            engine.dispose()
        for code, output in outputs:
            assert code == 0, output
            assert "database is locked" not in output, output
            assert "Traceback" not in output, output
        assert posted_during > 0, "nothing was delivered while the polls ran"
        stored_by_polls = sum(int(n) for _, out in outputs for n in re.findall(r"new=(\d+)", out))
        assert stored_by_polls > 0, "the polls stored nothing: " + repr(outputs)
        assert status == 0, service.stderr()
        for bad in ("database is locked", "job_crashed", "Traceback"):
            assert bad not in service.stderr(), service.stderr()

        report = CrashReport(seed, "sqlite")
        verify(world, engine, report)
        engine.dispose()
        assert report.problems == [], f"seed {seed}\n{report.summary()}"
        assert report.slack_duplicates == 0
        assert "integrity_check ok" in report.integrity
