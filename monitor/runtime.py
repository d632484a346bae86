"""Building the parts a poll or the service needs from a Config: shared by the CLI and `run`."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from rich.console import Console
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from monitor.config import Config, Settings, read_secret
from monitor.extract import Extractor
from monitor.fetch import HttpFetcher
from monitor.logs import redact_standard_streams, redactor
from monitor.notify.console import ConsoleNotifier
from monitor.notify.email import EmailAlertNotifier, SmtpSender
from monitor.notify.outbox import Notifier
from monitor.notify.routing import Outputs, configured_outputs
from monitor.notify.slack import slack_notifiers
from monitor.pipeline import PollContext
from monitor.store import Store


def secret_values(config: Config, environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of every secret the config names, for the log redactor."""
    settings = config.settings
    names = [settings.slack.token_env, settings.slack.webhook_url_env]
    if settings.email is not None:
        names.append(settings.email.password_env)
        # Some providers' SMTP usernames are keys (AWS SES, Postmark, Mailjet): hidden. One
        # that is a plain word ("monitor", "apikey") is no secret, and hiding it would garble
        # every line that holds the word ("monitor sources", logger names).
        username = read_secret(settings.email.username_env, environ)
        if username is not None and not username.get_secret_value().isalpha():
            names.append(settings.email.username_env)
    secrets = (read_secret(name, environ) for name in names)
    values = [s.get_secret_value() for s in secrets if s is not None]
    # A PostgreSQL URL may carry a password ($MONITOR_DATABASE_URL in containers).
    try:
        password = make_url(settings.database_url).password
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        password = None
    return values + ([str(password)] if password else [])


def protect_secrets(config: Config) -> None:
    """From now on, no log line and nothing written to stdout or stderr (command output,
    tracebacks) can show the config's secrets, nor any error the fetcher or the pipeline records
    (those are stored, and shown later in `monitor sources`, the digest and notices)."""
    redactor.set_secrets(secret_values(config))
    redact_standard_streams()


def notifiers(
    config: Config,
    outputs: Outputs,
    console: Console | None = None,
    store: Store | None = None,
) -> dict[str, Notifier]:
    """A notifier for each kind of destination the outputs make possible.

    Slack's bot-token mode needs `store` (its threads and the exactly-once check live there).
    """
    available: dict[str, Notifier] = {"console": ConsoleNotifier(console)}
    # --- Slack (notify/slack.py): `slack` in bot-token mode, `webhook` in webhook mode ---
    available.update(slack_notifiers(config.settings, outputs, store))
    # --- email: one email per alert to email.alerts_to (notify/email.py) ---
    if outputs.email_alerts and config.settings.email is not None:
        sender = SmtpSender(config.settings.email)
        available["email"] = EmailAlertNotifier(config.settings, sender)
    return available


@asynccontextmanager
async def poll_context(
    config: Config, store: Store, environ: Mapping[str, str] | None = None
) -> AsyncIterator[PollContext]:
    """A PollContext with a live HTTP client and extraction pool, closed on exit."""
    outputs = configured_outputs(config.settings, os.environ if environ is None else environ)
    async with HttpFetcher(config.settings.fetch) as fetcher:
        with Extractor() as extractor:
            yield PollContext(config, store, fetcher, extractor, outputs)


# --- source leases: `monitor run` and `monitor poll` never poll one source at once ------------

MIN_LEASE = timedelta(minutes=5)


def lease_owner(command: str) -> str:
    """`run:host:1234`: who holds a source's lease (the command, host and pid)."""
    return f"{command}:{socket.gethostname()}:{os.getpid()}"[:80]


def lease_until(settings: Settings, now: datetime) -> datetime:
    """When a lease taken `now` expires: long enough for a poll that fetches several pages
    (a lease that runs out early only risks one extra poll, never a duplicate alert)."""
    return now + max(MIN_LEASE, settings.fetch.timeout * 4)
