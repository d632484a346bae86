"""Slack delivery through the outbox: the real slack-sdk against the stand-in on 127.0.0.1.

Bot-token mode on SQLite and PostgreSQL: the message as posted, routing, threads, retries with
Retry-After and back-off, permanent failures and resend, exactly once after a dropped answer or
a crash, one message per second per channel, hostile text, no secret in any log or error. Then
webhook mode, and the wiring in `runtime.notifiers`.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import re
import socket
import subprocess
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from slack_sdk import WebClient

from monitor import dedupe
from monitor.config import Config, Settings, SlackSettings
from monitor.errors import PermanentDeliveryError, TemporaryDeliveryError
from monitor.models import AlertMessage, Article, Delivery, StoredArticle, TopicMatch
from monitor.notify.outbox import FIRST_RETRY, DeliveryReport, Notifier, deliver_due
from monitor.notify.routing import Outputs, alert_destinations, notice_destinations
from monitor.notify.slack import (
    ID_WAIT,
    MIN_INTERVAL,
    ChannelPacer,
    SlackNotifier,
    WebhookNotifier,
    retry_after_seconds,
    slack_notifiers,
)
from monitor.notify.slack_format import alert_message
from monitor.runtime import notifiers
from monitor.store import Store
from monitor.store.schema import OutboxRow, SlackThreadRow
from monitor.store.store import IN_FLIGHT_GRACE
from tests.conftest import PROJECT_ROOT
from tests.slack_standin import SlackStandIn
from tests.web import LocalWeb
from tests.world import Story, days_ago, publish, write_config

TOKEN_MODE = Outputs(slack_token=True, slack_webhook=False, email_alerts=False, email_digest=False)
WEBHOOK_MODE = Outputs(
    slack_token=False, slack_webhook=True, email_alerts=False, email_digest=False
)
USSM = TopicMatch("ussm", ("USSM",), "Pakistan signed the refinery deal with USSM in Islamabad.")
BALOCHISTAN = TopicMatch("balochistan", ("Balochistan",), "The ore comes from Balochistan.")


# --- a clock for the outbox and the notifier --------------------------------------------------


class Clock:
    """Wall time moved by hand; the pacer's sleeps move it too (no real waiting)."""

    def __init__(self) -> None:
        # Real "now" at the start: Slack's ts (the stand-in's clock) and the outbox's times
        # must agree, as they do in production.
        self.now = datetime.now(UTC)
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def monotonic(self) -> float:
        return self.now.timestamp()

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record, including the `monitor` tree even when it does not propagate."""
    caplog.set_level(logging.DEBUG)
    monitor = logging.getLogger("monitor")
    monitor.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        monitor.removeHandler(caplog.handler)


# --- a small world of articles ------------------------------------------------------------------


def story_text(seed: int) -> str:
    """A long text of its own per seed (different seeds are never near-duplicates)."""
    rng = random.Random(seed)
    words = [f"{rng.choice('bcdfghklmnprstvz')}{rng.randrange(10_000)}" for _ in range(600)]
    return " ".join(words)


def article(
    url: str,
    *,
    outlet: str = "dawn.com",
    title: str = "Pakistan ships first consignment under USSM memorandum",
    seed: int = 1,
) -> Article:
    return Article(
        url=url,
        link=url,
        source=outlet.split(".")[0],
        outlet=outlet,
        title=title,
        summary="",
        text=story_text(seed),
        text_from="page",
        published=datetime(2026, 11, 23, 8, 5, tzinfo=UTC),
    )


def slack_settings(slack: SlackStandIn, routes: dict[str, str] | None = None) -> Settings:
    return Settings(
        timezone="Asia/Karachi",
        slack=SlackSettings(
            base_url=slack.base_url,
            channel="#news-alerts",
            routes={"ussm": "#ussm-watch"} if routes is None else routes,
        ),
    )


@dataclass
class World:
    """A store, the stand-in, settings and a token-mode notifier sharing one clock."""

    store: Store
    slack: SlackStandIn
    clock: Clock
    settings: Settings
    outputs: Outputs = TOKEN_MODE
    notifier: Notifier = field(init=False)

    def __post_init__(self) -> None:
        self.notifier = self.slack_notifier()

    def slack_notifier(self, token: str | None = None) -> SlackNotifier:
        return SlackNotifier(
            SecretStr(token or self.slack.token),
            self.settings,
            self.store,
            clock=self.clock,
            pacer=ChannelPacer(monotonic=self.clock.monotonic, sleep=self.clock.sleep),
        )

    def save(self, item: Article, *matches: TopicMatch) -> StoredArticle | None:
        return self.store.save_article(
            item,
            matches or (USSM,),
            dedupe.text_fingerprint(item.text),
            None,
            lambda topics: alert_destinations(topics, self.settings, self.outputs),
            self.clock(),
        )

    def deliver(self, notifier: Notifier | None = None) -> DeliveryReport:
        kind = "webhook" if self.outputs.slack_webhook else "slack"
        return deliver_due(self.store, {kind: notifier or self.notifier}, self.clock)

    def rows(self) -> list[Any]:
        with self.store.engine.connect() as connection:
            return list(connection.execute(sa.select(OutboxRow).order_by(OutboxRow.id)))

    def row(self, alert_id: int, destination: str = "slack:#news-alerts") -> Any:
        return next(
            r for r in self.rows() if r.alert_id == alert_id and r.destination == destination
        )


@pytest.fixture
def world(store: Store, slack: SlackStandIn, clock: Clock) -> World:
    return World(store, slack, clock, slack_settings(slack))


def posted_json(slack: SlackStandIn) -> list[dict[str, Any]]:
    return [call.json or {} for call in slack.calls("chat.postMessage")]


# --- the message as posted ---------------------------------------------------------------------


def test_an_alert_is_posted_with_the_contract_shape(world: World) -> None:
    stored = world.save(article("https://dawn.com/a1"), USSM, BALOCHISTAN)
    assert stored is not None and stored.alert_id is not None

    report = world.deliver()

    assert report == DeliveryReport(sent=2)  # #news-alerts (balochistan) and #ussm-watch (ussm)
    # Channels are sent to side by side: find the #news-alerts message, whichever came first.
    call = next(
        c
        for c in world.slack.calls("chat.postMessage")
        if (c.json or {}).get("channel") == world.slack.channel_id("#news-alerts")
    )
    assert call.headers["Authorization"] == f"Bearer {world.slack.token}"
    body = call.json
    assert body is not None
    status = world.store.alerts_since(world.clock() - timedelta(hours=1))[0]
    expected = alert_message(status.alert, world.settings.zone)
    assert body == {
        "channel": world.slack.channel_id("#news-alerts"),
        "text": expected.text,
        "blocks": list(expected.blocks),
        "unfurl_links": False,
        "unfurl_media": False,
        "metadata": {
            "event_type": "news_alert",
            "event_payload": {
                "alert_id": stored.alert_id,
                "story_id": stored.story_id,
                "url": "https://dawn.com/a1",
                "source": "dawn",
                "topics": ["balochistan", "ussm"],
            },
        },
    }
    assert "Pakistan ships first consignment under USSM memorandum" in body["text"]
    assert "https://dawn.com/a1" in body["text"]
    assert body["blocks"][0]["text"]["text"] == (
        "*<https://dawn.com/a1|Pakistan ships first consignment under USSM memorandum>*"
    )
    assert "23 Nov 2026, 13:05 PKT" in body["blocks"][1]["elements"][0]["text"]
    assert body["blocks"][2]["text"]["text"] == ">The ore comes from *Balochistan*."
    assert "with *USSM* in Islamabad" in body["blocks"][3]["text"]["text"]
    # The outbox holds Slack's ts, and the message is the story's thread in its channel.
    message = world.slack.messages("#news-alerts")[0]
    assert world.row(stored.alert_id).external_id == message.ts
    assert world.store.slack_thread(stored.story_id, "#news-alerts") == message.ts


def test_alerts_go_to_every_channel_their_topics_route_to(world: World) -> None:
    both = world.save(article("https://dawn.com/both", seed=1), USSM, BALOCHISTAN)
    only_default = world.save(article("https://dawn.com/bal", seed=2), BALOCHISTAN)
    only_ussm = world.save(article("https://dawn.com/ussm", seed=3), USSM)
    assert both and only_default and only_ussm

    world.deliver()

    def alert_ids(channel: str) -> list[int]:
        return [
            m.metadata["event_payload"]["alert_id"]
            for m in world.slack.messages(channel)
            if m.metadata
        ]

    assert alert_ids("#news-alerts") == [both.alert_id, only_default.alert_id]
    assert alert_ids("#ussm-watch") == [both.alert_id, only_ussm.alert_id]
    # Channel names were looked up once, not per message.
    assert len(world.slack.calls("conversations.list")) == 1


def test_a_channel_id_is_used_as_is(store: Store, slack: SlackStandIn, clock: Clock) -> None:
    channel_id = slack.add_channel("ops-private", private=True)
    world = World(store, slack, clock, slack_settings(slack, routes={"ussm": channel_id}))
    world.save(article("https://dawn.com/id"), USSM)

    assert world.deliver().sent == 1
    assert len(slack.messages(channel_id)) == 1
    assert slack.calls("conversations.list") == []


def test_channel_names_are_found_across_pages(
    store: Store, slack: SlackStandIn, clock: Clock
) -> None:
    for number in range(450):
        slack.add_channel(f"filler-{number}")
    last = slack.add_channel("late-channel", private=True)
    world = World(store, slack, clock, slack_settings(slack, routes={"ussm": "#late-channel"}))
    world.save(article("https://dawn.com/late"), USSM)

    assert world.deliver().sent == 1
    assert len(slack.messages(last)) == 1
    assert len(slack.calls("conversations.list")) == 3  # 453 channels, 200 a page
    assert slack.calls("conversations.list")[0].params["types"] == "public_channel,private_channel"


# --- threads -----------------------------------------------------------------------------------


def test_a_followup_replies_in_the_story_thread(world: World) -> None:
    first = world.save(article("https://dawn.com/story"), USSM)
    copy = world.save(article("https://tribune.com.pk/copy", outlet="tribune.com.pk"), USSM)
    assert first and copy and copy.story_id == first.story_id and not copy.new_story

    assert world.deliver().sent == 2

    root, reply = world.slack.messages("#ussm-watch")
    assert root.thread_ts is None
    assert reply.thread_ts == root.ts
    assert reply.blocks[0]["text"]["text"].startswith("Also reported by *tribune.com.pk*:")
    assert world.slack.replies("#ussm-watch", root.ts) == [reply]


def test_two_outlets_reply_twice_and_one_outlet_once(world: World) -> None:
    first = world.save(article("https://dawn.com/story"), USSM)
    assert first is not None
    world.save(article("https://tribune.com.pk/copy", outlet="tribune.com.pk"), USSM)
    world.save(article("https://geo.tv/copy", outlet="geo.tv"), USSM)
    world.deliver()
    # The same outlet again (another URL of it): no second follow-up.
    again = world.save(article("https://tribune.com.pk/copy-2", outlet="tribune.com.pk"), USSM)
    assert again is not None and again.alert_id is None
    world.deliver()

    root = world.slack.messages("#ussm-watch")[0]
    replies = world.slack.replies("#ussm-watch", root.ts)
    assert [r.blocks[0]["text"]["text"].split("*")[1] for r in replies] == [
        "tribune.com.pk",
        "geo.tv",
    ]
    assert len(world.slack.messages("#ussm-watch")) == 3


def test_a_followup_waits_for_its_pending_root(world: World) -> None:
    first = world.save(article("https://dawn.com/story"), USSM)
    copy = world.save(article("https://tribune.com.pk/copy", outlet="tribune.com.pk"), USSM)
    assert first and first.alert_id and copy and copy.alert_id
    world.slack.fail_next("server_error")

    assert world.deliver() == DeliveryReport(retried=2)
    assert world.slack.messages() == []
    waiting = world.row(copy.alert_id, "slack:#ussm-watch")
    assert waiting.state == "pending"
    assert "waiting for the story's first message in #ussm-watch" in waiting.last_error
    assert waiting.attempts == 0  # waiting is not an attempt: no history check later
    assert len(world.slack.calls("chat.postMessage")) == 1  # only the root was tried

    world.clock.advance(FIRST_RETRY.total_seconds() + 1)
    assert world.deliver().sent == 2
    root, reply = world.slack.messages("#ussm-watch")
    assert root.metadata and root.metadata["event_payload"]["alert_id"] == first.alert_id
    assert reply.thread_ts == root.ts


def test_a_followup_starts_the_thread_where_the_story_has_no_message(world: World) -> None:
    # The story alerted for balochistan only (#news-alerts); the copy also matched ussm.
    first = world.save(article("https://dawn.com/story"), BALOCHISTAN)
    copy = world.save(
        article("https://tribune.com.pk/copy", outlet="tribune.com.pk"), BALOCHISTAN, USSM
    )
    later = world.save(article("https://geo.tv/copy", outlet="geo.tv"), USSM)
    assert first and copy and later

    assert world.deliver().sent == 4

    root, reply = world.slack.messages("#news-alerts")
    assert reply.thread_ts == root.ts
    # In #ussm-watch the first follow-up is top-level and the next one replies to it.
    top, second = world.slack.messages("#ussm-watch")
    assert top.thread_ts is None
    assert second.thread_ts == top.ts
    assert world.store.slack_thread(first.story_id, "#ussm-watch") == top.ts


def test_a_permanently_failed_root_does_not_hold_its_followups(world: World) -> None:
    first = world.save(article("https://dawn.com/story"), USSM)
    assert first is not None
    world.slack.fail_next("api_error", error="msg_too_long")
    world.deliver()
    copy = world.save(article("https://tribune.com.pk/copy", outlet="tribune.com.pk"), USSM)
    assert copy is not None

    assert world.deliver().sent == 1
    (top,) = world.slack.messages("#ussm-watch")
    assert top.thread_ts is None


# --- retries -----------------------------------------------------------------------------------


def test_429_is_retried_no_earlier_than_retry_after_then_posted_once(world: World) -> None:
    stored = world.save(article("https://dawn.com/limited"), USSM)
    assert stored and stored.alert_id
    world.slack.fail_next("ratelimited", retry_after=120)
    start = world.clock()

    assert world.deliver() == DeliveryReport(retried=1)
    row = world.row(stored.alert_id, "slack:#ussm-watch")
    assert row.next_attempt_at >= start + timedelta(seconds=120)
    assert "ratelimited" in row.last_error

    world.clock.advance(60)
    assert world.deliver() == DeliveryReport()  # not due yet
    assert len(world.slack.calls("chat.postMessage")) == 1

    world.clock.advance(61)
    assert world.deliver() == DeliveryReport(sent=1)
    assert len(world.slack.messages("#ussm-watch")) == 1
    assert len(world.slack.calls("chat.postMessage")) == 2
    # The lost attempt was answered (429), but the notifier cannot know: it looked first.
    assert len(world.slack.calls("conversations.history")) == 1


def test_retry_after_pauses_the_channel_for_other_rows_too(world: World) -> None:
    first = world.save(article("https://dawn.com/one", seed=1), USSM)
    second = world.save(article("https://dawn.com/two", seed=2), USSM)
    assert first and second and second.alert_id
    world.slack.fail_next("ratelimited", retry_after=60)

    assert world.deliver() == DeliveryReport(retried=2)
    assert len(world.slack.calls("chat.postMessage")) == 1  # the second did not even try
    assert world.row(second.alert_id, "slack:#ussm-watch").next_attempt_at >= (
        world.clock() + timedelta(seconds=55)
    )
    world.clock.advance(61)
    assert world.deliver().sent == 2


def test_a_500_is_retried_with_back_off(world: World) -> None:
    stored = world.save(article("https://dawn.com/broken"), USSM)
    assert stored and stored.alert_id
    world.slack.fail_next("server_error", 2)
    start = world.clock()

    world.deliver()
    row = world.row(stored.alert_id, "slack:#ussm-watch")
    assert row.next_attempt_at == start + FIRST_RETRY
    assert "internal_error" in row.last_error

    world.clock.advance(FIRST_RETRY.total_seconds())
    world.deliver()
    row = world.row(stored.alert_id, "slack:#ussm-watch")
    assert row.next_attempt_at == world.clock() + 2 * FIRST_RETRY  # twice as long
    assert row.attempts == 2

    world.clock.advance(2 * FIRST_RETRY.total_seconds())
    assert world.deliver().sent == 1
    assert len(world.slack.messages("#ussm-watch")) == 1


def test_unreachable_slack_is_temporary(store: Store, clock: Clock) -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    settings = Settings(slack=SlackSettings(base_url=f"http://127.0.0.1:{port}/api/"))
    notifier = SlackNotifier(SecretStr("xoxb-unreachable"), settings, store, clock=clock)
    with pytest.raises(TemporaryDeliveryError, match="connection refused"):
        notifier.deliver(notice_delivery())


def test_a_slack_that_does_not_answer_times_out_as_temporary(store: Store, clock: Clock) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections are accepted by the kernel and never answered
        port = silent.getsockname()[1]
        settings = Settings(slack=SlackSettings(base_url=f"http://127.0.0.1:{port}/api/"))
        notifier = SlackNotifier(SecretStr("xoxb-silent"), settings, store, clock=clock, timeout=1)
        with pytest.raises(TemporaryDeliveryError, match="timed out"):
            notifier.deliver(notice_delivery(channel="C000000001"))


# --- permanent failures ------------------------------------------------------------------------


def test_an_unknown_channel_fails_permanently_and_resend_delivers_it_once_fixed(
    store: Store, slack: SlackStandIn, clock: Clock, logs: pytest.LogCaptureFixture
) -> None:
    world = World(store, slack, clock, slack_settings(slack, routes={"ussm": "#no-such"}))
    stored = world.save(article("https://dawn.com/lost"), USSM)
    assert stored and stored.alert_id

    assert world.deliver() == DeliveryReport(failed=1)
    (status,) = store.alerts_since(clock() - timedelta(hours=1))
    ((destination, state, error),) = status.deliveries
    assert (destination, state) == ("slack:#no-such", "failed")
    assert error is not None and error.startswith("channel_not_found")
    assert "#no-such" in error and "invite the bot" in error
    failed = [r for r in logs.records if getattr(r, "event", "") == "delivery_failed"]
    assert failed and failed[0].fields["error"] == error  # type: ignore[attr-defined]
    clock.advance(3600)
    assert world.deliver() == DeliveryReport()  # a failed row stays failed

    slack.add_channel("no-such")
    assert store.resend_failed(clock()) == 1
    assert world.deliver() == DeliveryReport(sent=1)
    assert len(slack.messages("#no-such")) == 1


def test_slack_saying_channel_not_found_is_permanent(world: World) -> None:
    stored = world.save(article("https://dawn.com/gone"), USSM)
    assert stored and stored.alert_id
    world.slack.fail_next("api_error", error="channel_not_found")

    assert world.deliver() == DeliveryReport(failed=1)
    assert world.row(stored.alert_id, "slack:#ussm-watch").last_error.startswith(
        "channel_not_found: Slack has no channel #ussm-watch"
    )


def test_a_bad_token_fails_permanently_and_resend_works_with_the_right_one(
    world: World, logs: pytest.LogCaptureFixture
) -> None:
    stored = world.save(article("https://dawn.com/auth"), USSM)
    assert stored and stored.alert_id
    wrong = "xoxb-wrong-" + "9" * 24

    assert world.deliver(world.slack_notifier(wrong)) == DeliveryReport(failed=1)
    error = world.row(stored.alert_id, "slack:#ussm-watch").last_error
    assert error.startswith("invalid_auth: Slack refused the bot token in $SLACK_BOT_TOKEN")
    assert wrong not in logs.text and wrong not in error

    world.store.resend_failed(world.clock())
    assert world.deliver() == DeliveryReport(sent=1)  # the notifier with the right token
    assert len(world.slack.messages("#ussm-watch")) == 1


@pytest.mark.parametrize(
    ("error", "says"),
    [
        ("not_in_channel", "invite it"),
        ("is_archived", "archived"),
        ("invalid_auth", "$SLACK_BOT_TOKEN"),
        ("account_inactive", "deactivated"),
        ("token_revoked", "revoked"),
        ("missing_scope", "lacks the scope"),
        ("invalid_blocks", "message layout"),
        ("msg_too_long", "too long"),
        ("invalid_arguments", "Slack refused the message"),
    ],
)
def test_slack_errors_that_need_a_person_are_permanent_and_say_what_to_fix(
    store: Store, slack: SlackStandIn, clock: Clock, error: str, says: str
) -> None:
    notifier = SlackNotifier(SecretStr(slack.token), slack_settings(slack), store, clock=clock)
    slack.fail_next("api_error", error=error)
    with pytest.raises(PermanentDeliveryError) as caught:
        notifier.deliver(notice_delivery())
    assert str(caught.value).startswith(f"{error}: ")
    assert says in str(caught.value)


def test_a_channel_the_bot_was_not_invited_to_fails_saying_so(
    store: Store, slack: SlackStandIn, clock: Clock
) -> None:
    slack.add_channel("closed", member=False)
    notifier = SlackNotifier(SecretStr(slack.token), slack_settings(slack), store, clock=clock)
    with pytest.raises(PermanentDeliveryError, match=r"^not_in_channel: .*#closed"):
        notifier.deliver(notice_delivery(channel="#closed"))


# --- exactly once ------------------------------------------------------------------------------


def test_accept_then_drop_is_found_in_history_and_not_posted_again(world: World) -> None:
    stored = world.save(article("https://dawn.com/dropped"), USSM)
    assert stored and stored.alert_id
    world.slack.fail_next("drop")

    assert world.deliver() == DeliveryReport(retried=1)
    row = world.row(stored.alert_id, "slack:#ussm-watch")
    assert "connection closed before Slack answered" in row.last_error
    (message,) = world.slack.messages("#ussm-watch")  # Slack has it already

    world.clock.advance(FIRST_RETRY.total_seconds())
    assert world.deliver() == DeliveryReport(sent=1)
    assert world.slack.messages("#ussm-watch") == [message]
    assert len(world.slack.calls("chat.postMessage")) == 1
    history = world.slack.calls("conversations.history")[0]
    assert history.params["include_all_metadata"] == "1"
    assert float(history.params["oldest"]) < message.at
    assert world.row(stored.alert_id, "slack:#ussm-watch").external_id == message.ts
    assert world.store.slack_thread(stored.story_id, "#ussm-watch") == message.ts


def test_a_dropped_thread_reply_is_found_in_the_thread(world: World) -> None:
    world.save(article("https://dawn.com/story"), USSM)
    world.deliver()
    copy = world.save(article("https://tribune.com.pk/copy", outlet="tribune.com.pk"), USSM)
    assert copy and copy.alert_id
    world.slack.fail_next("drop")

    assert world.deliver() == DeliveryReport(retried=1)
    world.clock.advance(FIRST_RETRY.total_seconds())
    assert world.deliver() == DeliveryReport(sent=1)

    root, reply = world.slack.messages("#ussm-watch")
    assert reply.thread_ts == root.ts
    assert len(world.slack.calls("chat.postMessage")) == 2
    assert len(world.slack.calls("conversations.replies")) == 1
    assert world.row(copy.alert_id, "slack:#ussm-watch").external_id == reply.ts


def test_a_row_left_sending_by_a_crash_is_found_and_not_posted_again(world: World) -> None:
    stored = world.save(article("https://dawn.com/crash"), USSM)
    assert stored and stored.alert_id
    # The crashed process: claimed the row, posted, died before recording anything.
    (delivery,) = world.store.due_deliveries(world.clock())
    assert world.store.claim_delivery(delivery, world.clock())
    ts = world.notifier.deliver(delivery)

    world.clock.advance(60)
    assert world.deliver() == DeliveryReport()  # still within the in-flight grace
    world.clock.advance(IN_FLIGHT_GRACE.total_seconds())
    assert world.deliver() == DeliveryReport(sent=1)

    assert [m.ts for m in world.slack.messages("#ussm-watch")] == [ts]
    assert len(world.slack.calls("chat.postMessage")) == 1
    assert world.row(stored.alert_id, "slack:#ussm-watch").external_id == ts


def test_a_row_left_sending_before_it_was_posted_is_posted_once(world: World) -> None:
    stored = world.save(article("https://dawn.com/early-crash"), USSM)
    assert stored is not None
    (delivery,) = world.store.due_deliveries(world.clock())
    assert world.store.claim_delivery(delivery, world.clock())  # died before posting

    world.clock.advance(IN_FLIGHT_GRACE.total_seconds() + 1)
    assert world.deliver() == DeliveryReport(sent=1)
    assert len(world.slack.messages("#ussm-watch")) == 1
    assert len(world.slack.calls("conversations.history")) == 1


def test_a_notice_is_found_by_its_outbox_id_after_a_drop(world: World) -> None:
    destinations = notice_destinations(world.settings, world.outputs)
    assert world.store.enqueue_notice(
        "down:dawn",
        {"kind": "source_down", "text": "dawn has failed 5 times"},
        destinations,
        world.clock(),
    )
    world.slack.fail_next("drop")
    world.deliver()
    world.clock.advance(FIRST_RETRY.total_seconds())
    assert world.deliver() == DeliveryReport(sent=1)

    (message,) = world.slack.messages("#news-alerts")
    assert message.metadata == {
        "event_type": "news_notice",
        "event_payload": {"outbox_id": world.rows()[0].id, "kind": "source_down"},
    }
    assert message.blocks[0]["text"]["text"] == "*Source down*: dawn has failed 5 times"


def test_another_monitors_message_with_the_same_alert_id_is_not_taken_for_ours(
    world: World,
) -> None:
    stored = world.save(article("https://dawn.com/ours"), USSM)
    assert stored and stored.alert_id
    world.slack.fail_next("drop")
    world.deliver()  # ours was accepted, the answer lost
    (ours,) = world.slack.messages("#ussm-watch")
    # Then a staging monitor posted its own alert with the same id, about another article.
    staging = alert_message(
        AlertMessage(
            alert_id=stored.alert_id,
            story_id=99,
            kind="story",
            title="Staging",
            link="https://example.org/other",
            outlet="example.org",
            source="staging",
            published=None,
            first_seen=world.clock(),
            topics=("ussm",),
            matches=(),
        ),
        world.settings.zone,
    )
    WebClient(token=world.slack.token, base_url=world.slack.base_url).chat_postMessage(
        channel="#ussm-watch", text=staging.text, metadata=staging.metadata
    )

    world.clock.advance(FIRST_RETRY.total_seconds())
    assert world.deliver() == DeliveryReport(sent=1)
    assert world.row(stored.alert_id, "slack:#ussm-watch").external_id == ours.ts
    assert len(world.slack.messages("#ussm-watch")) == 2


# --- pace --------------------------------------------------------------------------------------


def test_at_most_one_message_per_second_per_channel(
    store: Store, slack: SlackStandIn, clock: Clock
) -> None:
    world = World(store, slack, clock, slack_settings(slack))
    for seed in range(3):
        world.save(article(f"https://dawn.com/burst-{seed}", seed=seed), USSM)
    world.save(article("https://dawn.com/burst-other", seed=9), BALOCHISTAN)
    real = SlackNotifier(SecretStr(slack.token), world.settings, store, clock=clock)

    assert world.deliver(real).sent == 4

    times = [m.at for m in slack.messages("#ussm-watch")]
    assert len(times) == 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap >= MIN_INTERVAL - 0.05 for gap in gaps), gaps
    # Another channel does not wait for this one.
    other = slack.messages("#news-alerts")[0].at
    assert other - times[-1] < MIN_INTERVAL


def test_the_pacer_sleeps_only_the_rest_of_the_second() -> None:
    clock = Clock()
    pacer = ChannelPacer(monotonic=clock.monotonic, sleep=clock.sleep)
    assert pacer.wait("#a") is None
    clock.advance(0.25)
    assert pacer.wait("#a") is None
    assert pacer.wait("#b") is None
    assert clock.slept == [pytest.approx(0.75)]
    pacer.pause("#a", 30)
    assert pacer.wait("#a") == pytest.approx(30)  # too long to sleep: back to the outbox


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "17"}, 17),
        ({"retry-after": "3"}, 3),
        ({"Retry-After": ["9"]}, 9),
        ({"Retry-After": "0"}, 1),
        ({}, 30),
        ({"Retry-After": "soon"}, 30),
    ],
)
def test_retry_after_values(headers: dict[str, Any], seconds: float) -> None:
    assert retry_after_seconds(headers) == seconds


# --- hostile text and secrets ------------------------------------------------------------------

HOSTILE_TITLE = "<!channel> <@U123> <#C1> <https://evil.example|click> & *bold* _it_ `code`"
HOSTILE_SENTENCE = "Read <!here> *now* & _then_ `rm -rf` <https://x.example|y> with USSM."


def test_hostile_text_is_posted_literally_and_links_only_the_article(world: World) -> None:
    item = article("https://dawn.com/hostile?a=1&b=<2>|3", title=HOSTILE_TITLE)
    world.save(item, TopicMatch("ussm", ("USSM", "*now*"), HOSTILE_SENTENCE))
    assert world.deliver().sent == 1

    (body,) = posted_json(world.slack)
    article_link = "https://dawn.com/hostile?a=1&amp;b=%3C2%3E%7C3"
    for text in [body["text"], *mrkdwn_texts(body["blocks"])]:
        for token in re.findall(r"<[^<>]*>", text):
            assert token.startswith(f"<{article_link}|"), token
        assert "<!" not in text and "<@" not in text and "<#" not in text
    title = body["blocks"][0]["text"]["text"]
    shown = title.replace("\u200b", "")
    assert "&lt;!channel&gt; &lt;@U123&gt; &lt;#C1&gt; &lt;https://evil.example|click&gt;" in shown
    assert "&amp; *bold* _it_ `code`" in shown
    assert body["metadata"]["event_payload"]["url"] == "https://dawn.com/hostile?a=1&b=<2>|3"


def mrkdwn_texts(node: Any) -> list[str]:
    """Every mrkdwn text in a block structure."""
    if isinstance(node, dict):
        own = [node["text"]] if node.get("type") == "mrkdwn" else []
        return own + [t for value in node.values() for t in mrkdwn_texts(value)]
    if isinstance(node, list):
        return [t for value in node for t in mrkdwn_texts(value)]
    return []


def test_no_secret_in_logs_errors_or_reprs(
    store: Store, slack: SlackStandIn, clock: Clock, logs: pytest.LogCaptureFixture
) -> None:
    world = World(store, slack, clock, slack_settings(slack))
    world.save(article("https://dawn.com/s1", seed=1), USSM)
    world.save(article("https://dawn.com/s2", seed=2), BALOCHISTAN)
    slack.fail_next("drop", method=None)
    slack.fail_next("server_error", method=None)
    slack.fail_next("ratelimited", method=None, retry_after=1)
    for _ in range(4):
        world.deliver()
        clock.advance(3600)
    wrong = "xoxb-leaky-" + "7" * 30
    world.save(article("https://dawn.com/s3", seed=3), USSM)
    world.deliver(world.slack_notifier(wrong))
    webhook_world = World(store, slack, clock, slack_settings(slack), WEBHOOK_MODE)
    hook = WebhookNotifier(SecretStr(slack.webhook_url), webhook_world.settings, clock=clock)
    world.store.enqueue_notice("k", {"kind": "x", "text": "y"}, ["webhook"], clock())
    slack.fail_next("drop", method="webhook")
    webhook_world.deliver(hook)
    slack.fail_next("api_error", method="webhook", error="no_service")
    clock.advance(3600)
    webhook_world.deliver(hook)

    errors = " ".join(str(r.last_error) for r in world.rows())
    secrets = (slack.token, wrong, slack.webhook_url, slack.webhook_path)
    for secret in secrets:
        assert secret not in logs.text
        assert secret not in errors
        assert all(secret not in str(record.__dict__) for record in logs.records)
        assert secret not in repr(world.notifier) and secret not in repr(hook)
    assert "delivery_retry" in logs.text and "delivery_failed" in logs.text


def test_raised_errors_and_their_causes_hold_no_secret(
    store: Store, slack: SlackStandIn, clock: Clock
) -> None:
    wrong = "xoxb-cause-" + "5" * 30
    notifier = SlackNotifier(SecretStr(wrong), slack_settings(slack), store, clock=clock)
    with pytest.raises(PermanentDeliveryError) as caught:
        notifier.deliver(notice_delivery())
    rendered = "".join(traceback.format_exception(caught.value))
    assert "invalid_auth" in rendered and wrong not in rendered

    hook = WebhookNotifier(SecretStr(slack.webhook_url), slack_settings(slack), clock=clock)
    slack.fail_next("drop", method="webhook")
    with pytest.raises(TemporaryDeliveryError) as dropped:
        hook.deliver(notice_delivery(destination="webhook"))
    rendered = "".join(traceback.format_exception(dropped.value))
    assert slack.webhook_path not in rendered


# --- webhook mode ------------------------------------------------------------------------------


@pytest.fixture
def webhook_world(store: Store, slack: SlackStandIn, clock: Clock) -> World:
    world = World(store, slack, clock, slack_settings(slack), WEBHOOK_MODE)
    world.notifier = WebhookNotifier(
        SecretStr(slack.webhook_url),
        world.settings,
        clock=clock,
        pacer=ChannelPacer(monotonic=clock.monotonic, sleep=clock.sleep),
    )
    return world


def test_webhook_mode_posts_the_same_blocks_without_metadata_or_threads(
    webhook_world: World,
) -> None:
    world = webhook_world
    first = world.save(article("https://dawn.com/hook"), USSM)
    world.save(article("https://tribune.com.pk/hook", outlet="tribune.com.pk"), USSM)
    assert first is not None

    assert world.deliver() == DeliveryReport(sent=2)

    story, followup = world.slack.messages("webhook")
    status = world.store.alerts_since(world.clock() - timedelta(hours=1))
    for message, alert_status in zip((story, followup), status, strict=True):
        expected = alert_message(alert_status.alert, world.settings.zone)
        assert message.body == {
            "text": expected.text,
            "blocks": list(expected.blocks),
            "unfurl_links": False,
            "unfurl_media": False,
        }
    assert followup.blocks[0]["text"]["text"].startswith("Also reported by *tribune.com.pk*")
    assert world.row(first.alert_id or 0, "webhook").state == "sent"
    assert world.slack.calls("chat.postMessage") == []


def test_webhook_failures(webhook_world: World) -> None:
    world = webhook_world
    stored = world.save(article("https://dawn.com/hook-fail"), USSM)
    assert stored and stored.alert_id

    world.slack.fail_next("ratelimited", method="webhook", retry_after=90)
    start = world.clock()
    assert world.deliver() == DeliveryReport(retried=1)
    assert world.row(stored.alert_id, "webhook").next_attempt_at >= start + timedelta(seconds=90)

    world.clock.advance(91)
    world.slack.fail_next("server_error", method="webhook")
    assert world.deliver() == DeliveryReport(retried=1)
    assert world.row(stored.alert_id, "webhook").last_error.startswith("internal_error")

    world.clock.advance(3600)
    world.slack.fail_next("api_error", method="webhook", error="channel_is_archived")
    assert world.deliver() == DeliveryReport(failed=1)
    error = world.row(stored.alert_id, "webhook").last_error
    assert error.startswith("channel_is_archived: the webhook's channel is archived")
    assert world.slack.messages("webhook") == []

    world.store.resend_failed(world.clock())
    assert world.deliver() == DeliveryReport(sent=1)
    assert len(world.slack.messages("webhook")) == 1


@pytest.mark.parametrize("error", ["no_service", "invalid_token", "invalid_payload"])
def test_webhook_refusals_are_permanent(slack: SlackStandIn, clock: Clock, error: str) -> None:
    hook = WebhookNotifier(SecretStr(slack.webhook_url), slack_settings(slack), clock=clock)
    slack.fail_next("api_error", method="webhook", error=error)
    with pytest.raises(PermanentDeliveryError, match=f"^{error}: "):
        hook.deliver(notice_delivery(destination="webhook"))


def test_webhook_mode_is_at_least_once_after_a_dropped_answer(webhook_world: World) -> None:
    world = webhook_world
    world.save(article("https://dawn.com/hook-drop"), USSM)
    world.slack.fail_next("drop", method="webhook")

    assert world.deliver() == DeliveryReport(retried=1)
    world.clock.advance(FIRST_RETRY.total_seconds())
    assert world.deliver() == DeliveryReport(sent=1)
    # A webhook cannot be asked what it has: the message went out twice (README says so).
    assert len(world.slack.messages("webhook")) == 2


def test_a_webhook_url_that_is_not_http_fails_permanently_without_showing_it(
    clock: Clock,
) -> None:
    secret = "file:///etc/secret-webhook-token"
    hook = WebhookNotifier(SecretStr(secret), Settings(), clock=clock)
    with pytest.raises(PermanentDeliveryError) as caught:
        hook.deliver(notice_delivery(destination="webhook"))
    assert "$SLACK_WEBHOOK_URL" in str(caught.value) and secret not in str(caught.value)


# --- wiring ------------------------------------------------------------------------------------


def test_runtime_builds_the_notifier_of_the_configured_mode(
    store: Store, slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = Config(tmp_path, slack_settings(slack), (), (), "test")
    monkeypatch.setenv("SLACK_BOT_TOKEN", slack.token)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
    built = notifiers(config, TOKEN_MODE, store=store)
    assert set(built) == {"console", "slack"} and isinstance(built["slack"], SlackNotifier)
    built = notifiers(config, WEBHOOK_MODE, store=store)
    assert set(built) == {"console", "webhook"} and isinstance(built["webhook"], WebhookNotifier)
    none = Outputs(slack_token=False, slack_webhook=False, email_alerts=False, email_digest=False)
    assert set(notifiers(config, none)) == {"console"}
    with pytest.raises(ValueError, match="needs the store"):
        slack_notifiers(config.settings, TOKEN_MODE, None)


def test_runtime_notifier_delivers_for_real(
    store: Store, slack: SlackStandIn, clock: Clock, tmp_path: Path
) -> None:
    config = Config(tmp_path, slack_settings(slack), (), (), "test")
    environ = {"SLACK_BOT_TOKEN": slack.token}
    world = World(store, slack, clock, config.settings)
    world.save(article("https://dawn.com/wired"), USSM)
    built = slack_notifiers(config.settings, TOKEN_MODE, store, environ)
    assert deliver_due(store, built, clock) == DeliveryReport(sent=1)
    assert len(slack.messages("#ussm-watch")) == 1


def test_threads_are_stored_per_story_and_channel(store: Store) -> None:
    item = article("https://dawn.com/t")
    stored = store.save_article(item, (USSM,), None, None, lambda _: ("slack:#a",), _now())
    assert stored is not None
    assert store.slack_thread(stored.story_id, "#a") is None
    assert store.record_slack_thread(stored.story_id, "#a", "1.000001") == "1.000001"
    assert store.record_slack_thread(stored.story_id, "#a", "2.000002") == "1.000001"
    assert store.record_slack_thread(stored.story_id, "#b", "3.000003") == "3.000003"
    with store.engine.connect() as connection:
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(SlackThreadRow)).scalar() == 2
        )


# --- helpers -------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def notice_delivery(channel: str = "#news-alerts", destination: str | None = None) -> Delivery:
    """A notice row to hand to a notifier directly (for error mapping)."""
    return Delivery(
        id=1,
        destination=destination or f"slack:{channel}",
        attempts=0,
        in_flight=False,
        notice={"kind": "source_down", "text": "dawn is down"},
    )


# --- the whole way: `monitor poll` posting to the stand-in ---------------------------------------

POLL_KEYWORDS = """topics:
  ussm:
    keywords: ["US Strategic Metals", USSM]
