"""`monitor sources`, `monitor sources add URL` and `monitor sources remove NAME`, on 127.0.0.1.

sources.yaml is a file people keep: the edits are checked line by line against the original,
which is full of comments, blank lines, section headers and mixed quoting.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.config import load_config
from monitor.models import SourceState
from monitor.sources.discover import feed_links
from monitor.sources_file import name_for
from monitor.store import Store
from tests.polling import make_config
from tests.web import LocalWeb
from tests.world import Story, article_page, publish

NOW = datetime.now(UTC)
COMMENTED = """\
# Where we look. Comments here are precious: `monitor sources add` must keep them.
# A second header line.

sources:
  # --- Pakistani outlets --------------------------------------------------------------------
  - name: dawn                      # unique; used in logs, CLI and alerts
    url: https://www.dawn.com/feeds/home
    every: 10m                      # faster than the default
  - name: "express-tribune"
    url: 'https://tribune.com.pk/feed/home'
    # enabled: false    (a commented-out key inside the item)

  # --- regional -----------------------------------------------------------------------------
  - name: the-diplomat
    url: https://thediplomat.com/feed/

  # --- Google News --------------------------------------------------------------------------
  - name: gnews-ussm
    type: google_news
    query: '"US Strategic Metals" OR "U.S. Strategic Metals" OR USSM'   # quoted on purpose
  # - name: old-one        (retired; kept for the record)
  #   url: https://old.example/feed

# trailing note at the end of the file
"""


def stories(prefix: str) -> list[Story]:
    return [
        Story(
            f"{prefix}-minerals-story-{i}",
            f"{prefix.title()} story number {i} about minerals",
            tuple(f"Paragraph {p} of story {i} about minerals in the province." for p in range(6)),
            NOW - timedelta(hours=i + 1),
        )
        for i in range(3)
    ]


def config_dir(
    tmp_path: Path, web: LocalWeb, sources: str = COMMENTED, database_url: str | None = None
) -> Path:
    """A config directory; `add` and `remove` only edit its files, the listing reads
    `database_url` (the `monitor_database_url` fixture's)."""
    directory = tmp_path / "config"
    make_config(
        directory,
        sources_yaml=sources,
        allow=[web.host],
        database_url=database_url or f"sqlite:///{tmp_path / 'monitor.db'}",
    )
    return directory


def run(directory: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(directory), "sources", *args])


