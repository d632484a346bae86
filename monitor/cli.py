"""The `monitor` command: thin wrappers that load the config, call the real work, print."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import make_msgid
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from monitor import rules, service
from monitor.config import (
    SOURCES_FILE,
    Config,
    EmailSettings,
    Source,
    check_http_url,
    config_dir,
    format_duration,
    load_config,
    parse_duration,
)
from monitor.dedupe import canonical_url
from monitor.errors import (
    AlreadyRunning,
    ConfigError,
    DeliveryError,
    MonitorError,
    StoreError,
    UrlError,
)
from monitor.fetch import HttpFetcher
from monitor.health import source_health
from monitor.logs import event, json_logs, setup_logging
from monitor.models import FetchFailed
from monitor.notify.digest import (
    DigestResult,
    build_digest,
    digest_configured,
    digest_email,
    render_text,
    send_digest_now,
)
from monitor.notify.email import SmtpSender, message_domain
from monitor.notify.outbox import deliver_due
from monitor.notify.routing import configured_outputs
from monitor.pipeline import SourceReport, refresh_sources
from monitor.runtime import lease_owner, lease_until, notifiers, poll_context, protect_secrets
from monitor.schedule import polling_interval
from monitor.sources.discover import Discovery, discover
from monitor.sources_file import add_source, name_for, remove_source
from monitor.store import Store

EXIT_INVALID_CONFIG = 2
SHOWN_ITEMS = 5  # `monitor sources add` shows this many of the latest items
F = TypeVar("F", bound=Callable[..., Any])

# Piped output (logs, CI, `| grep`) gets wide lines instead of an 80-column wrap.
_WIDTH = None if sys.stdout.isatty() else 200
# No emoji codes: `:fire:` in a headline or a config key is shown as written.
out = Console(highlight=False, soft_wrap=True, width=_WIDTH, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=_WIDTH, emoji=False)


def _duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def config_option(command: F) -> F:
    """`--config DIR` on every command (else $MONITOR_CONFIG_DIR, else ./config)."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(file_okay=False),
        default=None,
        help="Config directory (default: $MONITOR_CONFIG_DIR, else ./config).",
    )(command)


def with_config(command: Callable[..., int | None]) -> Callable[..., None]:
    """Load the config (exit 2 listing every problem if invalid) and pass it as `config`."""

    @wraps(command)
    def wrapper(config_path: str | None, **kwargs: Any) -> None:
        directory = config_dir(config_path or _inherited_config_path())
        try:
            config = load_config(directory)
        except ConfigError as exc:
            for problem in exc.problems:
                err.print(str(problem), markup=False)
            err.print(f"{len(exc.problems)} problem(s) in {directory}; nothing was done.")
            sys.exit(EXIT_INVALID_CONFIG)
        protect_secrets(config)
        try:
            status = command(config=config, **kwargs)
        except StoreError as exc:
            err.print(f"database error: {exc}", markup=False)
            sys.exit(1)
        sys.exit(status or 0)

    return wrapper


def _inherited_config_path() -> str | None:
    """`--config` given to an enclosing command (`monitor --config X sources add …`)."""
    context: click.Context | None = click.get_current_context()
    while context is not None:
        if value := context.params.get("config_path"):
            return str(value)
        context = context.parent
    return None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@config_option
@click.option("-v", "--verbose", is_flag=True, help="Log every event, not only warnings.")
def cli(config_path: str | None, verbose: bool) -> None:
    """A news monitor: feeds, sites and Google News searches -> tagged, deduplicated alerts."""
    setup_logging(logging.INFO if verbose else logging.WARNING)
    click.get_current_context().obj = {"verbose": verbose}


