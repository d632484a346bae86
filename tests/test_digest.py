"""The daily digest on SQLite and PostgreSQL, sent to a real SMTP server on 127.0.0.1: what it
holds, how it looks (golden files), that it covers everything and is never sent twice, and the
`monitor digest` command."""

from __future__ import annotations

import email.policy
import logging
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from monitor.config import Config, Settings, Source
from monitor.models import SourceState, Topic
from monitor.notify.digest import (
    Digest,
    DigestResult,
    build_digest,
    digest_email,
    digest_message_id,
    recover_interrupted_digests,
    render_html,
    render_text,
    send_digest_now,
    send_due_digest,
)
from monitor.notify.email import SmtpSender
from monitor.store import Store
from tests.conftest import PROJECT_ROOT
from tests.smtp import SmtpServer, TlsFiles
from tests.stories import match, save_alert

GOLDEN = Path(__file__).parent / "data" / "digest"
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"

# 08:00 in Karachi (UTC+5), the default digest.at, on 23 Nov 2026.
NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
DAY = timedelta(days=1)
TOPICS = (
    Topic("balochistan", ("Baloch*",)),
    Topic("rare-earth", ("rare earth",)),
    Topic("ussm", ("USSM",)),
)
SOURCES = (
    Source(name="dawn", url="https://dawn.com/feed"),
    Source(name="tribune", url="https://tribune.com.pk/feed"),
    Source(
        name="gnews-ussm",
        type="google_news",
        url="https://news.google.com/rss/search?q=USSM",
        query="USSM",
    ),
    Source(name="old-feed", url="https://old.example.org/feed", enabled=False),
    Source(name="frozen", url="https://frozen.example.org/feed"),
)


def make_config(tmp_path: Path, server: SmtpServer | None = None, **email: Any) -> Config:
    email_settings = server.settings(**email) if server else None
    settings = Settings(timezone="Asia/Karachi", email=email_settings)
    return Config(tmp_path, settings, SOURCES, TOPICS, "test")


def sender_for(server: SmtpServer, tls: TlsFiles) -> SmtpSender:
    return SmtpSender(server.settings(), environ=server.environ, ssl_context=tls.client_context())


def a_story(store: Store, key: str, at: datetime, **changes: Any) -> None:
    """One story alert, about USSM unless told otherwise."""
    values: dict[str, Any] = {
        "url": f"https://dawn.com/news/{key}",
        "title": f"Story {key}",
        "at": at,
        "matches": [match("ussm", f"Story {key} is about USSM.", "USSM")],
    }
    values.update(changes)
    save_alert(store, **values)


def titles(digest: Digest) -> set[str]:
    return {item.title for section in digest.sections for item in section.items}


def sent_titles(received: EmailMessage) -> str:
    text = received.get_body(("plain",))
    assert text is not None
    return str(text.get_content())


# --- a fixed world for the golden files ---------------------------------------------------------