def changed_lines(before: str, after: str) -> list[str]:
    """The +/- lines of a diff, without the headers."""
    return [
        line.rstrip("\n")
        for line in difflib.unified_diff(before.splitlines(True), after.splitlines(True), n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


# --- add -----------------------------------------------------------------------------------------


def test_add_finds_the_feed_a_page_names_and_appends_only_its_block(
    tmp_path: Path, web: LocalWeb
) -> None:
    feed = publish(web, "Frontier Times", stories("frontier"))
    web.add(
        "/",
        "<html><head><title>Frontier Times</title>"
        f'<link rel="alternate" type="application/rss+xml" title="Comments Feed" href="/comments">'
        f'<link rel="alternate" type="application/rss+xml" title="Frontier" href="{feed}">'
        "</head><body>Home</body></html>",
    )
    directory = config_dir(tmp_path, web)

    result = run(directory, "add", web.url("/"), "--name", "frontier")

    assert result.exit_code == 0, result.output
    assert f"Feed: Frontier Times — {feed}" in result.output
    assert 'found via <link rel="alternate"> on the page' in result.output
    assert "Frontier story number 0 about minerals" in result.output  # the latest items
    after = (directory / "sources.yaml").read_text()
    assert changed_lines(COMMENTED, after) == [
        "+  - name: frontier",
        f"+    url: {feed}",
    ]
    # the block lands after the last item, before the commented-out and trailing lines
    assert after.index(f"url: {feed}") < after.index("# - name: old-one")
    assert web.hits("/comments") == 0
    assert [s.name for s in load_config(directory, environ={}).sources][-1] == "frontier"


def test_add_finds_a_feed_at_a_common_path_and_names_it_after_the_host(
    tmp_path: Path, web: LocalWeb
) -> None:
    publish(web, "Indus Herald", stories("indus"), feed_path="/rss.xml")
    web.add("/", "<html><head><title>Indus Herald</title></head><body>Home</body></html>")
    directory = config_dir(tmp_path, web)

    result = run(directory, "add", web.url("/"))

    assert result.exit_code == 0, result.output
    assert f"the common feed path {web.url('/rss.xml')}" in result.output
    name = name_for(web.url("/"))
    assert name == f"127-0-0-1-{web.host.split(':')[1]}"
    assert changed_lines(COMMENTED, (directory / "sources.yaml").read_text()) == [
        f"+  - name: {name}",
        f"+    url: {web.url('/rss.xml')}",
    ]


def test_add_a_site_without_a_feed_as_type_site(tmp_path: Path, web: LocalWeb) -> None:
    links = "".join(
        f'<h2><a href="/news/{story.slug}">{story.title}</a></h2>' for story in stories("quetta")
    )
    for story in stories("quetta"):
        web.add(f"/news/{story.slug}", article_page(story, "Quetta Voice", web.url("/")))
    web.add("/", f"<html><head><title>Quetta Voice</title></head><body>{links}</body></html>")
    directory = config_dir(tmp_path, web)

    result = run(directory, "add", web.url("/"), "--name", "quetta-voice")

    assert result.exit_code == 0, result.output
    assert "No feed found; it will be read as a site: Quetta Voice" in result.output
    assert f"articles found via front page {web.url('/')}" in result.output
    assert "Quetta story number 2 about minerals" in result.output
    assert changed_lines(COMMENTED, (directory / "sources.yaml").read_text()) == [
        "+  - name: quetta-voice",
        f"+    url: {web.url('/')}",
        "+    type: site",
    ]
    (added,) = [s for s in load_config(directory, environ={}).sources if s.name == "quetta-voice"]
    assert added.type == "site"


def test_add_a_feed_url_itself(tmp_path: Path, web: LocalWeb) -> None:
    feed = publish(web, "Frontier Times", stories("frontier"))
    directory = config_dir(tmp_path, web)

    result = run(directory, "add", feed, "--name", "frontier")

    assert result.exit_code == 0, result.output
    assert "found via the URL is a feed" in result.output
    assert web.hits("/") == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["https://www.dawn.com/feeds/home?utm_source=x"], "already in sources.yaml as 'dawn'"),
        (["https://dawn.com/feeds/home", "--name", "other"], "already in sources.yaml as 'dawn'"),
        (["{web}/feed.xml", "--name", "the-diplomat"], "a source named 'the-diplomat'"),
        (["not a url"], "invalid URL"),
    ],
)
def test_add_refuses_duplicates_and_nonsense_without_touching_the_file(
    tmp_path: Path, web: LocalWeb, args: list[str], message: str
) -> None:
    publish(web, "Frontier Times", stories("frontier"))
    directory = config_dir(tmp_path, web)

    result = run(directory, "add", *[a.replace("{web}", web.url("")) for a in args])

    assert result.exit_code == 2
    assert message in result.output
    assert (directory / "sources.yaml").read_text() == COMMENTED
    assert web.requests == []  # refused before any fetch


def test_add_refuses_a_feed_already_present_under_the_page_it_was_found_on(
    tmp_path: Path, web: LocalWeb
) -> None:
    feed = publish(web, "Frontier Times", stories("frontier"))
    web.add("/", f'<html><head><link rel="alternate" type="application/rss+xml" href="{feed}">')
    sources = COMMENTED.replace("https://thediplomat.com/feed/", feed)
    directory = config_dir(tmp_path, web, sources)

    result = run(directory, "add", web.url("/"), "--name", "frontier")

    assert result.exit_code == 2
    assert "already in sources.yaml as 'the-diplomat'" in result.output
    assert (directory / "sources.yaml").read_text() == sources


