"""`monitor run`: the service. APScheduler only ticks; what is due lives in the database.

    every tick (5 s)    re-read the config files if they changed; lease the sources whose
                        `next_poll_at` has come and poll each in its own task
    when due            a source this process polled is polled again the moment it is due
                        (a timer set from the `next_poll_at` its poll wrote), not at the first
                        tick after: with the 5 s tick alone, `every: 60s` meant up to 65 s
    every 5 s           deliver due outbox rows (at once, too, after a poll made alerts), one
                        lane per destination: channels do not wait for each other
    every minute        the daily digest job (sends only when one is due)
    every hour          retention: article text older than `retention_days` is dropped
    always              /healthz and /metrics on `http.listen`, from a thread

When each source is next due is written by the pipeline after every poll (`sources.next_poll_at`,
jitter included), so a restart neither re-polls everything nor forgets a source. A source is
never polled twice at once: one task per source here, and a lease in the database against a
`monitor poll` run by hand. One `monitor run` per database: see `monitor.lock`.

SIGTERM or SIGINT stops it: no new work starts, in-flight polls and deliveries get
`Timing.grace` seconds to finish and are then cancelled (every store write is one transaction,
so a cancelled poll leaves nothing half-written; a source cut short is simply due again).
A second signal cancels at once.

`MONITOR_TICK_SECONDS` shortens the tick and delivery intervals, for tests and tuning.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from operator import attrgetter
from pathlib import Path
from typing import Any, Literal, TypeVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.triggers.interval import IntervalTrigger
from rich.console import Console
from sqlalchemy.engine import make_url

from monitor import metrics
from monitor.config import (
    KEYWORDS_FILE,
    SETTINGS_FILE,
    SOURCES_FILE,
    Config,
    Settings,
    Source,
    load_config,
)
from monitor.errors import ConfigError, MonitorError, StoreError
from monitor.extract import Extractor
from monitor.fetch import HttpFetcher
from monitor.lock import InstanceLock, acquire_instance_lock
from monitor.logs import event
from monitor.notify.digest import DigestResult, recover_interrupted_digests, send_due_digest
from monitor.notify.email import SmtpSender
from monitor.notify.outbox import deliver_due
from monitor.notify.routing import Outputs, configured_outputs, notice_destinations
from monitor.notify.slack import SlackNotifier
from monitor.pipeline import PollContext, refresh_sources
from monitor.runtime import lease_owner, lease_until, notifiers, protect_secrets
from monitor.store import PruneReport, Store

log = logging.getLogger(__name__)

_T = TypeVar("_T")

TICK_ENV = "MONITOR_TICK_SECONDS"
LEASE_PREFIX = "run:"
DELIVERY_SCAN = 100  # due outbox rows read at a time (see `deliver_due`)
WAKE_MARGIN = 0.05  # seconds after `next_poll_at` a timer fires: due by then, whatever the clocks
MAX_NOTICE_PROBLEMS = 10
RESTART_SETTINGS = ("database_url", "http.listen")

DigestJob = Callable[[Store, Config, datetime], object]
"""Sends the daily digest when one is due at `now` (else nothing). Called every minute while
email has a digest recipient, so it must be safe to call often: it decides, not the caller."""


def scheduled_digest(store: Store, config: Config, now: datetime) -> DigestResult:
    """The daily digest over SMTP, when `digest.at` has come and today's was not sent."""
    email = config.settings.email
    if email is None:
        return DigestResult("not_configured")
    return send_due_digest(store, config, SmtpSender(email), now)


def no_digest(store: Store, config: Config, now: datetime) -> None:
    """A digest job that sends nothing (tests of the service without email)."""


def prune_old(store: Store, config: Config, now: datetime) -> PruneReport:
    """Retention: forget article text older than `retention_days` (see `Store.prune`)."""
    report = store.prune(now - timedelta(days=config.settings.retention_days))
    if report.articles or report.deliveries:
        event(
            log,
            "pruned",
            articles=report.articles,
            bands=report.bands,
            deliveries=report.deliveries,
            retention_days=config.settings.retention_days,
        )
    return report


