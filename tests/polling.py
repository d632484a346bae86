"""Driving `refresh_source` directly in tests: a config directory, a clock, one poll at a time."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpcore

from monitor.config import Config, load_config
from monitor.extract import extract_page
from monitor.fetch import HttpFetcher
from monitor.models import ExtractedPage
from monitor.notify.routing import Outputs
from monitor.pipeline import PageExtractor, PollContext, SourceReport, refresh_source
from monitor.store import Store
from tests.world import write_config

NO_OUTPUTS = Outputs(slack_token=False, slack_webhook=False, email_alerts=False, email_digest=False)


async def numeric_only(host: str, port: int) -> list[str]:
    """A resolver for tests: IP literals only, so no name lookup ever leaves the machine."""
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        raise httpcore.ConnectError(f"no DNS in tests: {host}") from None


class InlineExtractor:
    """`extract_page` in this process: the pool's answers without its start-up time."""

    async def extract(self, html: bytes, url: str) -> ExtractedPage | None:
        return extract_page(html, url)


def make_config(
    directory: Path,
    *,
    sources_yaml: str,
    allow: list[str],
    database_url: str = "sqlite:///unused.db",
    settings: str = "",
    keywords: str = "topics:\n  minerals:\n    keywords: [minerals, rare earth]\n",
) -> Config:
    """A loaded config (`world.write_config`'s) with `sources_yaml` as its sources.yaml."""
    write_config(
        directory,
        database_url=database_url,
        sources=[],
        allow=allow,
        keywords=keywords,
        extra_settings=settings,
    )
    (directory / "sources.yaml").write_text(sources_yaml)
    return load_config(directory, environ={})


def poll(
    config: Config,
    store: Store,
    name: str,
    clock: Callable[[], datetime],
    outputs: Outputs = NO_OUTPUTS,
    extractor: PageExtractor | None = None,
) -> SourceReport:
    """One `refresh_source` of the named source, with a fresh HTTP client (and pages extracted
    by `extractor`, else in this process)."""

    async def run() -> SourceReport:
        async with HttpFetcher(
            config.settings.fetch, clock=clock, resolver=numeric_only
        ) as fetcher:
            ctx = PollContext(
                config, store, fetcher, extractor or InlineExtractor(), outputs, clock=clock
            )
            return await refresh_source(config.source(name), ctx)

    return asyncio.run(run())
