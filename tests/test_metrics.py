"""The service's metrics: read from /metrics of a real `monitor run` after a poll (every
metric the operators were promised moves), and the parts on their own."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import metrics
from monitor.models import AlertMessage, Delivery
from tests.service_harness import Launcher, launcher_for, wait_for
from tests.slack_standin import SlackStandIn
from tests.web import LocalWeb
from tests.world import distinct_story as story
from tests.world import publish, write_config

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

KEYWORDS = """topics:
  balochistan:
    keywords: [Balochistan]
  ports:
    keywords: [Gwadar]
"""


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    yield from launcher_for(tmp_path)


def test_after_a_poll_every_promised_metric_has_moved(
    tmp_path: Path,
    monitor_database_url: str,
    web: LocalWeb,
    slack: SlackStandIn,
    launcher: Launcher,
) -> None:
    """Polls and failures per source, new articles, alerts by topic, deliveries sent, retried
    and failed per destination, delivery latency and the outbox backlog, from one poll."""
    budget = story("budget", "Balochistan budget passed", "Balochistan's assembly met.")
    floods = story("floods", "Balochistan floods recede", "Balochistan's rivers fell.")
    cricket = story("cricket", "Cricket final in Lahore", "The crowd cheered every boundary.")
    feed = publish(web, "Quetta Times", [budget, floods, cricket])
    web.add("/broken.xml", "down for maintenance", status=503)
    slack_settings = (
        f'slack:\n  base_url: "{slack.base_url}"\n  channel: "#news-alerts"\n'
        '  routes: {ports: "#nowhere"}\n'  # a channel the workspace does not have
    )
    config = write_config(
        tmp_path / "config",
        database_url=monitor_database_url,
        sources=[],
        allow=[web.host],
        keywords=KEYWORDS,
        extra_settings=slack_settings,
        listen="127.0.0.1:0",
    )
    (config / "sources.yaml").write_text(
        f"sources:\n  - name: quetta-times\n    url: {feed}\n    every: 1s\n"
        f"  - name: broken\n    url: {web.url('/broken.xml')}\n"
    )
    # The first message Slack is sent gets a 500: that delivery is retried (in 30 s).
    slack.fail_next("server_error")

    service = launcher.start(config, env={"SLACK_BOT_TOKEN": slack.token})
    metric = service.metric
    news, nowhere = "slack:#news-alerts", "slack:#nowhere"
    wait_for(
        lambda: (
            metric("monitor_deliveries_total", destination=news, outcome="sent")
            and metric("monitor_deliveries_total", destination=news, outcome="retried")
        ),
        timeout=60,
        message="one alert for #news-alerts sent and the other retried",
    )
    # Then a story for a topic routed to a channel Slack does not have: failed for good.
    publish(
        web,
        "Quetta Times",
        [budget, floods, cricket, story("port", "Gwadar port expands", "Ships docked.")],
    )
    wait_for(
        lambda: metric("monitor_deliveries_total", destination=nowhere, outcome="failed"),
        timeout=60,
        message="the alert for #nowhere to fail",
    )

    # Polls, per source and outcome.
    assert metric("monitor_polls_total", source="quetta-times", status="ok") >= 2
    assert metric("monitor_polls_total", source="broken", status="failed") == 1
    assert metric("monitor_polls_total", source="broken", status="ok") == 0
    assert metric("monitor_poll_duration_seconds_count") >= 3
    # New articles per source, alerts per topic.
    assert metric("monitor_articles_new_total", source="quetta-times") == 4
    assert metric("monitor_articles_new_total", source="broken") == 0
    assert metric("monitor_alerts_total", topic="balochistan") == 2
    assert metric("monitor_alerts_total", topic="ports") == 1
    # Deliveries per destination and outcome.
    assert metric("monitor_deliveries_total", destination=news, outcome="sent") == 1
    assert metric("monitor_deliveries_total", destination=news, outcome="retried") == 1
    assert metric("monitor_deliveries_total", destination=news, outcome="failed") == 0
    assert metric("monitor_deliveries_total", destination=nowhere, outcome="failed") == 1
    assert metric("monitor_deliveries_total", destination=nowhere, outcome="sent") == 0
    # Latency, first seen -> delivered, for what was delivered.
    assert metric("monitor_delivery_latency_seconds_count", destination=news) == 1
    assert 0 < metric("monitor_delivery_latency_seconds_sum", destination=news) < 60
    assert metric("monitor_delivery_latency_seconds_count", destination=nowhere) == 0
    # The backlog, counted at the scrape: the retried row waits, the failed one is failed.
    assert metric("monitor_outbox_pending", destination=news) == 1
    assert metric("monitor_outbox_failed", destination=nowhere) == 1
    assert len(slack.messages("#news-alerts")) == 1

    status, _ = service.stop()
    assert status == 0, service.stderr()


def test_backlog_metrics_are_counted_at_scrape_time() -> None:
    counts = {("console", "pending"): 2, ("console", "sending"): 1, ("webhook", "failed"): 4}
    families = {f.name: f for f in metrics.OutboxBacklog(lambda: counts).collect()}
    pending = {s.labels["destination"]: s.value for s in families["monitor_outbox_pending"].samples}
    failed = {s.labels["destination"]: s.value for s in families["monitor_outbox_failed"].samples}
    assert pending == {"console": 3} and failed == {"webhook": 4}

    def database_away() -> dict[tuple[str, str], int]:
        raise RuntimeError("connection refused")

    assert list(metrics.OutboxBacklog(database_away).collect()) == []


def test_delivery_latency_is_measured_from_first_sighting() -> None:
    alert = AlertMessage(1, 1, "story", "t", "https://x", "x", "s", None, NOW, ("ussm",), ())
    delivery = Delivery(1, "slack:#latency-test", 1, False, alert=alert)
    metrics.record_delivery(delivery, "sent", NOW + timedelta(seconds=42))
    labels = {"destination": "slack:#latency-test"}
    sample = metrics.REGISTRY.get_sample_value
    assert sample("monitor_delivery_latency_seconds_sum", labels) == 42
    assert sample("monitor_delivery_latency_seconds_bucket", {**labels, "le": "30.0"}) == 0
    assert sample("monitor_delivery_latency_seconds_bucket", {**labels, "le": "60.0"}) == 1
    assert sample("monitor_deliveries_total", {**labels, "outcome": "sent"}) == 1


def test_the_status_server_answers_health_and_metrics() -> None:
    state = {"healthy": True}

    def health() -> tuple[bool, str]:
        return (True, "ok") if state["healthy"] else (False, "database does not answer")

    with metrics.StatusServer("127.0.0.1", 0, health) as server:
        base = "http://{}:{}".format(*server.address)
        with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
            assert (response.status, response.read()) == (200, b"ok\n")
        state["healthy"] = False
        with pytest.raises(urllib.error.HTTPError) as unhealthy:
            urllib.request.urlopen(base + "/healthz", timeout=5)
        assert unhealthy.value.code == 503
        assert unhealthy.value.read() == b"database does not answer\n"
        with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=")
            assert b"# TYPE monitor_polls_total counter" in response.read()


def test_parse_listen() -> None:
    assert metrics.parse_listen("") is None
    assert metrics.parse_listen("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert metrics.parse_listen("[::1]:9464") == ("::1", 9464)
    assert metrics.parse_listen(":9464") == ("0.0.0.0", 9464)
