"""`type: site`: a news site's new articles, found without a feed.

Where the articles are looked for, by the shape of the source's URL:

    a sitemap (…/x.xml, …/x.xml.gz)   that sitemap (or sitemap index)
    a section page (a URL with a path) its article-like links
    the site (a bare host, path "/")   robots.txt `Sitemap:` lines, else the common sitemap paths
                                       (/sitemap.xml, /sitemap_index.xml, /news-sitemap.xml);
                                       when no sitemap can be read: the front page's links

Sitemap indexes (and robots.txt's list) are followed at most MAX_DEPTH levels down and
MAX_SITEMAPS documents per poll: recently changed sitemaps and news sitemaps, never ones dated
older (`recent_sitemaps`). News sitemaps (`<news:news>`) give each URL its title and
publication date; `.xml.gz` sitemaps are decompressed here, bounded like any body.

What is new: a site may list every article it ever published, and only recent ones may cost an
article fetch. A URL counts when its date (news:publication_date, else lastmod, else a date in
its path such as /2025/10/05/) is within RECENT of now; of undated URLs at most UNDATED_LIMIT
are taken, in document order (`recent_urls`). A lastmod stamped on nearly every URL dates the
file, not the articles, and is no date (`generation_stamp`). When nothing in the sitemaps
carries a date, the front page is read as well, since it shows what is new and the sitemap
cannot say. The pipeline then fetches only the URLs storage has never seen.

Pure parts (`parse_sitemap`, `sitemaps_in_robots`, `recent_urls`, `recent_sitemaps`,
`looks_like_article`, `article_links`) read only the bytes they are given; `read_site` fetches
through the guarded `Fetcher`, so every limit and the address guard apply to every document.
"""

from __future__ import annotations

import asyncio
import calendar
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin, urlsplit

import lxml.html
from lxml import etree

from monitor import dedupe
from monitor.errors import FetchError, UrlError
from monitor.fetch import BoundedDecoder, Fetcher
from monitor.models import Entry, FetchFailed, FetchOk

RECENT = timedelta(days=3)
"""A sitemap URL dated within this of now is a candidate; older ones are history."""
UNDATED_LIMIT = 30
"""At most this many undated sitemap URLs per poll (a site's whole archive must not be fetched)."""
MAX_ENTRIES = 200
"""At most this many URLs per poll in all; more recent ones wait for the next poll."""
PAGE_LINK_LIMIT = 30
"""At most this many article links from a front or section page, the first ones on the page."""
MAX_SITEMAPS = 10
"""Sitemap documents fetched per poll, indexes included."""
MAX_DEPTH = 2
"""Sitemap index -> sitemap index -> sitemap, and no deeper."""
CHILDREN_PER_INDEX = 5
"""Of an index's sitemaps, at most this many, the most recent first."""
STAMP_MIN_URLS = 100
STAMP_SHARE = 0.9
"""See `generation_stamp`."""
MAX_URLS_PER_SITEMAP = 50_000
"""The sitemap protocol's own limit; anything past it is not read."""
MAX_SITEMAP_BYTES = 50 * 1024**2
"""The protocol's limit for an uncompressed sitemap: a .gz past it is a bomb, and stopped."""
ROBOTS_SITEMAP_LIMIT = 20
COMMON_SITEMAP_PATHS = ("/sitemap.xml", "/sitemap_index.xml", "/news-sitemap.xml")

_FUTURE_SLACK = timedelta(days=2)  # clocks and time zones go wrong; further ahead is nonsense
_GZIP_MAGIC = b"\x1f\x8b"
_SITEMAP_PATH = re.compile(r"\.xml(?:\.gz)?$", re.IGNORECASE)
# lxml refuses entity expansion and the network here: a sitemap is data, never instructions.
_XML_PARSER_OPTIONS = {
    "resolve_entities": False,
    "no_network": True,
    "huge_tree": False,
    "recover": True,  # a sitemap with one bad byte still lists its other URLs
    "remove_comments": True,
    "remove_pis": True,
}

