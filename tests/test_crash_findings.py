"""Regression tests for what the crash loop and the whole-flow test found (tests/test_crash.py,
tests/test_full_flow.py), each small and fast, on SQLite and PostgreSQL where storage is
involved."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

from monitor import dedupe
from monitor.models import Article, StoredArticle, TopicMatch
from monitor.store import Store

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def text_for(round_: int) -> str:
    """A long text of its own per round: rounds are different articles, never near-duplicates."""
    rng = random.Random(round_)
    words = [f"{rng.choice('bcdfghklmnprstvz')}{rng.randrange(10_000)}" for _ in range(400)]
    return "The provincial cabinet in Quetta reviewed the leases. " + " ".join(words)


MATCH = TopicMatch("balochistan", ("Quetta",), "The provincial cabinet in Quetta met.")


def copy_on(outlet: str, round_: int) -> Article:
    """One outlet's copy of the same article: its own URL and headline, the same text."""
    url = f"https://{outlet}/news/{round_}/cabinet-leases"
    return Article(
        url=url,
        link=url,
        source=outlet.split(".")[0],
        outlet=outlet,
        title=f"{outlet} reports: cabinet reviews leases ({round_})",
        summary="",
        text=f"{outlet} staff report. {text_for(round_)}",
        text_from="page",
        published=NOW - timedelta(hours=1),
    )


def test_copies_stored_at_the_same_moment_by_concurrent_polls_join_one_story(
    store: Store,
) -> None:
    """Found by the crash loop on PostgreSQL: the first tick after a start polls every source at
    once, and three outlets' copies of one article were stored in the same few milliseconds.
    Under READ COMMITTED each transaction looked for a near-duplicate before the others had
    committed, so each made a story of its own: three top-level Slack messages, three alerts
    "story". Storage now lets one article at a time decide its story (an advisory lock on
    PostgreSQL; BEGIN IMMEDIATE already does it on SQLite)."""
    outlets = ("dawn.com", "geo.tv", "tribune.com.pk", "thenews.com.pk")
    for round_ in range(3):
        stored = save_at_once(store, [copy_on(outlet, round_) for outlet in outlets])
        assert all(s is not None for s in stored)
        stories = {s.story_id for s in stored if s is not None}
        assert len(stories) == 1, f"round {round_}: copies split over stories {sorted(stories)}"
        assert sum(1 for s in stored if s is not None and s.new_story) == 1


def save_at_once(store: Store, articles: list[Article]) -> list[StoredArticle | None]:
    """Each article saved from a thread of its own, all released at the same moment."""
    barrier = threading.Barrier(len(articles))
    stored: list[StoredArticle | None] = []

    def save(item: Article) -> None:
        fingerprint = dedupe.text_fingerprint(item.text)
        barrier.wait()
        stored.append(
            store.save_article(item, (MATCH,), fingerprint, None, lambda _t: ("console",), NOW)
        )

    threads = [threading.Thread(target=save, args=(item,)) for item in articles]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return stored