def the_world(store: Store) -> None:
    """Stories around NOW: four in the period (one with follow-ups, one with markup in its
    text, one older story with a new follow-up), one before it, one inside SETTLE; sources in
    every state."""
    h = timedelta(hours=1)
    # Before the period (which starts 24h before NOW less a minute): not listed by itself...
    save_alert(
        store,
        url="https://dawn.com/news/older",
        title="Older story: Balochistan mining lease renewed",
        at=NOW - 40 * h,
        published=NOW - 41 * h,
        matches=[match("balochistan", "The Balochistan lease was renewed.", "Balochistan")],
        story="older",
    )
    # ...but a new outlet's follow-up in the period brings it back, with both outlets.
    save_alert(
        store,
        url="https://www.thenews.com.pk/older",
        title="Balochistan lease renewed for ten years",
        outlet="thenews.com.pk",
        at=NOW - 20 * h,
        matches=[match("balochistan", "Balochistan's lease runs ten more years.", "Balochistan")],
        story="older",
    )
    save_alert(
        store,
        url="https://dawn.com/news/baloch-activists",
        title="Baloch activists: the minerals shown at the White House are ours",
        at=NOW - 21 * h,
        published=NOW - 21 * h - timedelta(minutes=25),
        matches=[
            match("balochistan", "Baloch activists say the minerals are theirs.", "Baloch"),
            match("rare-earth", "The rare earth samples came from Balochistan.", "rare earth"),
        ],
        story="activists",
    )
    save_alert(
        store,
        url="https://tribune.com.pk/story/activists",
        title="Activists claim minerals displayed in Washington",
        outlet="tribune.com.pk",
        at=NOW - 17 * h,
        matches=[match("rare-earth", "Rare earth ore, activists said, is Baloch.", "Rare earth")],
        story="activists",
    )
    save_alert(
        store,
        url="https://dawn.com/news/consignment",
        title="Pakistan ships first consignment under USSM memorandum",
        at=NOW - 7 * h,
        published=NOW - 7 * h - timedelta(minutes=20),
        matches=[
            match("rare-earth", "The consignment holds rare earth concentrate.", "rare earth"),
            match(
                "ussm",
                "Pakistan shipped it to US Strategic Metals (USSM).",
                "USSM",
                "US Strategic Metals",
            ),
        ],
        story="consignment",
    )
    for outlet, hours in (("geo.tv", 6), ("thenews.com.pk", 5)):
        save_alert(
            store,
            url=f"https://{outlet}/consignment",
            title="First minerals consignment leaves for the US",
            outlet=outlet,
            at=NOW - hours * h,
            matches=[match("ussm", "The USSM deal's first shipment left.", "USSM")],
            story="consignment",
        )
    save_alert(
        store,
        url="https://express.pk/markup",
        title="Markets & <b>bold</b> claims <script>alert('x')</script> on Balochistan",
        outlet="express.pk",
        at=NOW - 2 * h,
        matches=[
            match("balochistan", "<i>Balochistan</i> & the <b>markets</b> moved.", "Balochistan")
        ],
        story="markup",
    )
    # Inside SETTLE: it goes in the next digest, not this one.
    save_alert(
        store,
        url="https://dawn.com/news/late",
        title="Too late for this digest",
        at=NOW - timedelta(seconds=30),
        matches=[match("ussm", "USSM again.", "USSM")],
    )
    store.save_source_state(SourceState(name="dawn", polls_total=40, last_success_at=NOW - h))
    store.save_source_state(
        SourceState(
            name="tribune",
            polls_total=30,
            consecutive_failures=3,
            last_error="HTTP 503",
            last_success_at=NOW - 9 * h,
        )
    )
    store.save_source_state(
        SourceState(
            name="gnews-ussm",
            polls_total=12,
            consecutive_failures=12,
            parked=True,
            last_error="timed out after 30s <fetch>",
        )
    )
    store.save_source_state(
        SourceState(name="old-feed", polls_total=3, consecutive_failures=3, last_error="HTTP 404")
    )
    # Answers every poll, but has published nothing for 4 days though it usually does hourly.
    store.save_source_state(
        SourceState(
            name="frozen",
            polls_total=200,
            last_success_at=NOW - h,
            last_new_item_at=NOW - 4 * DAY,
            typical_gap_seconds=3600,
        )
    )


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert actual == path.read_text(encoding="utf-8"), (
        f"{name} changed; if on purpose, run with UPDATE_GOLDEN=1 and review the diff"
    )


def test_the_digest_matches_the_golden_files(store: Store, tmp_path: Path) -> None:
    the_world(store)
    digest = build_digest(store, make_config(tmp_path), NOW)
    check_golden("golden.txt", render_text(digest))
    check_golden("golden.html", render_html(digest))


