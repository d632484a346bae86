"""`type: site`: sitemaps, news sitemaps, indexes and front pages, on 127.0.0.1 and as tables."""

from __future__ import annotations

import asyncio
import gzip
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from monitor.config import Config, FetchSettings
from monitor.fetch import HttpFetcher
from monitor.models import FetchFailed
from monitor.sources import site
from monitor.sources.site import (
    SiteListing,
    SitemapUrl,
    article_links,
    date_in_path,
    looks_like_article,
    parse_sitemap,
    parse_w3c_date,
    read_site,
    recent_sitemaps,
    recent_urls,
    sitemaps_in_robots,
)
from monitor.store import Store
from tests.polling import make_config, numeric_only, poll
from tests.web import LocalWeb
from tests.world import Story, article_page

NOW = datetime(2025, 10, 7, 12, 0, tzinfo=UTC)
SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
NEWS_NS = "http://www.google.com/schemas/sitemap-news/0.9"
PARAGRAPHS = tuple(
    f"Paragraph {i}: officials in Quetta said the minerals agreement would bring a refinery, "
    f"roads and jobs to the province, while critics asked who would share the revenue {i}."
    for i in range(8)
)


# --- building sites ------------------------------------------------------------------------------


def urlset(urls: list[tuple[str, str | None]]) -> str:
    """A sitemap: (loc, lastmod or None) pairs."""
    items = "".join(
        f"<url><loc>{escape(loc)}</loc>"
        + (f"<lastmod>{lastmod}</lastmod>" if lastmod else "")
        + "</url>"
        for loc, lastmod in urls
    )
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="{SITEMAP_NS}">{items}</urlset>'


def news_sitemap(items: list[tuple[str, str, str]]) -> str:
    """A Google News sitemap: (loc, title, publication date) triples."""
    body = "".join(
        f"<url><loc>{escape(loc)}</loc><news:news><news:publication>"
        "<news:name>Frontier Times</news:name><news:language>en</news:language>"
        f"</news:publication><news:publication_date>{published}</news:publication_date>"
        f"<news:title>{escape(title)}</news:title></news:news></url>"
        for loc, title, published in items
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<urlset xmlns="{SITEMAP_NS}" xmlns:news="{NEWS_NS}">{body}</urlset>'
    )


def sitemap_index(children: list[tuple[str, str | None]]) -> str:
    items = "".join(
        f"<sitemap><loc>{escape(loc)}</loc>"
        + (f"<lastmod>{lastmod}</lastmod>" if lastmod else "")
        + "</sitemap>"
        for loc, lastmod in children
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<sitemapindex xmlns="{SITEMAP_NS}">{items}</sitemapindex>'
    )


def publish_article(web: LocalWeb, path: str, title: str, published: datetime) -> str:
    url = web.url(path)
    story = Story(path.strip("/").replace("/", "-"), title, PARAGRAPHS, published)
    web.add(path, article_page(story, "Frontier Times", url))
    return url


def xml(web: LocalWeb, path: str, body: str | bytes) -> str:
    return web.add(path, body, content_type="application/xml")


def read(web: LocalWeb, url: str | None = None, now: datetime = NOW) -> SiteListing | FetchFailed:
    settings = FetchSettings(timeout="10s", private_network_allowlist=[web.host])

    async def run() -> SiteListing | FetchFailed:
        async with HttpFetcher(settings, resolver=numeric_only) as fetcher:
            return await read_site(url or web.url("/"), fetcher, now)

    return asyncio.run(run())


def article_hits(web: LocalWeb, prefix: str = "/news/") -> int:
    return sum(1 for r in web.requests if r.path.startswith(prefix))


def iso(moment: datetime) -> str:
    return moment.isoformat()


