"""What a URL someone wants to follow offers: a feed, or a site to read without one.

    the URL itself is a feed                 -> that feed
    its page names feeds (<link rel="alternate" type="application/rss+xml" …>)
                                             -> the first that parses as a feed
    a common feed path answers with a feed   -> that feed (/feed, /rss, /rss.xml, /feed.xml,
                                                /atom.xml, /index.xml on the same site)
    none of these                            -> `type: site` (see site.py), with what it finds

Every fetch goes through the guarded `Fetcher`, so the address guard and limits apply to what
`monitor sources add` is pointed at exactly as they do to polling.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urljoin

import lxml.html
from lxml import etree

from monitor import dedupe
from monitor.fetch import Fetcher
from monitor.models import Entry, FetchFailed, FetchOk, ParsedFeed
from monitor.sources.feed import parse_feed
from monitor.sources.site import page_title, read_site

FEED_TYPES = frozenset(
    {
        "application/rss+xml",
        "application/atom+xml",
        "application/rdf+xml",
        "application/feed+json",
        "application/json",
    }
)
COMMON_FEED_PATHS = ("/feed", "/rss", "/rss.xml", "/feed.xml", "/atom.xml", "/index.xml")
MAX_CANDIDATES = 10  # feeds named by the page, tried in turn


@dataclass(frozen=True, slots=True)
class Discovery:
    """What was found at a URL, ready to become a source."""

    type: Literal["feed", "site"]
    url: str  # the feed's URL (after redirects), or the site's
    title: str | None
    entries: tuple[Entry, ...]
    via: str  # how it was found, for people
    problem: str | None = None


def is_feed(parsed: ParsedFeed) -> bool:
    """A body that parsed as a feed: it has items, or it is a valid feed without any yet."""
    return bool(parsed.entries) or (parsed.problem is None and parsed.title is not None)


def feed_links(body: bytes, page_url: str) -> list[str]:
    """The feeds an HTML page names with `<link rel="alternate" type="…feed type…">`, absolute,
    in page order; comment feeds (WordPress's "Comments Feed") last."""
    try:
        document = lxml.html.document_fromstring(body)
    except (etree.ParserError, ValueError):
        return []
    found: list[tuple[bool, str]] = []
    for link in document.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        kind = (link.get("type") or "").split(";")[0].strip().lower()
        href = (link.get("href") or "").strip()
        if "alternate" not in rel or kind not in FEED_TYPES or not href:
            continue
        try:
            url = urljoin(page_url, href)
        except ValueError:
            continue
        if dedupe.is_article_link(url) and url not in (u for _, u in found):
            comments = "comment" in (link.get("title") or "").lower()
            found.append((comments, url))
    found.sort(key=lambda pair: pair[0])  # stable: page order otherwise
    return [url for _, url in found][:MAX_CANDIDATES]


async def discover(url: str, fetcher: Fetcher, now: datetime) -> Discovery | FetchFailed:
    """Find the feed at or behind `url`, else read it as a site. FetchFailed when `url` itself
    cannot be fetched."""
    page = await fetcher.fetch(url)
    if isinstance(page, FetchFailed):
        return page
    if not isinstance(page, FetchOk):  # a 304 nobody asked for: no validators were sent
        return FetchFailed(url, f"HTTP 304 without a request for it from {url}", "http", 304)
    parsed = await asyncio.to_thread(parse_feed, page.body, page.final_url, page.headers)
    if is_feed(parsed):
        return Discovery("feed", page.final_url, parsed.title, parsed.entries, "the URL is a feed")

    named = feed_links(page.body, page.final_url)
    common = [urljoin(page.final_url, path) for path in COMMON_FEED_PATHS]
    for candidate in [*named, *(c for c in common if c not in named)]:
        found = await _feed_at(candidate, fetcher)
        if found is not None:
            feed_url, feed = found
            via = (
                '<link rel="alternate"> on the page'
                if candidate in named
                else f"the common feed path {candidate}"
            )
            return Discovery("feed", feed_url, feed.title, feed.entries, via, feed.problem)

    listing = await read_site(page.final_url, fetcher, now)
    if isinstance(listing, FetchFailed):
        return listing
    title = listing.title or page_title(page.body)
    return Discovery("site", page.final_url, title, listing.entries, listing.via, listing.problem)


async def _feed_at(url: str, fetcher: Fetcher) -> tuple[str, ParsedFeed] | None:
    outcome = await fetcher.fetch(url)
    if not isinstance(outcome, FetchOk):
        return None
    parsed = await asyncio.to_thread(parse_feed, outcome.body, outcome.final_url, outcome.headers)
    return (outcome.final_url, parsed) if is_feed(parsed) else None
