"""`refresh_source()`: the one orchestrator. One source, one poll, read top to bottom.

    listing  -> fetch + parse what the source lists now (conditional GET)
    new?     -> only entries storage has never seen go on (checked BEFORE any page fetch)
    article  -> fetch each new entry's page, extract its text (or fall back to the feed's)
    match    -> topics, with matched words and sentence
    store    -> article + story + alerts + outbox rows in one transaction
    schedule -> the source's next poll time (adapted to its rhythm) and health, with the one
                down/up notice a change of health calls for

Decisions live in pure functions elsewhere (rules, dedupe, schedule, routing); this module only
strings them together, and is the only place that knows the order.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from monitor import dedupe, health, metrics, rules, schedule
from monitor.config import Config, Source
from monitor.errors import UrlError
from monitor.extract import article_from
from monitor.fetch import Fetcher
from monitor.logs import event, redactor
from monitor.models import (
    Article,
    Entry,
    ExtractedPage,
    FetchFailed,
    FetchOk,
    NotModified,
    SourceState,
    StoredArticle,
)
from monitor.notify.routing import Outputs, alert_destinations, notice_destinations
from monitor.sources import google_news, read_listing
from monitor.store import Candidate, Store

log = logging.getLogger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml")
# Same-title dedupe is only trusted for titles specific enough ("Editorial" is not).
MIN_TITLE_KEY_WORDS = 5


class PageExtractor(Protocol):
    """Finds the article in a page (see `extract.Extractor`)."""

    async def extract(self, html: bytes, url: str) -> ExtractedPage | None: ...


@dataclass
class PollContext:
    """What a poll needs; built once per config version by the CLI or the service."""

    config: Config
    store: Store
    fetcher: Fetcher
    extractor: PageExtractor
    outputs: Outputs
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.matcher = rules.compile_topics(self.config.topics)
        # Per source, the (link, GUID) of every entry its last listing held, as the listing
        # wrote them; all were stored by then (or dropped as unusable). Being seen is permanent
        # (prune keeps every URL and GUID), so this can never be stale in the direction that
        # matters: it only spares canonicalising those entries and asking storage again.
        self.seen_entries: dict[str, frozenset[tuple[str, str | None]]] = {}

    def destinations(self, topics: tuple[str, ...]) -> tuple[str, ...]:
        return alert_destinations(topics, self.config.settings, self.outputs)

    def notice_destinations(self) -> tuple[str, ...]:
        return notice_destinations(self.config.settings, self.outputs)

    def interval(self, source: Source, state: SourceState) -> timedelta:
        """See `schedule.polling_interval`."""
        return schedule.polling_interval(source.every, state, self.config.settings.poll.every)[0]


@dataclass(frozen=True, slots=True)
class SourceReport:
    """How one source's poll went: the one-line summary `monitor poll` prints."""

    source: str
    status: Literal["ok", "unchanged", "failed"]
    entries: int = 0
    new: int = 0
    matched: int = 0
    alerts: int = 0
    ms: int = 0
    error: str | None = None
    problem: str | None = None


async def refresh_source(source: Source, ctx: PollContext) -> SourceReport:
    """Poll one source now: store its new articles, their stories and alerts; reschedule it."""
    started = time.monotonic()
    state = await asyncio.to_thread(ctx.store.source_state, source.name)

    listing = await read_listing(source, state, ctx.fetcher, now=ctx.clock())
    if isinstance(listing, FetchFailed):
        failed = schedule.after_failure(
            state,
            now=ctx.clock(),
            error=listing.error,
            retry_after=listing.retry_after,
            interval=ctx.interval(source, state),
            park_after=ctx.config.settings.poll.park_after,
        )
        await _save_state(ctx, state, failed)
        return _logged(SourceReport(source.name, "failed", ms=_ms(started), error=listing.error))
    if isinstance(listing, NotModified):
        unchanged = _after_success(ctx, source, state, new_items=0, problem=state.last_problem)
        await _save_state(ctx, state, unchanged)
        return _logged(SourceReport(source.name, "unchanged", ms=_ms(started)))

    # Entries this process already knows are stored need no work at all: most of a changed
    # feed is entries listed at the last poll. Storage is still asked about the rest.
    known = ctx.seen_entries.get(source.name, frozenset())
    maybe_new = candidates_from(e for e in listing.parsed.entries if _entry_key(e) not in known)
    fresh = await asyncio.to_thread(ctx.store.unseen, source.name, maybe_new) if maybe_new else []
    stored = await _read_and_store(source, fresh, ctx)
    # Every entry of the listing is stored now (or was before): remember this listing's keys.
    ctx.seen_entries[source.name] = frozenset(map(_entry_key, listing.parsed.entries))

    polled = replace(
        state, etag=listing.etag, last_modified=listing.last_modified, body_hash=listing.body_hash
    )
    problem = listing.parsed.problem
    await _save_state(
        ctx, state, _after_success(ctx, source, polled, new_items=len(stored), problem=problem)
    )
    return _logged(
        SourceReport(
            source.name,
            "ok",
            entries=len(listing.parsed.entries),
            new=len(stored),
            matched=sum(1 for s in stored if s.topics),
            alerts=sum(1 for s in stored if s.alert_id is not None),
            ms=_ms(started),
            problem=problem,
        )
    )


