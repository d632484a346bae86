"""Source health: statuses, "quiet", and exactly one down and one up notice per outage."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from monitor.health import notice_for, quiet_for, source_health
from monitor.models import SourceState
from monitor.notify.routing import Outputs
from monitor.store import Store
from monitor.store.schema import OutboxRow
from tests.polling import make_config, poll
from tests.web import LocalWeb
from tests.world import Story, publish

NOW = datetime(2025, 10, 7, 12, 0, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Karachi")
OK = SourceState("s", polls_total=5, last_success_at=NOW, last_polled_at=NOW)


# --- statuses -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "enabled", "expected"),
    [
        pytest.param(None, True, "new", id="never polled"),
        pytest.param(SourceState("s"), True, "new", id="state without polls"),
        pytest.param(OK, False, "disabled", id="disabled wins"),
        pytest.param(OK, True, "ok", id="ok"),
        pytest.param(
            replace(OK, consecutive_failures=2, last_error="HTTP 500"), True, "failing", id="fail"
        ),
        pytest.param(
            replace(OK, consecutive_failures=10, parked=True, last_error="HTTP 500"),
            True,
            "parked",
            id="parked",
        ),
        pytest.param(
            replace(OK, typical_gap_seconds=3600, last_new_item_at=NOW - timedelta(days=3)),
            True,
            "quiet",
            id="quiet",
        ),
        pytest.param(
            replace(
                OK,
                typical_gap_seconds=3600,
                last_new_item_at=NOW - timedelta(days=3),
                consecutive_failures=1,
                last_error="timeout",
            ),
            True,
            "failing",
            id="failing beats quiet",
        ),
    ],
)
def test_status(state: SourceState | None, enabled: bool, expected: str) -> None:
    assert source_health(state, enabled=enabled, now=NOW).status == expected


def test_quiet_detail_says_how_long_and_the_usual_rhythm() -> None:
    state = replace(OK, typical_gap_seconds=3 * 3600, last_new_item_at=NOW - timedelta(days=4))

    assert source_health(state, enabled=True, now=NOW).detail == (
        "no new item for 4d (usually one every 3h)"
    )


@pytest.mark.parametrize(
    ("typical", "silent", "quiet"),
    [
        pytest.param(None, timedelta(days=30), False, id="no rhythm learned: never quiet"),
        pytest.param(600, timedelta(days=1), False, id="busy source, a day: under the floor"),
        pytest.param(600, timedelta(days=2, minutes=1), True, id="busy source, over two days"),
        pytest.param(86400, timedelta(days=4), False, id="daily source, four days"),
        pytest.param(86400, timedelta(days=5, minutes=1), True, id="daily source, over five"),
        pytest.param(7 * 86400, timedelta(days=30), False, id="weekly source, a month"),
        pytest.param(7 * 86400, timedelta(days=36), True, id="weekly source, five weeks"),
    ],
)
def test_quiet_for(typical: int | None, silent: timedelta, quiet: bool) -> None:
    state = replace(OK, typical_gap_seconds=typical, last_new_item_at=NOW - silent)

    assert (quiet_for(state, NOW) is not None) is quiet


def test_never_published_is_not_quiet() -> None:
    assert quiet_for(replace(OK, typical_gap_seconds=60), NOW) is None


# --- notice decisions -----------------------------------------------------------------------------


def failed(state: SourceState, error: str = "HTTP 500", parked: bool = False) -> SourceState:
    return replace(
        state,
        consecutive_failures=state.consecutive_failures + 1,
        last_error=error,
        parked=parked,
    )


def succeeded(state: SourceState, at: datetime = NOW) -> SourceState:
    return replace(state, consecutive_failures=0, parked=False, last_success_at=at)


@pytest.mark.parametrize(
    ("before", "after", "kind", "flag"),
    [
        pytest.param(OK, succeeded(OK), None, False, id="ok stays ok"),
        pytest.param(OK, failed(OK), None, False, id="one failure: a blip"),
        pytest.param(
            replace(OK, consecutive_failures=1),
            failed(replace(OK, consecutive_failures=1)),
            None,
            False,
            id="two failures",
        ),
        pytest.param(
            replace(OK, consecutive_failures=2),
            failed(replace(OK, consecutive_failures=2)),
            "source_down",
            True,
            id="third failure: down",
        ),
        pytest.param(
            replace(OK, consecutive_failures=3, down_notified=True),
            failed(replace(OK, consecutive_failures=3, down_notified=True)),
            None,
            True,
            id="fourth failure: already said",
        ),
        pytest.param(
            replace(OK, consecutive_failures=9, down_notified=True),
            failed(replace(OK, consecutive_failures=9, down_notified=True), parked=True),
            None,
            True,
            id="parked after down: already said",
        ),
        pytest.param(
            OK, failed(OK, parked=True), "source_down", True, id="parked at once (park_after 1)"
        ),
        pytest.param(
            replace(OK, consecutive_failures=5, down_notified=True),
            succeeded(replace(OK, consecutive_failures=5, down_notified=True)),
            "source_up",
            False,
            id="back after down: up",
        ),
        pytest.param(
            replace(OK, consecutive_failures=2),
            succeeded(replace(OK, consecutive_failures=2)),
            None,
            False,
            id="back before down was said: nothing",
        ),
    ],
)
def test_notice_for(before: SourceState, after: SourceState, kind: str | None, flag: bool) -> None:
    stored, notice = notice_for(before, after, zone=ZONE)

    assert (notice.kind if notice else None) == kind
    assert stored.down_notified is flag


def test_notice_keys_name_the_streak_so_a_second_outage_is_told_again() -> None:
    first_down = replace(OK, consecutive_failures=2, last_success_at=NOW)
    _, down1 = notice_for(first_down, failed(first_down), zone=ZONE)
    later = replace(OK, consecutive_failures=2, last_success_at=NOW + timedelta(days=1))
    _, down2 = notice_for(later, failed(later), zone=ZONE)
    _, up = notice_for(
        replace(first_down, down_notified=True),
        succeeded(replace(first_down, down_notified=True)),
        zone=ZONE,
    )

    assert down1 is not None and down2 is not None and up is not None
    assert down1.key == f"source-down:s:{NOW.isoformat()}"
    assert down2.key != down1.key
    assert up.key == f"source-up:s:{NOW.isoformat()}"
    assert "Last error: HTTP 500" in down1.text
    assert "2025-10-07 17:00 PKT" in down1.text  # the last success, in local time
    assert down1.payload == {"kind": "source_down", "source": "s", "text": down1.text}


# --- through the pipeline: a feed that fails, then recovers ---------------------------------------


class Flaky:
    """Serves the feed body, or 500 while `failing`."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.failing = False

    def __call__(self, handler: BaseHTTPRequestHandler) -> None:
        status, body = (500, b"oops") if self.failing else (200, self.body)
        handler.send_response(status)
        handler.send_header("Content-Type", "application/rss+xml")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