# Dates in article paths: /2025/10/05/, /2025-10-05-, /2025/10/ (separated), or 20251005.
_PATH_DATE = re.compile(
    r"(?<!\d)((?:19|20)\d{2})[-/_](0[1-9]|1[0-2])(?:[-/_](0[1-9]|[12]\d|3[01]))?(?!\d)"
    r"|(?<!\d)((?:19|20)\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?!\d)"
)
_W3C_PARTIAL = re.compile(r"(\d{4})-(\d{2})")
_ARTICLE_ID = re.compile(r"\d{5,}")
_SHORT_ID = re.compile(r"\d{3,}")
_SLUG_SPLIT = re.compile(r"[-_+.]+")
_PAGE_EXTENSION = re.compile(r"\.(?:s?html?|php|aspx?|cms|jsp)$", re.IGNORECASE)
_NOT_ARTICLE_SEGMENTS = frozenset(
    {
        "tag",
        "tags",
        "category",
        "categories",
        "author",
        "authors",
        "page",
        "search",
        "login",
        "logout",
        "signin",
        "sign-in",
        "signup",
        "sign-up",
        "register",
        "subscribe",
        "account",
        "my-account",
        "feed",
        "rss",
        "wp-admin",
        "wp-login.php",
        "wp-content",
        "wp-json",
        "cdn-cgi",
        "topic",
        "topics",
        "section",
        "sections",
        # the legal and house pages every site links from every page
        "about",
        "about-us",
        "contact",
        "contact-us",
        "privacy",
        "privacy-policy",
        "cookie-policy",
        "cookies",
        "terms",
        "terms-of-use",
        "terms-of-service",
        "terms-and-conditions",
        "advertise",
        "advertise-with-us",
        "careers",
        "faq",
        "help",
    }
)
_MEDIA_FILE = re.compile(
    r"\.(?:jpe?g|png|gif|webp|avif|svg|ico|bmp|tiff?|pdf|mp[34]|m4[av]|webm|ogg|wav|avi|mov"
    r"|zip|rar|t?gz|7z|xml|rss|atom|json|txt|csv|css|js|woff2?|ttf|eot|docx?|xlsx?|pptx?|epub"
    r"|apk|exe|dmg)$",
    re.IGNORECASE,
)
_NOT_ARTICLE_QUERY_KEYS = frozenset({"s", "q", "search", "page", "paged", "replytocom"})
_MIN_SLUG_WORDS = 3
_MIN_TITLE_WORDS = 3  # shorter link texts ("Read more", "Video") are no headline
HEADLINE_WORDS = 4
"""A link text this long reads as a headline: menus say "Business", "Most read", "Log in"."""
MAX_ANCHORS = 5000
"""Links read from one page; a page with more is not a front page anyone reads."""


# --- records -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SitemapUrl:
    """One `<url>` of a sitemap, or one `<sitemap>` of a sitemap index."""

    loc: str
    lastmod: datetime | None = None
    published: datetime | None = None  # news:publication_date
    title: str = ""  # news:title

    def date(self, now: datetime) -> datetime | None:
        """The best date it has: publication, else lastmod, else one written in its path.

        A declared date more than two days after `now` is nonsense, and no date; a path's date
        (the end of its day or month) is at most `now`.
        """
        declared = self.published or self.lastmod
        if declared is not None:
            return declared if declared <= now + _FUTURE_SLACK else None
        in_path = date_in_path(self.loc)
        return min(in_path, now) if in_path is not None else None


@dataclass(frozen=True, slots=True)
class Sitemap:
    """What a sitemap document lists: URLs (a `<urlset>`) or sitemaps (a `<sitemapindex>`)."""

    urls: tuple[SitemapUrl, ...] = ()
    children: tuple[SitemapUrl, ...] = ()


