"""What `monitor run` counts, and the small HTTP server that shows it: /metrics and /healthz.

Every metric lives in one dedicated registry (`REGISTRY`), never prometheus_client's global one,
so importing a library that registers its own metrics cannot change what we expose. The code
that does the work calls the `record_*` functions below with what it already knows; nothing
here reaches into the pipeline or the outbox.

    monitor_polls_total{source,status}          one per poll; status ok | unchanged | failed
    monitor_poll_duration_seconds               histogram of whole-poll durations
    monitor_articles_new_total{source}          articles stored for the first time
    monitor_alerts_total{topic}                 alerts created, once per topic they carry
    monitor_deliveries_total{destination,outcome}   outcome sent | retried | failed
    monitor_delivery_latency_seconds{destination}   article first seen -> delivered
    monitor_outbox_pending{destination}         rows waiting (pending or being sent), at scrape
    monitor_outbox_failed{destination}          rows failed for good (see `monitor alerts`)
    monitor_ticks_total                         scheduler ticks (a stalled service stops these)
    monitor_config_reloads_total{result}        applied | invalid
    monitor_job_errors_total{job}               unexpected errors in a scheduled job
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from monitor.models import Delivery

log = logging.getLogger(__name__)

# The `*_created` timestamp series double the output and nobody here graphs them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # memory, CPU, open files of the service process

POLLS = Counter(
    "monitor_polls", "Polls of a source, by outcome.", ["source", "status"], registry=REGISTRY
)
POLL_SECONDS = Histogram(
    "monitor_poll_duration_seconds",
    "How long one source's poll took, fetch to stored.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
ARTICLES_NEW = Counter(
    "monitor_articles_new", "Articles stored for the first time.", ["source"], registry=REGISTRY
)
ALERTS = Counter(
    "monitor_alerts", "Alerts created, counted once for each topic.", ["topic"], registry=REGISTRY
)
DELIVERIES = Counter(
    "monitor_deliveries",
    "Delivery attempts of outbox rows, by outcome (sent, retried, failed).",
    ["destination", "outcome"],
    registry=REGISTRY,
)
DELIVERY_LATENCY = Histogram(
    "monitor_delivery_latency_seconds",
    "From an article's first sighting to its alert's delivery.",
    ["destination"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600),
    registry=REGISTRY,
)
TICKS = Counter("monitor_ticks", "Scheduler ticks of `monitor run`.", registry=REGISTRY)
CONFIG_RELOADS = Counter(
    "monitor_config_reloads",
    "Config edits seen while running: applied, or invalid (the last good config kept).",
    ["result"],
    registry=REGISTRY,
)
JOB_ERRORS = Counter(
    "monitor_job_errors",
    "Unexpected errors in a scheduled job (each also logged with its traceback).",
    ["job"],
    registry=REGISTRY,
)


def record_poll(source: str, status: str, seconds: float, new_articles: int) -> None:
    """One source was polled."""
    POLLS.labels(source, status).inc()
    POLL_SECONDS.observe(seconds)
    if new_articles:
        ARTICLES_NEW.labels(source).inc(new_articles)


def record_alert(topics: Iterable[str]) -> None:
    """An alert was created for an article with these topics."""
    for topic in topics:
        ALERTS.labels(topic).inc()


def record_delivery(delivery: Delivery, outcome: str, now: datetime) -> None:
    """An outbox row was sent, put back for a retry, or failed for good."""
    DELIVERIES.labels(delivery.destination, outcome).inc()
    if outcome == "sent" and delivery.alert is not None:
        latency = (now - delivery.alert.first_seen).total_seconds()
        DELIVERY_LATENCY.labels(delivery.destination).observe(max(latency, 0.0))


class OutboxBacklog:
    """The outbox's waiting and failed rows per destination, counted at each scrape.

    `count` returns {(destination, state): rows}; when it raises (database away), the scrape
    still answers, without these two metrics.
    """

    def __init__(self, count: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        self._count = count

    def describe(self) -> Iterator[Metric]:
        yield from self._families({})

    def collect(self) -> Iterator[Metric]:
        try:
            counts = self._count()
        except Exception:  # a scrape must not fail because the database is briefly away
            log.warning("outbox backlog not counted: database unavailable")
            return
        yield from self._families(counts)

    @staticmethod
    def _families(counts: Mapping[tuple[str, str], int]) -> Iterator[Metric]:
        pending = GaugeMetricFamily(
            "monitor_outbox_pending",
            "Outbox rows waiting to be delivered (pending or being sent).",
            labels=["destination"],
        )
        failed = GaugeMetricFamily(
            "monitor_outbox_failed",
            "Outbox rows that failed for good (`monitor alerts --resend` queues them again).",
            labels=["destination"],
        )
        waiting: dict[str, int] = {}
        for (destination, state), rows in counts.items():
            if state in ("pending", "sending"):
                waiting[destination] = waiting.get(destination, 0) + rows
            elif state == "failed":
                failed.add_metric([destination], rows)
        for destination, rows in sorted(waiting.items()):
            pending.add_metric([destination], rows)
        yield pending
        yield failed


# --- the /healthz and /metrics server ----------------------------------------------------------

HealthCheck = Callable[[], tuple[bool, str]]
"""-> (healthy, reason): /healthz answers 200 with the reason when healthy, else 503."""


class StatusServer:
    """/healthz and /metrics over HTTP, served from a thread so the event loop never waits.

    `with StatusServer("127.0.0.1", 9464, check) as server:` binds at once (an address in use
    raises OSError before anything else starts); `server.address` is the bound (host, port).
    """

    def __init__(self, host: str, port: int, health: HealthCheck) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._answer(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
                elif path == "/healthz":
                    healthy, reason = health()
                    body = (reason + "\n").encode()
                    self._answer(200 if healthy else 503, "text/plain; charset=utf-8", body)
                else:
                    self._answer(404, "text/plain; charset=utf-8", b"try /healthz or /metrics\n")

            def _answer(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # scrapes every few seconds would drown the service's own log

        server_class = _Ipv6Server if ":" in host else ThreadingHTTPServer
        self._server = server_class((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="status-server",
            daemon=True,
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Ipv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def parse_listen(listen: str) -> tuple[str, int] | None:
    """`127.0.0.1:9464` -> ("127.0.0.1", 9464); `[::1]:9464` -> ("::1", 9464); "" -> None."""
    if not listen:
        return None
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - ":9464" means every address
