"""The daily email digest: what it holds, how it looks, and how it is sent once and only once.

    build_digest(store, config, now)          the stories since the last sent digest, grouped by
                                              topic, and the failing sources -> Digest (frozen)
    render_text / render_html / digest_email  the Digest as text/plain + text/html
    send_due_digest(store, config, sender, now)   called every minute by `monitor run`
    send_digest_now(store, config, sender, now)   `monitor digest --send`
    recover_interrupted_digests(store)        once at start-up, before the first send

Never sent twice, nothing lost:
- A day's digest is recorded (pending, with its period and a stable Message-ID) in its own
  transaction before anything is sent. `digests.digest_date` is unique, so two processes never
  both record, nor both send, one local day's digest.
- One process claims it (pending -> sending), sends it, and marks it sent. A temporary SMTP
  failure puts it back to pending, retried with a back-off while that day lasts; a permanent
  one marks it failed.
- A digest still `sending` at start-up was being sent by a process that died: it may or may not
  have arrived, so it is marked `unknown` and never sent again.
- Every digest covers the time since the end of the last digest known to be *sent*, so the
  stories of a failed, unknown or never-built digest (the service was down) are in the next.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from email.message import EmailMessage
from typing import Literal
from zoneinfo import ZoneInfo

from monitor.config import Config, EmailSettings
from monitor.errors import PermanentDeliveryError, TemporaryDeliveryError
from monitor.health import source_health
from monitor.logs import event
from monitor.notify.email import (
    MailSender,
    compose,
    format_day,
    highlight,
    one_line,
    render,
    safe_link,
    stable_message_id,
)
from monitor.notify.outbox import retry_delay
from monitor.store import DigestRecord, DigestStory, Store

log = logging.getLogger(__name__)

FIRST_PERIOD = timedelta(hours=24)  # what the first digest ever covers
# A digest's period ends this long before it is built. An alert is stamped with the poller's
# clock just before its transaction commits; one still waiting for the database when the digest
# is built commits a moment later with an earlier time. Ending the period a minute back leaves
# such an alert to the next digest instead of losing it.
SETTLE = timedelta(minutes=1)


# --- what a digest holds ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestOutlet:
    """One outlet that carried a story: the first one, or another's follow-up."""

    name: str
    link: str | None  # None when the article's link is not http(s)
    followup: bool


@dataclass(frozen=True, slots=True)
class DigestItem:
    """A story in one topic's section. Text is cleaned to one line; HTML escaping is the
    template's job."""

    story_id: int
    title: str
    link: str | None
    when: datetime  # local: the first article's published time, else when it was first seen
    outlets: tuple[DigestOutlet, ...]
    sentence: str  # the sentence around the topic's first matched word
    parts: tuple[tuple[str, bool], ...]  # the sentence as (text, is a matched word)


@dataclass(frozen=True, slots=True)
class TopicSection:
    topic: str
    items: tuple[DigestItem, ...]  # newest story first


@dataclass(frozen=True, slots=True)
class FailingSource:
    name: str
    status: str  # failing | parked
    detail: str  # failures in a row and the last error
    last_success: datetime | None  # local


@dataclass(frozen=True, slots=True)
class Digest:
    """One digest, ready to render: the stories first alerted in [period_start, period_end)."""

    day: date  # the local day it goes out
    timezone: str
    period_start: datetime  # UTC
    period_end: datetime  # UTC
    sections: tuple[TopicSection, ...]  # in keywords.yaml's order
    failing_sources: tuple[FailingSource, ...]
    story_count: int  # distinct stories (a story in two topics counts once)
    subject: str


def digest_subject(day: date, story_count: int) -> str:
    """`News digest for 23 Nov 2026: 5 stories`."""
    if story_count == 0:
        stories = "no new stories"
    else:
        stories = f"{story_count} {'story' if story_count == 1 else 'stories'}"
    return f"News digest for {format_day(day)}: {stories}"


def digest_period(
    store: Store, now: datetime, since: datetime | None = None
) -> tuple[datetime, datetime]:
    """(start, end) of the digest built at `now`: from `since` when given, else from where the
    last sent digest ended (see `Store.next_digest_start`), else 24 hours back; to `now` less
    SETTLE."""
    end = now - SETTLE
    start = since or store.next_digest_start() or end - FIRST_PERIOD
    return min(start, end), end


def build_digest(
    store: Store, config: Config, now: datetime, since: datetime | None = None
) -> Digest:
    """The digest that would go out at `now`: everything since the previous sent digest (or
    since `since`; the first digest ever covers the last 24 hours)."""
    start, end = digest_period(store, now, since)
    return compose_digest(
        store, config, now.astimezone(config.settings.zone).date(), start, end, now
    )