async def refresh_sources(sources: Sequence[Source], ctx: PollContext) -> list[SourceReport]:
    """Poll sources concurrently. One source's bug is logged loudly and reported as a failure,
    and never stops the others."""

    async def guarded(source: Source) -> SourceReport:
        try:
            report = await refresh_source(source, ctx)
        except Exception as exc:  # a bug: logged with its traceback, recorded on the source
            log.exception("poll crashed", extra={"event": "poll_crashed", "fields": {}})
            # Stored and shown later (sources, digest): without secrets, like the log line.
            error = redactor.scrub(f"internal error: {type(exc).__name__}: {exc}")
            await _record_crash(source, ctx, error)
            report = SourceReport(source.name, "failed", error=error)
        metrics.record_poll(report.source, report.status, report.ms / 1000, report.new)
        return report

    return list(await asyncio.gather(*(guarded(s) for s in sources)))


# --- the steps -------------------------------------------------------------------------------


def _entry_key(entry: Entry) -> tuple[str, str | None]:
    return entry.link, entry.guid


def candidates_from(entries: Iterable[Entry]) -> list[Candidate]:
    """Entries with their canonical URL; entries whose link is unusable are dropped."""
    candidates = []
    for entry in entries:
        try:
            candidates.append(Candidate(entry, dedupe.canonical_url(entry.link)))
        except UrlError:
            continue
    return candidates


async def _read_and_store(
    source: Source, fresh: Sequence[Candidate], ctx: PollContext
) -> list[StoredArticle]:
    """Read every new entry concurrently; store each, in the feed's order, as soon as it and
    the entries before it are read.

    Storing (matching, fingerprints, the database) then overlaps the extraction of the pages
    still in the workers, instead of waiting for the source's last page: with every source
    storing at the end, the stores of a large poll ran after all extraction, on one core.
    """
    reads = [asyncio.create_task(_read_article(source, c, ctx)) for c in fresh]
    stored: list[StoredArticle] = []
    try:
        for read in reads:
            article, fingerprint = await read
            saved = await _store(article, fingerprint, ctx)
            if saved is not None:
                stored.append(saved)
    finally:
        # A bug in one read, or the poll being cancelled: the reads still running stop too,
        # and the errors of those that also failed count as seen (the first one is raised).
        for read in reads:
            if not read.done():
                read.cancel()
            elif not read.cancelled():
                read.exception()
    return stored


async def _read_article(
    source: Source, candidate: Candidate, ctx: PollContext
) -> tuple[Article, dedupe.Fingerprint | None]:
    """Fetch the entry's page and extract its article; fall back to the feed's own text. With
    the article, the fingerprint the extraction worker made of the page's text, if it did."""
    entry = candidate.entry
    page: ExtractedPage | None = None
    aliases: list[str] = []
    link = entry.link
    reached = False
    outcome = await ctx.fetcher.fetch(entry.link)
    if isinstance(outcome, FetchOk) and _reached_article(source, entry, outcome.final_url):
        reached = True
        link = outcome.final_url
        aliases += _canonical_or_none(outcome.final_url)
        if _is_html(outcome.headers):
            page = await ctx.extractor.extract(outcome.body, outcome.final_url)
        if page and page.canonical_url and _same_outlet(page.canonical_url, link):
            # A canonical link on another site marks a syndicated copy: that is a follow-up
            # for near-duplicate dedupe to find, not the same article.
            aliases += _canonical_or_none(page.canonical_url)
    article = article_from(
        entry,
        page,
        source=source.name,
        outlet=_outlet(source, entry, link, reached),
        url=candidate.url,
        link=link,
        aliases=tuple(a for a in dict.fromkeys(aliases) if a != candidate.url),
    )
    return article, page.fingerprint if page is not None else None


