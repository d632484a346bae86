"""Process control for `monitor run` in tests: start it on a config, wait until it answers,
read its output and metrics, signal it, kill it, start it again.

Every process is a real `python -m monitor run` in a session of its own (so its extraction
workers can be cleaned up with it); its stdout and stderr go to files, read while it runs.
The health/metrics server listens on 127.0.0.1:0 and the harness reads the bound port from
the line `monitor run` prints at start. Nothing here waits a fixed time: every wait is a
deadline loop on something observable.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from prometheus_client.parser import text_string_to_metric_families

T = TypeVar("T")

# Secrets and overrides of the developer's shell must not leak into a service under test.
SCRUBBED_ENV = (
    "SLACK_BOT_TOKEN",
    "SLACK_WEBHOOK_URL",
    "SMTP_USERNAME",
    "SMTP_PASSWORD",
    "MONITOR_DATABASE_URL",
    "MONITOR_CONFIG_DIR",
    "MONITOR_LOG_FORMAT",
)
ANNOUNCE = re.compile(r"health at (http://127\.0\.0\.1:\d+)/healthz")


def wait_for(
    condition: Callable[[], T | bool | None],
    *,
    timeout: float,
    message: str,
    interval: float = 0.05,
) -> T:
    """Poll `condition` until it returns something truthy (returned), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def service_env(tick: float | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    if tick is not None:
        env["MONITOR_TICK_SECONDS"] = str(tick)
    env.update(extra or {})
    return env


@dataclass
class RunningService:
    """One `monitor run` process."""

    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.process.poll() is None

    # --- health and metrics ------------------------------------------------------------------

    def base_url(self) -> str | None:
        found = ANNOUNCE.search(self.stderr())
        return found.group(1) if found else None

    def get(self, path: str) -> tuple[int, str]:
        base = self.base_url()
        assert base is not None, "the service has not announced its address (yet)"
        try:
            with urllib.request.urlopen(base + path, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def healthz(self) -> tuple[int, str]:
        return self.get("/healthz")

    def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Every sample of /metrics: (name, labels) -> value."""
        status, text = self.get("/metrics")
        assert status == 200, text
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def metric(self, name: str, **labels: str) -> float:
        """One sample's value (0 when it is not there yet)."""
        return self.metrics().get((name, frozenset(labels.items())), 0.0)

    def wait_healthy(self, timeout: float = 30) -> None:
        def healthy() -> bool:
            if not self.running():
                raise AssertionError(f"monitor run exited early:\n{self.stderr()}")
            return self.base_url() is not None and self.healthz()[0] == 200

        wait_for(healthy, timeout=timeout, message="/healthz to answer 200")

    def wait_ticks(self, count: int, timeout: float = 30) -> None:
        """Wait until the scheduler has ticked `count` more times."""
        target = self.metric("monitor_ticks_total") + count
        wait_for(
            lambda: self.metric("monitor_ticks_total") >= target,
            timeout=timeout,
            message=f"{count} more ticks",
        )

    # --- stopping ------------------------------------------------------------------------------

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30) -> tuple[int, float]:
        """Send `sig`; returns (exit status, seconds until the process was gone)."""
        sent = time.monotonic()
        self.process.send_signal(sig)
        status = self.process.wait(timeout=timeout)
        return status, time.monotonic() - sent

    def kill(self) -> None:
        """SIGKILL the service process alone, as a crash would: no cleanup runs."""
        self.process.kill()
        self.process.wait(timeout=30)

    def cleanup(self) -> None:
        """Kill whatever is left of this process's session (itself, extraction workers)."""
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


class Launcher:
    """Starts `monitor run` processes for one test and cleans all of them up afterwards."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[RunningService] = []

    def start(
        self,
        config: Path,
        *,
        tick: float | None = 0.2,
        env: dict[str, str] | None = None,
        wait_healthy: bool = True,
    ) -> RunningService:
        """`monitor --config CONFIG run`, with the tick shortened to `tick` seconds."""
        number = len(self.started) + 1
        stdout_path = self.workdir / f"run-{number}.stdout"
        stderr_path = self.workdir / f"run-{number}.stderr"
        with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "monitor", "--config", str(config), "run"],
                cwd=self.workdir,
                env=service_env(tick, env),
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        service = RunningService(process, stdout_path, stderr_path)
        self.started.append(service)
        if wait_healthy:
            service.wait_healthy()
        return service

    def run_once(
        self, config: Path, *args: str, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """A `monitor` command that exits by itself (`poll`, or a `run` that is refused)."""
        return subprocess.run(
            [sys.executable, "-m", "monitor", "--config", str(config), *args],
            cwd=self.workdir,
            env=service_env(0.2),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def cleanup(self) -> None:
        for service in self.started:
            service.cleanup()


def launcher_for(workdir: Path) -> Iterator[Launcher]:
    """For a fixture: `yield from launcher_for(tmp_path)`."""
    launcher = Launcher(workdir)
    try:
        yield launcher
    finally:
        launcher.cleanup()
