"""Adaptive polling and back-off: the pure decisions as tables, then through `refresh_source`."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import schedule
from monitor.models import SourceState
from monitor.store import Store
from tests.polling import make_config, poll
from tests.web import LocalWeb
from tests.world import Story, publish

NOW = datetime(2025, 10, 7, 12, 0, tzinfo=UTC)
MIN, MAX = timedelta(minutes=5), timedelta(hours=6)
H = 3600


# --- learning the typical gap ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typical", "elapsed", "new_items", "expected"),
    [
        pytest.param(None, None, 5, None, id="first poll: nothing to compare with"),
        pytest.param(None, timedelta(hours=2), 0, None, id="no new items: nothing learned"),
        pytest.param(H, timedelta(hours=9), 0, H, id="no new items keeps what was learned"),
        pytest.param(None, timedelta(hours=2), 4, 1800, id="first gap: elapsed / items"),
        pytest.param(H, timedelta(hours=1), 1, H, id="the same rhythm stays"),
        pytest.param(H, timedelta(hours=2), 1, round(H * 2**0.5), id="slower: part of the way"),
        pytest.param(H, timedelta(days=30), 1, 2 * H, id="an outage: at most twice as long"),
        pytest.param(H, timedelta(minutes=1), 60, H // 2, id="a burst: at most half as long"),
        pytest.param(None, timedelta(0), 3, 1, id="never below a second"),
    ],
)
def test_learn_gap(
    typical: int | None, elapsed: timedelta | None, new_items: int, expected: int | None
) -> None:
    assert schedule.learn_gap(typical, elapsed, new_items) == expected


def test_learn_gap_follows_a_lasting_change_within_a_few_polls() -> None:
    typical: int | None = 6 * H
    for _ in range(6):
        typical = schedule.learn_gap(typical, timedelta(minutes=30), 1)
    assert typical is not None and 30 * 60 <= typical <= 33 * 60


@pytest.mark.parametrize(
    ("typical", "silent", "expected"),
    [
        pytest.param(timedelta(hours=1), timedelta(0), timedelta(minutes=30), id="half the gap"),
        pytest.param(timedelta(minutes=4), timedelta(0), MIN, id="busy: min_every"),
        pytest.param(timedelta(days=2), timedelta(0), MAX, id="rare: max_every"),
        pytest.param(
            timedelta(hours=1), timedelta(hours=4), timedelta(hours=2), id="silence slows it"
        ),
        pytest.param(timedelta(hours=1), timedelta(days=9), MAX, id="long silence: max_every"),
    ],
)
def test_adaptive_interval(typical: timedelta, silent: timedelta, expected: timedelta) -> None:
    assert schedule.adaptive_interval(typical, silent, min_every=MIN, max_every=MAX) == expected


def test_with_rhythm_needs_a_previous_poll_with_new_items() -> None:
    state = SourceState("s")

    first = schedule.with_rhythm(state, now=NOW, new_items=20, min_every=MIN, max_every=MAX)

    assert first == state  # nothing learned: the configured interval stays in force


def test_with_rhythm_sets_gap_and_interval() -> None:
    state = SourceState("s", last_new_item_at=NOW - timedelta(hours=2))

    learned = schedule.with_rhythm(state, now=NOW, new_items=2, min_every=MIN, max_every=MAX)
    silent = schedule.with_rhythm(
        replace(learned, last_new_item_at=NOW),
        now=NOW + timedelta(hours=5),
        new_items=0,
        min_every=MIN,
        max_every=MAX,
    )

    assert (learned.typical_gap_seconds, learned.interval_seconds) == (H, H // 2)
    assert (silent.typical_gap_seconds, silent.interval_seconds) == (H, 5 * H // 2)


# --- back-off -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        (1, timedelta(minutes=15)),
        (2, timedelta(minutes=30)),
        (3, timedelta(hours=1)),
        (7, timedelta(hours=16)),
        (8, timedelta(hours=24)),
        (50, timedelta(hours=24)),
    ],
)
def test_failure_backoff_doubles_up_to_a_day(failures: int, expected: timedelta) -> None:
    assert schedule.failure_backoff(timedelta(minutes=15), failures) == expected


@pytest.mark.parametrize(
    ("retry_after", "expected_wait"),
    [
        pytest.param(None, timedelta(minutes=15), id="no Retry-After: back-off"),
        pytest.param(timedelta(hours=2), timedelta(hours=2), id="Retry-After beyond back-off"),
        pytest.param(timedelta(minutes=1), timedelta(minutes=15), id="back-off beyond it"),
        pytest.param(timedelta(days=5), timedelta(hours=24), id="capped at a day"),
    ],
)
def test_after_failure_honours_retry_after(
    retry_after: timedelta | None, expected_wait: timedelta
) -> None:
    failed = schedule.after_failure(
        SourceState("s"),
        now=NOW,
        error="HTTP 429",
        retry_after=NOW + retry_after if retry_after else None,
        interval=timedelta(minutes=15),
        park_after=10,
    )
    assert failed.next_poll_at == NOW + expected_wait


def test_parked_after_park_after_failures_and_tried_daily() -> None:
    state = SourceState("s")
    for _ in range(10):
        state = schedule.after_failure(
            state,
            now=NOW,
            error="HTTP 500",
            retry_after=None,
            interval=timedelta(minutes=1),
            park_after=10,
        )
    assert state.parked and state.next_poll_at == NOW + timedelta(hours=24)
    back = schedule.after_success(
        state,
        now=NOW,
        interval=timedelta(minutes=15),
        jitter=timedelta(0),
        rng=random.Random(0),
        new_items=0,
    )
    assert not back.parked and back.consecutive_failures == 0


# --- through the pipeline -------------------------------------------------------------------------


def story(i: int, published: datetime) -> Story:
    return Story(
        f"story-{i}",
        f"Minerals story number {i} from the province",
        tuple(f"Paragraph {p} of story {i} about minerals in the province." for p in range(3)),
        published,
    )


def test_a_source_that_publishes_often_is_polled_more_often(
    tmp_path: Path, web: LocalWeb, store: Store
) -> None:
    feed = publish(web, "Busy", [story(0, NOW)])
    config = make_config(
        tmp_path / "config",
        sources_yaml=f"sources:\n  - name: busy\n    url: {feed}\n",
        allow=[web.host],
    )
    now = NOW
    intervals = []
    for i in range(1, 12):
        poll(config, store, "busy", lambda at=now: at)  # type: ignore[misc]
        state = store.source_state("busy")
        assert state.next_poll_at is not None
        intervals.append(state.next_poll_at - now)
        now = state.next_poll_at
        # two new stories every poll
        publish(web, "Busy", [story(j, now) for j in range(2 * i + 1)])

    assert intervals[0] == timedelta(minutes=15)  # poll.every, until a rhythm is learned
    assert intervals[-1] == timedelta(minutes=5)  # poll.min_every
    assert intervals == sorted(intervals, reverse=True)


def test_a_source_with_its_own_every_keeps_it(tmp_path: Path, web: LocalWeb, store: Store) -> None:
    feed = publish(web, "Busy", [story(0, NOW)])
    config = make_config(
        tmp_path / "config",
        sources_yaml=f"sources:\n  - name: busy\n    url: {feed}\n    every: 10m\n",
        allow=[web.host],
    )
    now = NOW
    for i in range(1, 6):
        poll(config, store, "busy", lambda at=now: at)  # type: ignore[misc]
        publish(web, "Busy", [story(j, now) for j in range(5 * i + 1)])
        state = store.source_state("busy")
        assert state.next_poll_at == now + timedelta(minutes=10)
        now = state.next_poll_at
    assert state.interval_seconds is not None  # learned all the same, ready if `every` goes


def test_429_retry_after_sets_the_next_poll(tmp_path: Path, web: LocalWeb, store: Store) -> None:
    web.add("/slow.xml", "slow down", status=429, headers={"Retry-After": "7200"})
    web.add("/slower.xml", "slow down", status=429, headers={"Retry-After": "900000"})
    config = make_config(
        tmp_path / "config",
        sources_yaml=(
            f"sources:\n  - name: slow\n    url: {web.url('/slow.xml')}\n"
            f"  - name: slower\n    url: {web.url('/slower.xml')}\n"
        ),
        allow=[web.host],
    )

    reports = [poll(config, store, name, lambda: NOW) for name in ("slow", "slower")]

    assert [r.status for r in reports] == ["failed", "failed"]
    assert store.source_state("slow").next_poll_at == NOW + timedelta(hours=2)
    assert store.source_state("slower").next_poll_at == NOW + timedelta(hours=24)