@dataclass(frozen=True, slots=True)
class Timing:
    """How often the service's jobs run, in seconds, and how long a stop waits for work."""

    tick: float = 5.0
    deliver: float = 5.0
    digest: float = 60.0
    prune: float = 3600.0
    grace: float = 5.0  # at stop; with the rest of the shutdown this stays under 10 s

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Timing:
        """Defaults, or tick and delivery every `$MONITOR_TICK_SECONDS` (tests, tuning)."""
        raw = environ.get(TICK_ENV)
        if not raw:
            return cls()
        try:
            tick = float(raw)
        except ValueError:
            tick = 0.0
        if not 0.05 <= tick <= 3600:
            event(log, "bad_tick_setting", logging.WARNING, value=raw, using=cls().tick)
            return cls()
        return cls(tick=tick, deliver=tick)

    @property
    def stalled_after(self) -> float:
        """No tick for this long means the scheduler is stuck: /healthz says 503."""
        return max(60.0, 10 * self.tick)


# --- config reload: pure decisions -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """What a valid config edit changes for a running service."""

    added: tuple[str, ...]  # sources polled from now on (when due)
    removed: tuple[str, ...]  # no longer polled (a poll in flight finishes)
    changed: tuple[str, ...]  # url, type, query or interval changed: polled at the next tick
    topics_changed: bool  # new articles are matched with the new keywords
    fetch_changed: bool  # a new HTTP client for polls that start from now on
    restart_needed: tuple[str, ...]  # settings whose new value waits for a restart


def plan_reload(current: Config, new: Config, running: Settings) -> ReloadPlan:
    """Compare the config in use with a new valid one. `running` is the settings the process
    started with: database_url and http.listen cannot change without a restart."""
    old_sources = {s.name: s for s in current.sources}
    new_sources = {s.name: s for s in new.sources}
    return ReloadPlan(
        added=tuple(n for n in new_sources if n not in old_sources),
        removed=tuple(n for n in old_sources if n not in new_sources),
        changed=tuple(
            n
            for n, source in new_sources.items()
            if n in old_sources
            and _polling_key(source, new.settings) != _polling_key(old_sources[n], current.settings)
        ),
        topics_changed=current.topics != new.topics,
        fetch_changed=current.settings.fetch != new.settings.fetch,
        restart_needed=tuple(
            name
            for name in RESTART_SETTINGS
            if attrgetter(name)(running) != attrgetter(name)(new.settings)
        ),
    )


def _polling_key(source: Source, settings: Settings) -> tuple[object, ...]:
    """What decides how a source is polled (not whether: `enabled` is read at every tick)."""
    return (source.type, source.url, source.query, source.every or settings.poll.every)