"""


def test_monitor_poll_posts_to_slack_and_threads_another_outlets_copy(
    slack: SlackStandIn, tmp_path: Path, monitor_database_url: str
) -> None:
    paragraphs = tuple(
        f"Paragraph {i}: Pakistan and US Strategic Metals (USSM) agreed on shipment {i} of "
        f"antimony and rare earth concentrate from the Frontier Works sites, officials said "
        f"in Islamabad on day {i * 3} of the talks with the Karachi port authority."
        for i in range(12)
    )
    story = Story("ussm-deal", "Pakistan signs minerals deal with USSM", paragraphs, days_ago(1))
    copy = Story("ussm-copy", "Islamabad, USSM seal minerals pact", paragraphs[1:], days_ago(0.5))
    slack_yaml = (
        f'slack:\n  base_url: "{slack.base_url}"\n  channel: "#news-alerts"\n'
        '  routes: {ussm: "#ussm-watch"}\n'
    )
    env = {**os.environ, "SLACK_BOT_TOKEN": slack.token}
    env.pop("SLACK_WEBHOOK_URL", None)
    env.pop("MONITOR_DATABASE_URL", None)

    def poll(config: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(config), "poll"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    with LocalWeb() as first_outlet, LocalWeb() as second_outlet:
        sources = [("frontier", publish(first_outlet, "Frontier Times", [story]))]
        config = write_config(
            tmp_path / "config",
            database_url=monitor_database_url,
            sources=sources,
            allow=[first_outlet.host, second_outlet.host],
            keywords=POLL_KEYWORDS,
            extra_settings=slack_yaml,
        )
        first = poll(config)
        assert first.returncode == 0, first.stderr
        sources.append(("courier", publish(second_outlet, "Capital Courier", [copy])))
        write_config(
            config,
            database_url=monitor_database_url,
            sources=sources,
            allow=[first_outlet.host, second_outlet.host],
            keywords=POLL_KEYWORDS,
            extra_settings=slack_yaml,
        )
        second = poll(config)
        assert second.returncode == 0, second.stderr

    root, reply = slack.messages("#ussm-watch")
    assert root.metadata is not None
    assert root.metadata["event_payload"]["url"] == first_outlet.url("/news/ussm-deal")
    assert "Pakistan signs minerals deal with USSM" in root.text
    assert reply.thread_ts == root.ts
    assert reply.blocks[0]["text"]["text"].startswith("Also reported by")
    assert slack.messages("#news-alerts") == []
    for result in (first, second):
        assert "deliveries:" not in result.stderr  # nothing left to retry or failed
        assert slack.token not in result.stdout + result.stderr


def test_without_conversations_list_the_name_is_used_and_the_id_learned(world: World) -> None:
    """A Slack (or proxy, or stand-in) that cannot list channels: post to the name as written,
    learn the ID from Slack's answer, and still find a dropped message in the history."""
    world.slack.fail_next("api_error", 10, method="conversations.list", error="unknown_method")
    first = world.save(article("https://dawn.com/first"), USSM)
    assert first and first.alert_id
    assert world.deliver() == DeliveryReport(sent=1)
    (posted,) = world.slack.calls("chat.postMessage")
    assert posted.args["channel"] == "#ussm-watch"

    world.clock.advance(2)
    second = world.save(article("https://geo.tv/second", outlet="geo.tv", seed=2), USSM)
    assert second and second.alert_id
    world.slack.fail_next("drop")
    assert world.deliver() == DeliveryReport(retried=1)
    world.clock.advance(FIRST_RETRY.total_seconds())
    assert world.deliver() == DeliveryReport(sent=1)
    assert len(world.slack.messages("#ussm-watch")) == 2  # found, not posted twice
    (history,) = world.slack.calls("conversations.history")
    assert history.args["channel"] == world.slack.channel_id("#ussm-watch")