def test_stories_are_grouped_by_topic_each_once_with_every_outlet(
    store: Store, tmp_path: Path
) -> None:
    the_world(store)
    digest = build_digest(store, make_config(tmp_path), NOW)
    assert digest.subject == "News digest for 23 Nov 2026: 4 stories"
    assert digest.story_count == 4
    sections = {
        s.topic: [(i.title, [o.name for o in i.outlets]) for i in s.items] for s in digest.sections
    }
    assert list(sections) == ["balochistan", "rare-earth", "ussm"]  # keywords.yaml's order
    consignment = (
        "Pakistan ships first consignment under USSM memorandum",
        ["dawn.com", "geo.tv", "thenews.com.pk"],
    )
    activists = (
        "Baloch activists: the minerals shown at the White House are ours",
        ["dawn.com", "tribune.com.pk"],
    )
    assert sections["ussm"] == [consignment]
    assert sections["rare-earth"] == [consignment, activists]  # newest first
    assert [title for title, _ in sections["balochistan"]] == [
        "Markets & <b>bold</b> claims <script>alert('x')</script> on Balochistan",
        "Baloch activists: the minerals shown at the White House are ours",
        "Older story: Balochistan mining lease renewed",
    ]
    assert sections["balochistan"][2][1] == ["dawn.com", "thenews.com.pk"]
    # Each section shows the sentence of its own topic.
    rare_earth = {
        i.title: i.sentence for s in digest.sections if s.topic == "rare-earth" for i in s.items
    }
    assert rare_earth[consignment[0]] == "The consignment holds rare earth concentrate."
    assert "Too late for this digest" not in titles(digest)


def test_failing_sources_are_listed_with_their_last_error(store: Store, tmp_path: Path) -> None:
    the_world(store)
    failing = build_digest(store, make_config(tmp_path), NOW).failing_sources
    assert [(f.name, f.status) for f in failing] == [
        ("tribune", "failing"),
        ("gnews-ussm", "parked"),
        ("frozen", "quiet"),
    ]
    assert failing[2].detail == "no new item for 4d (usually one every 1h)"
    assert failing[0].detail == "3 failure(s) in a row: HTTP 503"
    assert failing[0].last_success == NOW - timedelta(hours=9)  # shown as 23:00 in Karachi
    assert failing[1].last_success is None
    # A disabled source is not failing, however it did before.
    assert "old-feed" not in {f.name for f in failing}


class Elements(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.text = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)

    def handle_data(self, data: str) -> None:
        self.text += data


def test_article_markup_shows_as_text_in_the_html(store: Store, tmp_path: Path) -> None:
    the_world(store)
    html = render_html(build_digest(store, make_config(tmp_path), NOW))
    seen = Elements(html)
    template_tags = {"html", "head", "meta", "title", "body", "h1", "h2", "p", "ul", "li", "div"}
    assert seen.tags <= template_tags | {"a", "span", "strong", "br"}
    assert not {"script", "b", "i"} & seen.tags
    assert "Markets & <b>bold</b> claims <script>alert('x')</script> on Balochistan" in seen.text
    assert "<i>Balochistan</i> & the <b>markets</b> moved." in seen.text
    assert "timed out after 30s <fetch>" in seen.text


def test_an_empty_period_says_no_new_stories(store: Store, tmp_path: Path) -> None:
    digest = build_digest(store, make_config(tmp_path), NOW)
    assert digest.subject == "News digest for 23 Nov 2026: no new stories"
    assert "\nNo new stories.\n" in render_text(digest)
    assert "<p>No new stories.</p>" in render_html(digest)


def test_the_subject_names_the_local_date(store: Store, tmp_path: Path) -> None:
    late_evening_utc = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)  # 01:00 on the 23rd in Karachi
    a_story(store, "a", late_evening_utc - timedelta(hours=2))
    digest = build_digest(store, make_config(tmp_path), late_evening_utc)
    assert digest.subject == "News digest for 23 Nov 2026: 1 story"


