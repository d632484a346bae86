"""`type: google_news`: the search feed, Google's redirect links, and dedupe against publishers.

Two servers on 127.0.0.1 play Google News and a publisher. The search feed has the shape of
the real one (tests/data/feeds/google-news.xml): titles ending " - Publisher", links to
/rss/articles/<id>?oc=5 on "Google", a `<source url>` naming the publisher.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from monitor.config import Config
from monitor.sources import google_news
from monitor.sources.feed import parse_feed
from monitor.store import Store
from monitor.store.schema import AlertRow, ArticleRow
from tests.polling import make_config, poll
from tests.web import LocalWeb
from tests.world import Story, publish

NOW = datetime.now(UTC)
OUTLET = "Frontier Times"
STORY = Story(
    "minerals-consignment",
    "Pakistan ships first minerals consignment to US firm",
    tuple(
        f"Paragraph {i}: the consignment of rare earth minerals left Karachi for the refinery, "
        f"officials said, under the memorandum signed in Islamabad last month, item {i}."
        for i in range(8)
    ),
    NOW - timedelta(hours=3),
)


def search_feed(query: str, items: list[tuple[str, str, str, str, datetime]]) -> str:
    """Google News search RSS: (title, link, publisher, publisher site, published) items."""
    entries = []
    for title, link, publisher, site, published in items:
        guid = link.rsplit("/", 1)[-1].split("?")[0]
        description = (
            f'<a href="{html.escape(link)}" target="_blank">{html.escape(title)}</a>'
            f'&nbsp;&nbsp;<font color="#6f6f6f">{html.escape(publisher)}</font>'
        )
        entries.append(
            f"<item><title>{html.escape(title)} - {html.escape(publisher)}</title>"
            f"<link>{html.escape(link)}</link>"
            f'<guid isPermaLink="false">{guid}</guid>'
            f"<pubDate>{format_datetime(published)}</pubDate>"
            f"<description>{html.escape(description)}</description>"
            f'<source url="{html.escape(site)}">{html.escape(publisher)}</source></item>'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<rss xmlns:media="http://search.yahoo.com/mrss/" version="2.0"><channel>'
        f"<generator>NFE/5.0</generator><title>{html.escape(query)} - Google News</title>"
        "<link>https://news.google.com/search?q=x&amp;hl=en-US&amp;gl=US&amp;ceid=US:en</link>"
        "<language>en-US</language><webMaster>news-webmaster@google.com</webMaster>"
        "<copyright>2025 Google Inc.</copyright>"
        f"<lastBuildDate>{format_datetime(NOW)}</lastBuildDate>"
        f"<description>Google News</description>{''.join(entries)}</channel></rss>"
    )


@pytest.fixture
def servers() -> Iterator[tuple[LocalWeb, LocalWeb]]:
    with LocalWeb() as google, LocalWeb() as publisher:
        yield google, publisher


def setup(tmp_path: Path, google: LocalWeb, publisher: LocalWeb, *, article_link: str) -> Config:
    """Google's search feed lists the publisher's story under `article_link`; the publisher
    serves the story and its own feed."""
    feed = publish(publisher, OUTLET, [STORY])
    google.add(
        "/rss/search",
        search_feed(
            "minerals",
            [(STORY.title, article_link, OUTLET, publisher.url("/"), STORY.published)],
        ),
        content_type="application/rss+xml; charset=UTF-8",
    )
    return make_config(
        tmp_path / "config",
        sources_yaml=f"""sources:
  - name: gnews-minerals
    type: google_news
    query: '"rare earth" minerals'
  - name: frontier
    url: {feed}
""",
        allow=[google.host, publisher.host],
        settings=f"""google_news:
  base_url: {google.url("/rss/search")}
  hl: en-PK
  gl: PK
  ceid: "PK:en"