@cli.command()
@config_option
def check(config_path: str | None) -> None:
    """Validate the three config files and the environment they name."""
    directory = config_dir(
        config_path or click.get_current_context().find_root().params.get("config_path")
    )
    try:
        config = load_config(directory)
    except ConfigError as exc:
        for problem in exc.problems:
            out.print(str(problem), markup=False)
        sys.exit(EXIT_INVALID_CONFIG)
    outputs = configured_outputs(config.settings)
    enabled = sum(1 for s in config.sources if s.enabled)
    out.print(
        f"{directory}: OK — {len(config.sources)} sources ({enabled} enabled), "
        f"{len(config.topics)} topics",
        markup=False,
    )
    for line in outputs.missing():
        out.print(f"note: {line}", markup=False)


@cli.command()
@config_option
@click.option("--source", "names", multiple=True, help="Poll only this source (repeatable).")
@with_config
def poll(config: Config, names: Sequence[str]) -> int:
    """Poll every enabled source (or the named ones) now, then deliver pending alerts."""
    known = {s.name for s in config.sources}
    unknown = [n for n in names if n not in known]
    if unknown:
        err.print(f"no source named {', '.join(unknown)} in sources.yaml", markup=False)
        return EXIT_INVALID_CONFIG
    sources = [s for s in config.sources if (s.name in names if names else s.enabled)]
    if not click.get_current_context().find_root().obj["verbose"]:
        # The summary lines below say what the per-source log lines would; keep real errors.
        logging.getLogger("monitor").setLevel(logging.ERROR)
    outputs = configured_outputs(config.settings)
    for line in outputs.missing():
        err.print(f"note: {line}", markup=False)
    store = Store.open(config.settings.database_url)
    try:
        reports = _poll_leased(config, store, sources)
        width = max((len(r.source) for r in reports), default=0)
        for report in reports:
            out.print(_summary_line(report, width), markup=False)
        delivered = deliver_due(
            store, notifiers(config, outputs, out, store), lambda: datetime.now(UTC), limit=1000
        )
        if delivered.retried or delivered.failed:
            err.print(
                f"deliveries: {delivered.sent} sent, {delivered.retried} to retry, "
                f"{delivered.failed} failed (see `monitor alerts`)",
                markup=False,
            )
    finally:
        store.close()
    return 0


def _poll_leased(config: Config, store: Store, sources: Sequence[Source]) -> list[SourceReport]:
    """Poll the sources no other process is polling right now (a running `monitor run`)."""
    owner = lease_owner("poll")
    now = datetime.now(UTC)
    leased = store.lease_sources(
        [s.name for s in sources],
        owner=owner,
        now=now,
        until=lease_until(config.settings, now),
        due_only=False,
    )
    for source in sources:
        if source.name not in leased:
            err.print(f"{source.name}: skipped, another process is polling it now", markup=False)
    try:
        return asyncio.run(_poll(config, store, [s for s in sources if s.name in leased]))
    finally:
        store.release_sources(leased, owner)


async def _poll(config: Config, store: Store, sources: Sequence[Any]) -> list[SourceReport]:
    async with poll_context(config, store) as ctx:
        return await refresh_sources(sources, ctx)


def _summary_line(report: SourceReport, width: int) -> str:
    if report.status == "failed":
        return f"{report.source:<{width}}  failed     {report.error}"
    line = (
        f"{report.source:<{width}}  {report.status:<10} entries={report.entries} new={report.new} "
        f"matched={report.matched} alerts={report.alerts} {report.ms}ms"
    )
    return line + (f"  (note: {report.problem})" if report.problem else "")


# --- monitor sources [add URL | remove NAME] ---------------------------------------------------


@cli.group(invoke_without_command=True)
@config_option
@click.pass_context
def sources(ctx: click.Context, config_path: str | None) -> None:
    """Every source with its health and schedule; `add` and `remove` edit sources.yaml."""
    if ctx.invoked_subcommand is None:
        with_config(_list_sources)(config_path=config_path)