def test_since_overrides_the_period(store: Store, tmp_path: Path) -> None:
    a_story(store, "old", NOW - 30 * timedelta(hours=1))
    a_story(store, "new", NOW - timedelta(hours=1))
    config = make_config(tmp_path)
    assert titles(build_digest(store, config, NOW)) == {"Story new"}
    assert titles(build_digest(store, config, NOW, since=NOW - 2 * DAY)) == {
        "Story old",
        "Story new",
    }


# --- the email ----------------------------------------------------------------------------------


def test_the_digest_email_is_text_and_html_with_a_stable_message_id(
    store: Store, tmp_path: Path, smtp_server: SmtpServer, tls_files: TlsFiles
) -> None:
    the_world(store)
    config = make_config(tmp_path, smtp_server)
    result = send_due_digest(store, config, sender_for(smtp_server, tls_files), NOW)
    assert result.status == "sent"
    (got,) = smtp_server.received
    message = got.message
    assert got.rcpt_tos == ("team@example.org",)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert str(message["Subject"]).strip() == "News digest for 23 Nov 2026: 4 stories"
    assert config.settings.email is not None
    expected_id = digest_message_id(NOW.date(), config.settings.email)
    assert message["Message-ID"] == result.message_id == expected_id
    assert expected_id.startswith("<digest.2026-11-23.") and expected_id.endswith("@example.org>")
    digest = build_digest(store, config, NOW, since=NOW - DAY - timedelta(minutes=1))
    assert sent_titles(message) == render_text(digest)


def test_a_title_cannot_add_headers_to_the_digest(
    store: Store, tmp_path: Path, smtp_server: SmtpServer, tls_files: TlsFiles
) -> None:
    a_story(store, "evil", NOW - timedelta(hours=1), title="Hi\r\nBcc: victim@example.net\r\n\r\nX")
    config = make_config(tmp_path, smtp_server)
    send_due_digest(store, config, sender_for(smtp_server, tls_files), NOW)
    (got,) = smtp_server.received
    assert got.rcpt_tos == ("team@example.org",)
    head = got.raw.split(b"\r\n\r\n", 1)[0].decode()
    names = sorted(line.split(":", 1)[0] for line in head.split("\r\n") if line[:1] not in " \t")
    assert names == sorted(
        [
            "Subject",
            "From",
            "To",
            "Date",
            "Message-ID",
            "Auto-Submitted",
            "MIME-Version",
            "Content-Type",
        ]
    )
    assert "* Hi Bcc: victim@example.net X\n" in sent_titles(got.message)


# --- when it goes out, and only once -------------------------------------------------------------


def test_nothing_goes_out_before_digest_at_or_without_email(
    store: Store, tmp_path: Path, smtp_server: SmtpServer, tls_files: TlsFiles
) -> None:
    sender = sender_for(smtp_server, tls_files)
    config = make_config(tmp_path, smtp_server)
    early = NOW - timedelta(minutes=1)
    assert send_due_digest(store, config, sender, early) == DigestResult("not_due", "2026-11-23")
    no_email = make_config(tmp_path)
    assert send_due_digest(store, no_email, sender, NOW).status == "not_configured"
    nobody = make_config(tmp_path, smtp_server, digest={"to": []})
    assert send_due_digest(store, nobody, sender, NOW).status == "not_configured"
    assert store.digest_on("2026-11-23") is None
    assert smtp_server.received == []


def test_called_every_minute_it_sends_once_a_day(
    store: Store, tmp_path: Path, smtp_server: SmtpServer, tls_files: TlsFiles
) -> None:
    a_story(store, "a", NOW - timedelta(hours=3))
    config = make_config(tmp_path, smtp_server)
    sender = sender_for(smtp_server, tls_files)
    statuses = [
        send_due_digest(store, config, sender, NOW + timedelta(minutes=m)).status for m in range(5)
    ]
    assert statuses == ["sent"] + ["already_sent"] * 4
    assert len(smtp_server.received) == 1
    record = store.digest_on("2026-11-23")
    assert record is not None
    assert (record.state, record.attempts, record.story_count, record.sent_at) == (
        "sent",
        1,
        1,
        NOW,
    )