def compose_digest(
    store: Store, config: Config, day: date, start: datetime, end: datetime, now: datetime
) -> Digest:
    """The digest of `day` covering [start, end); source health as of `now`."""
    zone = config.settings.zone
    order = {topic.name: index for index, topic in enumerate(config.topics)}
    by_topic: dict[str, list[DigestItem]] = {}
    stories = store.digest_stories(start, end)
    for story in reversed(stories):  # newest first in every section
        for topic, item in _items(story, zone):
            by_topic.setdefault(topic, []).append(item)
    sections = tuple(
        TopicSection(topic, tuple(items))
        # Topics no longer in keywords.yaml (renamed, removed) still show, after the others.
        for topic, items in sorted(
            by_topic.items(), key=lambda pair: (order.get(pair[0], len(order)), pair[0])
        )
    )
    return Digest(
        day=day,
        timezone=config.settings.timezone,
        period_start=start,
        period_end=end,
        sections=sections,
        failing_sources=_failing_sources(store, config, now),
        story_count=len(stories),
        subject=digest_subject(day, len(stories)),
    )


def _items(story: DigestStory, zone: tzinfo) -> list[tuple[str, DigestItem]]:
    """The story's entry in each topic section it belongs to."""
    outlets = tuple(
        DigestOutlet(one_line(a.outlet), safe_link(a.link), a.kind == "followup")
        for a in story.alerts
    )
    first = story.alerts[0]
    when = (first.published or first.first_seen).astimezone(zone)
    topics = sorted({topic for alert in story.alerts for topic in alert.topics})
    items = []
    for topic in topics:
        # The sentence of the first outlet that matched this topic.
        match = next((m for a in story.alerts for m in a.matches if m.topic == topic), None)
        sentence = one_line(match.sentence) if match else ""
        item = DigestItem(
            story_id=story.story_id,
            title=one_line(story.title) or "(untitled)",
            link=safe_link(story.link),
            when=when,
            outlets=outlets,
            sentence=sentence,
            parts=highlight(sentence, match.words if match else ()),
        )
        items.append((topic, item))
    return items


def _failing_sources(store: Store, config: Config, now: datetime) -> tuple[FailingSource, ...]:
    states = store.source_states()
    failing = []
    for source in config.sources:
        state = states.get(source.name)
        health = source_health(state, enabled=source.enabled, now=now)
        if health.status in ("failing", "parked", "quiet"):
            last = state.last_success_at if state else None
            failing.append(
                FailingSource(
                    name=source.name,
                    status=health.status,
                    detail=one_line(health.detail, 300),
                    last_success=last.astimezone(config.settings.zone) if last else None,
                )
            )
    return tuple(failing)


# --- how it looks ------------------------------------------------------------------------------


def render_text(digest: Digest) -> str:
    """The text/plain part (also what `monitor digest` prints)."""
    return render("digest.txt.j2", digest=digest, **_period(digest))


def render_html(digest: Digest) -> str:
    """The text/html part: every piece of article text escaped."""
    return render("digest.html.j2", digest=digest, **_period(digest))


def _period(digest: Digest) -> dict[str, datetime]:
    zone = ZoneInfo(digest.timezone)
    return {
        "start": digest.period_start.astimezone(zone),
        "end": digest.period_end.astimezone(zone),
    }


def digest_message_id(day: date, settings: EmailSettings) -> str:
    """The Message-ID of a day's digest: the same for every attempt to send it."""
    return stable_message_id("digest", day.isoformat(), settings)


def digest_email(
    digest: Digest, settings: EmailSettings, message_id: str, now: datetime
) -> EmailMessage:
    """The digest as an email to `email.digest.to`."""
    return compose(
        settings,
        to=settings.digest.to,
        subject=digest.subject,
        text=render_text(digest),
        html=render_html(digest),
        message_id=message_id,
        date=now,
    )


# --- sending it once ---------------------------------------------------------------------------

DigestStatus = Literal[
    "not_configured",  # no `email:` section, or no digest.to
    "not_due",  # before digest.at today
    "sent",  # sent now
    "already_sent",  # today's was sent before
    "in_flight",  # another process is sending today's (or died doing so: see `unknown`)
    "unknown",  # a process died while sending today's: it may have arrived; not sent again
    "waiting",  # a temporary failure earlier; the next attempt is not due yet
    "retry",  # a temporary failure now; retried later today
    "failed",  # a permanent failure (now or earlier); `monitor digest --send` retries
]


@dataclass(frozen=True, slots=True)
class DigestResult:
    """What a call to send today's digest did."""

    status: DigestStatus
    digest_date: str | None = None
    message_id: str | None = None
    subject: str | None = None
    story_count: int | None = None
    error: str | None = None


def digest_configured(config: Config) -> EmailSettings | None:
    """The email settings when a digest has somewhere to go, else None."""
    email = config.settings.email
    return email if email is not None and email.digest.to else None