def test_add_a_name_config_refuses_leaves_the_file_as_it_was(tmp_path: Path, web: LocalWeb) -> None:
    feed = publish(web, "Frontier Times", stories("frontier"))
    directory = config_dir(tmp_path, web)

    result = run(directory, "add", feed, "--name", "has spaces!")

    assert result.exit_code == 2
    assert "sources.yaml:" in result.output and "should match pattern" in result.output
    assert "sources.yaml was left as it was" in result.output
    assert (directory / "sources.yaml").read_text() == COMMENTED
    assert not list(directory.glob(".sources-*"))


@pytest.mark.parametrize(
    ("name", "written"),
    [("2024", '"2024"'), ("null", '"null"'), ("gnews.v2", "gnews.v2")],
)
def test_add_quotes_a_name_only_when_yaml_would_misread_it(
    tmp_path: Path, web: LocalWeb, name: str, written: str
) -> None:
    feed = publish(web, "Frontier Times", stories("frontier"))
    directory = config_dir(tmp_path, web)

    result = run(directory, "add", feed, "--name", name)

    assert result.exit_code == 0, result.output
    assert f"  - name: {written}\n" in (directory / "sources.yaml").read_text()
    assert name in [s.name for s in load_config(directory, environ={}).sources]


def test_add_an_unreachable_url_adds_nothing(tmp_path: Path, web: LocalWeb) -> None:
    web.add("/", "oops", status=503)
    directory = config_dir(tmp_path, web)

    result = run(directory, "add", web.url("/"), "--name", "down")

    assert result.exit_code == 1
    assert "HTTP 503" in result.output and "nothing was added" in result.output
    assert (directory / "sources.yaml").read_text() == COMMENTED


def test_add_respects_the_address_guard(tmp_path: Path, web: LocalWeb) -> None:
    """Not allowlisted, 127.0.0.1 is a private address: refused, no connection made."""
    publish(web, "Frontier Times", stories("frontier"))
    directory = tmp_path / "config"
    make_config(directory, sources_yaml=COMMENTED, allow=[])

    result = run(directory, "add", web.url("/feed.xml"), "--name", "frontier")

    assert result.exit_code == 1
    assert "not a public address" in result.output
    assert web.requests == []


def test_add_keeps_crlf_line_endings(tmp_path: Path, web: LocalWeb) -> None:
    feed = publish(web, "Frontier Times", stories("frontier"))
    crlf = COMMENTED.replace("\n", "\r\n")
    directory = config_dir(tmp_path, web)
    (directory / "sources.yaml").write_bytes(crlf.encode())

    result = run(directory, "add", feed, "--name", "frontier")

    assert result.exit_code == 0, result.output
    after = (directory / "sources.yaml").read_bytes().decode()
    assert after.count("\r\n") == after.count("\n")
    assert f"  - name: frontier\r\n    url: {feed}\r\n" in after


def test_add_to_an_empty_list(tmp_path: Path, web: LocalWeb) -> None:
    feed = publish(web, "Frontier Times", stories("frontier"))
    directory = config_dir(tmp_path, web, "# nothing yet\nsources: []\n")

    result = run(directory, "add", feed, "--name", "frontier")

    assert result.exit_code == 0, result.output
    assert (directory / "sources.yaml").read_text() == (
        f"# nothing yet\nsources:\n  - name: frontier\n    url: {feed}\n"
    )


def test_add_to_a_file_indented_its_own_way(tmp_path: Path, web: LocalWeb) -> None:
    feed = publish(web, "Frontier Times", stories("frontier"))
    sources = "sources:\n- name: dawn\n  url: https://www.dawn.com/feeds/home\n"
    directory = config_dir(tmp_path, web, sources)

    result = run(directory, "add", feed, "--name", "frontier")

    assert result.exit_code == 0, result.output
    assert (directory / "sources.yaml").read_text() == (
        sources + f"- name: frontier\n  url: {feed}\n"
    )


