"""Log lines: `event key=value …`, or one JSON object per line with MONITOR_LOG_FORMAT=json."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.lock import acquire_instance_lock
from monitor.logs import ROOT, event, redactor, setup_logging
from tests.conftest import PROJECT_ROOT
from tests.world import write_config


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[io.StringIO, pytest.MonkeyPatch]]:
    """setup_logging into a buffer; the loggers are put back as they were afterwards."""
    root, library = logging.getLogger(ROOT), logging.getLogger()
    saved = (root.handlers[:], root.level, root.propagate, library.handlers[:], library.level)
    stream = io.StringIO()
    yield stream, monkeypatch
    root.handlers[:], root.level, root.propagate = saved[0], saved[1], saved[2]
    library.handlers[:], library.level = saved[3], saved[4]
    redactor.set_secrets(())


def test_json_lines_have_time_level_event_and_the_fields(
    captured: tuple[io.StringIO, pytest.MonkeyPatch],
) -> None:
    stream, monkeypatch = captured
    monkeypatch.setenv("MONITOR_LOG_FORMAT", "json")
    setup_logging(logging.INFO, stream)
    redactor.set_secrets(["xoxb-secret-token"])
    log = logging.getLogger("monitor.test")
    event(log, "poll", source="dawn", status="failed", new=0, error="HTTP 500 xoxb-secret-token")
    logging.getLogger("some.library").warning("a library says %s", "hello")

    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert list(first)[:4] == ["time", "level", "event", "logger"]
    assert first["level"] == "info"
    assert (first["event"], first["source"], first["new"]) == ("poll", "dawn", 0)
    assert first["error"] == "HTTP 500 [redacted]"
    assert first["time"].endswith("+00:00")
    # A library's own line is an object too: its message is the event.
    assert second["level"] == "warning" and second["message"] == "a library says hello"


def test_key_value_lines_by_default(captured: tuple[io.StringIO, pytest.MonkeyPatch]) -> None:
    stream, monkeypatch = captured
    monkeypatch.delenv("MONITOR_LOG_FORMAT", raising=False)
    setup_logging(logging.INFO, stream)
    event(logging.getLogger("monitor.test"), "poll", source="dawn", error="HTTP 500 from dawn")
    line = stream.getvalue().strip()
    assert line.split()[1:4] == ["INFO", "poll", "source=dawn"]
    assert line.endswith('error="HTTP 500 from dawn"')


def test_a_refused_monitor_run_says_why_in_json(tmp_path: Path, monitor_database_url: str) -> None:
    config = write_config(
        tmp_path / "config",
        database_url=monitor_database_url,
        sources=[],
        allow=[],
        keywords="topics:\n  t:\n    keywords: [x]\n",
        listen="127.0.0.1:0",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SMTP_"))}
    env.pop("MONITOR_DATABASE_URL", None)
    env["MONITOR_LOG_FORMAT"] = "json"
    held = acquire_instance_lock(monitor_database_url)  # as another `monitor run` would
    try:
        result = subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(config), "run"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        held.release()
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    record = json.loads(line)
    assert (record["event"], record["level"]) == ("service_refused", "error")
    assert "already running" in record["error"]


def test_a_database_that_cannot_be_opened_is_a_json_line_too(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data directory should be")
    config = write_config(
        tmp_path / "config",
        database_url=f"sqlite:///{blocker / 'monitor.db'}",
        sources=[],
        allow=[],
        keywords="topics:\n  t:\n    keywords: [x]\n",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SMTP_"))}
    env.pop("MONITOR_DATABASE_URL", None)
    for log_format, expect_json in (("json", True), ("", False)):
        env["MONITOR_LOG_FORMAT"] = log_format
        result = subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(config), "run"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        (line,) = result.stderr.splitlines()
        if expect_json:
            record = json.loads(line)
            assert (record["event"], record["level"]) == ("service_refused", "error")
            assert record["error"].startswith(f"cannot create {blocker}/monitor.db.lock")
        else:
            assert line.startswith(f"database error: cannot create {blocker}/monitor.db.lock")