async def _store(
    article: Article, fingerprint: dedupe.Fingerprint | None, ctx: PollContext
) -> StoredArticle | None:
    matches = ctx.matcher.match(article.title, article.summary, article.text)
    if fingerprint is None:  # the feed's text, or a text too short for one
        fingerprint = dedupe.text_fingerprint(article.text)
    title_key = (
        dedupe.title_key(article.title, article.outlet)
        if len(article.title.split()) >= MIN_TITLE_KEY_WORDS
        else None
    )
    stored = await asyncio.to_thread(
        ctx.store.save_article,
        article,
        matches,
        fingerprint,
        title_key,
        ctx.destinations,
        ctx.clock(),
    )
    if stored is not None and stored.alert_id is not None:
        metrics.record_alert(stored.topics)
    if stored is not None:
        event(
            log,
            "article",
            source=article.source,
            url=article.link,
            text_from=article.text_from,
            story=stored.story_id,
            new_story=stored.new_story,
            topics=",".join(stored.topics) or "-",
            alert=stored.alert_id or "-",
        )
    return stored


def _after_success(
    ctx: PollContext, source: Source, state: SourceState, new_items: int, problem: str | None
) -> SourceState:
    """The state after a poll that got an answer: rhythm learned, then rescheduled by it."""
    poll = ctx.config.settings.poll
    now = ctx.clock()
    learned = schedule.with_rhythm(
        state, now=now, new_items=new_items, min_every=poll.min_every, max_every=poll.max_every
    )
    return schedule.after_success(
        learned,
        now=now,
        interval=ctx.interval(source, learned),
        jitter=poll.jitter,
        rng=ctx.rng,
        new_items=new_items,
        problem=problem,
    )


async def _save_state(ctx: PollContext, before: SourceState, after: SourceState) -> None:
    """Store a source's state after a poll, with the one down/up notice its change calls for
    (in the same transaction)."""
    after, notice = health.notice_for(before, after, zone=ctx.config.settings.zone)
    if notice is None:
        await asyncio.to_thread(ctx.store.save_source_state, after)
        return
    await asyncio.to_thread(
        ctx.store.save_source_state_with_notice,
        after,
        notice.key,
        notice.payload,
        ctx.notice_destinations(),
        ctx.clock(),
    )
    event(log, "source_notice", logging.WARNING, source=after.name, kind=notice.kind)


async def _record_crash(source: Source, ctx: PollContext, error: str) -> None:
    state = await asyncio.to_thread(ctx.store.source_state, source.name)
    failed = schedule.after_failure(
        state,
        now=ctx.clock(),
        error=error,
        retry_after=None,
        interval=ctx.interval(source, state),
        park_after=ctx.config.settings.poll.park_after,
    )
    await _save_state(ctx, state, failed)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _logged(report: SourceReport) -> SourceReport:
    """One log line per source per poll, with stable keys."""
    event(
        log,
        "poll",
        logging.WARNING if report.status == "failed" else logging.INFO,
        source=report.source,
        status=report.status,
        entries=report.entries,
        new=report.new,
        matched=report.matched,
        alerts=report.alerts,
        ms=report.ms,
        **({"error": report.error} if report.error else {}),
        **({"problem": report.problem} if report.problem else {}),
    )
    return report


# --- small pure helpers ----------------------------------------------------------------------


def _canonical_or_none(url: str) -> list[str]:
    try:
        return [dedupe.canonical_url(url)]
    except UrlError:
        return []


def _is_html(headers: dict[str, str]) -> bool:
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    return not content_type or content_type in HTML_TYPES


def _same_outlet(url: str, other: str) -> bool:
    try:
        return dedupe.outlet_of(url) == dedupe.outlet_of(other)
    except UrlError:
        return False


def _reached_article(source: Source, entry: Entry, final_url: str) -> bool:
    """Whether the fetched page is the entry's article. A Google News link is only when its
    redirects led away from it, and not to a Google page (consent, JavaScript hop)."""
    return source.type != "google_news" or google_news.resolved(entry.link, final_url)


def _outlet(source: Source, entry: Entry, link: str, reached: bool) -> str:
    """Who published it: the host of the page reached. A Google News item whose link did not
    resolve names its publisher: by the publisher's site when the item gives it (the outlet the
    publisher's own articles get, so the two share a title key), else by name."""
    host = dedupe.outlet_of(link)
    if source.type == "google_news" and not reached:
        return google_news.publisher_outlet(entry) or host
    return host
