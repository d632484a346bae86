"""An article's fingerprint is made where its text is: by the extraction worker for a page
(with its band keys, so the main process, which stores one article at a time, does neither),
and by storing itself for a feed's own text."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor import dedupe
from monitor.extract import extract_for_storing, extract_page
from monitor.models import Article, ExtractedPage, StoredArticle, TopicMatch
from monitor.store import Store
from tests.polling import make_config, poll
from tests.web import LocalWeb
from tests.world import article_page, distinct_story, publish

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


class WorkerExtractor:
    """`extract_for_storing` as the pool runs it: its answer comes back pickled. Returns None
    for the pages of `feed_only` (their entries fall back to the feed's text)."""

    def __init__(self, feed_only: str) -> None:
        self.feed_only = feed_only
        self.pages: dict[str, ExtractedPage] = {}

    async def extract(self, html: bytes, url: str) -> ExtractedPage | None:
        if url.endswith(self.feed_only):
            return None
        page = pickle.loads(pickle.dumps(extract_for_storing(html, url)))
        self.pages[url] = page
        return page


class SavingStore:
    """The real Store, recording the article and fingerprint of each `save_article` call."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.saved: list[tuple[Article, dedupe.Fingerprint | None]] = []

    def save_article(
        self,
        article: Article,
        matches: Sequence[TopicMatch],
        fingerprint: dedupe.Fingerprint | None,
        *rest: Any,
    ) -> StoredArticle | None:
        self.saved.append((article, fingerprint))
        return self._store.save_article(article, matches, fingerprint, *rest)

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


def test_a_page_is_stored_with_the_workers_fingerprint_and_feed_text_with_its_own(
    tmp_path: Path, web: LocalWeb, store: Store
) -> None:
    page = distinct_story("from-page", "Balochistan minerals survey", "Minerals were surveyed.")
    feed_only = distinct_story("from-feed", "Rare earth refinery planned", "A plan was made.")
    feed = publish(web, "Quetta Times", [page, feed_only])
    config = make_config(
        tmp_path / "config",
        sources_yaml=f"sources:\n  - name: quetta\n    url: {feed}\n",
        allow=[web.host],
    )
    extractor = WorkerExtractor(feed_only="from-feed")
    saving = SavingStore(store)

    poll(config, saving, "quetta", lambda: NOW, extractor=extractor)  # type: ignore[arg-type]

    saved = {article.url.rsplit("/", 1)[-1]: (article, fp) for article, fp in saving.saved}
    assert set(saved) == {"from-page", "from-feed"}
    article, fingerprint = saved["from-page"]
    (worker_page,) = extractor.pages.values()
    assert article.text_from == "page"
    assert fingerprint is not None
    assert fingerprint is worker_page.fingerprint  # not made again in this process
    assert fingerprint._bands is not None  # the band keys came with it
    assert fingerprint == dedupe.text_fingerprint(article.text)
    article, fingerprint = saved["from-feed"]
    assert article.text_from == "feed"
    assert fingerprint == dedupe.text_fingerprint(article.text)


def test_extract_for_storing_is_extract_page_with_the_texts_fingerprint() -> None:
    story = distinct_story("one", "Gwadar port expands again", "The minerals port grew.")
    url = "https://quetta.example/one"
    html = article_page(story, "Quetta Times", url).encode()
    plain = extract_page(html, url)
    storing = extract_for_storing(html, url)
    assert plain is not None and storing is not None
    assert storing == plain  # the fingerprint takes no part in comparing pages
    assert plain.fingerprint is None
    assert storing.fingerprint == dedupe.text_fingerprint(plain.text)
    assert storing.fingerprint is not None
    assert storing.fingerprint._bands is not None  # computed before it is pickled
