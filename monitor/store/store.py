"""All reads and writes of the monitor's database, behind one class.

Every method is one short transaction. Writes that belong together (an article, its matches,
its story and the alerts it causes) are one transaction, so a crash leaves all or nothing.
Inserts that could race with another process rely on the schema's unique constraints and
report what they really inserted (`save_article` returns None for an article seen meanwhile).
"""

from __future__ import annotations

import dataclasses
import functools
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from sqlalchemy import Dialect, Engine, Table, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from monitor import dedupe
from monitor.errors import StoreError
from monitor.lock import PG_LOCK_ARTICLES, PG_LOCK_NAMESPACE
from monitor.models import (
    AlertMessage,
    Article,
    Delivery,
    Entry,
    SourceState,
    StoredArticle,
    TopicMatch,
)
from monitor.store.db import create_db_engine, migrate
from monitor.store.driver import (
    ColumnCodec,
    Insert,
    Statements,
    driver_transaction,
    placeholders,
)
from monitor.store.schema import (
    AlertRow,
    ArticleRow,
    ArticleUrlRow,
    Base,
    DigestRow,
    EntryGuidRow,
    FingerprintBandRow,
    MatchRow,
    OutboxRow,
    SlackThreadRow,
    SourceRow,
    StoryRow,
)

# Placeholders per statement stay well below SQLite's limit (32766) and PostgreSQL's (65535).
CHUNK = 500
# Longer title keys are cut: an index entry must stay small, and 400 characters identify a title.
TITLE_KEY_LENGTH = 400
# A delivery left "sending" this long by a live process is taken as abandoned by a dead one.
IN_FLIGHT_GRACE = timedelta(minutes=2)

_T = TypeVar("_T")

Destinations = Callable[[tuple[str, ...]], tuple[str, ...]]
"""Topics of an alert -> the destinations to deliver it to (see `notify.routing`)."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """An entry a source listed, with its canonical URL (the key for "seen before")."""

    entry: Entry
    url: str


@dataclass(frozen=True, slots=True)
class StoredMatchView:
    """A stored article, for `monitor match` to run the current keywords over."""

    article_id: int
    url: str
    source: str
    title: str
    summary: str
    text: str
    first_seen: datetime
    stored_topics: tuple[str, ...]  # the topics it was tagged with when it was stored


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What `Store.prune` removed."""

    articles: int  # articles whose text was dropped
    bands: int  # near-duplicate index entries
    deliveries: int  # finished outbox rows


@dataclass(frozen=True, slots=True)
class AlertStatus:
    """An alert with the state of each of its deliveries, for `monitor alerts`."""

    alert: AlertMessage
    deliveries: tuple[tuple[str, str, str | None], ...]  # (destination, state, last error)