@dataclass(frozen=True, slots=True)
class SiteListing:
    """A site's current candidate articles, and how they were found (for people)."""

    entries: tuple[Entry, ...]
    via: str  # e.g. "sitemaps https://x/news-sitemap.xml" or "front page https://x/"
    title: str | None = None
    problem: str | None = None


# --- dates ---------------------------------------------------------------------------------------


def parse_w3c_date(text: str | None) -> datetime | None:
    """A sitemap date (W3C datetime: `2025-10-05`, `2025-10-05T07:15:00+05:00`, …) -> UTC.

    A date without a zone is taken as UTC; a bare `YYYY-MM` as the first of the month; anything
    unreadable as None.
    """
    if not text:
        return None
    text = text.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        partial = _W3C_PARTIAL.fullmatch(text)
        if not partial or not 1 <= int(partial.group(2)) <= 12:
            return None
        parsed = datetime(int(partial.group(1)), int(partial.group(2)), 1)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def date_in_path(url: str) -> datetime | None:
    """The date an article URL's path carries, as the LATEST moment it can mean.

    `/2025/10/05/slug` -> the end of that day, `/2025/10/slug` -> the end of that month: a date
    in a path is coarse, and a recent article must never be mistaken for an old one.
    """
    try:
        path = urlsplit(url).path
    except ValueError:
        return None
    found = _PATH_DATE.search(path)
    if found is None:
        return None
    year, month, day = (
        found.group(1, 2, 3) if found.group(1) else found.group(4, 5, 6)
    )  # separated or compact
    y, m = int(year), int(month)
    if day is None:
        last = calendar.monthrange(y, m)[1]
        return datetime(y, m, last, tzinfo=UTC) + timedelta(days=1)
    if int(day) > calendar.monthrange(y, m)[1]:
        return None
    return datetime(y, m, int(day), tzinfo=UTC) + timedelta(days=1)


# --- sitemaps ------------------------------------------------------------------------------------


def sitemaps_in_robots(body: bytes, robots_url: str) -> list[str]:
    """The sitemap URLs a robots.txt names (`Sitemap:` lines, any case), absolute, in order."""
    found: list[str] = []
    for line in body.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() != "sitemap" or not value.strip():
            continue
        try:
            url = urljoin(robots_url, value.strip())
        except ValueError:
            continue
        if dedupe.is_article_link(url) and url not in found:
            found.append(url)
        if len(found) == ROBOTS_SITEMAP_LIMIT:
            break
    return found


def parse_sitemap(body: bytes) -> Sitemap | None:
    """A sitemap or sitemap index (gzipped or not) -> its entries; None when it is neither.

    Never fetches anything and never expands an entity; a gzipped body that would unpack past
    MAX_SITEMAP_BYTES is refused (None).
    """
    if body.startswith(_GZIP_MAGIC):
        try:
            body = BoundedDecoder("gzip", MAX_SITEMAP_BYTES).feed(body)
        except FetchError:
            return None
    try:
        root = etree.fromstring(body, etree.XMLParser(**_XML_PARSER_OPTIONS))
    except etree.XMLSyntaxError:
        return None
    if root is None or not isinstance(root.tag, str):
        return None
    kind = etree.QName(root).localname
    if kind == "urlset":
        return Sitemap(urls=tuple(_items(root, "url")))
    if kind == "sitemapindex":
        return Sitemap(children=tuple(_items(root, "sitemap")))
    return None


def _items(root: etree._Element, tag: str) -> Iterable[SitemapUrl]:
    for count, element in enumerate(root.iterchildren(f"{{*}}{tag}")):
        if count == MAX_URLS_PER_SITEMAP:
            return
        loc = (element.findtext("{*}loc") or "").strip()
        if not dedupe.is_article_link(loc):
            continue
        news = element.find("{*}news")
        yield SitemapUrl(
            loc=loc,
            lastmod=parse_w3c_date(element.findtext("{*}lastmod")),
            published=(
                parse_w3c_date(news.findtext("{*}publication_date")) if news is not None else None
            ),
            title=" ".join((news.findtext("{*}title") or "").split()) if news is not None else "",
        )