def recover_interrupted_digests(store: Store) -> list[DigestRecord]:
    """Mark every digest still `sending` as `unknown`, loudly. Call once at start-up, before
    the first `send_due_digest`: a digest in `sending` then belongs to a process that died
    mid-send, so it may or may not have arrived, and it is never sent again. The next digest
    covers its period, as it starts where the last digest known to be sent ended."""
    interrupted = store.mark_interrupted_digests()
    for record in interrupted:
        event(
            log,
            "digest_interrupted",
            logging.WARNING,
            date=record.digest_date,
            message_id=record.message_id,
            note="the process sending it stopped: it may or may not have arrived; not sent "
            "again; the next digest covers its stories",
        )
    return interrupted


def send_due_digest(
    store: Store, config: Config, sender: MailSender, now: datetime
) -> DigestResult:
    """Send today's digest if it is due (local time >= digest.at) and was not sent: safe to
    call every minute, and from several processes at once."""
    email = digest_configured(config)
    if email is None:
        return DigestResult("not_configured")
    local = now.astimezone(config.settings.zone)
    if local.time() < email.digest.at:
        return DigestResult("not_due", local.date().isoformat())
    return _send_today(store, config, email, sender, now, manual=False)


def send_digest_now(
    store: Store, config: Config, sender: MailSender, now: datetime
) -> DigestResult:
    """`monitor digest --send`: today's digest now, whatever the time. It IS today's digest
    (recorded as such, so the scheduled one does not go out again today); one already sent is
    not sent again; one that failed is tried again."""
    email = digest_configured(config)
    if email is None:
        return DigestResult("not_configured")
    return _send_today(store, config, email, sender, now, manual=True)


def next_attempt_at(record: DigestRecord) -> datetime:
    """When a pending digest may be tried again: the outbox's back-off, counted from when it
    was recorded (the table keeps no time of the last attempt)."""
    waited = sum((retry_delay(n) for n in range(1, record.attempts + 1)), timedelta())
    return record.created_at + waited


def _send_today(
    store: Store,
    config: Config,
    email: EmailSettings,
    sender: MailSender,
    now: datetime,
    *,
    manual: bool,
) -> DigestResult:
    day = now.astimezone(config.settings.zone).date()
    today = day.isoformat()
    record = store.digest_on(today)
    if record is None:
        # An earlier day's digest that never went out must not go out now: today's covers its
        # period (it starts where the last sent digest ended).
        for stale in store.supersede_digests(
            today, f"not sent on its day; the digest of {today} covers its period"
        ):
            event(
                log,
                "digest_superseded",
                logging.WARNING,
                date=stale.digest_date,
                attempts=stale.attempts,
                error=stale.last_error or "-",
            )
        digest = build_digest(store, config, now)
        message_id = digest_message_id(day, email)
        if store.record_digest(
            today,
            digest.period_start,
            digest.period_end,
            message_id,
            digest.subject,
            digest.story_count,
            now,
        ):
            event(
                log,
                "digest_recorded",
                date=today,
                start=digest.period_start.isoformat(),
                end=digest.period_end.isoformat(),
                stories=digest.story_count,
            )
        record = store.digest_on(today)  # ours, or the one another process recorded first
        assert record is not None  # the unique date: one of the two inserts committed
    if manual and record.state == "failed" and store.reopen_digest(record.id):
        record = store.digest_on(today)
        assert record is not None

    def result(status: DigestStatus, error: str | None = None) -> DigestResult:
        assert record is not None
        return DigestResult(
            status, today, record.message_id, record.subject, record.story_count, error
        )

    if record.state == "sent":
        return result("already_sent")
    if record.state == "sending":
        return result("in_flight")
    if record.state == "unknown":
        return result("unknown")
    if record.state == "failed":
        return result("failed", record.last_error)
    if not manual and now < next_attempt_at(record):
        return result("waiting", record.last_error)

    assert record.period_start is not None  # every digest this module records has one
    digest = compose_digest(store, config, day, record.period_start, record.period_end, now)
    message = digest_email(digest, email, record.message_id, now)
    if not store.claim_digest(record, digest.subject, digest.story_count):
        return result("in_flight")  # another process claimed it between our read and now
    try:
        sender.send(message)
    except TemporaryDeliveryError as exc:
        store.finish_digest(record.id, "pending", now, str(exc))
        event(
            log,
            "digest_retry",
            logging.WARNING,
            date=today,
            attempts=record.attempts + 1,
            error=str(exc),
        )
        return DigestResult("retry", today, record.message_id, digest.subject, None, str(exc))
    except PermanentDeliveryError as exc:
        store.finish_digest(record.id, "failed", now, str(exc))
        event(
            log,
            "digest_failed",
            logging.ERROR,
            date=today,
            error=str(exc),
            note="not retried automatically; fix the cause, then `monitor digest --send`",
        )
        return DigestResult("failed", today, record.message_id, digest.subject, None, str(exc))
    store.finish_digest(record.id, "sent", now)
    event(
        log,
        "digest_sent",
        date=today,
        message_id=record.message_id,
        stories=digest.story_count,
        recipients=len(email.digest.to),
    )
    return DigestResult("sent", today, record.message_id, digest.subject, digest.story_count)