def test_two_processes_at_once_send_it_once(
    store: Store, database_url: str, tmp_path: Path, smtp_server: SmtpServer, tls_files: TlsFiles
) -> None:
    a_story(store, "a", NOW - timedelta(hours=3))
    config = make_config(tmp_path, smtp_server)
    stores = [store, Store.open(database_url), Store.open(database_url), Store.open(database_url)]
    barrier = threading.Barrier(len(stores))
    results: list[DigestResult] = []

    def process(own: Store) -> None:
        barrier.wait()
        results.append(send_due_digest(own, config, sender_for(smtp_server, tls_files), NOW))

    threads = [threading.Thread(target=process, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for other in stores[1:]:
        other.close()
    assert sorted(r.status for r in results).count("sent") == 1
    assert {r.status for r in results} <= {"sent", "already_sent", "in_flight"}
    assert len(smtp_server.received) == 1


class DiesMidSend:
    """Delivers the message, then the process "dies" before it can record that."""

    def __init__(self, sender: SmtpSender) -> None:
        self.sender = sender

    def send(self, message: EmailMessage) -> None:
        self.sender.send(message)
        raise SystemExit("killed")


def test_a_digest_interrupted_mid_send_is_never_sent_again_and_nothing_is_lost(
    store: Store,
    tmp_path: Path,
    smtp_server: SmtpServer,
    tls_files: TlsFiles,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config(tmp_path, smtp_server)
    sender = sender_for(smtp_server, tls_files)
    a_story(store, "day1", NOW - timedelta(hours=2))
    assert send_due_digest(store, config, sender, NOW).status == "sent"
    a_story(store, "day2", NOW + timedelta(hours=2))
    with pytest.raises(SystemExit):
        send_due_digest(store, config, DiesMidSend(sender), NOW + DAY)
    assert store.digest_on("2026-11-24").state == "sending"  # type: ignore[union-attr]

    # The service starts again.
    caplog.set_level(logging.WARNING)
    (interrupted,) = recover_interrupted_digests(store)
    assert interrupted.digest_date == "2026-11-24"
    assert "digest_interrupted" in caplog.text
    later = NOW + DAY + timedelta(minutes=5)
    assert send_due_digest(store, config, sender, later).status == "unknown"
    assert send_digest_now(store, config, sender, later).status == "unknown"
    assert len(smtp_server.received) == 2  # day 1's, and day 2's that "died" after sending

    # Day 3 covers everything since day 1's digest, the last one known to be sent.
    a_story(store, "day3", NOW + DAY + timedelta(hours=2))
    assert send_due_digest(store, config, sender, NOW + 2 * DAY).status == "sent"
    day3 = sent_titles(smtp_server.received[-1].message)
    assert "Story day2" in day3 and "Story day3" in day3 and "Story day1" not in day3


def test_consecutive_digests_cover_back_to_back_periods(
    store: Store, tmp_path: Path, smtp_server: SmtpServer, tls_files: TlsFiles
) -> None:
    config = make_config(tmp_path, smtp_server)
    sender = sender_for(smtp_server, tls_files)
    a_story(store, "before", NOW - timedelta(hours=1))
    send_due_digest(store, config, sender, NOW)
    a_story(store, "between", NOW + timedelta(hours=1))
    # Seen by the poller inside the first digest's SETTLE minute: in the second digest.
    a_story(store, "edge", NOW - timedelta(seconds=20))
    send_due_digest(store, config, sender, NOW + DAY + timedelta(minutes=3))
    first, second = (sent_titles(r.message) for r in smtp_server.received)
    assert "Story before" in first and "Story between" not in first and "Story edge" not in first
    assert "Story between" in second and "Story edge" in second and "Story before" not in second
    day1, day2 = store.digest_on("2026-11-23"), store.digest_on("2026-11-24")
    assert day1 is not None and day2 is not None
    assert day2.period_start == day1.period_end


def test_a_day_of_downtime_loses_nothing(
    store: Store, tmp_path: Path, smtp_server: SmtpServer, tls_files: TlsFiles
) -> None:
    config = make_config(tmp_path, smtp_server)
    sender = sender_for(smtp_server, tls_files)
    send_due_digest(store, config, sender, NOW)
    a_story(store, "monday", NOW + timedelta(hours=5))
    # The service is down all of the 24th: no digest that day.
    a_story(store, "tuesday", NOW + DAY + timedelta(hours=5))
    result = send_due_digest(store, config, sender, NOW + 2 * DAY + timedelta(hours=3))
    assert result.status == "sent" and result.story_count == 2
    assert store.digest_on("2026-11-24") is None
    last = sent_titles(smtp_server.received[-1].message)
    assert "Story monday" in last and "Story tuesday" in last


def test_an_empty_digest_is_sent_so_people_know_it_is_alive(
    store: Store, tmp_path: Path, smtp_server: SmtpServer, tls_files: TlsFiles
) -> None:
    config = make_config(tmp_path, smtp_server)
    result = send_due_digest(store, config, sender_for(smtp_server, tls_files), NOW)
    assert (result.status, result.story_count) == ("sent", 0)
    assert "No new stories." in sent_titles(smtp_server.received[0].message)


def test_a_temporary_failure_is_retried_with_a_back_off(
    store: Store, tmp_path: Path, smtp_server: SmtpServer, tls_files: TlsFiles
) -> None:
    config = make_config(tmp_path, smtp_server)
    sender = sender_for(smtp_server, tls_files)
    smtp_server.fail_next("451 4.3.0 Try again later")
    first = send_due_digest(store, config, sender, NOW)
    assert first.status == "retry" and "451 4.3.0 Try again later" in (first.error or "")
    record = store.digest_on("2026-11-23")
    assert record is not None
    assert (record.state, record.attempts) == ("pending", 1)
    assert "451" in (record.last_error or "")
    assert send_due_digest(store, config, sender, NOW + timedelta(seconds=10)).status == "waiting"
    assert send_due_digest(store, config, sender, NOW + timedelta(seconds=30)).status == "sent"
    assert len(smtp_server.received) == 1
    record = store.digest_on("2026-11-23")
    assert record is not None and (record.state, record.attempts, record.last_error) == (
        "sent",
        2,
        None,
    )


def test_a_refused_connection_is_retried(
    store: Store,
    tmp_path: Path,
    smtp_server: SmtpServer,
    tls_files: TlsFiles,
    closed_port: int,
) -> None:
    config = make_config(tmp_path, smtp_server)
    down = SmtpSender(
        smtp_server.settings(smtp_port=closed_port),
        environ={},
        ssl_context=tls_files.client_context(),
    )
    assert send_due_digest(store, config, down, NOW).status == "retry"
    later = NOW + timedelta(minutes=1)
    assert (
        send_due_digest(store, config, sender_for(smtp_server, tls_files), later).status == "sent"
    )


def test_a_permanent_failure_is_not_retried_until_someone_sends_it_by_hand(
    store: Store,
    tmp_path: Path,
    smtp_server: SmtpServer,
    tls_files: TlsFiles,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config(tmp_path, smtp_server)
    sender = sender_for(smtp_server, tls_files)
    smtp_server.fail_next("550 5.7.1 Relaying denied")
    result = send_due_digest(store, config, sender, NOW)
    assert result.status == "failed" and "550 5.7.1 Relaying denied" in (result.error or "")
    assert any(
        r.levelno == logging.ERROR and r.getMessage() == "digest_failed" for r in caplog.records
    )
    later = NOW + timedelta(hours=2)
    assert send_due_digest(store, config, sender, later).status == "failed"
    assert smtp_server.received == []
    assert send_digest_now(store, config, sender, later).status == "sent"
    assert send_digest_now(store, config, sender, later).status == "already_sent"
    assert len(smtp_server.received) == 1


def test_yesterdays_unsent_digest_is_superseded_and_its_stories_go_in_todays(
    store: Store, tmp_path: Path, smtp_server: SmtpServer, tls_files: TlsFiles
) -> None:
    config = make_config(tmp_path, smtp_server)
    sender = sender_for(smtp_server, tls_files)
    a_story(store, "first", NOW - timedelta(hours=4))
    smtp_server.fail_next("421 4.7.0 Service not available", times=1)
    assert send_due_digest(store, config, sender, NOW).status == "retry"
    # The SMTP server stays away for the rest of the day; the next morning:
    a_story(store, "second", NOW + timedelta(hours=4))
    assert send_due_digest(store, config, sender, NOW + DAY).status == "sent"
    yesterday = store.digest_on("2026-11-23")
    assert yesterday is not None and yesterday.state == "failed"
    assert "the digest of 2026-11-24 covers its period" in (yesterday.last_error or "")
    (got,) = smtp_server.received
    assert "Story first" in sent_titles(got.message) and "Story second" in sent_titles(got.message)
    assert (
        send_due_digest(store, config, sender, NOW + DAY + timedelta(hours=1)).status
        == "already_sent"
    )


def test_sending_by_hand_before_digest_at_is_the_days_digest(
    store: Store, tmp_path: Path, smtp_server: SmtpServer, tls_files: TlsFiles
) -> None:
    config = make_config(tmp_path, smtp_server)
    sender = sender_for(smtp_server, tls_files)
    early = NOW - timedelta(hours=2)
    assert send_digest_now(store, config, sender, early).status == "sent"
    assert send_due_digest(store, config, sender, NOW).status == "already_sent"
    a_story(store, "after", NOW - timedelta(hours=1))
    assert send_due_digest(store, config, sender, NOW + DAY).status == "sent"
    assert "Story after" in sent_titles(smtp_server.received[-1].message)


def test_the_digest_email_helper_needs_no_store(tmp_path: Path, smtp_server: SmtpServer) -> None:
    digest = Digest(NOW.date(), "Asia/Karachi", NOW - DAY, NOW, (), (), 0, "News digest")
    message = digest_email(digest, smtp_server.settings(), "<x@example.org>", NOW)
    assert message["To"] == "team@example.org"
    assert message.policy.linesep == email.policy.SMTP.linesep


# --- monitor digest -----------------------------------------------------------------------------

KEYWORDS_YAML = """topics:
  ussm:
    keywords: [USSM]
"""
SOURCES_YAML = """sources:
  - name: dawn
    url: https://dawn.com/feed
"""


def write_config_dir(directory: Path, server: SmtpServer | None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "keywords.yaml").write_text(KEYWORDS_YAML)
    (directory / "sources.yaml").write_text(SOURCES_YAML)
    settings = "timezone: Asia/Karachi\n"
    if server is not None:
        settings += (
            "email:\n"
            f"  smtp_host: {server.host}\n"
            f"  smtp_port: {server.port}\n"
            "  security: starttls\n"
            '  from: "News Monitor <monitor@example.org>"\n'
            "  digest:\n"
            "    to: [team@example.org]\n"
            '    at: "08:00"\n'
        )
    (directory / "settings.yaml").write_text(settings)
    return directory


def monitor(
    config_dir: Path, database_url: str, server: SmtpServer | None, tls: TlsFiles, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SMTP_", "MONITOR_", "SSL_CERT"))
    }
    env.update(
        MONITOR_DATABASE_URL=database_url,
        SSL_CERT_FILE=str(tls.ca),  # how a private CA is trusted: the stdlib default context
        **(server.environ if server else {}),
    )
    return subprocess.run(
        [sys.executable, "-m", "monitor", "digest", "--config", str(config_dir), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=120,
        check=False,
    )


def test_monitor_digest_prints_what_would_go_out(
    store: Store, database_url: str, tmp_path: Path, smtp_server: SmtpServer, tls_files: TlsFiles
) -> None:
    a_story(store, "printed", datetime.now(UTC) - timedelta(hours=1))
    config_dir = write_config_dir(tmp_path / "config", smtp_server)
    run = monitor(config_dir, database_url, smtp_server, tls_files)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("Subject: News digest for ")
    assert ": 1 story\n" in run.stdout.splitlines()[0] + "\n"
    assert "* Story printed\n" in run.stdout
    assert "> Story printed is about USSM." in run.stdout
    assert smtp_server.received == []


def test_monitor_digest_send_sends_once(
    store: Store, database_url: str, tmp_path: Path, smtp_server: SmtpServer, tls_files: TlsFiles
) -> None:
    a_story(store, "sent", datetime.now(UTC) - timedelta(hours=1))
    config_dir = write_config_dir(tmp_path / "config", smtp_server)
    first = monitor(config_dir, database_url, smtp_server, tls_files, "--send")
    assert first.returncode == 0, first.stderr
    assert "sent to 1 recipient(s): News digest for" in first.stdout
    again = monitor(config_dir, database_url, smtp_server, tls_files, "--send")
    assert again.returncode == 0, again.stderr
    assert "was already sent" in again.stdout and "never sent twice" in again.stdout
    (got,) = smtp_server.received
    assert "* Story sent" in sent_titles(got.message)
    assert got.authenticated_as == "monitor" and got.tls

    # An extra one-off digest of a period, asked for explicitly, goes out as a new message.
    extra = monitor(config_dir, database_url, smtp_server, tls_files, "--send", "--since", "2h")
    assert extra.returncode == 0, extra.stderr
    assert "sent an extra digest of the last 2h" in extra.stdout
    first_id, extra_id = (r.message["Message-ID"] for r in smtp_server.received)
    assert first_id != extra_id
    assert smtp_server.environ["SMTP_PASSWORD"] not in first.stdout + first.stderr


def test_monitor_digest_send_exits_1_when_the_server_refuses(
    store: Store, database_url: str, tmp_path: Path, smtp_server: SmtpServer, tls_files: TlsFiles
) -> None:
    config_dir = write_config_dir(tmp_path / "config", smtp_server)
    smtp_server.fail_next("554 5.7.1 Sender blocked")
    run = monitor(config_dir, database_url, smtp_server, tls_files, "--send")
    assert run.returncode == 1
    assert "sending failed: SMTP server 127.0.0.1" in run.stderr
    assert "554 5.7.1 Sender blocked" in run.stderr
    # No credentials in the environment, and the server requires a login.
    no_login = monitor(config_dir, database_url, None, tls_files, "--send")
    assert no_login.returncode == 1
    assert "530 5.7.0 Authentication required" in no_login.stderr


def test_monitor_digest_without_email_says_so(
    database_url: str, tmp_path: Path, tls_files: TlsFiles
) -> None:
    config_dir = write_config_dir(tmp_path / "config", None)
    preview = monitor(config_dir, database_url, None, tls_files)
    assert preview.returncode == 0
    assert "No new stories." in preview.stdout
    assert "email is not configured" in preview.stderr
    send = monitor(config_dir, database_url, None, tls_files, "--send")
    assert send.returncode == 1
    assert "cannot send: email is not configured" in send.stderr


def test_monitor_digest_on_an_invalid_config_exits_2(
    database_url: str, tmp_path: Path, tls_files: TlsFiles
) -> None:
    config_dir = write_config_dir(tmp_path / "config", None)
    (config_dir / "settings.yaml").write_text("email:\n  digest:\n    to: [nobody]\n")
    run = monitor(config_dir, database_url, None, tls_files, "--send")
    assert run.returncode == 2
    assert "settings.yaml:3: email.digest.to.0: 'nobody' is not one email address" in run.stderr