class Store:
    """The monitor's database. Thread-safe: each call opens and closes its own session."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._state_codec = ColumnCodec(_STATE_COLUMNS, engine.dialect)
        self._inserts = _ArticleInserts(engine.dialect)

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect and apply migrations."""
        engine = create_db_engine(url)
        migrate(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                yield session
        except OperationalError as exc:
            raise StoreError(f"database error: {exc.orig}") from exc

    def ping(self) -> bool:
        """True when the database answers a query."""
        try:
            with self._transaction() as session:
                session.execute(select(1))
        except StoreError:
            return False
        return True

    # --- sources ---------------------------------------------------------------------------

    def source_state(self, name: str) -> SourceState:
        """The stored state of a source; a fresh (due now) state when it was never polled.

        This and `save_source_state` run for every source on every poll: driver SQL (see
        `driver.py`), not the ORM."""
        with driver_transaction(self.engine, write=False) as statements:
            row = statements.execute(_SELECT_STATE, [name]).fetchone()
        return SourceState(*self._state_codec.result(row)) if row else SourceState(name=name)

    def source_states(self) -> dict[str, SourceState]:
        with self._transaction() as session:
            return {row.name: _state_from_row(row) for row in session.scalars(select(SourceRow))}

    def save_source_state(self, state: SourceState) -> None:
        values = self._state_codec.bind(dataclasses.astuple(state))
        with driver_transaction(self.engine, write=True) as statements:
            statements.execute(_UPSERT_STATE, values)

    def save_source_state_with_notice(
        self,
        state: SourceState,
        key: str,
        notice: dict[str, str],
        destinations: Sequence[str],
        now: datetime,
    ) -> bool:
        """Save a source's state and queue a notice about it (source down / up) in ONE
        transaction: the state that says "down was notified" never exists without the notice.

        Returns False when a notice with this key was queued before (the state is saved all
        the same), as `enqueue_notice` does.
        """
        try:
            with self._transaction() as session:
                _save_source_state(session, state)
                return _queue_notice(session, key, notice, destinations, now)
        except IntegrityError:
            # Another process queued this very notice meanwhile: it goes out once, from there.
            self.save_source_state(state)
            return False

    def due_sources(self, names: Iterable[str], now: datetime) -> list[str]:
        """Of `names`, those whose next poll time has come (or that were never polled)."""
        names = list(names)
        with self._transaction() as session:
            scheduled = {
                row.name: row.next_poll_at
                for row in session.execute(
                    select(SourceRow.name, SourceRow.next_poll_at).where(SourceRow.name.in_(names))
                )
            }
        return [n for n in names if (due := scheduled.get(n)) is None or due <= now]

    # --- articles --------------------------------------------------------------------------

    def unseen(self, source: str, candidates: Sequence[Candidate]) -> list[Candidate]:
        """The candidates whose URL and GUID storage has never seen, in the given order.

        Checked before fetching article pages, so only new entries cost a fetch.
        """
        seen_urls: set[str] = set()
        seen_guids: set[str] = set()
        urls = list({c.url for c in candidates})
        guids = list({c.entry.guid for c in candidates if c.entry.guid})
        # Driver SQL: this runs for every changed listing (see `driver.py`).
        with driver_transaction(self.engine, write=False) as statements:
            for chunk in _chunks(urls):
                seen_urls.update(
                    url for (url,) in statements.execute(_seen_urls_sql(len(chunk)), chunk)
                )
            for chunk in _chunks(guids):
                seen_guids.update(
                    guid
                    for (guid,) in statements.execute(_seen_guids_sql(len(chunk)), [source, *chunk])
                )
        fresh: list[Candidate] = []
        taken: set[str] = set()
        for candidate in candidates:
            guid = candidate.entry.guid
            if (
                candidate.url in seen_urls
                or candidate.url in taken
                or (guid and guid in seen_guids)
            ):
                continue
            taken.add(candidate.url)
            fresh.append(candidate)
        return fresh

    def save_article(
        self,
        article: Article,
        matches: Sequence[TopicMatch],
        fingerprint: dedupe.Fingerprint | None,
        title_key: str | None,
        destinations: Destinations,
        now: datetime,
    ) -> StoredArticle | None:
        """Store an article with its matches, story and alerts in ONE transaction.

        Returns None when storage already holds the article under one of its URLs or its GUID
        (then the new URLs are remembered as aliases of the stored one, so they are not fetched
        again). The story is the one of a near-duplicate stored article, else a new one.
        """
        urls = list(dict.fromkeys((article.url, *article.aliases)))
        title_key = title_key[:TITLE_KEY_LENGTH] if title_key else None
        try:
            # Driver SQL (see `driver.py`): this runs for every new article, and through the
            # ORM its dozen statements were most of the main process's CPU per article.
            with driver_transaction(self.engine, write=True) as statements:
                _one_article_at_a_time(statements)
                existing = _article_with_any_url(statements, urls)
                if existing is None and article.guid:
                    row = statements.execute(
                        "SELECT article_id FROM entry_guids WHERE source = ? AND guid = ?",
                        [article.source, article.guid[:500]],
                    ).fetchone()
                    existing = row[0] if row else None
                if existing is not None:
                    _remember_urls(statements, self._inserts, existing, urls)
                    return None
                return _insert_article(
                    statements,
                    self._inserts,
                    article,
                    urls,
                    matches,
                    fingerprint,
                    title_key,
                    destinations,
                    now,
                )
        except IntegrityError:
            # Another process stored it between our check and our insert: it is seen.
            return None

    def articles_since(self, since: datetime) -> list[StoredMatchView]:
        """Stored articles first seen since `since`, oldest first, with their stored topics."""
        with self._transaction() as session:
            rows = session.scalars(
                select(ArticleRow)
                .where(ArticleRow.first_seen_at >= since)
                .order_by(ArticleRow.first_seen_at, ArticleRow.id)
            ).all()
            topics: dict[int, list[str]] = {}
            for chunk in _chunks([r.id for r in rows]):
                for article_id, topic in session.execute(
                    select(MatchRow.article_id, MatchRow.topic)
                    .where(MatchRow.article_id.in_(chunk))
                    .order_by(MatchRow.topic)
                ):
                    topics.setdefault(article_id, []).append(topic)
            return [
                StoredMatchView(
                    r.id,
                    r.url,
                    r.source,
                    r.title,
                    r.summary,
                    r.text or "",
                    r.first_seen_at,
                    tuple(topics.get(r.id, ())),
                )
                for r in rows
            ]

    def count_articles(self) -> int:
        with self._transaction() as session:
            return session.scalar(select(func.count()).select_from(ArticleRow)) or 0

    # --- outbox ----------------------------------------------------------------------------

    def enqueue_notice(
        self, key: str, notice: dict[str, str], destinations: Sequence[str], now: datetime
    ) -> bool:
        """Queue an operational notice (source down/up, a bad config edit) once per `key`.

        Returns False when a notice with this key was queued before: callers can enqueue on
        every check without ever notifying twice.
        """
        try:
            with self._transaction() as session:
                return _queue_notice(session, key, notice, destinations, now)
        except IntegrityError:
            return False  # another process queued it at the same moment

    def due_deliveries(self, now: datetime, limit: int = 100) -> list[Delivery]:
        """Outbox rows to deliver now: pending and due, or abandoned while being sent."""
        with self._transaction() as session:
            rows = session.scalars(
                select(OutboxRow)
                .where(
                    or_(
                        and_(OutboxRow.state == "pending", OutboxRow.next_attempt_at <= now),
                        and_(
                            OutboxRow.state == "sending",
                            OutboxRow.sending_at <= now - IN_FLIGHT_GRACE,
                        ),
                    )
                )
                .order_by(OutboxRow.id)
                .limit(limit)
            ).all()
            alerts = _alert_messages(session, {r.alert_id for r in rows if r.alert_id})
            return [
                Delivery(
                    id=row.id,
                    destination=row.destination,
                    attempts=row.attempts,
                    in_flight=row.state == "sending",
                    alert=alerts.get(row.alert_id) if row.alert_id else None,
                    notice=row.notice,
                )
                for row in rows
            ]

    def claim_delivery(self, delivery: Delivery, now: datetime) -> bool:
        """Mark a row as being sent; False when another process got to it first."""
        expected = "sending" if delivery.in_flight else "pending"
        with self._transaction() as session:
            result = session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == delivery.id, OutboxRow.state == expected)
                .values(state="sending", sending_at=now, attempts=OutboxRow.attempts + 1)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def delivered(self, delivery_id: int, external_id: str | None, now: datetime) -> None:
        with self._transaction() as session:
            session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == delivery_id)
                .values(state="sent", sent_at=now, external_id=external_id, last_error=None)
            )

    def retry_delivery(self, delivery_id: int, error: str, at: datetime) -> None:
        with self._transaction() as session:
            session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == delivery_id)
                .values(state="pending", next_attempt_at=at, last_error=error)
            )

    def defer_delivery(self, delivery_id: int, reason: str, at: datetime) -> None:
        """Back to pending until `at`, undoing the claim's attempt: nothing was sent."""
        with self._transaction() as session:
            session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == delivery_id)
                .values(
                    state="pending",
                    next_attempt_at=at,
                    last_error=reason,
                    attempts=OutboxRow.attempts - 1,  # claim_delivery counted one
                )
            )

    def fail_delivery(self, delivery_id: int, error: str) -> None:
        with self._transaction() as session:
            session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == delivery_id)
                .values(state="failed", last_error=error)
            )

    def resend_failed(self, now: datetime, destination: str | None = None) -> int:
        """Put permanently failed deliveries back in the queue; returns how many."""
        with self._transaction() as session:
            query = update(OutboxRow).where(OutboxRow.state == "failed")
            if destination:
                query = query.where(OutboxRow.destination == destination)
            result = session.execute(query.values(state="pending", next_attempt_at=now))
            return int(result.rowcount)  # type: ignore[attr-defined]

    # --- retention -------------------------------------------------------------------------

    def prune(self, before: datetime) -> PruneReport:
        """Forget what only matters while news is fresh, for articles first seen before `before`.

        Article text, summary and text fingerprint go, as do delivered or failed outbox rows.
        What stays keeps the monitor quiet and the digest whole: every URL and GUID ever seen
        (an old entry still in a feed is not news again), titles, stories, matches with their
        sentences, and alerts.

        The near-duplicate index (fingerprint bands) goes sooner: it keeps the DEDUPE_WINDOW
        before the newest article, all that `_find_story` reads, so its size is bounded by the
        articles of that window and not by `before`.
        """
        with self._transaction() as session:
            newest = session.scalar(select(func.max(ArticleRow.first_seen_at)))
            cutoff = before if newest is None else max(before, newest - DEDUPE_WINDOW)
            # Ids grow with first_seen_at, so the bands to go are those under the lowest id
            # seen since `cutoff`: a range of the article_id index, not a scan of all that
            # was ever older. (An article stored a moment late by a concurrent process may
            # keep its bands a little longer: lookups read the window by time all the same.)
            first_kept = session.scalar(
                select(func.min(ArticleRow.id)).where(ArticleRow.first_seen_at >= cutoff)
            )
            old_bands = delete(FingerprintBandRow)
            if first_kept is not None:
                old_bands = old_bands.where(FingerprintBandRow.article_id < first_kept)
            bands = session.execute(old_bands)
            texts = session.execute(
                update(ArticleRow)
                .where(ArticleRow.first_seen_at < before, ArticleRow.text.is_not(None))
                .values(text=None, summary="", fingerprint=None)
            )
            outbox = session.execute(
                delete(OutboxRow).where(
                    OutboxRow.state.in_(("sent", "failed")), OutboxRow.created_at < before
                )
            )
            return PruneReport(
                articles=int(texts.rowcount),  # type: ignore[attr-defined]
                bands=int(bands.rowcount),  # type: ignore[attr-defined]
                deliveries=int(outbox.rowcount),  # type: ignore[attr-defined]
            )

    def vacuum(self) -> None:
        """Give the space `prune` freed back to the file system (`monitor prune --vacuum`).

        Not needed to stay bounded: both databases reuse freed space for new rows. SQLite
        rewrites its file (VACUUM, then a checkpoint that empties the WAL); other writers wait
        meanwhile (the busy timeout). PostgreSQL runs VACUUM ANALYZE, as autovacuum would.
        """
        try:
            if self.engine.dialect.name == "sqlite":
                # The DBAPI connection is in autocommit (see db._tune_sqlite): VACUUM cannot
                # run inside the BEGIN IMMEDIATE every SQLAlchemy transaction starts with.
                raw = self.engine.raw_connection()
                try:
                    cursor = raw.cursor()
                    cursor.execute("VACUUM")
                    cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    cursor.close()
                finally:
                    raw.close()
            else:
                autocommit = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                with autocommit as connection:
                    connection.exec_driver_sql("VACUUM ANALYZE")
        except (OperationalError, sqlite3.OperationalError) as exc:
            raise StoreError(f"database error: {getattr(exc, 'orig', exc)}") from exc

    def alerts_since(self, since: datetime) -> list[AlertStatus]:
        with self._transaction() as session:
            ids = session.scalars(
                select(AlertRow.id).where(AlertRow.created_at >= since).order_by(AlertRow.id)
            ).all()
            messages = _alert_messages(session, set(ids))
            deliveries: dict[int, list[tuple[str, str, str | None]]] = {i: [] for i in ids}
            for chunk in _chunks(list(ids)):
                for row in session.execute(
                    select(
                        OutboxRow.alert_id,
                        OutboxRow.destination,
                        OutboxRow.state,
                        OutboxRow.last_error,
                    )
                    .where(OutboxRow.alert_id.in_(chunk))
                    .order_by(OutboxRow.id)
                ):
                    deliveries[row.alert_id].append((row.destination, row.state, row.last_error))
            return [AlertStatus(messages[i], tuple(deliveries[i])) for i in ids]

    # --- Slack threads and the exactly-once check (notify/slack.py) ---------------------------

    def slack_thread(self, story_id: int, channel: str) -> str | None:
        """The ts of the story's top-level message in `channel` (as routed), if it has one."""
        with self._transaction() as session:
            row = session.get(SlackThreadRow, (story_id, channel))
            return row.ts if row else None

    def record_slack_thread(self, story_id: int, channel: str, ts: str) -> str:
        """Make `ts` the story's thread in `channel` unless it has one; returns the one in use."""
        try:
            with self._transaction() as session:
                row = session.get(SlackThreadRow, (story_id, channel))
                if row is not None:
                    return row.ts
                session.add(SlackThreadRow(story_id=story_id, channel=channel, ts=ts))
        except IntegrityError:
            # Another process recorded one at the same moment: the first one stays.
            return self.slack_thread(story_id, channel) or ts
        return ts

    def earlier_alert_pending(self, alert_id: int, destination: str) -> bool:
        """True while an earlier alert of the same story waits to be delivered to `destination`.

        A follow-up waits for it, so that it can reply in the thread that message starts.
        Permanently failed rows do not count: they wait for a person, not for time.
        """
        with self._transaction() as session:
            story_id = session.scalar(select(AlertRow.story_id).where(AlertRow.id == alert_id))
            if story_id is None:
                return False
            pending = session.scalar(
                select(OutboxRow.id)
                .join(AlertRow, AlertRow.id == OutboxRow.alert_id)
                .where(
                    AlertRow.story_id == story_id,
                    AlertRow.id < alert_id,
                    OutboxRow.destination == destination,
                    OutboxRow.state.in_(("pending", "sending")),
                )
                .limit(1)
            )
            return pending is not None

    def outbox_created_at(self, delivery_id: int) -> datetime | None:
        """When an outbox row was written: nothing of it can have reached anyone before."""
        with self._transaction() as session:
            return session.scalar(select(OutboxRow.created_at).where(OutboxRow.id == delivery_id))

    # --- digests (the daily email; see notify/digest.py) ----------------------------------------
    # A digest row is written before its email is sent, and `digest_date` is unique: the
    # database decides which process sends a day's digest, and that it is sent at most once.
    #
    #   pending --claim--> sending --accepted--> sent
    #                         |--temporary error--> pending   (retried while it is still that day)
    #                         |--permanent error--> failed    (`monitor digest --send` retries)
    #                         '--process died-----> unknown   (never re-sent: it may have arrived)
    #   pending, a later day's digest recorded ----> failed    (that digest covers its period)

    def digest_stories(self, start: datetime, end: datetime) -> list[DigestStory]:
        """Stories with an alert created in [start, end), oldest first, each with every alert it
        had before `end`: the story's first alert and the follow-ups of other outlets."""
        with self._transaction() as session:
            story_ids = sorted(
                session.scalars(
                    select(AlertRow.story_id)
                    .where(AlertRow.created_at >= start, AlertRow.created_at < end)
                    .distinct()
                )
            )
            stories: dict[int, StoryRow] = {}
            alert_ids: dict[int, list[int]] = {story_id: [] for story_id in story_ids}
            for chunk in _chunks(story_ids):
                stories.update(
                    (row.id, row)
                    for row in session.scalars(select(StoryRow).where(StoryRow.id.in_(chunk)))
                )
                for alert_id, story_id in session.execute(
                    select(AlertRow.id, AlertRow.story_id)
                    .where(AlertRow.story_id.in_(chunk), AlertRow.created_at < end)
                    .order_by(AlertRow.created_at, AlertRow.id)
                ):
                    alert_ids[story_id].append(alert_id)
            messages = _alert_messages(session, {i for ids in alert_ids.values() for i in ids})
            found = [
                DigestStory(
                    story_id=story_id,
                    title=stories[story_id].title,
                    link=stories[story_id].url,
                    created_at=stories[story_id].created_at,
                    alerts=tuple(messages[i] for i in alert_ids[story_id]),
                )
                for story_id in story_ids
            ]
            return sorted(found, key=lambda story: (story.created_at, story.story_id))

    def next_digest_start(self) -> datetime | None:
        """Where the next digest starts: where the last sent digest ended; when digests were
        recorded but none was sent, where the first began; None when there never was one."""
        with self._transaction() as session:
            sent_end = session.scalar(
                select(func.max(DigestRow.period_end)).where(DigestRow.state == "sent")
            )
            if sent_end is not None:
                return sent_end
            return session.scalar(select(func.min(DigestRow.period_start)))

    def digest_on(self, digest_date: str) -> DigestRecord | None:
        """The digest of a local day (`YYYY-MM-DD`), if one was recorded."""
        with self._transaction() as session:
            row = session.scalars(
                select(DigestRow).where(DigestRow.digest_date == digest_date)
            ).first()
            return _digest_record(row) if row else None

    def record_digest(
        self,
        digest_date: str,
        period_start: datetime,
        period_end: datetime,
        message_id: str,
        subject: str,
        story_count: int,
        now: datetime,
    ) -> bool:
        """Record a day's digest as pending; False when that day has one already."""
        try:
            with self._transaction() as session:
                session.add(
                    DigestRow(
                        digest_date=digest_date,
                        period_start=period_start,
                        period_end=period_end,
                        message_id=message_id,
                        subject=subject,
                        story_count=story_count,
                        state="pending",
                        attempts=0,
                        created_at=now,
                    )
                )
        except IntegrityError:
            return False  # the unique digest_date: another process recorded it first
        return True

    def claim_digest(self, digest: DigestRecord, subject: str, story_count: int) -> bool:
        """pending -> sending, counting the attempt; False when another process claimed it (or
        its attempts changed since `digest` was read)."""
        with self._transaction() as session:
            result = session.execute(
                update(DigestRow)
                .where(
                    DigestRow.id == digest.id,
                    DigestRow.state == "pending",
                    DigestRow.attempts == digest.attempts,
                )
                .values(
                    state="sending",
                    attempts=DigestRow.attempts + 1,
                    subject=subject,
                    story_count=story_count,
                )
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def finish_digest(
        self,
        digest_id: int,
        state: Literal["sent", "pending", "failed"],
        now: datetime,
        error: str | None = None,
    ) -> None:
        """Record how a send ended. It wins over `unknown`: a process starting up labels a
        digest in `sending` unknown, but the one sending it knows best."""
        with self._transaction() as session:
            session.execute(
                update(DigestRow)
                .where(DigestRow.id == digest_id, DigestRow.state.in_(("sending", "unknown")))
                .values(
                    state=state,
                    last_error=error,
                    sent_at=now if state == "sent" else None,
                )
            )

    def reopen_digest(self, digest_id: int) -> bool:
        """failed -> pending, for a manual retry; False when it was not failed."""
        with self._transaction() as session:
            result = session.execute(
                update(DigestRow)
                .where(DigestRow.id == digest_id, DigestRow.state == "failed")
                .values(state="pending")
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def mark_interrupted_digests(self) -> list[DigestRecord]:
        """sending -> unknown for every digest, returning them: called at start-up, when a
        digest still `sending` was being sent by a process that died."""
        with self._transaction() as session:
            rows = session.scalars(select(DigestRow).where(DigestRow.state == "sending")).all()
            for row in rows:
                row.state = "unknown"
            return [_digest_record(row) for row in rows]

    def supersede_digests(self, before: str, error: str) -> list[DigestRecord]:
        """pending -> failed for digests of days before `before`, returning them."""
        with self._transaction() as session:
            rows = session.scalars(
                select(DigestRow).where(
                    DigestRow.state == "pending", DigestRow.digest_date < before
                )
            ).all()
            for row in rows:
                row.state = "failed"
                row.last_error = error
            return [_digest_record(row) for row in rows]

    # --- the service: leases on sources, schedule nudges, outbox counts ---------------------

    def lease_sources(
        self,
        names: Iterable[str],
        *,
        owner: str,
        now: datetime,
        until: datetime,
        due_only: bool,
    ) -> list[str]:
        """Lease to `owner` until `until` those of `names` no other process holds (with
        `due_only`, only those whose next poll time has come); returns the ones leased.

        A lease says "being polled": `monitor run` and `monitor poll` take one before polling,
        so two processes never poll one source at once. An expired lease (its holder died) is
        free; `owner` may renew its own.
        """
        names = list(dict.fromkeys(names))
        if not names:
            return []
        try:
            return self._lease(names, owner, now, until, due_only)
        except IntegrityError:
            # Another process created a never-polled source's row at the same moment; the row
            # exists now, so a second attempt only has to update it.
            return self._lease(names, owner, now, until, due_only)

    def _lease(
        self, names: list[str], owner: str, now: datetime, until: datetime, due_only: bool
    ) -> list[str]:
        free = or_(
            SourceRow.lease_until.is_(None),
            SourceRow.lease_until <= now,
            SourceRow.lease_owner == owner,
        )
        due = or_(SourceRow.next_poll_at.is_(None), SourceRow.next_poll_at <= now)
        condition = and_(free, due) if due_only else free
        with self._transaction() as session:
            known: set[str] = set()
            candidates: list[str] = []
            for chunk in _chunks(names):
                rows = session.execute(
                    select(SourceRow.name, condition).where(SourceRow.name.in_(chunk))
                ).all()
                known.update(row[0] for row in rows)
                candidates += [row[0] for row in rows if row[1]]
            # A source never polled has no row yet: it is due, and nobody can hold it.
            missing = [n for n in names if n not in known]
            session.add_all(
                SourceRow(name=n, lease_owner=owner, lease_until=until) for n in missing
            )
            session.flush()
            leased = set(missing)
            for name in candidates:
                # The condition again, on the row itself: on PostgreSQL another process may
                # have leased it since the select above.
                result = session.execute(
                    update(SourceRow)
                    .where(SourceRow.name == name, condition)
                    .values(lease_owner=owner, lease_until=until)
                )
                if result.rowcount:  # type: ignore[attr-defined]
                    leased.add(name)
        return [n for n in names if n in leased]

    def release_sources(self, names: Iterable[str], owner: str) -> None:
        """Give back `owner`'s leases on `names` (leases held by others are left alone)."""
        names = list(names)
        with self._transaction() as session:
            for chunk in _chunks(names):
                session.execute(
                    update(SourceRow)
                    .where(SourceRow.name.in_(chunk), SourceRow.lease_owner == owner)
                    .values(lease_owner=None, lease_until=None)
                )

    def release_leases(self, owner_prefix: str) -> int:
        """Drop every lease whose owner starts with `owner_prefix`; returns how many.

        `monitor run` drops the leases of earlier `monitor run`s at start: it holds the
        single-instance lock, so whoever took them is dead.
        """
        with self._transaction() as session:
            result = session.execute(
                update(SourceRow)
                .where(SourceRow.lease_owner.startswith(owner_prefix, autoescape=True))
                .values(lease_owner=None, lease_until=None)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def make_due(self, names: Iterable[str], now: datetime) -> None:
        """Poll these sources at the next tick (their config changed: a new URL, interval...)."""
        names = list(names)
        with self._transaction() as session:
            for chunk in _chunks(names):
                session.execute(
                    update(SourceRow)
                    .where(
                        SourceRow.name.in_(chunk),
                        or_(SourceRow.next_poll_at.is_(None), SourceRow.next_poll_at > now),
                    )
                    .values(next_poll_at=now)
                )

    def outbox_counts(self) -> dict[tuple[str, str], int]:
        """{(destination, state): rows} for the rows not yet sent (pending, sending, failed)."""
        with self._transaction() as session:
            rows = session.execute(
                select(OutboxRow.destination, OutboxRow.state, func.count())
                .where(OutboxRow.state.in_(("pending", "sending", "failed")))
                .group_by(OutboxRow.destination, OutboxRow.state)
            ).all()
            return {(destination, state): int(count) for destination, state, count in rows}


# --- helpers (each runs inside the caller's transaction) -------------------------------------


def _chunks(items: list[_T]) -> Iterator[list[_T]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _save_source_state(session: Session, state: SourceState) -> None:
    row = session.get(SourceRow, state.name) or SourceRow(name=state.name)
    for field in dataclasses.fields(state):
        setattr(row, field.name, getattr(state, field.name))
    session.add(row)


def _queue_notice(
    session: Session,
    key: str,
    notice: dict[str, str],
    destinations: Sequence[str],
    now: datetime,
) -> bool:
    """Outbox rows for a notice, one per destination; False when `key` was queued before."""
    if session.scalar(select(OutboxRow.id).where(OutboxRow.notice_key == key)):
        return False
    session.add_all(
        OutboxRow(
            notice_key=key,
            notice=notice,
            destination=destination,
            state="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for destination in destinations
    )
    session.flush()  # a key queued meanwhile by another process fails here, in the transaction
    return True


# A source's state as driver SQL reads and writes it: the columns of SourceState, in its order.
_STATE_COLUMNS = [SourceRow.__table__.c[f.name] for f in dataclasses.fields(SourceState)]
_STATE_NAMES = [column.name for column in _STATE_COLUMNS]
_SELECT_STATE = f"SELECT {', '.join(_STATE_NAMES)} FROM sources WHERE name = ?"  # noqa: S608
_UPSERT_STATE = (
    f"INSERT INTO sources ({', '.join(_STATE_NAMES)}) VALUES ({placeholders(len(_STATE_NAMES))})"  # noqa: S608
    " ON CONFLICT (name) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _STATE_NAMES if name != "name")
)


def _seen_urls_sql(count: int) -> str:
    return f"SELECT url FROM article_urls WHERE url IN ({placeholders(count)})"  # noqa: S608


def _seen_guids_sql(count: int) -> str:
    return f"SELECT guid FROM entry_guids WHERE source = ? AND guid IN ({placeholders(count)})"  # noqa: S608


def _state_from_row(row: SourceRow) -> SourceState:
    return SourceState(
        **{field.name: getattr(row, field.name) for field in dataclasses.fields(SourceState)}
    )


def _one_article_at_a_time(statements: Statements) -> None:
    """Let one transaction at a time decide what an article is: new or seen, and which story it
    joins. Without this, copies of one story stored by concurrent polls on PostgreSQL (READ
    COMMITTED) each look for a near-duplicate before the others commit, and each makes a story
    of its own. SQLite needs nothing here: BEGIN IMMEDIATE already serialises writers. The
    advisory lock is released at commit or rollback; the transaction is short (no network)."""
    if statements.dialect.name == "postgresql":
        statements.execute(
            "SELECT pg_advisory_xact_lock(?, ?)", [PG_LOCK_NAMESPACE, PG_LOCK_ARTICLES]
        )


def _article_with_any_url(statements: Statements, urls: list[str]) -> int | None:
    row = statements.execute(
        f"SELECT article_id FROM article_urls WHERE url IN ({placeholders(len(urls))})"  # noqa: S608
        " LIMIT 1",
        urls,
    ).fetchone()
    return int(row[0]) if row else None


def _remember_urls(
    statements: Statements, inserts: _ArticleInserts, article_id: int, urls: list[str]
) -> None:
    known = {url for (url,) in statements.execute(_seen_urls_sql(len(urls)), urls)}
    statements.insert(inserts.url, [(u, article_id) for u in urls if u not in known])


class _ArticleInserts:
    """The INSERTs of `save_article`, made once per Store for its database's dialect."""

    def __init__(self, dialect: Dialect) -> None:
        def insert(row: type[Base], *columns: str) -> Insert:
            table = row.__table__
            assert isinstance(table, Table)
            return Insert(table, columns, dialect)

        self.story = insert(StoryRow, "title", "url", "created_at")
        self.article = insert(
            ArticleRow,
            "url",
            "link",
            "source",
            "outlet",
            "guid",
            "title",
            "summary",
            "text",
            "text_from",
            "language",
            "published_at",
            "first_seen_at",
            "story_id",
            "fingerprint",
            "title_key",
        )
        self.url = insert(ArticleUrlRow, "url", "article_id")
        self.guid = insert(EntryGuidRow, "source", "guid", "article_id")
        self.band = insert(FingerprintBandRow, "band", "article_id")
        self.match = insert(MatchRow, "article_id", "topic", "words", "sentence")
        self.alert = insert(
            AlertRow, "story_id", "article_id", "kind", "outlet", "topics", "created_at"
        )
        self.delivery = insert(
            OutboxRow,
            "alert_id",
            "destination",
            "state",
            "attempts",
            "next_attempt_at",
            "created_at",
        )


def _find_story(
    statements: Statements,
    fingerprint: dedupe.Fingerprint | None,
    title_key: str | None,
    now: datetime,
) -> int | None:
    """The story of the most similar near-duplicate first seen within DEDUPE_WINDOW, else of a
    same-title item of that window, found by the fingerprint's band keys (`Fingerprint.bands()`
    computes them once per fingerprint, often in the extraction worker).

    It runs for every article stored: one statement finds both, as driver SQL (see
    `driver.py`), since SQLAlchemy's work for a statement of 44 parameters would be more than
    the database's.
    """
    if fingerprint is None and not title_key:
        return None
    since = _time_parameter(statements.dialect)(now - DEDUPE_WINDOW)
    parts: list[str] = []
    parameters: list[object] = []
    if fingerprint is not None:
        parts.append(_CANDIDATES)
        parameters += (*fingerprint.bands(), since)
    if title_key:
        parts.append(_SAME_TITLE)
        parameters += (title_key, since)
    rows = statements.execute(" UNION ALL ".join(parts), parameters).fetchall()
    best: tuple[float, int] | None = None
    same_title: int | None = None
    for story_id, stored, by_title in rows:
        if by_title:
            same_title = int(story_id)
        elif stored is not None and fingerprint is not None:
            other = dedupe.Fingerprint.from_bytes(bytes(stored))
            score = dedupe.near_duplicate_similarity(fingerprint, other)
            if score is not None and (best is None or score > best[0]):
                best = (score, int(story_id))
    return best[1] if best is not None else same_title


# Re-publications of a story come within days. An article is compared only with those first
# seen this long before it, and `Store.prune` drops the bands of older ones: the near-duplicate
# index holds this window of articles, however long their text is kept.
DEDUPE_WINDOW = timedelta(days=14)

# The statements of `_find_story`, "?" standing for a parameter. Candidates: the article ids
# under any of the fingerprint's bands, read from the index of (band, article id) alone, then
# one primary-key read of each article. Every fingerprint has BANDS bands (a repeated one is a
# repeated value), so each statement has one text, prepared once by the database.
_BAND_PLACEHOLDERS = ", ".join("?" * dedupe.BANDS)  # no data goes into the text
_CANDIDATES = (
    "SELECT story_id, fingerprint, 0 AS by_title FROM articles WHERE id IN "  # noqa: S608
    f"(SELECT article_id FROM fingerprint_bands WHERE band IN ({_BAND_PLACEHOLDERS}))"
    " AND first_seen_at >= ?"
)
_SAME_TITLE = (
    "SELECT * FROM (SELECT story_id, fingerprint, 1 AS by_title FROM articles "
    "WHERE title_key = ? AND first_seen_at >= ? ORDER BY id LIMIT 1) AS same_title"
)


@functools.lru_cache(maxsize=16)  # one per engine's dialect
def _time_parameter(dialect: Dialect) -> Callable[[datetime], object]:
    """A time as the driver takes it for `first_seen_at`, as SQLAlchemy would bind it."""
    process = ArticleRow.__table__.c.first_seen_at.type.dialect_impl(dialect).bind_processor(
        dialect
    )
    return process if process is not None else (lambda moment: moment)


def _insert_article(
    statements: Statements,
    inserts: _ArticleInserts,
    article: Article,
    urls: list[str],
    matches: Sequence[TopicMatch],
    fingerprint: dedupe.Fingerprint | None,
    title_key: str | None,
    destinations: Destinations,
    now: datetime,
) -> StoredArticle:
    story_id = _find_story(statements, fingerprint, title_key, now)
    new_story = story_id is None
    if story_id is None:
        story_id = statements.insert_returning_id(inserts.story, (article.title, article.link, now))
    article_id = statements.insert_returning_id(
        inserts.article,
        (
            article.url,
            article.link,
            article.source,
            article.outlet,
            article.guid,
            article.title,
            article.summary,
            article.text,
            article.text_from,
            article.language,
            article.published,
            now,
            story_id,
            fingerprint.to_bytes() if fingerprint else None,
            title_key,
        ),
    )
    # A URL or GUID stored meanwhile by another process fails here: IntegrityError.
    statements.insert(inserts.url, [(u, article_id) for u in urls])
    if article.guid:
        statements.insert(inserts.guid, [(article.source, article.guid[:500], article_id)])
    if fingerprint is not None:
        statements.insert(inserts.band, [(b, article_id) for b in set(fingerprint.bands())])
    statements.insert(
        inserts.match, [(article_id, m.topic, list(m.words), m.sentence) for m in matches]
    )
    topics = tuple(sorted({m.topic for m in matches}))
    alert_id = None
    if topics:
        alert_id = _add_alert(
            statements, inserts, story_id, article_id, article.outlet, topics, destinations, now
        )
    return StoredArticle(article_id, story_id, new_story, alert_id, topics)


def _add_alert(
    statements: Statements,
    inserts: _ArticleInserts,
    story_id: int,
    article_id: int,
    outlet: str,
    topics: tuple[str, ...],
    destinations: Destinations,
    now: datetime,
) -> int | None:
    """The story's first alert, or a follow-up for an outlet the story has not alerted from."""
    outlets = {
        alerted
        for (alerted,) in statements.execute(
            "SELECT outlet FROM alerts WHERE story_id = ?", [story_id]
        )
    }
    if outlet in outlets:
        return None
    kind = "followup" if outlets else "story"
    alert_id = statements.insert_returning_id(
        inserts.alert, (story_id, article_id, kind, outlet, list(topics), now)
    )
    statements.insert(
        inserts.delivery, [(alert_id, d, "pending", 0, now, now) for d in destinations(topics)]
    )
    return alert_id


def _alert_messages(session: Session, alert_ids: set[int]) -> dict[int, AlertMessage]:
    messages: dict[int, AlertMessage] = {}
    ids = list(alert_ids)
    for chunk in _chunks(ids):
        rows = session.execute(
            select(AlertRow, ArticleRow)
            .join(ArticleRow, ArticleRow.id == AlertRow.article_id)
            .where(AlertRow.id.in_(chunk))
        ).all()
        article_ids = [article.id for _, article in rows]
        matches: dict[int, list[TopicMatch]] = {}
        for match in session.scalars(
            select(MatchRow).where(MatchRow.article_id.in_(article_ids)).order_by(MatchRow.topic)
        ):
            matches.setdefault(match.article_id, []).append(
                TopicMatch(match.topic, tuple(match.words), match.sentence)
            )
        for alert, article in rows:
            messages[alert.id] = AlertMessage(
                alert_id=alert.id,
                story_id=alert.story_id,
                kind="followup" if alert.kind == "followup" else "story",
                title=article.title,
                link=article.link,
                outlet=article.outlet,
                source=article.source,
                published=article.published_at,
                first_seen=article.first_seen_at,
                topics=tuple(alert.topics),
                matches=tuple(matches.get(article.id, ())),
            )
    return messages


# --- digests (the daily email) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestStory:
    """A story as the digest needs it: the story's title and link (its first article's) and
    every alert it had: the first outlet's, then each other outlet's follow-up."""

    story_id: int
    title: str
    link: str
    created_at: datetime
    alerts: tuple[AlertMessage, ...]


@dataclass(frozen=True, slots=True)
class DigestRecord:
    """A row of `digests`: one local day's digest and how sending it went."""

    id: int
    digest_date: str  # local YYYY-MM-DD
    period_start: datetime | None
    period_end: datetime
    message_id: str
    subject: str
    story_count: int
    state: str  # pending | sending | sent | failed | unknown
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


def _digest_record(row: DigestRow) -> DigestRecord:
    return DigestRecord(
        **{field.name: getattr(row, field.name) for field in dataclasses.fields(DigestRecord)}
    )
