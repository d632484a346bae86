"""A source's health in one word, for `monitor sources`, the digest and notices (pure).

    new       never polled
    ok        its last poll got an answer
    quiet     answering, but silent far longer than its usual rhythm (see `quiet_for`)
    failing   its last poll(s) failed; backing off
    parked    failed `poll.park_after` times in a row; tried once a day
    disabled  `enabled: false` in sources.yaml

Operational notices (`notice_for`): one "down" when a source has failed DOWN_AFTER times in a
row (or was parked sooner), one "up" when it next answers, never one per failure.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from monitor.config import format_duration
from monitor.models import SourceState

Status = Literal["new", "ok", "quiet", "failing", "parked", "disabled"]

QUIET_FACTOR = 5
"""Quiet: silent for more than this many typical gaps between its items…"""
QUIET_FLOOR = timedelta(days=2)
"""…and for more than this, whatever its rhythm (a busy source's quiet night is no news)."""
DOWN_AFTER = 3
"""Failures in a row before the "down" notice: one failed poll is a blip, three (at least
45 minutes of trying at the default interval and back-off) is an outage."""


@dataclass(frozen=True, slots=True)
class SourceHealth:
    status: Status
    detail: str  # one line for people: the last error, or what is fine


def source_health(state: SourceState | None, *, enabled: bool, now: datetime) -> SourceHealth:
    """How a source is doing now, from its stored state."""
    if not enabled:
        return SourceHealth("disabled", "disabled in sources.yaml")
    if state is None or state.polls_total == 0:
        return SourceHealth("new", "not polled yet")
    if state.parked:
        return SourceHealth(
            "parked",
            f"{state.consecutive_failures} failures in a row, retried daily: {state.last_error}",
        )
    if state.consecutive_failures:
        return SourceHealth(
            "failing", f"{state.consecutive_failures} failure(s) in a row: {state.last_error}"
        )
    if (silence := quiet_for(state, now)) is not None:
        usual = format_duration(timedelta(seconds=state.typical_gap_seconds or 0))
        silent = format_duration(timedelta(minutes=silence // timedelta(minutes=1)))
        return SourceHealth("quiet", f"no new item for {silent} (usually one every {usual})")
    return SourceHealth("ok", state.last_problem or "ok")


def quiet_for(state: SourceState, now: datetime) -> timedelta | None:
    """How long the source has been silent, when that is far longer than its usual rhythm:
    more than QUIET_FACTOR typical gaps and more than QUIET_FLOOR. None otherwise, and while
    no rhythm has been learned."""
    if state.last_new_item_at is None or not state.typical_gap_seconds:
        return None
    silence = now - state.last_new_item_at
    threshold = max(QUIET_FACTOR * timedelta(seconds=state.typical_gap_seconds), QUIET_FLOOR)
    return silence if silence > threshold else None


# --- notices: one when a source goes down, one when it comes back ---------------------------------


@dataclass(frozen=True, slots=True)
class Notice:
    """An operational notice to queue once (`Store.enqueue_notice` keys make it once)."""

    key: str  # source-down:<name>:<streak> / source-up:<name>:<streak>
    kind: Literal["source_down", "source_up"]
    source: str
    text: str

    @property
    def payload(self) -> dict[str, str]:
        return {"kind": self.kind, "source": self.source, "text": self.text}


def notice_for(
    before: SourceState, after: SourceState, *, zone: ZoneInfo, down_after: int = DOWN_AFTER
) -> tuple[SourceState, Notice | None]:
    """The state to store after a poll (its `down_notified` flag kept true), and the notice
    the change from `before` to `after` calls for, if any.

    Down: `after` has failed `down_after` times in a row, or is parked, and no down notice was
    sent for this streak. Up: a poll succeeded after a down notice. A streak is named by the
    last success before it, so a source that goes down twice gets two notices.
    """
    streak = before.last_success_at.isoformat() if before.last_success_at else "never"
    name = after.name
    down = after.consecutive_failures >= down_after or after.parked
    if down and not before.down_notified:
        since = _local(before.last_success_at, zone) if before.last_success_at else "never"
        text = (
            f"Source {name} is down: {after.consecutive_failures} failed polls in a row "
            f"(last success: {since}). Last error: {after.last_error}. "
            + (
                "Parked: tried once a day until it answers."
                if after.parked
                else "Backing off, at most a day between tries."
            )
        )
        notice = Notice(f"source-down:{name}:{streak}", "source_down", name, text)
        return replace(after, down_notified=True), notice
    if before.down_notified and after.consecutive_failures == 0:
        text = (
            f"Source {name} is back: answered after {before.consecutive_failures} failed polls"
            + (
                f" (down since the last success at {_local(before.last_success_at, zone)})."
                if before.last_success_at
                else "."
            )
        )
        notice = Notice(f"source-up:{name}:{streak}", "source_up", name, text)
        return replace(after, down_notified=False), notice
    return after, None


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z") if moment else "-"