def _list_sources(config: Config) -> int:
    store = Store.open(config.settings.database_url)
    try:
        states = store.source_states()
    finally:
        store.close()
    zone = config.settings.zone
    table = Table(box=None, pad_edge=False)
    for column in (
        "source",
        "type",
        "status",
        "every",
        "last success",
        "last new item",
        "failures",
        "items",
        "next poll",
        "detail",
    ):
        table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=70)
    now = datetime.now(UTC)
    for source in config.sources:
        state = states.get(source.name)
        health = source_health(state, enabled=source.enabled, now=now)
        every, origin = polling_interval(source.every, state, config.settings.poll.every)
        table.add_row(
            source.name,
            source.type,
            health.status,
            format_duration(every) + {"set": "", "learned": " (adapted)", "default": ""}[origin],
            _local(state.last_success_at if state else None, zone),
            _local(state.last_new_item_at if state else None, zone),
            str(state.consecutive_failures if state else 0),
            str(state.items_total if state else 0),
            _local(state.next_poll_at, zone) if state and state.next_poll_at else "due now",
            health.detail,
        )
    out.print(table)
    return 0


@sources.command("add")
@click.argument("url")
@click.option("--name", help="The source's name (default: from the site's host).")
@config_option
@with_config
def sources_add(config: Config, url: str, name: str | None) -> int:
    """Find URL's feed (or read it as a site without one), show it, add it to sources.yaml."""
    try:
        url = check_http_url(url)
        name = name or name_for(url)
    except (ValueError, UrlError) as exc:
        err.print(str(exc), markup=False)
        return EXIT_INVALID_CONFIG
    if refusal := _duplicate(config, name, url):
        err.print(refusal, markup=False)
        return EXIT_INVALID_CONFIG
    out.print(f"Looking at {url} …", markup=False)
    found = asyncio.run(_discover(config, url))
    if isinstance(found, FetchFailed):
        err.print(f"cannot read {found.url}: {found.error}; nothing was added", markup=False)
        return 1
    if found.url != url and (refusal := _duplicate(config, name, found.url)):
        err.print(refusal, markup=False)
        return EXIT_INVALID_CONFIG
    _show_discovery(found, config.settings.zone)
    try:
        add_source(config.directory, name=name, url=found.url, source_type=found.type)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(str(problem), markup=False)
        err.print("sources.yaml was left as it was.", markup=False)
        return EXIT_INVALID_CONFIG
    kind = "feed" if found.type == "feed" else "site (type: site)"
    out.print(f"Added {name!r} ({kind}) to {config.directory / SOURCES_FILE}.", markup=False)
    return 0


@sources.command("remove")
@click.argument("name")
@config_option
@with_config
def sources_remove(config: Config, name: str) -> int:
    """Remove the source NAME from sources.yaml (its stored articles stay)."""
    if name not in {s.name for s in config.sources}:
        err.print(f"no source named {name!r} in sources.yaml", markup=False)
        return EXIT_INVALID_CONFIG
    try:
        remove_source(config.directory, name)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(str(problem), markup=False)
        err.print("sources.yaml was left as it was.", markup=False)
        return EXIT_INVALID_CONFIG
    out.print(f"Removed {name!r} from {config.directory / SOURCES_FILE}.", markup=False)
    return 0


async def _discover(config: Config, url: str) -> Discovery | FetchFailed:
    async with HttpFetcher(config.settings.fetch) as fetcher:
        return await discover(url, fetcher, datetime.now(UTC))


def _duplicate(config: Config, name: str, url: str) -> str | None:
    """Why a source named `name` reading `url` cannot be added, if it cannot."""
    wanted = canonical_url(url)
    for source in config.sources:
        if source.url and canonical_url(source.url) == wanted:
            return f"{url} is already in sources.yaml as {source.name!r}; nothing was added"
        if source.name == name:
            return (
                f"a source named {name!r} is already in sources.yaml; "
                "choose another with --name; nothing was added"
            )
    return None


