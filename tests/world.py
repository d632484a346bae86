"""Building a small news world for tests: article pages, RSS feeds and config directories.

Pages look like real news pages (navigation, related links, cookie banner text, footer) so that
extraction has boilerplate to remove; the article texts come from the shared data at test time.
"""

from __future__ import annotations

import html
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from ruamel.yaml import YAML

from tests.web import LocalWeb


@dataclass(frozen=True)
class Story:
    """One article to publish: a slug, a headline, its paragraphs and when it was published."""

    slug: str
    title: str
    paragraphs: tuple[str, ...]
    published: datetime

    @property
    def text(self) -> str:
        return "\n\n".join(self.paragraphs)


def paragraphs_of(text: str) -> tuple[str, ...]:
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def article_page(story: Story, outlet: str, url: str) -> str:
    """A full news page around the story, with the site's boilerplate."""
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in story.paragraphs)
    when = story.published.isoformat()
    return f"""<!DOCTYPE html>
<html lang="en"><head>
<meta charset="utf-8">
<title>{html.escape(story.title)} | {html.escape(outlet)}</title>
<link rel="canonical" href="{html.escape(url)}">
<meta property="og:title" content="{html.escape(story.title)}">
<meta property="article:published_time" content="{when}">
</head><body>
<header><nav><a href="/">Home</a> <a href="/pakistan">Pakistan</a>
<a href="/business">Business</a> <a href="/world">World</a> <a href="/opinion">Opinion</a>
<a href="/sport">Sport</a></nav>
<div class="banner">{html.escape(outlet)} — independent news since 1947.
Subscribe to our newsletter.</div>
</header>
<main><article>
<h1>{html.escape(story.title)}</h1>
<div class="byline">By Staff Reporter ·
<time datetime="{when}">{story.published:%B %d, %Y}</time></div>
{body}
</article>
<aside><h3>Most read</h3><ul>
<li><a href="/sport/cricket-series">Cricket: home series squad announced</a></li>
<li><a href="/business/petrol-prices">Petrol prices unchanged for next fortnight</a></li>
<li><a href="/weather/monsoon">Met office forecasts late monsoon rains</a></li>
</ul></aside></main>
<footer><p>© 2025 {html.escape(outlet)}. All rights reserved.</p>
<p>We use cookies to improve your experience. <a href="/privacy">Privacy policy</a></p></footer>
</body></html>"""


def rss_feed(title: str, site: str, items: list[tuple[Story, str]]) -> str:
    """An RSS 2.0 feed listing each (story, url): title, link, guid, date and a short summary."""
    entries = []
    for story, url in items:
        summary = story.paragraphs[0][:300]
        entries.append(
            f"""<item>
  <title>{html.escape(story.title)}</title>
  <link>{html.escape(url)}</link>
  <guid isPermaLink="true">{html.escape(url)}</guid>
  <pubDate>{format_datetime(story.published)}</pubDate>
  <description>{html.escape(summary)}</description>
</item>"""
        )
    newline = "\n"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel>
<title>{html.escape(title)}</title>
<link>{html.escape(site)}</link>
<description>Latest news</description>
{newline.join(entries)}
</channel></rss>"""


def publish(web: LocalWeb, outlet: str, stories: list[Story], feed_path: str = "/feed.xml") -> str:
    """Serve each story as a page on `web`, and a feed listing them; returns the feed URL."""
    items = []
    for story in stories:
        path = f"/news/{story.slug}"
        url = web.url(path)
        web.add(path, article_page(story, outlet, url))
        items.append((story, url))
    return web.add(
        feed_path,
        rss_feed(outlet, web.url("/"), items),
        content_type="application/rss+xml; charset=utf-8",
    )


def write_config(
    directory: Path,
    *,
    database_url: str,
    sources: list[tuple[str, str]],
    allow: list[str],
    keywords: str,
    extra_settings: str = "",
    listen: str = "",
) -> Path:
    """A config directory whose fetches may reach the local web servers in `allow`.

    `listen` is `http.listen` (off by default; `127.0.0.1:0` for `monitor run` on a free port).
    """
    directory.mkdir(parents=True, exist_ok=True)
    allowlist = ", ".join(f'"{host}"' for host in allow)
    (directory / "settings.yaml").write_text(
        f"""database_url: {database_url}
timezone: Asia/Karachi
poll:
  every: 15m
  jitter: 0s
fetch:
  timeout: 20s
  private_network_allowlist: [{allowlist}]
http:
  listen: "{listen}"
{extra_settings}"""
    )
    lines = ["sources:"]
    for name, url in sources:
        lines += [f"  - name: {name}", f"    url: {url}"]
    (directory / "sources.yaml").write_text("\n".join(lines) + "\n")
    (directory / "keywords.yaml").write_text(keywords)
    return directory


# The user's real topics, as shipped in config/keywords.yaml.
KEYWORDS = (Path(__file__).resolve().parent.parent / "config" / "keywords.yaml").read_text()


def days_ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def local_sources_only(config_dir: Path, web: LocalWeb, closed_port: int) -> None:
    """Point a copy of the shipped config at 127.0.0.1 only: one feed on `web`, one source on
    a port nothing listens on (it fails, as real sources do offline). Tests never reach out to
    the real news sites the shipped sources.yaml names."""
    feed = publish(
        web,
        "Quetta Courier",
        [
            Story(
                "minerals",
                "Balochistan minerals talks resume in Quetta",
                tuple(
                    f"Officials in Quetta met on day {day} to discuss rare earth mining, "
                    "royalties and the security of the roads to Gwadar."
                    for day in range(8)
                ),
                days_ago(0.2),
            )
        ],
    )
    (config_dir / "sources.yaml").write_text(
        "sources:\n"
        f"  - name: quetta-courier\n    url: {feed}\n"
        f"  - name: unreachable\n    url: http://127.0.0.1:{closed_port}/feed.xml\n"
    )
    yaml = YAML()  # round trip: the shipped settings.yaml keeps its comments and layout
    path = config_dir / "settings.yaml"
    settings = yaml.load(path.read_text())
    settings["fetch"]["private_network_allowlist"] = [web.host, f"127.0.0.1:{closed_port}"]
    with path.open("w") as out:
        yaml.dump(settings, out)


def distinct_story(slug: str, title: str, sentence: str, *, age_days: float = 0.5) -> Story:
    """A short news article whose every paragraph carries `sentence`, and whose other words
    are its own, seeded by `slug`: different slugs are different articles, never
    near-duplicates that dedupe would join into one story."""
    rng = random.Random(slug)
    paragraphs = tuple(
        f"{sentence} "
        + " ".join(f"{rng.choice('bcdfghklmnprstvz')}{rng.randrange(10_000)}" for _ in range(25))
        for _ in range(6)
    )
    return Story(slug, title, paragraphs, days_ago(age_days))