""",
    )


def rows(store: Store) -> tuple[list[sa.Row[Any]], list[sa.Row[Any]]]:
    """Every stored article and alert, oldest first."""
    with store.engine.connect() as db:
        articles = list(db.execute(sa.select(ArticleRow).order_by(ArticleRow.id)))
        alerts = list(db.execute(sa.select(AlertRow).order_by(AlertRow.id)))
    return articles, alerts


def test_search_feed_is_built_from_query_and_settings(
    tmp_path: Path, servers: tuple[LocalWeb, LocalWeb], store: Store
) -> None:
    google, publisher = servers
    config = setup(tmp_path, google, publisher, article_link=google.url("/rss/articles/X1?oc=5"))

    poll(config, store, "gnews-minerals", lambda: NOW)

    (request,) = [r for r in google.requests if r.path.startswith("/rss/search")]
    assert parse_qs(urlsplit(request.path).query) == {
        "q": ['"rare earth" minerals'],
        "hl": ["en-PK"],
        "gl": ["PK"],
        "ceid": ["PK:en"],
    }


def test_redirect_resolves_to_the_publisher_then_its_own_feed_finds_it_seen(
    tmp_path: Path, servers: tuple[LocalWeb, LocalWeb], store: Store
) -> None:
    google, publisher = servers
    page = publisher.url(f"/news/{STORY.slug}")
    google.redirect("/rss/articles/CBMiQUFVX3lxTE1pbmVyYWxz", page)
    config = setup(
        tmp_path,
        google,
        publisher,
        article_link=google.url("/rss/articles/CBMiQUFVX3lxTE1pbmVyYWxz?oc=5"),
    )

    via_google = poll(config, store, "gnews-minerals", lambda: NOW)
    own_feed = poll(config, store, "frontier", lambda: NOW + timedelta(minutes=1))

    assert (via_google.new, via_google.alerts) == (1, 1)
    assert (own_feed.entries, own_feed.new) == (1, 0)
    (article,), (alert,) = rows(store)
    assert article.link == page  # what people are sent to: the publisher's page
    assert article.outlet == publisher.host
    assert article.title == STORY.title  # " - Frontier Times" taken off
    assert article.text_from == "page"
    assert alert.outlet == publisher.host
    assert publisher.hits(f"/news/{STORY.slug}") == 1  # the publisher's feed did not fetch it again


def test_publisher_feed_first_then_google_link_is_the_same_article(
    tmp_path: Path, servers: tuple[LocalWeb, LocalWeb], store: Store
) -> None:
    google, publisher = servers
    google.redirect("/rss/articles/ABC", publisher.url(f"/news/{STORY.slug}"))
    config = setup(tmp_path, google, publisher, article_link=google.url("/rss/articles/ABC?oc=5"))

    own_feed = poll(config, store, "frontier", lambda: NOW)
    via_google = poll(config, store, "gnews-minerals", lambda: NOW + timedelta(minutes=1))
    again = poll(config, store, "gnews-minerals", lambda: NOW + timedelta(minutes=20))

    assert (own_feed.new, via_google.new, again.status) == (1, 0, "unchanged")
    articles, alerts = rows(store)
    assert len(articles) == 1 and len(alerts) == 1


@pytest.mark.parametrize(
    "google_answer",
    ["consent page", "404", "redirect to a Google host that fails"],
)
def test_unresolved_link_is_deduplicated_by_publisher_and_title(
    tmp_path: Path, servers: tuple[LocalWeb, LocalWeb], store: Store, google_answer: str
) -> None:
    google, publisher = servers
    link = google.url("/rss/articles/CBMiUnresolved?oc=5")
    if google_answer == "consent page":
        google.add(
            "/rss/articles/CBMiUnresolved",
            "<html><body><h1>Before you continue to Google</h1>"
            "<p>We use cookies and data to deliver and maintain Google services.</p></body></html>",
        )
    elif google_answer == "redirect to a Google host that fails":
        google.redirect("/rss/articles/CBMiUnresolved", "http://consent.google.com:1/ml?continue=x")
    config = setup(tmp_path, google, publisher, article_link=link)

    via_google = poll(config, store, "gnews-minerals", lambda: NOW)
    own_feed = poll(config, store, "frontier", lambda: NOW + timedelta(minutes=1))

    assert (via_google.new, via_google.alerts) == (1, 1)
    assert (own_feed.new, own_feed.alerts) == (1, 0)  # stored, but no second alert
    (from_google, from_feed), (alert,) = rows(store)
    assert from_google.link == link  # the alert links to what we have
    assert from_google.text_from == "feed"
    assert from_google.outlet == from_feed.outlet == publisher.host
    assert from_google.title_key == from_feed.title_key
    assert from_google.story_id == from_feed.story_id
    assert alert.article_id == from_google.id


def test_tidy_takes_the_publisher_suffix_off_titles() -> None:
    body = (Path(__file__).parent / "data" / "feeds" / "google-news.xml").read_bytes()

    parsed = google_news.tidy(parse_feed(body, "https://news.google.com/rss/search?q=x"))

    assert [e.title for e in parsed.entries] == [
        "Pakistan sends first shipment of rare earths to US firm under $500m deal",
        "U.S. Strategic Metals signs $500 million minerals pact with Pakistan's Frontier Works",
        "Baloch activists say minerals shown at White House ‘come from Balochistan’",
    ]
    assert [e.publisher for e in parsed.entries] == ["Dawn", "Reuters", "The Balochistan Post"]


@pytest.mark.parametrize(
    ("link", "final", "expected"),
    [
        ("https://news.google.com/rss/articles/X", "https://www.dawn.com/news/1", True),
        ("https://news.google.com/rss/articles/X", "https://news.google.com/rss/articles/X", False),
        ("https://news.google.com/rss/articles/X", "https://consent.google.com/ml", False),
        ("https://news.google.com/rss/articles/X", "https://www.google.com.pk/url?q=x", False),
        ("https://news.google.com/rss/articles/X", "https://googleblog.com/post", True),
        ("http://127.0.0.1:8001/rss/articles/X", "http://127.0.0.1:8002/news/x", True),
        ("http://127.0.0.1:8001/rss/articles/X", "http://127.0.0.1:8001/news/x", True),
        (
            "http://127.0.0.1:8001/rss/articles/X?oc=5",
            "http://127.0.0.1:8001/rss/articles/X?oc=5",
            False,
        ),
    ],
)
def test_resolved(link: str, final: str, expected: bool) -> None:
    assert google_news.resolved(link, final) is expected


def test_a_redirect_on_one_server_resolves_too(tmp_path: Path, web: LocalWeb, store: Store) -> None:
    """Google and the publisher on one local server: the redirect still leads to the article."""
    publish(web, OUTLET, [STORY])
    web.redirect("/rss/articles/ONE", web.url(f"/news/{STORY.slug}"))
    link = web.url("/rss/articles/ONE?oc=5")
    web.add(
        "/rss/search",
        search_feed("minerals", [(STORY.title, link, OUTLET, web.url("/"), STORY.published)]),
        content_type="application/rss+xml",
    )
    config = make_config(
        tmp_path / "config",
        sources_yaml="sources:\n  - name: g\n    type: google_news\n    query: minerals\n",
        allow=[web.host],
        settings=f"google_news:\n  base_url: {web.url('/rss/search')}\n",
    )

    report = poll(config, store, "g", lambda: NOW)

    assert report.new == 1
    (article,), _ = rows(store)
    assert article.link == web.url(f"/news/{STORY.slug}")
    assert article.text_from == "page"
