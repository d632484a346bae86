"""Stories in storage for notifier and digest tests, stored the way a poll stores them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from monitor.models import Article, StoredArticle, TopicMatch
from monitor.store import Store


def match(topic: str, sentence: str, *words: str) -> TopicMatch:
    return TopicMatch(topic, words, sentence)


def save_alert(
    store: Store,
    *,
    url: str,
    title: str,
    at: datetime,
    matches: Sequence[TopicMatch],
    outlet: str = "dawn.com",
    source: str = "dawn",
    story: str | None = None,
    published: datetime | None = None,
    destinations: tuple[str, ...] = ("console",),
) -> StoredArticle:
    """Store one article seen at `at` through `Store.save_article`.

    Articles given the same `story` key join one story (storage's same-title rule): the first
    outlet's is the story's alert, each other outlet's a follow-up.
    """
    article = Article(
        url=url,
        link=url,
        source=source,
        outlet=outlet,
        title=title,
        summary="",
        text=title,
        text_from="feed",
        published=published,
    )
    stored = store.save_article(
        article, tuple(matches), None, story or url, lambda _topics: destinations, at
    )
    assert stored is not None, f"{url} was stored before"
    return stored