# --- remove --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "removed"),
    [
        (
            "express-tribune",
            [
                '-  - name: "express-tribune"',
                "-    url: 'https://tribune.com.pk/feed/home'",
                "-    # enabled: false    (a commented-out key inside the item)",
            ],
        ),
        (
            "dawn",
            [
                "-  - name: dawn                      # unique; used in logs, CLI and alerts",
                "-    url: https://www.dawn.com/feeds/home",
                "-    every: 10m                      # faster than the default",
            ],
        ),
        (
            "gnews-ussm",
            [
                "-  - name: gnews-ussm",
                "-    type: google_news",
                '-    query: \'"US Strategic Metals" OR "U.S. Strategic Metals" OR USSM\''
                "   # quoted on purpose",
            ],
        ),
    ],
    ids=["middle (the next section's header stays)", "first", "last (retired notes stay)"],
)
def test_remove_takes_out_only_the_block(
    tmp_path: Path, web: LocalWeb, name: str, removed: list[str]
) -> None:
    directory = config_dir(tmp_path, web)

    result = run(directory, "remove", name)

    assert result.exit_code == 0, result.output
    assert changed_lines(COMMENTED, (directory / "sources.yaml").read_text()) == removed
    assert name not in [s.name for s in load_config(directory, environ={}).sources]


def test_remove_unknown_name(tmp_path: Path, web: LocalWeb) -> None:
    directory = config_dir(tmp_path, web)

    result = run(directory, "remove", "nope")

    assert result.exit_code == 2
    assert "no source named 'nope'" in result.output
    assert (directory / "sources.yaml").read_text() == COMMENTED


def test_add_then_remove_gives_back_the_file(tmp_path: Path, web: LocalWeb) -> None:
    feed = publish(web, "Frontier Times", stories("frontier"))
    directory = config_dir(tmp_path, web)

    assert run(directory, "add", feed, "--name", "frontier").exit_code == 0
    assert run(directory, "remove", "frontier").exit_code == 0

    assert (directory / "sources.yaml").read_text() == COMMENTED


# --- the listing ---------------------------------------------------------------------------------


def test_listing_shows_health_schedule_and_notes(
    tmp_path: Path, web: LocalWeb, monitor_database_url: str
) -> None:
    directory = config_dir(tmp_path, web, database_url=monitor_database_url)
    store = Store.open(monitor_database_url)
    now = datetime.now(UTC)
    base = SourceState(
        "x", polls_total=5, last_success_at=now, last_polled_at=now, next_poll_at=now
    )
    store.save_source_state(
        replace(base, name="dawn", consecutive_failures=2, last_error="HTTP 500 from dawn")
    )
    store.save_source_state(
        replace(
            base,
            name="express-tribune",
            typical_gap_seconds=3600,
            interval_seconds=1800,
            last_new_item_at=now - timedelta(days=3),
            items_total=42,
        )
    )
    store.save_source_state(
        replace(base, name="the-diplomat", parked=True, consecutive_failures=10, last_error="DNS")
    )
    store.close()

    result = CliRunner().invoke(cli, ["sources", "--config", str(directory)])

    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines()[1:] if line.strip()}
    assert rows["dawn"].split()[:4] == ["dawn", "feed", "failing", "10m"]
    assert "HTTP 500 from dawn" in rows["dawn"]
    assert rows["express-tribune"].split()[:5] == [
        "express-tribune",
        "feed",
        "quiet",
        "30m",
        "(adapted)",
    ]
    assert "no new item for 3d (usually one every 1h)" in rows["express-tribune"]
    assert " 42 " in rows["express-tribune"]
    assert rows["the-diplomat"].split()[2] == "parked" and "DNS" in rows["the-diplomat"]
    assert rows["gnews-ussm"].split()[:3] == ["gnews-ussm", "google_news", "new"]
    assert "due now" in rows["gnews-ussm"]


def test_feed_links_prefer_the_site_feed_to_comment_feeds() -> None:
    page = b"""<html><head>
<link rel="alternate" type="application/rss+xml" title="Comments Feed" href="/comments/feed">
<link rel="stylesheet" href="/style.css">
<link rel="alternate" type="text/html" href="/other">
<link rel="alternate" type="application/atom+xml; charset=utf-8" href="atom.xml">
<link rel="Alternate" type="application/feed+json" href="https://x.example/feed.json">
<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">
</head></html>"""

    assert feed_links(page, "https://x.example/news/") == [
        "https://x.example/news/atom.xml",
        "https://x.example/feed.json",
        "https://x.example/comments/feed",
    ]
