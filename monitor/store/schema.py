"""The database schema (SQLAlchemy 2). Alembic migrations in `migrations/` create exactly this.

Unique constraints here are the final word on "seen before" and "sent before":

    article_urls.url              an article is stored once, whatever URL variant led to it
    entry_guids (source, guid)    a feed entry is stored once
    alerts (story_id, outlet)     a story alerts once per outlet (first, then a follow-up each)
    outbox (alert_id, destination) one delivery per alert and destination
    outbox (notice_key, destination) one delivery per notice (source down/up, bad config)
    slack_threads (story_id, channel) one top-level Slack message per story and channel
    digests.digest_date           one digest per local day
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names so migrations can refer to them on both databases.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a real 64-bit id.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python on both databases (SQLite stores no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class SourceRow(Base):
    """A source's schedule and health. Config says what a source is; this says how it is doing."""

    __tablename__ = "sources"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    next_poll_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    interval_seconds: Mapped[int | None] = mapped_column(Integer)  # adaptive; None = configured
    last_polled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_new_item_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_problem: Mapped[str | None] = mapped_column(Text)  # kept items, but something was off
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    retry_after_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    parked: Mapped[bool] = mapped_column(Boolean, default=False)
    down_notified: Mapped[bool] = mapped_column(Boolean, default=False)
    etag: Mapped[str | None] = mapped_column(Text)
    last_modified: Mapped[str | None] = mapped_column(Text)
    body_hash: Mapped[str | None] = mapped_column(String(64))
    items_total: Mapped[int] = mapped_column(Integer, default=0)
    polls_total: Mapped[int] = mapped_column(Integer, default=0)
    failures_total: Mapped[int] = mapped_column(Integer, default=0)
    # Median gap between new items, for adaptive polling and "quiet" detection.
    typical_gap_seconds: Mapped[int | None] = mapped_column(Integer)
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)


class StoryRow(Base):
    __tablename__ = "stories"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class ArticleRow(Base):
    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(Text, unique=True)  # canonical
    link: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(80), index=True)
    outlet: Mapped[str] = mapped_column(String(200))
    guid: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)  # None once pruned by retention
    text_from: Mapped[str] = mapped_column(String(8))
    language: Mapped[str | None] = mapped_column(String(16))
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id"), index=True)
    fingerprint: Mapped[bytes | None] = mapped_column(LargeBinary)
    title_key: Mapped[str | None] = mapped_column(String(400), index=True)


class ArticleUrlRow(Base):
    """Every canonical URL that leads to an article: its own, rel=canonical, redirects, AMP."""

    __tablename__ = "article_urls"

    url: Mapped[str] = mapped_column(Text, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))


class EntryGuidRow(Base):
    __tablename__ = "entry_guids"

    source: Mapped[str] = mapped_column(String(80), primary_key=True)
    guid: Mapped[str] = mapped_column(String(500), primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"))


class FingerprintBandRow(Base):
    """LSH bands of each article's text fingerprint: near-duplicate candidates by lookup.

    On SQLite a WITHOUT ROWID table: the rows are the b-tree of their key, kept once.
    """

    __tablename__ = "fingerprint_bands"
    __table_args__ = ({"sqlite_with_rowid": False},)

    band: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class MatchRow(Base):
    __tablename__ = "matches"

    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(String(80), primary_key=True)
    words: Mapped[list[str]] = mapped_column(JSON)
    sentence: Mapped[str] = mapped_column(Text)


class AlertRow(Base):
    """A story worth telling people about ("story"), or another outlet's copy ("followup")."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("story_id", "outlet"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id"), index=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(10))  # "story" | "followup"
    outlet: Mapped[str] = mapped_column(String(200))
    topics: Mapped[list[str]] = mapped_column(JSON)  # sorted
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class OutboxRow(Base):
    """One message to deliver to one destination. Written in the same transaction as its cause.

    state: pending -> sending -> sent, or -> failed (permanent; `monitor alerts --resend` revives).
    A row found in `sending` after a crash may have been delivered: the notifier checks first.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("alert_id", "destination"),
        UniqueConstraint("notice_key", "destination"),
        Index("ix_outbox_due", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"))
    notice_key: Mapped[str | None] = mapped_column(String(200))
    notice: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {"kind":…, "text":…} for notices
    destination: Mapped[str] = mapped_column(String(200))  # "slack:#chan" | "webhook" | "email" | …
    state: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sending_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    external_id: Mapped[str | None] = mapped_column(String(200))  # Slack ts, email Message-ID


class SlackThreadRow(Base):
    """The top-level Slack message of a story in a channel: follow-ups reply in its thread."""

    __tablename__ = "slack_threads"

    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(200), primary_key=True)
    ts: Mapped[str] = mapped_column(String(40))


class DigestRow(Base):
    """A daily digest, recorded before it is sent so it is never sent twice."""

    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    digest_date: Mapped[str] = mapped_column(String(10), unique=True)  # local YYYY-MM-DD
    period_start: Mapped[datetime | None] = mapped_column(UtcDateTime)
    period_end: Mapped[datetime] = mapped_column(UtcDateTime)
    message_id: Mapped[str] = mapped_column(String(200), unique=True)
    subject: Mapped[str] = mapped_column(Text)
    story_count: Mapped[int] = mapped_column(Integer)
    # pending | sending | sent | failed | unknown (the process died while sending it)
    state: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