def _show_discovery(found: Discovery, zone: Any) -> None:
    if found.type == "feed":
        out.print(f"Feed: {found.title or '(untitled)'} — {found.url}", markup=False)
        out.print(f"  found via {found.via}", markup=False)
    else:
        out.print(
            f"No feed found; it will be read as a site: {found.title or found.url}", markup=False
        )
        out.print(f"  articles found via {found.via}", markup=False)
    if found.problem:
        out.print(f"  note: {found.problem}", markup=False)
    if not found.entries:
        out.print("  nothing listed right now", markup=False)
        return
    out.print(f"  {len(found.entries)} item(s); the latest:", markup=False)
    latest = sorted(
        found.entries,
        key=lambda e: e.published or datetime.min.replace(tzinfo=UTC),
        reverse=True,
    )
    for entry in latest[:SHOWN_ITEMS]:
        when = _local(entry.published, zone) if entry.published else "undated         "
        out.print(f"    {when}  {entry.title or entry.link}", markup=False)


@cli.command()
@config_option
@click.option(
    "--since",
    callback=_duration,
    default="1d",
    show_default=True,
    help="How far back (90s, 15m, 2h, 1d).",
)
@click.option("--resend", is_flag=True, help="Queue every failed delivery again.")
@with_config
def alerts(config: Config, since: timedelta, resend: bool) -> int:
    """Recent alerts, their topics, and the delivery state of each destination."""
    store = Store.open(config.settings.database_url)
    try:
        if resend:
            count = store.resend_failed(datetime.now(UTC))
            out.print(f"{count} failed deliveries queued again", markup=False)
        statuses = store.alerts_since(datetime.now(UTC) - since)
    finally:
        store.close()
    zone = config.settings.zone
    table = Table(box=None, pad_edge=False)
    for column in ("when", "kind", "topics", "title", "outlet", "deliveries"):
        table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=70)
    for status in statuses:
        alert = status.alert
        deliveries = ", ".join(
            f"{dest}:{state}" + (f" ({error[:60]})" if error and state != "sent" else "")
            for dest, state, error in status.deliveries
        )
        table.add_row(
            _local(alert.first_seen, zone),
            alert.kind,
            ",".join(alert.topics),
            alert.title[:100],
            alert.outlet,
            deliveries or "-",
        )
    out.print(table)
    noun = "alert" if len(statuses) == 1 else "alerts"
    out.print(f"{len(statuses)} {noun} in the last {format_duration(since)}", markup=False)
    return 0


@cli.command()
@config_option
@click.option(
    "--since",
    callback=_duration,
    default="30d",
    show_default=True,
    help="Stored articles first seen this recently.",
)
@click.option("--topic", "topic_names", multiple=True, help="Only this topic (repeatable).")
@with_config
def match(config: Config, since: timedelta, topic_names: Sequence[str]) -> int:
    """Which stored articles the current keywords.yaml would tag (preview a keyword edit)."""
    known = {t.name for t in config.topics}
    unknown = [t for t in topic_names if t not in known]
    if unknown:
        err.print(f"no topic named {', '.join(unknown)} in keywords.yaml", markup=False)
        return EXIT_INVALID_CONFIG
    wanted = set(topic_names) or known
    matcher = rules.compile_topics(config.topics)
    store = Store.open(config.settings.database_url)
    try:
        articles = store.articles_since(datetime.now(UTC) - since)
    finally:
        store.close()
    counts = dict.fromkeys(sorted(wanted), 0)
    for article in articles:
        matches = [
            m
            for m in matcher.match(article.title, article.summary, article.text)
            if m.topic in wanted
        ]
        now_topics = {m.topic for m in matches}
        was_topics = set(article.stored_topics) & wanted
        if not now_topics and not was_topics:
            continue
        for topic in now_topics:
            counts[topic] += 1
        change = ""
        if now_topics - was_topics:
            change += " [new: " + ",".join(sorted(now_topics - was_topics)) + "]"
        if was_topics - now_topics:
            change += " [lost: " + ",".join(sorted(was_topics - now_topics)) + "]"
        out.print(f"{','.join(sorted(now_topics)) or '-'}{change}  {article.title}", markup=False)
        out.print(f"    {article.url}", markup=False)
        for m in matches:
            out.print(f"    {m.topic}: {', '.join(m.words)} — {m.sentence[:200]}", markup=False)
    total = ", ".join(f"{topic}={n}" for topic, n in counts.items())
    span = format_duration(since)
    out.print(
        f"{len(articles)} stored articles in the last {span}; would tag: {total}", markup=False
    )
    return 0