# --- dates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-10-05", datetime(2025, 10, 5, tzinfo=UTC)),
        ("2025-10-05T07:15:00Z", datetime(2025, 10, 5, 7, 15, tzinfo=UTC)),
        ("2025-10-05T07:15:00+05:00", datetime(2025, 10, 5, 2, 15, tzinfo=UTC)),
        ("2025-10-05T07:15:00.250-04:00", datetime(2025, 10, 5, 11, 15, 0, 250000, tzinfo=UTC)),
        (" 2025-10-05T07:15 ", datetime(2025, 10, 5, 7, 15, tzinfo=UTC)),
        ("2025-10", datetime(2025, 10, 1, tzinfo=UTC)),
        ("2025-13", None),
        ("yesterday", None),
        ("", None),
        (None, None),
    ],
)
def test_sitemap_dates_are_read_as_utc(text: str | None, expected: datetime | None) -> None:
    assert parse_w3c_date(text) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://x.pk/2025/10/05/minerals-deal", datetime(2025, 10, 6, tzinfo=UTC)),
        ("https://x.pk/news/2025-10-05-minerals-deal", datetime(2025, 10, 6, tzinfo=UTC)),
        ("https://x.pk/news/20251005/minerals-deal", datetime(2025, 10, 6, tzinfo=UTC)),
        # a month alone means "some day in it": its end, so a recent article is never old
        ("https://x.pk/2025/10/minerals-deal", datetime(2025, 11, 1, tzinfo=UTC)),
        ("https://x.pk/2025/12/minerals-deal", datetime(2026, 1, 1, tzinfo=UTC)),
        ("https://x.pk/sitemap-2019-03.xml", datetime(2019, 4, 1, tzinfo=UTC)),
        ("https://x.pk/2025/02/30/no-such-day", None),
        ("https://x.pk/news/1945123", None),  # an id, not a date
        ("https://x.pk/news/201912/slug", None),  # six digits: an id as likely as a month
        ("https://x.pk/news/minerals-deal", None),
    ],
)
def test_a_date_in_the_path_is_the_latest_moment_it_can_mean(
    url: str, expected: datetime | None
) -> None:
    assert date_in_path(url) == expected


# --- recency -------------------------------------------------------------------------------------


def u(
    loc: str, *, lastmod: datetime | None = None, published: datetime | None = None
) -> SitemapUrl:
    return SitemapUrl(f"https://x.pk/{loc}", lastmod=lastmod, published=published)


@pytest.mark.parametrize(
    ("urls", "expected"),
    [
        pytest.param([], [], id="nothing"),
        pytest.param(
            [u("a", lastmod=NOW - timedelta(days=10)), u("b", lastmod=NOW - timedelta(days=400))],
            [],
            id="only old: nothing is new",
        ),
        pytest.param(
            [
                u("old", lastmod=NOW - timedelta(days=4)),
                u("day", lastmod=NOW - timedelta(days=1)),
                u("hour", lastmod=NOW - timedelta(hours=1)),
            ],
            ["hour", "day"],
            id="recent ones, newest first",
        ),
        pytest.param(
            [u("x", lastmod=NOW - timedelta(days=30), published=NOW - timedelta(hours=2))],
            ["x"],
            id="publication date beats lastmod",
        ),
        pytest.param(
            [u("x", lastmod=NOW - timedelta(hours=2), published=NOW - timedelta(days=30))],
            [],
            id="an old article edited today is still old",
        ),
        pytest.param(
            [u("2025/10/06/path-dated"), u("2024/01/02/path-old")],
            ["2025/10/06/path-dated"],
            id="dates in paths count",
        ),
        pytest.param(
            [
                u("future", lastmod=NOW + timedelta(days=400)),
                u("soon", lastmod=NOW + timedelta(hours=3)),
            ],
            ["soon", "future"],
            id="far future is no date (undated); a little ahead is recent",
        ),
        pytest.param(
            [u("a", lastmod=NOW - timedelta(hours=1)), u("a", lastmod=NOW - timedelta(hours=1))],
            ["a"],
            id="each URL once",
        ),
        pytest.param(
            [u("undated-1"), u("new", lastmod=NOW - timedelta(hours=1)), u("undated-2")],
            ["new", "undated-1", "undated-2"],
            id="dated first, then undated in document order",
        ),
    ],
)
def test_recent_urls(urls: list[SitemapUrl], expected: list[str]) -> None:
    assert [x.loc.removeprefix("https://x.pk/") for x in recent_urls(urls, NOW)] == expected