def test_a_row_waiting_for_an_unknown_channel_id_goes_soon_after_it_is_learned(
    world: World,
) -> None:
    """A restarted process that cannot list channels must check the history before re-posting
    a dropped message, and cannot until a message posted there teaches it the channel's ID. It
    looks again every ID_WAIT, a wait that does not grow: once the ID is learned the row goes
    within ID_WAIT, however long it had been waiting."""
    world.slack.fail_next("api_error", 100, method="conversations.list", error="unknown_method")
    first = world.save(article("https://dawn.com/dropped"), USSM)
    assert first and first.alert_id
    world.slack.fail_next("drop")  # Slack takes the message; its answer never comes back
    assert world.deliver() == DeliveryReport(retried=1)

    restarted = world.slack_notifier()  # knows no channel IDs, and cannot list them
    for _ in range(6):  # three minutes of looking: still waiting, and never posted again
        world.clock.advance(max(FIRST_RETRY, ID_WAIT).total_seconds())
        assert world.deliver(restarted) == DeliveryReport(retried=1)
    row = world.row(first.alert_id, "slack:#ussm-watch")
    assert row.state == "pending" and row.attempts == 1
    assert row.next_attempt_at == world.clock() + ID_WAIT

    # Another alert to the channel is posted (it needs no check) and teaches the ID.
    world.clock.advance(1)
    second = world.save(article("https://geo.tv/second", outlet="geo.tv", seed=2), USSM)
    assert second and second.alert_id
    assert world.deliver(restarted) == DeliveryReport(sent=1)
    world.clock.advance(ID_WAIT.total_seconds())
    assert world.deliver(restarted) == DeliveryReport(sent=1)  # found in the history
    assert len(world.slack.messages("#ussm-watch")) == 2  # the dropped one was not re-posted
    assert world.row(first.alert_id, "slack:#ussm-watch").state == "sent"


def test_a_notifier_after_a_config_reload_keeps_the_channel_ids_slack_taught(
    world: World,
) -> None:
    """A bot without channels:read learns a channel's ID from Slack's answers only; the
    notifier a config reload builds adopts them, so a dropped message can still be looked for
    in the history at once instead of waiting for another message to teach the ID again."""
    world.slack.fail_next("api_error", 100, method="conversations.list", error="unknown_method")
    first = world.save(article("https://dawn.com/first"), USSM)
    assert first and first.alert_id
    assert world.deliver() == DeliveryReport(sent=1)  # its answer taught the channel's ID
    world.clock.advance(2)
    second = world.save(article("https://geo.tv/second", outlet="geo.tv", seed=2), USSM)
    assert second and second.alert_id
    world.slack.fail_next("drop")
    assert world.deliver() == DeliveryReport(retried=1)

    reloaded = world.slack_notifier()
    reloaded.adopt(world.notifier)  # type: ignore[arg-type]
    world.clock.advance(FIRST_RETRY.total_seconds())
    assert world.deliver(reloaded) == DeliveryReport(sent=1)  # found in the history
    assert len(world.slack.messages("#ussm-watch")) == 2
    assert len(world.slack.calls("conversations.history")) == 1