def recent_urls(
    urls: Sequence[SitemapUrl],
    now: datetime,
    *,
    recent: timedelta = RECENT,
    undated_limit: int = UNDATED_LIMIT,
    limit: int = MAX_ENTRIES,
) -> list[SitemapUrl]:
    """The URLs that may be new: dated (`SitemapUrl.date`) within `recent` of now, newest
    first, then at most `undated_limit` undated ones in document order; `limit` in all, each
    URL once.

    A recent lastmod that nearly all of many URLs share (see `generation_stamp`) dates the
    sitemap, not its articles, and counts as no date.
    """
    dated: list[tuple[datetime, SitemapUrl]] = []
    undated: list[SitemapUrl] = []
    for url in unstamped(list(_unique_locs(urls)), now, recent):
        date = url.date(now)
        if date is None:
            if len(undated) < undated_limit:
                undated.append(url)
        elif date >= now - recent:
            dated.append((date, url))
    dated.sort(key=lambda pair: pair[0], reverse=True)  # stable: document order among equals
    return ([url for _, url in dated] + undated)[:limit]


def unstamped(
    urls: Sequence[SitemapUrl], now: datetime, recent: timedelta = RECENT
) -> list[SitemapUrl]:
    """`urls`, without the lastmod that `generation_stamp` finds on nearly all of them."""
    stamp = generation_stamp(urls, now, recent)
    if stamp is None:
        return list(urls)
    return [
        replace(u, lastmod=None) if u.published is None and u.lastmod == stamp else u for u in urls
    ]


def generation_stamp(
    urls: Sequence[SitemapUrl], now: datetime, recent: timedelta = RECENT
) -> datetime | None:
    """A recent lastmod shared by at least STAMP_SHARE of more than STAMP_MIN_URLS URLs: the
    time a generator wrote the sitemap and stamped on every URL, which says nothing of when
    each article changed. (A shared old lastmod is left alone: old either way.)"""
    if len(urls) <= STAMP_MIN_URLS:
        return None
    counts = Counter(u.lastmod for u in urls if u.lastmod is not None)
    if not counts:
        return None
    value, count = counts.most_common(1)[0]
    if count >= STAMP_SHARE * len(urls) and value >= now - recent:
        return value
    return None


def recent_sitemaps(
    children: Sequence[SitemapUrl],
    now: datetime,
    *,
    recent: timedelta = RECENT,
    limit: int = CHILDREN_PER_INDEX,
) -> list[str]:
    """Of a sitemap index's sitemaps, those worth reading, at most `limit`: changed within
    `recent` (newest first), then news sitemaps ("news" in their URL) whatever their date, then
    other undated ones, in the index's order.

    Any other sitemap dated older (by lastmod, else a date in its URL: sitemap-2019-03.xml)
    holds only old articles and is not read. A news sitemap lists only the last two days by
    definition, so a stale lastmod on the index does not make it skip one.
    """
    dated: list[tuple[datetime, SitemapUrl]] = []
    news: list[SitemapUrl] = []
    undated: list[SitemapUrl] = []
    for child in _unique_locs(children):
        date = child.date(now)
        if date is not None and date >= now - recent:
            dated.append((date, child))
        elif "news" in child.loc.lower():
            news.append(child)
        elif date is None:
            undated.append(child)
    dated.sort(key=lambda pair: pair[0], reverse=True)
    return [child.loc for child in [c for _, c in dated] + news + undated][:limit]


def _unique_locs(urls: Iterable[SitemapUrl]) -> Iterable[SitemapUrl]:
    seen: set[str] = set()
    for url in urls:
        if url.loc not in seen:
            seen.add(url.loc)
            yield url