def test_undated_urls_are_bounded_in_document_order() -> None:
    urls = [u(f"story-{i}") for i in range(5000)]

    chosen = recent_urls(urls, NOW)

    assert [x.loc for x in chosen] == [f"https://x.pk/story-{i}" for i in range(30)]


def test_a_lastmod_stamped_on_every_url_is_no_date() -> None:
    """A generator that writes lastmod = now on all 5,000 URLs: they are undated, so bounded."""
    stamp = NOW - timedelta(minutes=10)
    urls = [u(f"story-{i}", lastmod=stamp) for i in range(5000)]
    urls[100] = u("really-new", published=NOW - timedelta(hours=1))

    chosen = [x.loc.removeprefix("https://x.pk/") for x in recent_urls(urls, NOW)]

    assert chosen[0] == "really-new"
    assert len(chosen) == 1 + site.UNDATED_LIMIT


def test_an_old_lastmod_stamped_on_every_url_is_still_old() -> None:
    urls = [u(f"story-{i}", lastmod=NOW - timedelta(days=700)) for i in range(5000)]

    assert recent_urls(urls, NOW) == []


def test_many_urls_with_their_own_recent_dates_are_all_recent() -> None:
    urls = [u(f"story-{i}", lastmod=NOW - timedelta(minutes=i % 150)) for i in range(150)]

    assert len(recent_urls(urls, NOW)) == 150


def test_recent_urls_are_bounded_in_all() -> None:
    urls = [u(f"s{i}", lastmod=NOW - timedelta(minutes=i)) for i in range(1000)]

    assert len(recent_urls(urls, NOW)) == site.MAX_ENTRIES


@pytest.mark.parametrize(
    ("children", "expected"),
    [
        pytest.param(
            [
                u("sitemap-2019-03.xml"),
                u("sitemap-2025-10.xml"),
                u("posts.xml", lastmod=NOW - timedelta(days=200)),
                u("pages.xml", lastmod=NOW - timedelta(hours=5)),
            ],
            ["sitemap-2025-10.xml", "pages.xml"],
            id="old sitemaps are skipped, by lastmod or by the date in their name",
        ),
        pytest.param(
            [u("a.xml"), u("b.xml"), u("news.xml")],
            ["news.xml", "a.xml", "b.xml"],
            id="undated: news sitemaps first",
        ),
        pytest.param(
            [
                u("news-sitemap.xml", lastmod=NOW - timedelta(days=90)),
                u("posts.xml", lastmod=NOW - timedelta(days=90)),
                u("pages.xml", lastmod=NOW - timedelta(hours=1)),
            ],
            ["pages.xml", "news-sitemap.xml"],
            id="a news sitemap is read whatever the index says of its date",
        ),
        pytest.param(
            [u(f"part-{i}.xml") for i in range(50)],
            [f"part-{i}.xml" for i in range(site.CHILDREN_PER_INDEX)],
            id="bounded",
        ),
    ],
)
def test_recent_sitemaps(children: list[SitemapUrl], expected: list[str]) -> None:
    assert [c.removeprefix("https://x.pk/") for c in recent_sitemaps(children, NOW)] == expected


def test_robots_listing_a_decade_of_sitemaps_reads_the_recent_ones(web: LocalWeb) -> None:
    recent = iso(NOW - timedelta(hours=1))
    years = [f"/sitemap-{year}-01.xml" for year in range(2010, 2025)]
    listing_lines = "".join(f"Sitemap: {path}\n" for path in [*years, "/sitemap-2025-10.xml"])
    web.add("/robots.txt", listing_lines, content_type="text/plain")
    for path in years:
        xml(web, path, urlset([(web.url(f"/old{path}-story-here"), "2012-01-01")]))
    xml(web, "/sitemap-2025-10.xml", urlset([(web.url("/news/1/fresh-story-here"), recent)]))

    listing = read(web)

    assert isinstance(listing, SiteListing)
    assert [e.link for e in listing.entries] == [web.url("/news/1/fresh-story-here")]
    assert all(web.hits(path) == 0 for path in years)


