"""`monitor poll`, run as a command, against feeds and article pages served on 127.0.0.1.

Two outlets publish the five seed articles among unrelated real articles; a third outlet later
re-publishes one seed with its own headline, boilerplate and a paragraph dropped.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitor.store.schema import AlertRow, ArticleRow, MatchRow, OutboxRow
from tests.conftest import PROJECT_ROOT
from tests.web import LocalWeb
from tests.world import KEYWORDS, Story, days_ago, paragraphs_of, publish, write_config

# Headlines for the five seeds (the files hold only the text), and the topics each must get
# according to ../shared/data/README.md.
BALOCHISTAN, RARE_EARTH, USSM = "balochistan", "rare-earth", "ussm"
SEEDS = {
    "000": (
        "Baloch activists: the minerals shown at the White House are ours",
        {BALOCHISTAN, RARE_EARTH},
    ),
    "001": (
        "Trump, Munir and the mineral alignment: how China may respond",
        {BALOCHISTAN, RARE_EARTH},
    ),
    "002": (
        "Pakistan's $500M minerals pact faces hard obstacles",
        {BALOCHISTAN, RARE_EARTH, USSM},
    ),
    "003": (
        "Pakistan ships first consignment under USSM memorandum",
        {RARE_EARTH, USSM},
    ),
    "004": (
        "Rare earth diplomacy at the White House and the USSM refinery deal",
        {BALOCHISTAN, RARE_EARTH, USSM},
    ),
}
# Real articles from the extraction benchmark about other things entirely.
UNRELATED = [
    "04a6711caa7c687592777718866e781e976e0fe684faebe8b3cedcef8cd0ea34",
    "05844573ca7e1fba714d715bb11ca08c26e25328999c74a1cb3bc8a0e4399f0f",
    "06e5123e4ef7cfb4533250dc45d1e03d0838fc66223f45c583c4d12f48b4da85",
]


def seed_story(shared_data: Path, key: str) -> Story:
    path = next((shared_data / "seeds").glob(f"{key}_*.txt"))
    title, _ = SEEDS[key]
    return Story(f"seed-{key}", title, paragraphs_of(path.read_text()), days_ago(1))


def unrelated_story(shared_data: Path, index: int) -> Story:
    truth_file = shared_data / "article-extraction-benchmark" / "ground-truth.json"
    truth = json.loads(truth_file.read_text())
    body = truth[UNRELATED[index]]["articleBody"]
    title = paragraphs_of(body)[0][:80]
    return Story(f"other-{index}", title, paragraphs_of(body), days_ago(2))


def republished_copy(story: Story) -> Story:
    """Another outlet's copy: new headline, its own intro and footer, one paragraph dropped."""
    kept = list(story.paragraphs)
    del kept[len(kept) // 2]
    return Story(
        "copied-" + story.slug,
        "Islamabad sends first minerals shipment to US firm",
        (
            "Our correspondent reports from Islamabad.",
            *kept,
            "This article first appeared elsewhere and is republished with permission.",
            "Follow us on social media for the latest updates.",
        ),
        days_ago(0.5),
    )


def run_monitor(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONITOR_CONFIG_DIR": str(config)}
    for name in ("SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL", "MONITOR_DATABASE_URL"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def outlets() -> Iterator[tuple[LocalWeb, LocalWeb, LocalWeb]]:
    with LocalWeb() as a, LocalWeb() as b, LocalWeb() as c:
        yield a, b, c


def test_poll_tags_seeds_dedupes_and_files_a_copy_under_the_same_story(
    shared_data: Path,
    outlets: tuple[LocalWeb, LocalWeb, LocalWeb],
    tmp_path: Path,
    monitor_database_url: str,
) -> None:
    outlet_a, outlet_b, outlet_c = outlets
    seeds = {key: seed_story(shared_data, key) for key in SEEDS}
    feed_a = publish(
        outlet_a,
        "Frontier Times",
        [seeds["000"], unrelated_story(shared_data, 0), seeds["001"], seeds["002"]],
    )
    feed_b = publish(
        outlet_b,
        "Indus Herald",
        [
            seeds["003"],
            unrelated_story(shared_data, 1),
            seeds["004"],
            unrelated_story(shared_data, 2),
        ],
    )
    database = monitor_database_url
    config = write_config(
        tmp_path / "config",
        database_url=database,
        sources=[("frontier-times", feed_a), ("indus-herald", feed_b)],
        allow=[outlet_a.host, outlet_b.host, outlet_c.host],
        keywords=KEYWORDS,
    )

    first = run_monitor(config, "poll")
    assert first.returncode == 0, first.stderr
    assert "frontier-times" in first.stdout and "new=4" in first.stdout
    assert "indus-herald" in first.stdout and "alerts=2" in first.stdout

    engine = sa.create_engine(database)
    with engine.connect() as db:
        articles = {row.link: row for row in db.execute(sa.select(ArticleRow))}
        topics: dict[int, set[str]] = {}
        for match in db.execute(sa.select(MatchRow)):
            topics.setdefault(match.article_id, set()).add(match.topic)
        assert len(articles) == 8
        for key, (_, expected) in SEEDS.items():
            host = outlet_a if key in ("000", "001", "002") else outlet_b
            row = articles[host.url(f"/news/seed-{key}")]
            assert topics.get(row.id, set()) == expected, key
            assert row.text_from == "page"
        for index in range(3):
            host = outlet_a if index == 0 else outlet_b
            row = articles[host.url(f"/news/other-{index}")]
            assert row.id not in topics
        alerts = db.execute(sa.select(AlertRow)).all()
        assert len(alerts) == 5
        assert {a.kind for a in alerts} == {"story"}
        outbox = db.execute(sa.select(OutboxRow)).all()
        assert {(o.destination, o.state) for o in outbox} == {("console", "sent")}
    # The console shows each alert with its tags.
    assert first.stdout.count("ALERT") == 5
    assert "#ussm" in first.stdout

    # Second poll: feeds unchanged -> nothing new; the article pages are not fetched again.
    page_hits = outlet_a.hits("/news/seed-000")
    second = run_monitor(config, "poll")
    assert second.returncode == 0, second.stderr
    assert "ALERT" not in second.stdout
    assert outlet_a.hits("/news/seed-000") == page_hits
    with engine.connect() as db:
        assert db.scalar(sa.select(sa.func.count()).select_from(AlertRow)) == 5

    # A third outlet re-publishes seed 003: same story, a follow-up, no new story.
    feed_c = publish(outlet_c, "Capital Courier", [republished_copy(seeds["003"])])
    write_config(
        config,
        database_url=database,
        sources=[("frontier-times", feed_a), ("indus-herald", feed_b), ("capital-courier", feed_c)],
        allow=[outlet_a.host, outlet_b.host, outlet_c.host],
        keywords=KEYWORDS,
    )
    third = run_monitor(config, "poll")
    assert third.returncode == 0, third.stderr
    with engine.connect() as db:
        original = db.execute(
            sa.select(ArticleRow).where(ArticleRow.link == outlet_b.url("/news/seed-003"))
        ).one()
        copy = db.execute(
            sa.select(ArticleRow).where(ArticleRow.link == outlet_c.url("/news/copied-seed-003"))
        ).one()
        assert copy.story_id == original.story_id
        followup = db.execute(sa.select(AlertRow).where(AlertRow.article_id == copy.id)).one()
        assert followup.kind == "followup"
        assert db.scalar(sa.select(sa.func.count()).select_from(AlertRow)) == 6
    assert "follow-up" in third.stdout
    engine.dispose()


def test_unreachable_sources_fail_cleanly_and_the_poll_goes_on(
    tmp_path: Path, monitor_database_url: str, web: LocalWeb
) -> None:
    """A dead source, a 500 and a garbage body are recorded as failing; the good one works."""
    web.add("/broken", "oops", status=500)
    web.add("/garbage", gzip.compress(b"\x00" * 100), content_type="application/rss+xml")
    good = publish(
        web, "Good News", [Story("fine", "A fine day in Quetta", ("Quetta " * 80,), days_ago(1))]
    )
    config = write_config(
        tmp_path / "config",
        database_url=monitor_database_url,
        sources=[
            ("dead", "http://127.0.0.1:9/feed.xml"),
            ("broken", web.url("/broken")),
            ("garbage", web.url("/garbage")),
            ("good", good),
        ],
        allow=[web.host, "127.0.0.1:9"],
        keywords=KEYWORDS,
    )
    result = run_monitor(config, "poll")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "failed" in lines["dead"]
    assert "HTTP 500" in lines["broken"]
    assert "new=1" in lines["good"] and "alerts=1" in lines["good"]
    health = run_monitor(config, "sources")
    assert health.returncode == 0
    assert "failing" in health.stdout and "HTTP 500" in health.stdout
