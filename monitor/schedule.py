"""When to poll a source next, and how its health changes: pure decisions, no I/O.

A healthy source is polled every `interval` at the latest (a random jitter brings some polls
forward, so many sources do not hit at once; it never delays one).
A failing one backs off exponentially from its interval, up to 24 hours, and never sooner than
a Retry-After the server sent. After `park_after` failures in a row it is parked: tried once a
day until it answers again.

The interval adapts to how often a source publishes (`with_rhythm`): each poll that brings new
items teaches its typical gap between items, and the interval is half the longer of that gap
and the current silence, within `poll.min_every` .. `poll.max_every`. A source with its own
`every` in sources.yaml keeps that interval (the caller decides; see `PollContext.interval`).
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Literal

from monitor.models import SourceState

MAX_BACKOFF = timedelta(hours=24)
# Jitter shortens an interval by at most this share of it (see `jittered`).
JITTER_SHARE = 0.1
PARKED_RETRY = timedelta(hours=24)
# How one poll's observed gap moves the typical gap: by the square root of their ratio, that
# ratio first limited to [1/4, 4] -- a geometric mean, in bounded steps. One outlier (a night,
# an outage of days) moves it by at most a factor of 2; a lasting change of rhythm, say from one
# item in 6 hours to one in 30 minutes, is within 10% after 6 polls. It needs no history.
RHYTHM_STEP = 0.5
RHYTHM_MAX_RATIO = 4.0


def jittered(interval: timedelta, jitter: timedelta, rng: random.Random) -> timedelta:
    """`interval` shortened by a random part of `jitter`, never lengthened, never below a second.

    Only ever shorter: an interval is a promise about freshness (`every: 60s` = an item is seen
    within a minute), and a jitter of ±30 s broke it by half. Shortening spreads sources that
    started together just as well. The spread is at most JITTER_SHARE of the interval, so a
    short interval with the default jitter is not polled much more often than asked.
    """
    spread = min(jitter.total_seconds(), interval.total_seconds() * JITTER_SHARE)
    offset = rng.uniform(0.0, 1.0) * spread
    return timedelta(seconds=max(1.0, interval.total_seconds() - offset))


def failure_backoff(interval: timedelta, failures: int) -> timedelta:
    """interval × 2^(failures−1), capped at 24 hours."""
    exponent = min(max(failures - 1, 0), 20)  # 2**20 intervals is far beyond the cap anyway
    backoff: timedelta = interval * (2**exponent)
    return min(backoff, MAX_BACKOFF)


def after_success(
    state: SourceState,
    *,
    now: datetime,
    interval: timedelta,
    jitter: timedelta,
    rng: random.Random,
    new_items: int,
    problem: str | None = None,
) -> SourceState:
    """The state after a poll that got an answer (new content, or none)."""
    return replace(
        state,
        next_poll_at=now + jittered(interval, jitter, rng),
        last_polled_at=now,
        last_success_at=now,
        last_new_item_at=now if new_items else state.last_new_item_at,
        last_problem=problem,
        consecutive_failures=0,
        retry_after_until=None,
        parked=False,
        items_total=state.items_total + new_items,
        polls_total=state.polls_total + 1,
    )


def after_failure(
    state: SourceState,
    *,
    now: datetime,
    error: str,
    retry_after: datetime | None,
    interval: timedelta,
    park_after: int,
) -> SourceState:
    """The state after a failed poll: counted, backed off, parked after `park_after` in a row."""
    failures = state.consecutive_failures + 1
    parked = failures >= park_after
    wait = PARKED_RETRY if parked else failure_backoff(interval, failures)
    next_poll = now + wait
    if retry_after is not None:
        retry_after = min(retry_after, now + MAX_BACKOFF)
        next_poll = max(next_poll, retry_after)
    return replace(
        state,
        next_poll_at=next_poll,
        last_polled_at=now,
        last_error=error,
        last_error_at=now,
        consecutive_failures=failures,
        retry_after_until=retry_after,
        parked=parked,
        polls_total=state.polls_total + 1,
        failures_total=state.failures_total + 1,
    )


# --- adaptive polling ----------------------------------------------------------------------------

IntervalOrigin = Literal["set", "learned", "default"]


def polling_interval(
    every: timedelta | None, state: SourceState | None, default: timedelta
) -> tuple[timedelta, IntervalOrigin]:
    """How often a source is polled, and why: its own `every` in sources.yaml (people chose
    it), else the interval learned from its rhythm, else `poll.every`."""
    if every:
        return every, "set"
    if state is not None and state.interval_seconds:
        return timedelta(seconds=state.interval_seconds), "learned"
    return default, "default"


def learn_gap(typical: int | None, elapsed: timedelta | None, new_items: int) -> int | None:
    """The typical gap between a source's items (seconds), after a poll that found `new_items`
    new ones `elapsed` after the previous poll that found any.

    The observed gap is elapsed / new_items. The first observation is taken as it is; later ones
    move the typical gap a bounded step towards them (see RHYTHM_STEP). Without new items, or
    without a previous poll with new items, there is nothing to learn.
    """
    if new_items <= 0 or elapsed is None:
        return typical
    observed = max(elapsed.total_seconds() / new_items, 1.0)
    if typical is None:
        return round(observed)
    ratio = min(max(observed / typical, 1 / RHYTHM_MAX_RATIO), RHYTHM_MAX_RATIO)
    step: float = ratio**RHYTHM_STEP
    return max(1, round(typical * step))


def adaptive_interval(
    typical_gap: timedelta, silent_for: timedelta, *, min_every: timedelta, max_every: timedelta
) -> timedelta:
    """Half the longer of the typical gap and the current silence, within [min_every, max_every].

    Half the gap: a new item waits on average a quarter of its gap to be seen. The silence: a
    source that stopped publishing is polled less and less often, up to max_every.
    """
    return min(max(max(typical_gap, silent_for) / 2, min_every), max_every)


def with_rhythm(
    state: SourceState,
    *,
    now: datetime,
    new_items: int,
    min_every: timedelta,
    max_every: timedelta,
) -> SourceState:
    """`state` with its typical gap learned from this successful poll and its adaptive interval
    set from it (unchanged while no gap has been learned). Call before `after_success`, which
    moves `last_new_item_at` to now."""
    elapsed = now - state.last_new_item_at if state.last_new_item_at else None
    typical = learn_gap(state.typical_gap_seconds, elapsed, new_items)
    if typical is None:
        return state
    silent_for = timedelta(0) if new_items or elapsed is None else elapsed
    interval = adaptive_interval(
        timedelta(seconds=typical), silent_for, min_every=min_every, max_every=max_every
    )
    return replace(
        state, typical_gap_seconds=typical, interval_seconds=round(interval.total_seconds())
    )