# --- monitor digest: the daily email (notify/digest.py) ------------------------------------


@cli.command()
@config_option
@click.option(
    "--send",
    is_flag=True,
    help="Email it to email.digest.to as today's digest (a digest that was sent is never sent "
    "again; with --since, an extra one-off email instead).",
)
@click.option(
    "--since",
    callback=_duration,
    default=None,
    help="Cover this far back (90s, 15m, 2h, 1d) instead of since the last sent digest.",
)
@with_config
def digest(config: Config, send: bool, since: timedelta | None) -> int:
    """Print the digest that would go out now; --send emails it."""
    now = datetime.now(UTC)
    email = digest_configured(config)
    store = Store.open(config.settings.database_url)
    try:
        if not send:
            built = build_digest(store, config, now, now - since if since else None)
            click.echo(f"Subject: {built.subject}\n")
            click.echo(render_text(built), nl=False)
            today = store.digest_on(now.astimezone(config.settings.zone).date().isoformat())
            if since is None and today is not None and today.state == "sent":
                err.print(
                    "note: today's digest was sent; this is what the next one holds so far",
                    markup=False,
                )
            if email is None:
                err.print(f"note: {_EMAIL_NOT_CONFIGURED}", markup=False)
            return 0
        if email is None:
            err.print(f"cannot send: {_EMAIL_NOT_CONFIGURED}", markup=False)
            return 1
        sender = SmtpSender(email)
        if since is not None:
            return _send_extra_digest(store, config, email, sender, now, since)
        result = send_digest_now(store, config, sender, now)
    finally:
        store.close()
    return _report_digest(result, len(email.digest.to))


_EMAIL_NOT_CONFIGURED = (
    "email is not configured: add an `email:` section with `digest.to` to settings.yaml "
    "(and set SMTP_USERNAME / SMTP_PASSWORD if the server needs a login)"
)


def _send_extra_digest(
    store: Store,
    config: Config,
    email: EmailSettings,
    sender: SmtpSender,
    now: datetime,
    since: timedelta,
) -> int:
    """`--send --since`: a one-off digest of the period asked for. Not recorded as the day's
    digest: the daily one and the period it covers are unchanged."""
    built = build_digest(store, config, now, now - since)
    message_id = make_msgid("digest-extra", domain=message_domain(email))
    try:
        sender.send(digest_email(built, email, message_id, now))
    except DeliveryError as exc:
        err.print(f"sending failed: {exc}", markup=False)
        return 1
    out.print(
        f"sent an extra digest of the last {format_duration(since)} to "
        f"{len(email.digest.to)} recipient(s): {built.subject} "
        "(the daily digest is unchanged)",
        markup=False,
    )
    return 0