def is_sitemap_url(url: str) -> bool:
    """A URL that names a sitemap document itself (…/sitemap.xml, …/news.xml.gz)."""
    return bool(_SITEMAP_PATH.search(urlsplit(url).path))


# --- pages ---------------------------------------------------------------------------------------


def looks_like_article(url: str, site: str, text: str = "") -> bool:
    """Whether a link found on `site`'s page (site: `dedupe.outlet_of` of the page), with the
    link `text`, looks like one of its articles rather than a section, tag, author, login or
    media link.

    Same site (or a subdomain), no tag/category/author/page/login/legal/media path, and an
    article-shaped path: a slug of three or more words (/pakistan-ships-first-minerals); below
    a section, a slug of two parts or an id of 3+ digits (/news/story-one, /story/4521); an id
    of 5+ digits anywhere (/news/1945123/x); a date followed by more path (/2025/10/05/x); or,
    below a section, a headline of HEADLINE_WORDS or more words as its text ("A fine day in
    Quetta" -> /news/fine). A section's own page (/pakistan, /business/) is none of these.
    """
    try:
        outlet = dedupe.outlet_of(url)
        parts = urlsplit(url)
    except (UrlError, ValueError):
        return False
    if outlet != site and not outlet.endswith("." + site):
        return False
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        return False
    if any(s.lower() in _NOT_ARTICLE_SEGMENTS for s in segments):
        return False
    last = segments[-1]
    if _MEDIA_FILE.search(last):
        return False
    query_keys = {pair.split("=", 1)[0].lower() for pair in parts.query.split("&") if pair}
    if query_keys & _NOT_ARTICLE_QUERY_KEYS:
        return False
    slug = _PAGE_EXTENSION.sub("", last)
    parts_of_slug = [w for w in _SLUG_SPLIT.split(slug) if w]
    words = [w for w in parts_of_slug if any(c.isalpha() for c in w)]
    if len(words) >= _MIN_SLUG_WORDS:
        return True
    # Below a section: /news/story-one, /sport/cricket-series, /story/4521.
    if len(segments) >= 2 and (len(parts_of_slug) >= 2 or _SHORT_ID.search(slug)):
        return True
    if any(_ARTICLE_ID.search(s) and not _PATH_DATE.fullmatch(s) for s in segments):
        return True
    date = _PATH_DATE.search(parts.path)
    if date is not None and parts.path[date.end() :].strip("/"):
        return True
    return len(segments) >= 2 and len(text.split()) >= HEADLINE_WORDS


def article_links(
    body: bytes, page_url: str, *, limit: int = PAGE_LINK_LIMIT
) -> tuple[str | None, list[Entry]]:
    """A page's title and its article-like links (see `looks_like_article`) as entries, in page
    order, each once, titled by the longest link text that reads like a headline; at most
    `limit`."""
    try:
        document = lxml.html.document_fromstring(body)
    except (etree.ParserError, ValueError):
        return None, []
    base = page_url
    for base_element in document.iter("base"):
        href = base_element.get("href")
        if href:
            base = _join(page_url, href) or page_url
        break
    try:
        site = dedupe.outlet_of(page_url)
        page_key = dedupe.canonical_url(page_url)
    except UrlError:
        return None, []
    titles: dict[str, str] = {}  # canonical URL -> its longest link text
    links: dict[str, str] = {}  # canonical URL -> the link as written (first seen)
    for count, anchor in enumerate(document.iter("a")):
        if count == MAX_ANCHORS:
            break
        href = anchor.get("href")
        url = _join(base, href) if href else None
        try:
            key = dedupe.canonical_url(url) if url else None
        except UrlError:
            continue
        if url is None or key is None or key == page_key:
            continue
        links.setdefault(key, url)
        text = " ".join(anchor.text_content().split())
        if len(text) > len(titles.get(key, "")):
            titles[key] = text
    chosen = [
        (key, link)
        for key, link in links.items()
        if looks_like_article(link, site, titles.get(key, ""))
    ][:limit]
    entries = [Entry(link=link, title=_headline(titles.get(key, ""))) for key, link in chosen]
    return _title_of(document), entries


