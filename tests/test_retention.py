"""Retention: article text older than `retention_days` goes, the database stays bounded.

`Store.prune` itself is tested in test_store.py (what goes and what stays). Here: the service's
prune job reads `retention_days`, months of news keep the database the size of the retention
window, `monitor prune` does the same by hand, and `monitor run` prunes when it starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from monitor import dedupe
from monitor.cli import cli
from monitor.config import load_config
from monitor.models import Article, TopicMatch
from monitor.service import prune_old
from monitor.store import Store
from monitor.store.schema import AlertRow, ArticleRow, ArticleUrlRow
from tests.conftest import is_sqlite
from tests.service_harness import Launcher, launcher_for, wait_for
from tests.world import write_config

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
MATCH = TopicMatch("ussm", ("USSM",), "Pakistan signed with USSM.")
KEYWORDS = "topics:\n  ussm:\n    keywords: [USSM]\n"


def text_for(key: str, size: int = 8000) -> str:
    """An article text of about `size` characters, different for every key."""
    words = []
    i = 0
    while sum(len(w) + 1 for w in words) < size:
        words.append(f"{key}-word{i}")
        i += 1
        if i % 12 == 0:
            words.append("USSM and Pakistan signed more papers today.")
    return " ".join(words)


def save(store: Store, key: str, first_seen: datetime, size: int = 8000) -> None:
    text = text_for(key, size)
    url = f"https://dawn.com/news/{key}"
    article = Article(
        url=url,
        link=url,
        source="dawn",
        outlet="dawn.com",
        title=f"USSM story {key}",
        summary=text[:300],
        text=text,
        text_from="page",
        published=first_seen - timedelta(hours=1),
        guid=f"guid-{key}",
    )
    stored = store.save_article(
        article, (MATCH,), dedupe.text_fingerprint(text), None, lambda _: ("console",), first_seen
    )
    assert stored is not None


def text_bytes(store: Store) -> int:
    """Characters of article text and summaries held."""
    with store.engine.connect() as connection:
        total = connection.scalar(
            sa.select(
                sa.func.coalesce(
                    sa.func.sum(
                        sa.func.length(sa.func.coalesce(ArticleRow.text, ""))
                        + sa.func.length(ArticleRow.summary)
                    ),
                    0,
                )
            )
        )
    return int(total or 0)


def file_size(url: str) -> int:
    path = Path(sa.make_url(url).database or "")
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def settings_config(tmp_path: Path, database_url: str, settings: str = "") -> Path:
    return write_config(
        tmp_path / "config",
        database_url=database_url,
        sources=[],
        allow=[],
        keywords=KEYWORDS,
        extra_settings=settings,
    )


@pytest.mark.parametrize(("setting", "days"), [("", 90), ("retention_days: 30\n", 30)])
def test_the_prune_job_keeps_retention_days_of_text(
    store: Store, tmp_path: Path, setting: str, days: int
) -> None:
    config = load_config(settings_config(tmp_path, "sqlite:///unused.db", setting), environ={})
    assert config.settings.retention_days == days
    save(store, "old", NOW - timedelta(days=days, hours=1))
    save(store, "kept", NOW - timedelta(days=days - 1))

    report = prune_old(store, config, NOW)

    assert report.articles == 1 and report.bands > 0
    texts = {view.title: view.text for view in store.articles_since(NOW - timedelta(days=400))}
    assert texts["USSM story old"] == ""
    assert texts["USSM story kept"].startswith("kept-word0")
    assert prune_old(store, config, NOW).articles == 0


def test_months_of_news_keep_the_database_the_size_of_the_retention_window(
    store: Store, database_url: str
) -> None:
    """Ten 8 KB articles a day for 24 days, pruned daily with a 4-day retention: the text held
    stops growing after 5 days, and the SQLite file, which reuses the pages pruning frees,
    stops growing with it (without pruning both would grow almost five-fold)."""
    retention, per_day, days = 4, 10, 24
    held: dict[int, int] = {}
    sizes: dict[int, int] = {}
    start = NOW - timedelta(days=days)
    for day in range(days):
        today = start + timedelta(days=day)
        for n in range(per_day):
            save(store, f"d{day}-{n}", today + timedelta(minutes=n))
        store.prune(today - timedelta(days=retention))
        held[day] = text_bytes(store)
        if is_sqlite(database_url):
            sizes[day] = file_size(database_url)

    window = retention + 1  # the day's articles, and those of the `retention` days before
    one_article = held[0] / per_day
    assert held[days - 1] <= window * per_day * one_article * 1.05
    assert held[days - 1] <= held[window] * 1.05
    # Everything else about old articles stays: every URL is still known, every alert kept.
    with store.engine.connect() as connection:
        total = per_day * days
        assert connection.scalar(sa.select(sa.func.count()).select_from(ArticleRow)) == total
        assert connection.scalar(sa.select(sa.func.count()).select_from(ArticleUrlRow)) >= total
        assert connection.scalar(sa.select(sa.func.count()).select_from(AlertRow)) == total
    if sizes:
        # Titles, URLs and alerts of old articles still grow, slowly.
        assert sizes[days - 1] < sizes[window + 2] * 1.5, sizes


def test_monitor_prune_drops_old_text_now_and_vacuum_shrinks_sqlite(
    tmp_path: Path, monitor_database_url: str
) -> None:
    config = settings_config(tmp_path, monitor_database_url, "retention_days: 30\n")
    store = Store.open(monitor_database_url)
    now = datetime.now(UTC)
    for n in range(60):
        save(store, f"old{n}", now - timedelta(days=40, minutes=n), size=20000)
    save(store, "recent", now - timedelta(days=2))
    before = text_bytes(store)
    store.close()
    size_before = file_size(monitor_database_url) if is_sqlite(monitor_database_url) else 0

    result = CliRunner().invoke(cli, ["prune", "--config", str(config), "--days", "60"])
    assert result.exit_code == 0, result.output
    assert "older than 60 days: dropped the text of 0 article(s)" in result.output

    result = CliRunner().invoke(cli, ["prune", "--config", str(config), "--vacuum"])
    assert result.exit_code == 0, result.output
    assert "older than 30 days: dropped the text of 60 article(s)" in result.output
    assert "vacuumed" in result.output

    store = Store.open(monitor_database_url)
    try:
        after = text_bytes(store)
        assert after < before / 30
        assert after >= len(text_for("recent"))
        (recent,) = [v for v in store.articles_since(now - timedelta(days=3))]
        assert recent.text.startswith("recent-word0")
    finally:
        store.close()
    if is_sqlite(monitor_database_url):
        assert file_size(monitor_database_url) < size_before / 2
        assert "MB -> " in result.output

    bad = CliRunner().invoke(cli, ["prune", "--config", str(config), "--days", "0"])
    assert bad.exit_code == 2


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    yield from launcher_for(tmp_path)


def test_monitor_run_prunes_when_it_starts(
    tmp_path: Path, monitor_database_url: str, launcher: Launcher
) -> None:
    config = settings_config(tmp_path, monitor_database_url, "retention_days: 10\n")
    settings = config / "settings.yaml"
    settings.write_text(settings.read_text().replace('listen: ""', 'listen: "127.0.0.1:0"'))
    store = Store.open(monitor_database_url)
    now = datetime.now(UTC)
    save(store, "old", now - timedelta(days=11))
    save(store, "new", now - timedelta(days=1))
    store.close()

    service = launcher.start(config)
    wait_for(lambda: "pruned" in service.stderr(), timeout=30, message="the prune job")
    assert "pruned articles=1 " in service.stderr() and "retention_days=10" in service.stderr()
    assert service.stop()[0] == 0

    store = Store.open(monitor_database_url)
    try:
        texts = {v.title: v.text for v in store.articles_since(now - timedelta(days=30))}
    finally:
        store.close()
    assert texts["USSM story old"] == "" and texts["USSM story new"]