def _report_digest(result: DigestResult, recipients: int) -> int:
    subject = result.subject or ""
    if result.status == "sent":
        out.print(f"sent to {recipients} recipient(s): {subject}", markup=False)
        return 0
    if result.status == "already_sent":
        out.print(
            f"today's digest ({result.digest_date}) was already sent: {subject}; a digest is "
            "never sent twice. Stories since then go in the next one "
            "(`--send --since 1d` emails an extra one-off digest).",
            markup=False,
        )
        return 0
    if result.status == "in_flight":
        out.print(
            f"today's digest ({result.digest_date}) is being sent by another process, or one "
            "stopped while sending it (`monitor run` marks it unknown when it starts); not "
            "sending it again.",
            markup=False,
        )
        return 0
    if result.status == "unknown":
        out.print(
            f"today's digest ({result.digest_date}) may or may not have arrived: the process "
            "sending it stopped mid-send. It is not sent again; the next digest covers its "
            "stories (`--send --since 1d` emails an extra one-off digest).",
            markup=False,
        )
        return 0
    if result.status == "retry":
        err.print(
            f"sending failed for now: {result.error}; `monitor run` tries again later today",
            markup=False,
        )
        return 1
    err.print(f"sending failed: {result.error}", markup=False)
    return 1


# --- monitor prune: retention by hand (`monitor run` does it every hour) ----------------------


@cli.command()
@config_option
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=None,
    help="Keep article text this many days (default: retention_days in settings.yaml).",
)
@click.option(
    "--vacuum",
    is_flag=True,
    help="Then give the freed space back to the file system (SQLite: VACUUM; PostgreSQL: "
    "VACUUM ANALYZE).",
)
@with_config
def prune(config: Config, days: int | None, vacuum: bool) -> int:
    """Drop article text older than retention_days now, as `monitor run` does every hour.

    URLs, GUIDs, titles, stories, matches and alerts stay: nothing old becomes news again and
    the digest and `monitor alerts` lose nothing.
    """
    keep = days or config.settings.retention_days
    store = Store.open(config.settings.database_url)
    try:
        size = _database_size(config.settings.database_url)
        report = store.prune(datetime.now(UTC) - timedelta(days=keep))
        out.print(
            f"older than {keep} days: dropped the text of {report.articles} article(s), "
            f"{report.bands} near-duplicate index entries and {report.deliveries} finished "
            "deliveries",
            markup=False,
        )
        if vacuum:
            store.vacuum()
            after = _database_size(config.settings.database_url)
            if size is not None and after is not None:
                out.print(f"vacuumed: {_mb(size)} -> {_mb(after)}", markup=False)
            else:
                out.print("vacuumed", markup=False)
    finally:
        store.close()
    return 0


def _database_size(url: str) -> int | None:
    """Bytes of a SQLite database (its file and WAL); None for PostgreSQL."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    files = [Path(parsed.database + suffix) for suffix in ("", "-wal")]
    return sum(f.stat().st_size for f in files if f.exists())


def _mb(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


# --- `monitor run`: the service ---------------------------------------------------------------


@cli.command()
@config_option
@with_config
def run(config: Config) -> int:
    """The service: scheduled polling, delivery, daily digest, config reload.

    Stops cleanly on SIGTERM or Ctrl-C. Serves /healthz and /metrics on `http.listen`.
    """
    if not click.get_current_context().find_root().obj["verbose"]:
        # A service's log is what its operator reads: start/stop, each poll, each reload.
        logging.getLogger("monitor").setLevel(logging.INFO)
    try:
        service.run_service(config, console=out, announce=_announce)
    except AlreadyRunning as exc:
        _run_refused(exc)
        return 1
    except StoreError as exc:
        if not json_logs():
            raise  # `with_config` reports it as a database error
        _run_refused(exc)
        return 1
    except MonitorError as exc:
        _run_refused(exc)
        return 1
    return 0


_run_log = logging.getLogger("monitor.cli")


def _announce(line: str) -> None:
    """Where /healthz and /metrics are, for the person at the terminal. With JSON logs every
    line on stderr is a JSON object, and `service_start` already names the bound address."""
    if not json_logs():
        err.print(line, markup=False)


def _run_refused(exc: MonitorError) -> None:
    if json_logs():
        event(_run_log, "service_refused", logging.ERROR, error=str(exc))
    else:
        err.print(f"monitor run: {exc}", markup=False)


def _local(moment: datetime | None, zone: Any) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else "-"


def main() -> None:
    cli(prog_name="monitor")