def page_title(body: bytes) -> str | None:
    """An HTML page's <title>, on one line; None when it has none."""
    try:
        return _title_of(lxml.html.document_fromstring(body))
    except (etree.ParserError, ValueError):
        return None


def _title_of(document: lxml.html.HtmlElement) -> str | None:
    element = document.find(".//title")
    if element is None:
        return None
    return " ".join(element.text_content().split()) or None


def _headline(text: str) -> str:
    """A link's text as an entry's title, when it reads like one ("Read more" does not)."""
    return text if len(text.split()) >= _MIN_TITLE_WORDS else ""


def _join(base: str, href: str) -> str | None:
    try:
        url = urljoin(base, href.strip())
    except ValueError:
        return None
    return url.split("#", 1)[0] if dedupe.is_article_link(url) else None


# --- reading a site ------------------------------------------------------------------------------


async def read_site(url: str, fetcher: Fetcher, now: datetime) -> SiteListing | FetchFailed:
    """What the site at `url` shows as possibly new now (see the module's docstring).

    Fails (returns FetchFailed) when the site itself does: robots.txt or the page that decides
    answers 429 or 5xx, or cannot be reached; a configured sitemap URL is not there. A missing
    robots.txt or guessed sitemap is no failure.
    """
    if is_sitemap_url(url):
        crawl = await _crawl([url], fetcher, now, probing=False)
        if not crawl.read and crawl.failures:
            return crawl.failures[0]
        return _from_crawl(crawl, url, now)
    if urlsplit(url).path not in ("", "/"):
        return await _read_page(url, fetcher, "section page")

    robots_url = urljoin(url, "/robots.txt")
    robots = await fetcher.fetch(robots_url)
    if isinstance(robots, FetchFailed) and not _absent(robots):
        return robots
    listed = sitemaps_in_robots(robots.body, robots_url) if isinstance(robots, FetchOk) else []
    # Listed sitemaps are chosen like an index's: robots.txt may list a decade of archives.
    chosen = recent_sitemaps([SitemapUrl(loc) for loc in listed], now, limit=MAX_SITEMAPS)
    locations = chosen or [urljoin(url, path) for path in COMMON_SITEMAP_PATHS]
    crawl = await _crawl(locations, fetcher, now, probing=not chosen)
    if limited := next((f for f in crawl.failures if f.status == 429), None):
        return limited  # the site asks us to wait: Retry-After is honoured by the schedule
    sitemaps = _from_crawl(crawl, url, now)
    if crawl.read and crawl.dated:
        return sitemaps
    page = await _read_page(url, fetcher, "front page")
    if isinstance(page, FetchFailed):
        if not crawl.read or page.status == 429:
            return page
        return replace(sitemaps, problem=_joined(sitemaps.problem, f"front page: {page.error}"))
    if not crawl.read:
        return replace(page, problem=_joined(sitemaps.problem, page.problem))
    # The sitemaps say nothing about what is recent: the front page does, so it comes first.
    return SiteListing(
        entries=_unique((*page.entries, *sitemaps.entries)),
        via=f"{page.via}, and undated {sitemaps.via}",
        title=page.title,
        problem=_joined(sitemaps.problem, page.problem),
    )


@dataclass
class _Crawl:
    read: list[str]  # sitemap URLs read, in order
    urls: list[SitemapUrl]
    dated: bool  # anything read (a URL or a child sitemap) carried a date
    failures: list[FetchFailed]
    problems: list[str]  # for people; misses of guessed paths are not problems