# --- article-like links --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://dawn.com/news/1945123/pakistan-ships-minerals", True),
        ("https://www.dawn.com/news/1945123", True),  # an id; www. is the same site
        ("https://dawn.com/pakistan-ships-first-rare-earth-consignment", True),
        ("https://dawn.com/2025/10/05/minerals", True),  # a date, then the article
        ("https://dawn.com/story/rare_earth_deal_signed.html", True),
        ("https://images.dawn.com/news/1183456/a-film-review", True),  # a subdomain is the site
        ("https://dawn.com/", False),
        ("https://dawn.com/pakistan", False),  # a section
        ("https://dawn.com/business/", False),
        ("https://dawn.com/sport/cricket-series", True),  # below a section, two words
        ("https://dawn.com/news/story-one", True),
        ("https://dawn.com/story/4521", True),
        ("https://dawn.com/news/article1.html", False),  # nothing says "article"
        ("https://dawn.com/cricket-series", False),  # two words at the top: a section
        ("https://dawn.com/terms-and-conditions", False),
        ("https://dawn.com/about-us", False),
        ("https://dawn.com/help/how-to-subscribe-online", False),
        ("https://dawn.com/topic/rare-earths", False),
        ("https://dawn.com/2025/10/05/", False),  # a day's archive
        ("https://dawn.com/tag/rare-earth-minerals-news", False),
        ("https://dawn.com/category/pakistan-news-today", False),
        ("https://dawn.com/author/staff-reporter-quetta", False),
        ("https://dawn.com/news/page/2", False),
        ("https://dawn.com/wp-login.php?redirect_to=x", False),
        ("https://dawn.com/login-to-your-account", True),  # a slug; only a login segment is out
        ("https://dawn.com/login/reset-your-password-now", False),
        ("https://dawn.com/wp-content/uploads/2025/10/rare-earth-photo.jpg", False),
        ("https://dawn.com/files/annual-report-2025-final.pdf", False),
        ("https://dawn.com/search-results-for-minerals?s=minerals", False),
        ("https://tribune.com.pk/story/1234567/minerals-deal", False),  # another site
        ("https://notdawn.com/news/1945123/pakistan-ships-minerals", False),
        ("mailto:editor@dawn.com", False),
    ],
)
def test_looks_like_article(url: str, expected: bool) -> None:
    assert looks_like_article(url, "dawn.com") is expected


@pytest.mark.parametrize(
    ("url", "text", "expected"),
    [
        ("https://dawn.com/news/fine", "A fine day in Quetta", True),
        ("https://dawn.com/weather/monsoon", "Met office forecasts late monsoon rains", True),
        ("https://dawn.com/news/fine", "Fine weather", False),  # two words: a menu item
        ("https://dawn.com/fine", "A fine day in Quetta", False),  # a top-level page
        ("https://dawn.com/tag/fine", "Everything about a fine day", False),
        ("https://dawn.com/news/photo.jpg", "A fine day in Quetta, pictured", False),
    ],
)
def test_a_headline_as_link_text_makes_an_article_below_a_section(
    url: str, text: str, expected: bool
) -> None:
    assert looks_like_article(url, "dawn.com", text) is expected


FRONT_PAGE = b"""<!DOCTYPE html><html><head><title>Frontier Times | Home</title></head><body>
<nav><a href="/">Home</a><a href="/pakistan">Pakistan</a><a href="/business/">Business</a>
<a href="/tag/rare-earth-minerals">Rare earths</a><a href="/author/staff-reporter">Staff</a>
<a href="/login">Log in</a></nav>
<a href="/news/1001/minerals-deal-signed"><img src="/img/1.jpg"></a>
<h2><a href="/news/1001/minerals-deal-signed#comments">Minerals deal signed in Islamabad today</a>
</h2>
<h2><a href="https://other.example/news/1/elsewhere-story-here">Elsewhere</a></h2>
<h2><a href="/news/1002/quetta-refinery-plan">Quetta refinery plan unveiled by officials</a></h2>
<a href="/news/1003/read-more-story">Read more</a>
<a href="javascript:void(0)">Menu</a>
<a href="/media/report.pdf">Report</a>
</body></html>"""