def notices(store: Store) -> list[tuple[str, str, str]]:
    with store.engine.connect() as db:
        return [
            (row.notice_key, row.notice["kind"], row.destination)
            for row in db.execute(
                sa.select(OutboxRow).where(OutboxRow.notice_key.is_not(None)).order_by(OutboxRow.id)
            )
        ]


@pytest.fixture
def flaky_feed(web: LocalWeb) -> Flaky:
    story = Story("one", "Minerals deal signed", ("Minerals " * 60,), NOW)
    publish(web, "Flaky", [story])
    flaky = Flaky(web.routes["/feed.xml"].body)
    web.handle("/feed.xml", flaky)
    return flaky


def drive(
    tmp_path: Path,
    web: LocalWeb,
    store: Store,
    flaky: Flaky,
    pattern: str,
    outputs: Outputs | None = None,
) -> list[str]:
    """Poll once per letter of `pattern` (F: the feed fails, O: it answers), each poll at the
    time the schedule set; returns the statuses."""
    config = make_config(
        tmp_path / "config",
        sources_yaml=f"sources:\n  - name: flaky\n    url: {web.url('/feed.xml')}\n",
        allow=[web.host],
        settings="slack:\n  channel: '#ops'\n",
    )
    now = NOW
    statuses = []
    for step in pattern:
        flaky.failing = step == "F"
        kwargs = {"outputs": outputs} if outputs else {}
        statuses.append(poll(config, store, "flaky", lambda at=now: at, **kwargs).status)  # type: ignore[misc]
        next_poll = store.source_state("flaky").next_poll_at
        assert next_poll is not None
        now = next_poll
    return statuses