async def _crawl(
    locations: Sequence[str], fetcher: Fetcher, now: datetime, *, probing: bool
) -> _Crawl:
    """Read sitemaps breadth first: at most MAX_SITEMAPS documents, MAX_DEPTH levels of index.

    `probing`: the locations are guessed paths, listed nowhere, so a miss there is expected.
    Sitemaps an index lists are never guessed.
    """
    crawl = _Crawl(read=[], urls=[], dated=False, failures=[], problems=[])
    queue = list(dict.fromkeys(locations))
    seen = set(queue)
    fetched = 0
    for depth in range(MAX_DEPTH + 1):
        batch = queue[: MAX_SITEMAPS - fetched]
        if not batch:
            break
        fetched += len(batch)
        guessed = probing and depth == 0
        outcomes = await asyncio.gather(*(fetcher.fetch(loc) for loc in batch))
        queue = []
        for loc, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, FetchFailed):
                crawl.failures.append(outcome)
                if not guessed:
                    crawl.problems.append(f"sitemap {loc}: {outcome.error}")
                continue
            if not isinstance(outcome, FetchOk):
                continue  # no validators are sent, so never NotModified
            sitemap = await asyncio.to_thread(parse_sitemap, outcome.body)
            if sitemap is None:
                if not guessed:
                    crawl.problems.append(f"sitemap {loc}: not a sitemap")
                continue
            crawl.read.append(loc)
            crawl.urls.extend(sitemap.urls)
            crawl.dated = crawl.dated or any(
                item.date(now) is not None
                for item in (*unstamped(sitemap.urls, now), *sitemap.children)
            )
            if depth < MAX_DEPTH:
                for child in recent_sitemaps(sitemap.children, now):
                    if child not in seen:
                        seen.add(child)
                        queue.append(child)
    return crawl


def _from_crawl(crawl: _Crawl, site_url: str, now: datetime) -> SiteListing:
    site = dedupe.outlet_of(site_url)
    on_site = [u for u in crawl.urls if _on_site(u.loc, site)]
    entries = tuple(
        Entry(link=u.loc, title=u.title, published=u.published) for u in recent_urls(on_site, now)
    )
    more = f" and {len(crawl.read) - 3} more" if len(crawl.read) > 3 else ""
    return SiteListing(
        entries=entries,
        via=f"sitemaps {', '.join(crawl.read[:3])}{more}" if crawl.read else "no sitemap",
        problem="; ".join(crawl.problems) or None,
    )


async def _read_page(url: str, fetcher: Fetcher, what: str) -> SiteListing | FetchFailed:
    outcome = await fetcher.fetch(url)
    if isinstance(outcome, FetchFailed):
        return outcome
    if not isinstance(outcome, FetchOk):
        return SiteListing(entries=(), via=f"{what} {url}")  # no validators are sent
    title, entries = await asyncio.to_thread(article_links, outcome.body, outcome.final_url)
    problem = None if entries else f"no article links found on the {what}"
    return SiteListing(tuple(entries), via=f"{what} {url}", title=title, problem=problem)


def _joined(*problems: str | None) -> str | None:
    return "; ".join(p for p in problems if p) or None


def _absent(failed: FetchFailed) -> bool:
    """A 4xx other than 429: the document is not there, which is an answer, not a failure."""
    return failed.status is not None and 400 <= failed.status < 500 and failed.status != 429


def _on_site(url: str, site: str) -> bool:
    try:
        outlet = dedupe.outlet_of(url)
    except UrlError:
        return False
    return outlet == site or outlet.endswith("." + site)


def _unique(entries: Iterable[Entry]) -> tuple[Entry, ...]:
    """Each article once (by canonical URL), the first listing of it kept."""
    kept: dict[str, Entry] = {}
    for entry in entries:
        try:
            key = dedupe.canonical_url(entry.link)
        except UrlError:
            continue
        kept.setdefault(key, entry)
    return tuple(kept.values())