def test_front_page_links_keep_articles_in_page_order_titled_by_their_headline() -> None:
    title, entries = article_links(FRONT_PAGE, "https://frontier.example/")

    assert title == "Frontier Times | Home"
    assert [(e.link, e.title) for e in entries] == [
        (
            "https://frontier.example/news/1001/minerals-deal-signed",
            "Minerals deal signed in Islamabad today",
        ),
        (
            "https://frontier.example/news/1002/quetta-refinery-plan",
            "Quetta refinery plan unveiled by officials",
        ),
        ("https://frontier.example/news/1003/read-more-story", ""),
    ]


def test_front_page_links_follow_base_href_and_are_bounded() -> None:
    links = "".join(
        f'<a href="story/{1000 + i}/headline-number-{i}-today">Headline number {i} here</a>'
        for i in range(100)
    )
    page = f'<html><head><base href="https://frontier.example/news/"></head><body>{links}</body></html>'

    _, entries = article_links(page.encode(), "https://frontier.example/")

    assert len(entries) == site.PAGE_LINK_LIMIT
    assert entries[0].link == "https://frontier.example/news/story/1000/headline-number-0-today"


@pytest.mark.parametrize("body", [b"", b"\x00\x01\x02", b"not html at all", b"<html>"])
def test_front_page_links_of_nothing_are_nothing(body: bytes) -> None:
    assert article_links(body, "https://frontier.example/")[1] == []


# --- robots.txt and sitemap parsing --------------------------------------------------------------


def test_sitemaps_in_robots() -> None:
    robots = b"""User-agent: *
Disallow: /admin/
sitemap: /news-sitemap.xml
Sitemap: https://frontier.example/sitemap_index.xml
SITEMAP:https://frontier.example/sitemap_index.xml
Sitemap: javascript:alert(1)
Sitemap:
Crawl-delay: 10
"""
    assert sitemaps_in_robots(robots, "https://frontier.example/robots.txt") == [
        "https://frontier.example/news-sitemap.xml",
        "https://frontier.example/sitemap_index.xml",
    ]


def test_news_sitemap_gives_titles_and_publication_dates() -> None:
    body = news_sitemap(
        [("https://f.example/news/1/a-b-c", "Minerals & more", "2025-10-05T07:15:00+05:00")]
    )

    parsed = parse_sitemap(body.encode())

    assert parsed is not None
    assert parsed.urls == (
        SitemapUrl(
            "https://f.example/news/1/a-b-c",
            published=datetime(2025, 10, 5, 2, 15, tzinfo=UTC),
            title="Minerals & more",
        ),
    )


def test_sitemap_index_lists_children() -> None:
    parsed = parse_sitemap(sitemap_index([("https://f.example/a.xml", "2025-10-01")]).encode())

    assert parsed is not None
    assert parsed.urls == ()
    assert parsed.children == (
        SitemapUrl("https://f.example/a.xml", lastmod=datetime(2025, 10, 1, tzinfo=UTC)),
    )


def test_sitemap_without_namespace_and_gzipped_is_read() -> None:
    body = b"<urlset><url><loc>https://f.example/x-y-z</loc></url></urlset>"

    parsed = parse_sitemap(gzip.compress(body))

    assert parsed is not None
    assert [x.loc for x in parsed.urls] == ["https://f.example/x-y-z"]


def test_sitemap_drops_unusable_locations() -> None:
    body = urlset(
        [("javascript:alert(1)", None), ("/relative", None), ("https://f.example/ok", None)]
    )

    parsed = parse_sitemap(body.encode())

    assert parsed is not None
    assert [x.loc for x in parsed.urls] == ["https://f.example/ok"]


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html><body>Not found</body></html>",
        b"\x00\x01garbage",
        b"<rss><channel></channel></rss>",
        gzip.compress(b"\x00" * (site.MAX_SITEMAP_BYTES + 1)),  # a gzip bomb
        b"\x1f\x8b not really gzip",
    ],
    ids=["empty", "html", "garbage", "rss", "gzip-bomb", "bad-gzip"],
)
def test_what_is_not_a_sitemap_is_none(body: bytes) -> None:
    assert parse_sitemap(body) is None


