"""A poll context remembers which entries of each source are stored: a changed feed whose
entries were all stored at the last poll costs no "seen before?" question to storage, and a
new entry among them is still found and stored."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from monitor.fetch import HttpFetcher
from monitor.pipeline import PollContext, SourceReport, refresh_source
from monitor.store import Candidate, Store
from tests.polling import NO_OUTPUTS, InlineExtractor, make_config, numeric_only
from tests.web import LocalWeb
from tests.world import distinct_story, publish

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


class AskedStore:
    """The real Store, recording which URLs each `unseen` call asked about."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.asked: list[list[str]] = []

    def unseen(self, source: str, candidates: Sequence[Candidate]) -> list[Candidate]:
        self.asked.append(sorted(c.url for c in candidates))
        return self._store.unseen(source, candidates)

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


def test_entries_stored_at_the_last_poll_are_not_asked_about_again(
    tmp_path: Path, web: LocalWeb, store: Store
) -> None:
    first = distinct_story("first", "Balochistan minerals survey", "Minerals were surveyed.")
    second = distinct_story("second", "Rare earth refinery planned", "A refinery is planned.")
    third = distinct_story("third", "Gwadar port expands again", "The minerals port grew.")
    feed = publish(web, "Quetta Times", [first, second])
    config = make_config(
        tmp_path / "config",
        sources_yaml=f"sources:\n  - name: quetta\n    url: {feed}\n",
        allow=[web.host],
    )
    asked = AskedStore(store)

    async def polls() -> list[SourceReport]:
        reports = []
        async with HttpFetcher(
            config.settings.fetch, clock=lambda: NOW, resolver=numeric_only
        ) as fetcher:
            ctx = PollContext(
                config,
                asked,  # type: ignore[arg-type]
                fetcher,
                InlineExtractor(),
                NO_OUTPUTS,
                clock=lambda: NOW,
            )
            source = config.source("quetta")
            reports.append(await refresh_source(source, ctx))
            publish(web, "Quetta Times", [first, second, third])  # a new entry: body changed
            reports.append(await refresh_source(source, ctx))
            publish(web, "Lahore Times", [first, second, third])  # same entries, new body
            reports.append(await refresh_source(source, ctx))
        return reports

    reports = asyncio.run(polls())

    assert [(r.status, r.new) for r in reports] == [("ok", 2), ("ok", 1), ("ok", 0)]
    # Poll 1 asked about both entries, poll 2 about the new one alone, poll 3 about none.
    assert [[url.rsplit("/", 1)[-1] for url in call] for call in asked.asked] == [
        ["first", "second"],
        ["third"],
    ]
