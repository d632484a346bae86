"""The small frozen records passed between the stages of a poll.

    source --fetch--> FetchOk | NotModified | FetchFailed
           --parse--> ParsedFeed (Entry...)
           --new?---> the entries storage has not seen
           --extract> ExtractedPage | None  --> Article (text_from = "page" | "feed")
           --match--> TopicMatch...
           --dedupe-> Fingerprint, story
           --store--> StoredArticle (only when really inserted)

Every datetime in these records is timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from monitor.dedupe import Fingerprint

TextSource = Literal["page", "feed"]
"""Where an article's text came from: the extracted article page, or the feed's title/summary."""


@dataclass(frozen=True, slots=True)
class Topic:
    """One topic of keywords.yaml, as configured (compiled by `rules.compile_topics`)."""

    name: str
    keywords: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    require: tuple[str, ...] = ()
    query: str | None = None


# --- fetch -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchOk:
    """A body we fetched, decoded (Content-Encoding removed) and within `max_bytes`."""

    url: str  # the URL asked for
    final_url: str  # after redirects
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None  # when the fetch was asked to compare it with a previous one


@dataclass(frozen=True, slots=True)
class NotModified:
    """304, or a body byte-identical to the last one: nothing to parse."""

    url: str
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class FetchFailed:
    """The fetch failed; `error` says why in one line, `retry_after` when the server set it."""

    url: str
    error: str
    kind: str  # "timeout" | "too_large" | "refused" | "redirects" | "http" | "transport" | "parse"
    status: int | None = None
    retry_after: datetime | None = None


FetchOutcome = FetchOk | NotModified | FetchFailed


# --- parse -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One item a source lists: a feed entry, a sitemap URL or a link on a listing page."""

    link: str  # absolute http(s) URL as the source gives it (not canonicalised)
    title: str = ""
    summary: str = ""  # plain text, markup removed
    guid: str | None = None
    published: datetime | None = None
    publisher: str | None = None  # the outlet, when the source names it (Google News <source>)
    publisher_url: str | None = None  # that outlet's site, as <source url="..."> gives it


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """What a source's body held. `problem` says what was wrong when items were still kept;
    `failed` when the body held no feed at all (then `problem` says what it was instead)."""

    title: str | None
    entries: tuple[Entry, ...]
    problem: str | None = None
    failed: bool = False


# --- extract -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExtractedPage:
    """The article found in a page by trafilatura."""

    text: str
    title: str | None = None
    published: datetime | None = None
    language: str | None = None
    canonical_url: str | None = None  # <link rel="canonical"> / og:url, absolute
    # The fingerprint of `text` with its band keys, made by the extraction worker
    # (`extract.extract_for_storing`) so the main process does not; None when it made none
    # (then storing fingerprints the text itself, and a text too short gets none again).
    fingerprint: Fingerprint | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Article:
    """An article ready to match and store."""

    url: str  # canonical URL: the article's identity
    link: str  # the URL to show people (the publisher's, as fetched)
    source: str  # the source's name in sources.yaml
    outlet: str  # who published it: a publisher name or the site's host
    title: str
    summary: str
    text: str
    text_from: TextSource
    published: datetime | None
    language: str | None = None
    guid: str | None = None
    aliases: tuple[str, ...] = ()  # other canonical URLs that lead to this article


# --- match -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TopicMatch:
    """An article matched a topic: the words that matched, and the sentence around the first."""

    topic: str
    words: tuple[str, ...]  # as they appear in the article, first appearance first, no repeats
    sentence: str


# --- store -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredArticle:
    """An article storage really inserted, with the story it joined and the alert it made."""

    article_id: int
    story_id: int
    new_story: bool
    alert_id: int | None  # None when it matched nothing, or its outlet already has an alert
    topics: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """What a notifier needs to tell people about one alert (read back from storage)."""

    alert_id: int
    story_id: int
    kind: Literal["story", "followup"]
    title: str
    link: str
    outlet: str
    source: str
    published: datetime | None
    first_seen: datetime
    topics: tuple[str, ...]  # sorted
    matches: tuple[TopicMatch, ...]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One outbox row due for delivery: an alert (or a notice) to one destination."""

    id: int
    destination: str  # "console" | "slack:#channel" | "webhook" | "email"
    attempts: int
    in_flight: bool  # it was being sent when a process stopped: it may already have arrived
    alert: AlertMessage | None = None
    notice: dict[str, str] | None = None  # {"kind": "source_down" | ..., "text": "..."}


@dataclass(frozen=True, slots=True)
class SourceState:
    """A source's schedule and health as stored (see `store.schema.SourceRow`)."""

    name: str
    next_poll_at: datetime | None = None  # None: due now (never polled)
    interval_seconds: int | None = None  # adaptive interval; None: the configured one
    last_polled_at: datetime | None = None
    last_success_at: datetime | None = None
    last_new_item_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_problem: str | None = None
    consecutive_failures: int = 0
    retry_after_until: datetime | None = None
    parked: bool = False
    down_notified: bool = False
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    items_total: int = 0
    polls_total: int = 0
    failures_total: int = 0
    typical_gap_seconds: int | None = None