def test_sitemap_entities_are_never_expanded() -> None:
    laughs = "".join(f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    body = (
        f'<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY l0 "lol">{laughs}'
        '<!ENTITY ext SYSTEM "file:///etc/passwd">]>'
        f'<urlset xmlns="{SITEMAP_NS}"><url><loc>https://f.example/a-b-c&l9;&ext;</loc></url>'
        "<url><loc>https://f.example/d-e-f</loc></url></urlset>"
    ).encode()

    started = time.monotonic()
    parsed = parse_sitemap(body)

    assert time.monotonic() - started < 1
    # libxml2 stops at the amplification attempt; what came before it is kept, unexpanded
    assert parsed is not None
    assert [x.loc for x in parsed.urls] == ["https://f.example/a-b-c"]


# --- whole sites on 127.0.0.1 --------------------------------------------------------------------


def test_robots_then_index_then_news_sitemap(web: LocalWeb) -> None:
    fresh = [
        publish_article(web, f"/news/{i}/minerals-story-{i}", f"Minerals story {i}", NOW)
        for i in range(3)
    ]
    web.add(
        "/robots.txt",
        f"User-agent: *\nSitemap: {web.url('/sitemap_index.xml')}\n",
        content_type="text/plain",
    )
    xml(
        web,
        "/sitemap_index.xml",
        sitemap_index(
            [
                (web.url("/sitemap-2019-01.xml"), "2019-02-01"),
                (web.url("/news-sitemap.xml"), iso(NOW - timedelta(minutes=5))),
                (web.url("/sitemap-2024-05.xml"), None),
            ]
        ),
    )
    xml(
        web,
        "/news-sitemap.xml",
        news_sitemap(
            [
                (url, f"Minerals story {i}", iso(NOW - timedelta(hours=i + 1)))
                for i, url in enumerate(fresh)
            ]
            + [(web.url("/news/0/old-story-here"), "Old", "2024-01-01T00:00:00Z")]
        ),
    )

    listing = read(web)

    assert isinstance(listing, SiteListing)
    assert [(e.link, e.title) for e in listing.entries] == [
        (url, f"Minerals story {i}") for i, url in enumerate(fresh)
    ]
    assert listing.entries[0].published == NOW - timedelta(hours=1)
    assert (
        listing.via == f"sitemaps {web.url('/sitemap_index.xml')}, {web.url('/news-sitemap.xml')}"
    )
    assert listing.problem is None
    # the old monthly sitemaps were judged by their dates and never fetched; nor the front page
    assert web.hits("/sitemap-2019-01.xml") == 0
    assert web.hits("/sitemap-2024-05.xml") == 0
    assert web.hits("/") == 0


def test_site_with_only_a_front_page(web: LocalWeb) -> None:
    web.add("/", FRONT_PAGE.replace(b"https://other.example", b"http://other.example"))
    web.add("/sitemap.xml", "<html><body>Home page again (a soft 404)</body></html>")

    listing = read(web)

    assert isinstance(listing, SiteListing)
    assert listing.via == f"front page {web.url('/')}"
    assert [e.link for e in listing.entries] == [
        web.url("/news/1001/minerals-deal-signed"),
        web.url("/news/1002/quetta-refinery-plan"),
        web.url("/news/1003/read-more-story"),
    ]
    assert listing.problem is None  # guessed sitemap paths missing is no problem
    assert web.hits("/robots.txt") == 1


def test_sitemap_without_any_date_is_joined_by_the_front_page(web: LocalWeb) -> None:
    web.add("/robots.txt", f"Sitemap: {web.url('/wp-sitemap.xml')}\n", content_type="text/plain")
    xml(
        web,
        "/wp-sitemap.xml",
        urlset([(web.url(f"/archive-story-number-{i}"), None) for i in range(500)]),
    )
    web.add("/", FRONT_PAGE)

    listing = read(web)

    assert isinstance(listing, SiteListing)
    links = [e.link for e in listing.entries]
    assert links[:3] == [
        web.url("/news/1001/minerals-deal-signed"),
        web.url("/news/1002/quetta-refinery-plan"),
        web.url("/news/1003/read-more-story"),
    ]
    assert links[3:] == [web.url(f"/archive-story-number-{i}") for i in range(site.UNDATED_LIMIT)]


def test_a_sitemap_whose_only_dates_are_a_generation_stamp_is_joined_by_the_front_page(
    web: LocalWeb,
) -> None:
    stamp = iso(NOW - timedelta(minutes=3))
    web.add("/robots.txt", "Sitemap: /sitemap.xml\n", content_type="text/plain")
    xml(
        web,
        "/sitemap.xml",
        urlset([(web.url(f"/archive-story-number-{i}"), stamp) for i in range(500)]),
    )
    web.add("/", FRONT_PAGE)

    listing = read(web)

    assert isinstance(listing, SiteListing)
    assert listing.entries[0].link == web.url("/news/1001/minerals-deal-signed")
    assert len(listing.entries) == 3 + site.UNDATED_LIMIT


def test_a_configured_sitemap_url_is_read_directly_gzipped(web: LocalWeb) -> None:
    body = urlset([(web.url("/news/1/fresh-minerals-story"), iso(NOW - timedelta(hours=1)))])
    url = web.add(
        "/sitemaps/news.xml.gz", gzip.compress(body.encode()), content_type="application/gzip"
    )

    listing = read(web, url)

    assert isinstance(listing, SiteListing)
    assert [e.link for e in listing.entries] == [web.url("/news/1/fresh-minerals-story")]
    assert web.hits("/robots.txt") == 0


def test_a_missing_configured_sitemap_is_a_failure(web: LocalWeb) -> None:
    failed = read(web, web.url("/gone.xml"))

    assert isinstance(failed, FetchFailed)
    assert failed.status == 404


def test_a_section_page_url_reads_that_page(web: LocalWeb) -> None:
    web.add("/pakistan/", FRONT_PAGE)

    listing = read(web, web.url("/pakistan/"))

    assert isinstance(listing, SiteListing)
    assert listing.via == f"section page {web.url('/pakistan/')}"
    assert len(listing.entries) == 3
    assert web.hits("/robots.txt") == 0


def test_articles_on_other_sites_are_not_taken_from_a_sitemap(web: LocalWeb) -> None:
    web.add("/robots.txt", "Sitemap: /sitemap.xml\n", content_type="text/plain")
    recent = iso(NOW - timedelta(hours=1))
    xml(
        web,
        "/sitemap.xml",
        urlset([("https://elsewhere.example/a-b-c", recent), (web.url("/a-b-c"), recent)]),
    )

    listing = read(web)

    assert isinstance(listing, SiteListing)
    assert [e.link for e in listing.entries] == [web.url("/a-b-c")]


def test_robots_429_is_a_failure_with_its_retry_after(web: LocalWeb) -> None:
    web.add("/robots.txt", "slow down", status=429, headers={"Retry-After": "3600"})

    failed = read(web)

    assert isinstance(failed, FetchFailed)
    assert failed.status == 429
    assert failed.retry_after is not None
    assert web.hits("/") == 0


def test_a_site_that_is_down_fails(web: LocalWeb) -> None:
    web.add("/robots.txt", "oops", status=503)

    failed = read(web)

    assert isinstance(failed, FetchFailed)
    assert failed.status == 503


def test_a_broken_listed_sitemap_falls_back_to_the_front_page_and_says_so(web: LocalWeb) -> None:
    web.add("/robots.txt", "Sitemap: /sitemap.xml\n", content_type="text/plain")
    web.add("/sitemap.xml", "oops", status=500)
    web.add("/", FRONT_PAGE)

    listing = read(web)

    assert isinstance(listing, SiteListing)
    assert len(listing.entries) == 3
    assert listing.problem is not None and "HTTP 500" in listing.problem


def test_index_depth_and_count_are_bounded(web: LocalWeb) -> None:
    """An index of indexes of indexes, each listing many sitemaps: a few documents are read."""
    web.add("/robots.txt", "Sitemap: /index-0.xml\n", content_type="text/plain")
    recent = iso(NOW - timedelta(hours=1))
    for level in range(5):
        xml(
            web,
            f"/index-{level}.xml",
            sitemap_index(
                [(web.url(f"/index-{level + 1}.xml"), recent)]
                + [(web.url(f"/part-{level}-{i}.xml"), recent) for i in range(20)]
            ),
        )
    for level in range(5):
        for i in range(20):
            xml(
                web,
                f"/part-{level}-{i}.xml",
                urlset([(web.url(f"/story-{level}-{i}-here"), recent)]),
            )

    listing = read(web)

    assert isinstance(listing, SiteListing)
    sitemap_requests = [r.path for r in web.requests if r.path.endswith(".xml")]
    assert len(sitemap_requests) <= site.MAX_SITEMAPS
    assert web.hits("/index-3.xml") == 0  # depth: index-0 -> index-1 -> index-2, no further


# --- the pipeline over a site: what a poll fetches -----------------------------------------------


def site_config(tmp_path: Path, web: LocalWeb) -> Config:
    return make_config(
        tmp_path / "config",
        sources_yaml=f"sources:\n  - name: frontier\n    type: site\n    url: {web.url('/')}\n",
        allow=[web.host],
    )


def test_first_poll_of_5000_old_sitemap_urls_fetches_only_the_recent_articles(
    tmp_path: Path, web: LocalWeb, store: Store
) -> None:
    now = datetime.now(UTC)
    old = [
        (web.url(f"/news/{i}/archive-story-{i}"), f"20{10 + i % 14}-0{1 + i % 9}-15")
        for i in range(5000)
    ]
    fresh = [
        publish_article(
            web, f"/news/9{i}/fresh-minerals-story-{i}", f"Fresh minerals story {i}", now
        )
        for i in range(3)
    ]
    web.add("/robots.txt", "Sitemap: /sitemap.xml\n", content_type="text/plain")
    xml(
        web,
        "/sitemap.xml",
        urlset(old[:2500] + [(url, iso(now - timedelta(hours=2))) for url in fresh] + old[2500:]),
    )
    config = site_config(tmp_path, web)

    first = poll(config, store, "frontier", lambda: now)

    assert (first.status, first.entries, first.new) == ("ok", 3, 3)
    assert article_hits(web) == 3
    assert len(web.requests) == 5  # robots.txt, the sitemap, three articles
    # the next poll finds the same candidates: nothing parsed again, no page fetched
    second = poll(config, store, "frontier", lambda: now + timedelta(minutes=15))
    assert second.status == "unchanged"
    assert article_hits(web) == 3


def test_first_poll_of_5000_undated_sitemap_urls_is_bounded(
    tmp_path: Path, web: LocalWeb, store: Store
) -> None:
    now = datetime.now(UTC)
    web.add("/robots.txt", "Sitemap: /sitemap.xml\n", content_type="text/plain")
    xml(
        web,
        "/sitemap.xml",
        urlset([(web.url(f"/news/{i}/archive-story-{i}"), None) for i in range(5000)]),
    )
    web.add("/", "<html><body><p>No links here.</p></body></html>")
    config = site_config(tmp_path, web)

    first = poll(config, store, "frontier", lambda: now)
    second = poll(config, store, "frontier", lambda: now + timedelta(minutes=15))

    assert first.new == site.UNDATED_LIMIT
    assert article_hits(web) == site.UNDATED_LIMIT
    assert second.status == "unchanged"
    assert article_hits(web) == site.UNDATED_LIMIT


def test_front_page_site_fetches_only_links_never_seen(
    tmp_path: Path, web: LocalWeb, store: Store
) -> None:
    now = datetime.now(UTC)
    links = [f"/news/{i}/minerals-story-number-{i}" for i in range(4)]
    for i, path in enumerate(links):
        publish_article(web, path, f"Minerals story number {i}", now)

    def front(paths: list[str]) -> str:
        items = "".join(
            f'<h2><a href="{p}">Minerals story number {p.split("-")[-1]}</a></h2>' for p in paths
        )
        return f"<html><head><title>Frontier</title></head><body>{items}</body></html>"

    web.add("/", front(links[:3]))
    config = site_config(tmp_path, web)

    first = poll(config, store, "frontier", lambda: now)
    web.add("/", front(links[3:] + links[:3]))  # one new story on top
    second = poll(config, store, "frontier", lambda: now + timedelta(minutes=15))

    assert (first.new, second.new) == (3, 1)
    assert [web.hits(p) for p in links] == [1, 1, 1, 1]
