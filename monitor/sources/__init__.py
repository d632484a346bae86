"""Reading a source's listing: what entries does it show now? One module per source type.

feed         feed.py: RSS / Atom / JSON Feed
google_news  the same, from the search feed built out of the source's `query` (google_news.py)
site         site.py: sitemaps, news sitemaps, or the front page's article links

Bodies are parsed in worker processes (`workers.WorkerPool`) with a deadline of PARSE_DEADLINE
seconds: feedparser spends one to two minutes on 10 MB of tiny or nested tags, and a thread
could neither be stopped nor leave the GIL to the event loop meanwhile. A body that holds no
feed at all, or takes too long to parse, fails the source's poll like a failed fetch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.config import Source
from monitor.errors import WorkerDied, WorkerTimeout
from monitor.fetch import Fetcher, body_hash
from monitor.models import FetchFailed, FetchOk, NotModified, ParsedFeed, SourceState
from monitor.sources import google_news
from monitor.sources.feed import parse_feed
from monitor.sources.site import read_site
from monitor.workers import WorkerPool, pool_size

PARSE_DEADLINE = 20.0
"""Seconds one body may take to parse. Real feeds parse at about 2 MB a second (a 10 MB one in
some 5 s); bodies built to be slow take minutes."""

# One pool for the process, started with its first body; its workers end with the process.
_parsers = WorkerPool(min(pool_size(), 4), name="parse", preload=("monitor.sources.feed",))


@dataclass(frozen=True, slots=True)
class Listing:
    """A source's current entries, and the validators to send on the next poll."""

    parsed: ParsedFeed
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None


ListingOutcome = Listing | NotModified | FetchFailed


async def read_listing(
    source: Source, state: SourceState, fetcher: Fetcher, *, now: datetime | None = None
) -> ListingOutcome:
    """Fetch and parse what `source` lists now (conditional GET; unchanged bodies not parsed).

    `now` (default: the current time) is what a site's sitemap dates are judged against.
    """
    assert source.url is not None  # config guarantees it (google_news gets its search URL)
    if source.type == "site":
        return await _read_site(source.url, state, fetcher, now or datetime.now(UTC))
    outcome = await fetcher.fetch(
        source.url,
        etag=state.etag,
        last_modified=state.last_modified,
        previous_hash=state.body_hash,
    )
    if not isinstance(outcome, FetchOk):
        return outcome
    parsed = await _parse(outcome)
    if isinstance(parsed, FetchFailed):
        return parsed
    if source.type == "google_news":
        parsed = google_news.tidy(parsed)
    digest = outcome.body_hash or body_hash(outcome.body)
    return Listing(parsed, outcome.etag, outcome.last_modified, digest)


async def _parse(fetched: FetchOk) -> ParsedFeed | FetchFailed:
    """The body parsed in a worker within PARSE_DEADLINE; a failure when it holds no feed."""
    try:
        parsed = await _parsers.run(
            parse_feed, fetched.body, fetched.final_url, fetched.headers, deadline=PARSE_DEADLINE
        )
    except WorkerTimeout:
        error = f"parsing the {len(fetched.body)} byte body took over {PARSE_DEADLINE:g} s; gave up"
        return FetchFailed(fetched.url, error, "parse")
    except WorkerDied as exc:
        return FetchFailed(fetched.url, f"parsing the body failed: {exc}", "parse")
    if parsed.failed:
        return FetchFailed(fetched.url, parsed.problem or "not a feed", "parse")
    return parsed


async def _read_site(
    url: str, state: SourceState, fetcher: Fetcher, now: datetime
) -> ListingOutcome:
    """A site's listing. It comes from several documents, so "unchanged" means the same
    candidate URLs as last time (their hash is kept where a feed keeps its body's)."""
    found = await read_site(url, fetcher, now)
    if isinstance(found, FetchFailed):
        return found
    links_hash = body_hash("\n".join(entry.link for entry in found.entries).encode())
    if links_hash == state.body_hash:
        return NotModified(url)
    return Listing(ParsedFeed(found.title, found.entries, found.problem), body_hash=links_hash)