def test_a_feed_that_fails_then_recovers_gets_one_down_and_one_up_notice(
    tmp_path: Path, web: LocalWeb, store: Store, flaky_feed: Flaky
) -> None:
    statuses = drive(tmp_path, web, store, flaky_feed, "OFFFFFFFOO")

    assert statuses == ["ok"] + ["failed"] * 7 + ["unchanged"] * 2
    assert [(kind, dest) for _, kind, dest in notices(store)] == [
        ("source_down", "console"),
        ("source_up", "console"),
    ]
    state = store.source_state("flaky")
    assert not state.down_notified and state.consecutive_failures == 0


def test_two_outages_get_two_pairs_of_notices(
    tmp_path: Path, web: LocalWeb, store: Store, flaky_feed: Flaky
) -> None:
    drive(tmp_path, web, store, flaky_feed, "OFFFOFFFFO")

    kinds = [kind for _, kind, _ in notices(store)]
    assert kinds == ["source_down", "source_up", "source_down", "source_up"]
    assert len({key for key, _, _ in notices(store)}) == 4


def test_a_blip_gets_no_notice(
    tmp_path: Path, web: LocalWeb, store: Store, flaky_feed: Flaky
) -> None:
    drive(tmp_path, web, store, flaky_feed, "OFFOFFO")

    assert notices(store) == []


def test_a_parked_source_is_told_once_and_tried_daily(
    tmp_path: Path, web: LocalWeb, store: Store, flaky_feed: Flaky
) -> None:
    drive(tmp_path, web, store, flaky_feed, "O" + "F" * 12)

    state = store.source_state("flaky")
    assert state.parked and state.consecutive_failures == 12
    assert state.next_poll_at == state.last_polled_at + timedelta(hours=24)  # type: ignore[operator]
    assert [kind for _, kind, _ in notices(store)] == ["source_down"]
    health = source_health(state, enabled=True, now=state.last_polled_at or NOW)
    assert health.status == "parked" and "HTTP 500" in health.detail


def test_notices_go_to_slack_default_channel_when_slack_is_configured(
    tmp_path: Path, web: LocalWeb, store: Store, flaky_feed: Flaky
) -> None:
    slack = Outputs(slack_token=True, slack_webhook=False, email_alerts=False, email_digest=False)

    drive(tmp_path, web, store, flaky_feed, "OFFF", outputs=slack)

    assert [(kind, dest) for _, kind, dest in notices(store)] == [("source_down", "slack:#ops")]


def test_state_and_notice_are_saved_together_and_the_notice_once(store: Store) -> None:
    down = replace(OK, consecutive_failures=3, down_notified=True)

    first = store.save_source_state_with_notice(
        down, "source-down:s:x", {"kind": "source_down", "text": "t"}, ["console"], NOW
    )
    again = store.save_source_state_with_notice(
        replace(down, consecutive_failures=4),
        "source-down:s:x",
        {"kind": "source_down", "text": "t"},
        ["console"],
        NOW,
    )

    assert (first, again) == (True, False)
    assert store.source_state("s").consecutive_failures == 4  # saved even when the notice was not
    assert len(notices(store)) == 1
