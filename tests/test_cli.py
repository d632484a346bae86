"""The `monitor match` and `monitor alerts` commands over a stored database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor import dedupe, rules
from monitor.cli import cli
from monitor.models import Article, Topic
from monitor.store import Store
from tests.world import KEYWORDS, write_config

NOW = datetime.now(UTC)
TOPICS = (
    Topic("balochistan", keywords=("Balochistan", "Baloch*")),
    Topic("ussm", keywords=("USSM",), require=("Pakistan",)),
)


def stored_article(store: Store, slug: str, title: str, text: str) -> None:
    article = Article(
        url=f"https://example.org/{slug}",
        link=f"https://example.org/{slug}",
        source="example",
        outlet="example.org",
        title=title,
        summary="",
        text=text,
        text_from="page",
        published=NOW - timedelta(hours=1),
    )
    matches = rules.compile_topics(TOPICS).match(article.title, article.summary, article.text)
    store.save_article(
        article,
        matches,
        dedupe.text_fingerprint(text),
        None,
        lambda topics: ("console",),
        NOW - timedelta(hours=1),
    )


@pytest.fixture
def config_dir(tmp_path: Path, monitor_database_url: str) -> Path:
    database = monitor_database_url
    store = Store.open(database)
    stored_article(
        store, "quetta", "Protest in Quetta", "Traders in Quetta closed shops today. " * 20
    )
    stored_article(store, "ussm", "USSM deal", "Pakistan and USSM signed a refinery deal. " * 20)
    stored_article(store, "cricket", "Cricket", "The home side won by six wickets in Lahore. " * 20)
    store.close()
    return write_config(
        tmp_path / "config", database_url=database, sources=[], allow=[], keywords=KEYWORDS
    )


def test_match_previews_what_the_current_keywords_would_tag(config_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["match", "--config", str(config_dir), "--since", "1d"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # The shipped keywords add Quetta to balochistan: a tag the stored article did not have.
    assert "balochistan [new: balochistan]  Protest in Quetta" in lines
    assert any(line.startswith("rare-earth,ussm") or line.startswith("ussm") for line in lines)
    assert not any("Cricket" in line for line in lines)
    assert lines[-1] == (
        "3 stored articles in the last 1d; would tag: balochistan=1, rare-earth=0, ussm=1"
    )


def test_match_by_topic_and_unknown_topic(config_dir: Path) -> None:
    only = CliRunner().invoke(cli, ["match", "--config", str(config_dir), "--topic", "ussm"])
    assert only.exit_code == 0
    assert "Protest in Quetta" not in only.output and "USSM deal" in only.output
    unknown = CliRunner().invoke(cli, ["match", "--config", str(config_dir), "--topic", "nope"])
    assert unknown.exit_code == 2
    assert "no topic named nope" in unknown.output


def test_alerts_lists_recent_alerts_with_delivery_state(config_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["alerts", "--config", str(config_dir), "--since", "2h"])
    assert result.exit_code == 0, result.output
    assert "USSM deal" in result.output and "console:pending" in result.output
    assert "Protest in Quetta" not in result.output  # it matched no topic when it was stored
    assert result.output.splitlines()[-1] == "1 alert in the last 2h"
    none = CliRunner().invoke(cli, ["alerts", "--config", str(config_dir), "--since", "1m"])
    assert none.output.splitlines()[-1] == "0 alerts in the last 1m"


def test_a_bad_duration_is_a_usage_error(config_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["alerts", "--config", str(config_dir), "--since", "soon"])
    assert result.exit_code == 2
    assert "bad duration 'soon'" in result.output