def config_files_hash(directory: Path) -> str:
    """A hash of the three files' bytes: cheap enough to take at every tick."""
    digest = hashlib.sha256()
    for name in (SETTINGS_FILE, SOURCES_FILE, KEYWORDS_FILE):
        try:
            data = (directory / name).read_bytes()
        except OSError as exc:
            data = f"<unreadable: {type(exc).__name__}>".encode()
        digest.update(name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()


def invalid_config_notice(directory: Path, error: ConfigError) -> dict[str, str]:
    """The operational notice for an edit that does not validate (Slack, or the console)."""
    problems = [str(p) for p in error.problems]
    shown = problems[:MAX_NOTICE_PROBLEMS]
    if len(problems) > len(shown):
        shown.append(f"… and {len(problems) - len(shown)} more (run `monitor check`)")
    text = (
        f"Config edit in {directory} not applied: {len(problems)} problem(s). "
        "The last good config keeps running until it is fixed.\n" + "\n".join(shown)
    )
    return {"kind": "config_invalid", "text": text}


ReloadOutcome = Literal["unchanged", "settling", "same", "applied", "invalid"]


# --- the service -------------------------------------------------------------------------------


class Service:
    """The running service: its jobs, the config in use, and what is in flight."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        console: Console | None = None,
        digest_job: DigestJob = scheduled_digest,
        timing: Timing | None = None,
        lock: InstanceLock | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.timing = timing or Timing()
        self.digest_job = digest_job
        self.owner = lease_owner(LEASE_PREFIX.rstrip(":"))
        self.stop_reason = "stopped"
        self.cancelled = 0  # tasks still running at the stop deadline, cancelled
        self._console = console
        self._lock = lock
        self._environ = os.environ if environ is None else environ
        self._running_settings = config.settings
        self.outputs = configured_outputs(config.settings, self._environ)
        self._notifiers = notifiers(config, self.outputs, console, store)
        self._extractor = Extractor()
        self._fetcher: HttpFetcher | None = None
        self._ctx: PollContext | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._stop = asyncio.Event()
        self._hurry = asyncio.Event()
        self._stopping = False
        self._polls: dict[str, asyncio.Task[None]] = {}
        self._wakes: dict[str, asyncio.TimerHandle] = {}  # source -> its next poll's timer
        self._jobs: set[asyncio.Task[Any]] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._delivering = False
        self._delivery_wanted = False
        # Set when delivery must stop between rows: at stop (a normal round), or when the final
        # round at stop runs out of time. Read from the delivery threads.
        self._delivery_cut = threading.Event()
        self._final_delivery: asyncio.Task[None] | None = None
        self._last_tick = time.monotonic()
        # Config files: a change is acted on once the same bytes were seen at two ticks in a
        # row, so an editor caught half-way through writing a file is never reported.
        self._seen_hash: str | None = None
        self._settled_hash: str | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> str:
        """Run until SIGTERM/SIGINT (or `request_stop`); returns why it stopped."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        try:
            # This process holds the single-instance lock, so leases of earlier runs are stale,
            # and a digest still "sending" was cut off by a crash: never sent again.
            await asyncio.to_thread(self.store.release_leases, LEASE_PREFIX)
            await asyncio.to_thread(recover_interrupted_digests, self.store)
            self._use(self.config, HttpFetcher(self.config.settings.fetch))
            self._scheduler = self._start_scheduler()
            await self._stop.wait()
        finally:
            await self._shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        return self.stop_reason

    def request_stop(self, reason: str = "stop requested") -> None:
        """Stop scheduling and finish; a second request cancels work in flight at once."""
        if self._stop.is_set():
            event(log, "service_hurry", logging.WARNING, reason=reason)
            self._hurry.set()
            return
        self.stop_reason = reason
        self._stop.set()

    def _start_scheduler(self) -> AsyncIOScheduler:
        scheduler = AsyncIOScheduler(
            timezone=UTC,
            # Never two runs of a job at once, a late run runs once, however late.
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )
        now = datetime.now(UTC)
        for name, every, work in (
            ("tick", self.timing.tick, self._tick),
            ("deliver", self.timing.deliver, self._deliver),
            ("digest", self.timing.digest, self._digest),
            ("prune", self.timing.prune, self._prune),
        ):
            scheduler.add_job(
                self._job,
                IntervalTrigger(seconds=every, timezone=UTC),
                args=(name, work),
                id=name,
                next_run_time=now,
            )
        # "Skipped: maximum number of running instances reached" is the point of
        # max_instances, not news; APScheduler's real errors are logged at ERROR.
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        scheduler.start()
        return scheduler

    async def _shutdown(self) -> None:
        self._stopping = True
        if self._scheduler is not None:
            self._scheduler.pause()  # no job starts from now on
        for wake in self._wakes.values():
            wake.cancel()
        self._wakes.clear()
        deadline = asyncio.get_running_loop().time() + self.timing.grace
        in_flight = {*self._polls.values(), *self._jobs, *self._background}
        if in_flight:
            event(log, "service_stopping", polls=len(self._polls), grace_s=self.timing.grace)
        late = await self._finish(in_flight, deadline)
        if not late and not self._hurry.is_set():
            # Alerts stored by the last polls go out now (until the deadline), not at the next
            # start. (When polls ran late, those that finished have woken a round already.)
            self._wake_delivery()
        if self._final_delivery is not None:
            late += await self._finish({self._final_delivery}, deadline)
        self._delivery_cut.set()  # a delivery thread still running stops before its next row
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=1)
        self.cancelled = len(late)
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down in a loop callback
        if self._fetcher is not None:
            await self._fetcher.aclose()
        # A page being extracted finishes first; never wait long for it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(_in_thread(self._extractor.close), timeout=2)

    async def _finish(
        self, tasks: set[asyncio.Task[Any]], deadline: float
    ) -> list[asyncio.Task[Any]]:
        """Wait for `tasks` until the deadline or a second signal; returns those still running."""
        if not tasks:
            return []
        everything = asyncio.ensure_future(asyncio.wait(tasks))
        hurry = asyncio.ensure_future(self._hurry.wait())
        await asyncio.wait(
            {everything, hurry},
            timeout=max(0.0, deadline - asyncio.get_running_loop().time()),
            return_when=asyncio.FIRST_COMPLETED,
        )
        everything.cancel()  # cancels the waiting only, not the tasks waited for
        hurry.cancel()
        return [task for task in tasks if not task.done()]

    # --- jobs --------------------------------------------------------------------------------

    async def _job(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run one job; a database outage or a bug is logged and the service goes on."""
        task = asyncio.current_task()
        if task is not None:
            self._jobs.add(task)
        try:
            await work()
        except StoreError as exc:
            event(log, "job_failed", logging.WARNING, job=name, error=str(exc))
            metrics.JOB_ERRORS.labels(name).inc()
        except Exception:
            log.exception("job crashed", extra={"event": "job_crashed", "fields": {"job": name}})
            metrics.JOB_ERRORS.labels(name).inc()
        finally:
            if task is not None:
                self._jobs.discard(task)

    async def _tick(self) -> None:
        """Pick up config edits, then start a poll for every due source not already in flight."""
        self._last_tick = time.monotonic()
        metrics.TICKS.inc()
        await self.check_config()
        if self._stop.is_set():
            return
        await self._start_polls(
            [s.name for s in self.config.sources if s.enabled and s.name not in self._polls]
        )

    async def _start_polls(self, candidates: list[str]) -> None:
        """Lease those of `candidates` that are due and poll each in a task of its own."""
        config, ctx = self.config, self._ctx
        assert ctx is not None  # set by run() before the scheduler starts
        now = datetime.now(UTC)
        leased = await asyncio.to_thread(
            self.store.lease_sources,
            candidates,
            owner=self.owner,
            now=now,
            until=lease_until(config.settings, now),
            due_only=True,
        )
        if self._stop.is_set():  # the stop came while we were leasing: give them back
            await asyncio.to_thread(self.store.release_sources, leased, self.owner)
            return
        sources = {s.name: s for s in config.sources}
        for name in leased:
            # A tick and a source's timer can lease the same source (the lease is ours either
            # way): the one that got here first polls it.
            if name in self._polls or name not in sources:
                continue
            self._polls[name] = asyncio.create_task(
                self._poll(sources[name], ctx), name=f"poll:{name}"
            )

    async def _poll(self, source: Source, ctx: PollContext) -> None:
        try:
            reports = await refresh_sources([source], ctx)
            if any(r.alerts for r in reports):
                self._wake_delivery()
        except StoreError as exc:
            event(log, "poll_store_error", logging.WARNING, source=source.name, error=str(exc))
        finally:
            self._polls.pop(source.name, None)
            with contextlib.suppress(StoreError):
                due = await asyncio.to_thread(self._release, source.name)
                self._wake_at(source.name, due)

    def _release(self, name: str) -> datetime | None:
        """Give back the source's lease; returns when it is due next (written by its poll)."""
        self.store.release_sources([name], self.owner)
        return self.store.source_state(name).next_poll_at

    def _wake_at(self, name: str, due: datetime | None) -> None:
        """Poll `name` again the moment it is due (a tick would find it up to a tick later)."""
        old = self._wakes.pop(name, None)
        if old is not None:
            old.cancel()
        if due is None or self._stopping:
            return
        delay = max(0.0, (due - datetime.now(UTC)).total_seconds()) + WAKE_MARGIN
        loop = asyncio.get_running_loop()
        self._wakes[name] = loop.call_later(delay, self._wake, name)

    def _wake(self, name: str) -> None:
        self._wakes.pop(name, None)
        if self._stopping or name in self._polls:
            return
        if not any(s.name == name and s.enabled for s in self.config.sources):
            return  # removed or disabled by a config edit meanwhile
        self._keep(self._job("wake", lambda: self._start_polls([name])))

    async def _deliver(self, *, final: bool = False) -> None:
        """Deliver due outbox rows until none is left (or we stop: between two rows; the
        `final` round at stop goes on until none is left or the stop deadline)."""

        def keep_going() -> bool:
            return not self._delivery_cut.is_set() and (final or not self._stopping)

        self._delivering = True
        try:
            while keep_going():
                self._delivery_wanted = False
                await _in_thread(
                    deliver_due,
                    self.store,
                    self._notifiers,
                    lambda: datetime.now(UTC),
                    DELIVERY_SCAN,
                    keep_going,
                )
                if not self._delivery_wanted:
                    break
        finally:
            self._delivering = False

    def _wake_delivery(self) -> None:
        """New alerts: deliver now rather than at the next interval."""
        if self._stopping:
            # The scheduler is paused: a final round of its own, until the stop deadline.
            final = self._final_delivery
            if final is not None and not final.done():
                self._delivery_wanted = True
            elif not self._hurry.is_set():
                self._final_delivery = asyncio.create_task(self._deliver(final=True))
        elif self._delivering:
            self._delivery_wanted = True  # the running pass goes round once more
        elif self._scheduler is not None:
            self._scheduler.modify_job("deliver", next_run_time=datetime.now(UTC))

    async def _digest(self) -> None:
        if self.outputs.email_digest:
            await _in_thread(self.digest_job, self.store, self.config, datetime.now(UTC))

    async def _prune(self) -> None:
        await asyncio.to_thread(prune_old, self.store, self.config, datetime.now(UTC))

    # --- config reload -----------------------------------------------------------------------

    async def check_config(self) -> ReloadOutcome:
        """Re-read the config when its files changed; apply it, or report it once if invalid."""
        files_hash = config_files_hash(self.config.directory)
        if files_hash == self._settled_hash:
            return "unchanged"
        if files_hash != self._seen_hash:
            self._seen_hash = files_hash
            return "settling"
        # Settled only once handled: when the database is away, the next tick tries again.
        directory = self.config.directory
        try:
            new = await asyncio.to_thread(load_config, directory, self._environ)
        except ConfigError as exc:
            await self._report_invalid(exc, files_hash)
            self._settled_hash = files_hash
            return "invalid"
        outcome: ReloadOutcome = "same"
        if new.version != self.config.version:
            await self._apply(new)
            outcome = "applied"
        self._settled_hash = files_hash
        return outcome

    async def _report_invalid(self, error: ConfigError, files_hash: str) -> None:
        for problem in error.problems:
            event(log, "config_invalid", logging.ERROR, problem=str(problem))
        # Keyed by the files' content: however many ticks (or restarts) see this same broken
        # edit, one notice is queued.
        queued = await asyncio.to_thread(
            self.store.enqueue_notice,
            f"config-invalid:{files_hash[:32]}",
            invalid_config_notice(self.config.directory, error),
            notice_destinations(self.config.settings, self.outputs),
            datetime.now(UTC),
        )
        metrics.CONFIG_RELOADS.labels("invalid").inc()
        event(
            log,
            "config_kept",
            logging.WARNING,
            version=self.config.version,
            problems=len(error.problems),
            notice="queued" if queued else "sent before",
        )
        if queued:
            self._wake_delivery()

    async def _apply(self, new: Config) -> None:
        plan = plan_reload(self.config, new, self._running_settings)
        protect_secrets(new)
        fetcher = self._fetcher
        if plan.fetch_changed or fetcher is None:
            old, fetcher = fetcher, HttpFetcher(new.settings.fetch)
            if old is not None:
                # Polls in flight keep the old client until they finish; then it is closed.
                self._keep(self._retire(old, list(self._polls.values())))
        self._use(new, fetcher)
        if plan.changed:
            await asyncio.to_thread(self.store.make_due, plan.changed, datetime.now(UTC))
        metrics.CONFIG_RELOADS.labels("applied").inc()
        event(
            log,
            "config_reloaded",
            version=new.version,
            sources=sum(1 for s in new.sources if s.enabled),
            added=",".join(plan.added) or "-",
            removed=",".join(plan.removed) or "-",
            changed=",".join(plan.changed) or "-",
            topics=len(new.topics),
            topics_changed=plan.topics_changed,
        )
        for name in plan.restart_needed:
            event(
                log, "config_restart_needed", logging.WARNING, setting=name, note="restart to apply"
            )

    def _use(self, config: Config, fetcher: HttpFetcher) -> None:
        self.config = config
        self._fetcher = fetcher
        self.outputs = configured_outputs(config.settings, self._environ)
        previous = self._notifiers.get("slack")
        self._notifiers = notifiers(config, self.outputs, self._console, self.store)
        current = self._notifiers.get("slack")
        if isinstance(previous, SlackNotifier) and isinstance(current, SlackNotifier):
            current.adopt(previous)  # channel IDs Slack taught us, and each channel's pace
        self._ctx = PollContext(config, self.store, fetcher, self._extractor, self.outputs)

    async def _retire(self, fetcher: HttpFetcher, users: list[asyncio.Task[None]]) -> None:
        if users:
            await asyncio.wait(users)
        await fetcher.aclose()

    def _keep(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- health ------------------------------------------------------------------------------

    def health(self) -> tuple[bool, str]:
        """(healthy, reason) for /healthz; called from the status server's thread."""
        if self._stopping:
            return False, "stopping"
        scheduler = self._scheduler
        if scheduler is None or scheduler.state != STATE_RUNNING:
            return False, "scheduler not running"
        quiet = time.monotonic() - self._last_tick
        if quiet > self.timing.stalled_after:
            return False, f"scheduler stalled: no tick for {quiet:.0f}s"
        if self._lock is not None and not self._lock.held():
            return False, "single-instance lock lost (database connection dropped): restart"
        if not self.store.ping():
            return False, "database does not answer"
        return True, f"ok: config {self.config.version}, {len(self._polls)} poll(s) in flight"


async def _in_thread(func: Callable[..., _T], *args: Any) -> _T:
    """`func(*args)` in a daemon thread. Unlike asyncio.to_thread, a call still stuck in the
    network when the stop deadline passes cannot keep the process from exiting."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[_T] = loop.create_future()

    def work() -> None:
        try:
            result = func(*args)
        except Exception as exc:
            _call_soon(loop, _reject, future, exc)
        else:
            _call_soon(loop, _resolve, future, result)

    threading.Thread(target=work, name=getattr(func, "__name__", "work"), daemon=True).start()
    return await future


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile: nobody waits
        loop.call_soon_threadsafe(callback, *args)


def _resolve(future: asyncio.Future[_T], result: _T) -> None:
    if not future.done():  # the waiter may have been cancelled at the stop deadline
        future.set_result(result)


def _reject(future: asyncio.Future[Any], error: Exception) -> None:
    if not future.done():
        future.set_exception(error)


# --- `monitor run` -----------------------------------------------------------------------------


def run_service(
    config: Config,
    *,
    console: Console | None = None,
    announce: Callable[[str], None] = print,
    digest_job: DigestJob = scheduled_digest,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Hold the single-instance lock, open the store, serve /healthz and /metrics, run until a
    signal; returns why it stopped. Raises AlreadyRunning, StoreError, or MonitorError when the
    status address cannot be bound."""
    env = os.environ if environ is None else environ
    settings = config.settings
    lock = acquire_instance_lock(settings.database_url)
    try:
        store = Store.open(settings.database_url)
        try:
            service = Service(
                config,
                store,
                console=console,
                digest_job=digest_job,
                timing=Timing.from_env(env),
                lock=lock,
                environ=env,
            )
            backlog = metrics.OutboxBacklog(store.outbox_counts)
            metrics.REGISTRY.register(backlog)
            try:
                with _status_server(settings.http.listen, service.health) as address:
                    started = time.monotonic()
                    _log_start(config, service.outputs, address)
                    announce(_how_to_reach(address))
                    reason = asyncio.run(service.run())
                    event(
                        log,
                        "service_stop",
                        reason=reason,
                        cancelled=service.cancelled,
                        uptime_s=int(time.monotonic() - started),
                    )
                    return reason
            finally:
                metrics.REGISTRY.unregister(backlog)
        finally:
            store.close()
    finally:
        lock.release()


@contextlib.contextmanager
def _status_server(listen: str, health: metrics.HealthCheck) -> Iterator[tuple[str, int] | None]:
    address = metrics.parse_listen(listen)
    if address is None:
        yield None
        return
    try:
        server = metrics.StatusServer(*address, health)
    except OSError as exc:
        raise MonitorError(
            f"cannot serve /healthz and /metrics on {listen}: {exc.strerror or exc}; "
            'set http.listen in settings.yaml to another address, or to "" to turn it off'
        ) from exc
    with server:
        yield server.address


def _how_to_reach(address: tuple[str, int] | None) -> str:
    pid = os.getpid()
    stop = f"stop with Ctrl-C or `kill -TERM {pid}`"
    if address is None:
        return f"monitor run (pid {pid}): health and metrics are off (http.listen is empty); {stop}"
    host, port = address
    base = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    return f"monitor run (pid {pid}): health at {base}/healthz, metrics at {base}/metrics; {stop}"


def _log_start(config: Config, outputs: Outputs, address: tuple[str, int] | None) -> None:
    enabled = [s for s in config.sources if s.enabled]
    kinds = [
        kind
        for kind, on in (
            ("slack", outputs.slack_token),
            ("webhook", outputs.slack_webhook),
            ("email-alerts", outputs.email_alerts),
            ("email-digest", outputs.email_digest),
        )
        if on
    ]
    event(
        log,
        "service_start",
        version=_version(),
        pid=os.getpid(),
        config=config.version,
        sources=len(enabled),
        topics=len(config.topics),
        outputs=",".join(kinds) or "console",
        database=make_url(config.settings.database_url).render_as_string(hide_password=True),
        listen=f"{address[0]}:{address[1]}" if address else "off",
    )
    for line in outputs.missing():
        event(log, "output_missing", note=line)


def _version() -> str:
    try:
        return metadata.version("news-monitor")
    except metadata.PackageNotFoundError:
        return "unknown"
