"""The image's own command, run outside a container (no container engine runs here).

ENTRYPOINT + CMD, ENV and WORKDIR are read from the Dockerfile's final stage and run as they
stand, with the image's paths mapped to temporary ones: /config is a copy of the shipped
config/ (as `COPY config/ /config/` puts it there), /data an empty directory (the volume),
/opt/monitor this virtualenv. The one deliberate change is the listen address: the image
listens on every interface of its container; here it is 127.0.0.1 on a free port.

The shipped config's settings and keywords are used as they are; its sources are replaced by
two on 127.0.0.1 (tests never reach the real news sites): one feed that answers, and one that
fails, as real sources do offline. The service must stay healthy all the same: failing sources
are the sources' problem, not the service's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import PROJECT_ROOT
from tests.service_harness import wait_for
from tests.test_deploy import final_stage, image_command, image_environment
from tests.web import LocalWeb
from tests.world import local_sources_only

LOG_KEYS = ("time", "level", "event")
LEVELS = {"debug", "info", "warning", "error", "critical"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def healthcheck_command() -> list[str]:
    """The HEALTHCHECK's command, exec form: `HEALTHCHECK [OPTIONS] CMD ["…", …]`."""
    health = dict(final_stage())["HEALTHCHECK"]
    _, _, command = health.partition("CMD ")
    return list(json.loads(command))


class ImagePaths:
    """The image's directories and where they are in this test."""

    def __init__(self, tmp_path: Path) -> None:
        self.mapping = {
            "/opt/monitor": Path(sys.prefix),  # the image's virtualenv: this one
            "/config": tmp_path / "config",
            "/data": tmp_path / "data",
        }

    def local(self, value: str) -> str:
        """`value` with every image path (a whole path segment) replaced by the local one."""
        for image, local in self.mapping.items():
            value = re.sub(rf"(?<![\w.]){re.escape(image)}(?=/|:|$)", str(local), value)
        return value


@pytest.fixture
def image_env(tmp_path: Path, web: LocalWeb) -> Iterator[tuple[dict[str, str], Path, int]]:
    """(environment, working directory, port) for the image's command, as the image sets them."""
    stage = final_stage()
    assert ("COPY", "config/ /config/") in stage  # the shipped config is the image's default
    paths = ImagePaths(tmp_path)
    shutil.copytree(PROJECT_ROOT / "config", paths.mapping["/config"])
    paths.mapping["/data"].mkdir()
    local_sources_only(paths.mapping["/config"], web, free_port())

    env = {
        # What python:3.11-slim sets, and a HOME; nothing of the developer's shell (no tokens).
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C.UTF-8",
        "HOME": str(tmp_path),
    }
    for key, value in image_environment().items():
        env[key] = paths.local(value.replace("$PATH", env["PATH"]))
    port = free_port()
    env["MONITOR_HTTP_LISTEN"] = f"127.0.0.1:{port}"
    workdir = Path(paths.local(dict(stage)["WORKDIR"]))
    yield env, workdir, port


def test_the_image_listens_where_its_health_check_and_port_say() -> None:
    stage = final_stage()
    listen = image_environment()["MONITOR_HTTP_LISTEN"]
    host, _, port = listen.rpartition(":")
    assert host == "0.0.0.0"  # the container's every interface; -p publishes it
    assert dict(stage)["EXPOSE"] == port
    assert f"http://127.0.0.1:{port}/healthz" in " ".join(healthcheck_command())


def run_as_shipped(
    command: list[str],
    env: dict[str, str],
    cwd: Path,
    port: int,
    tmp_path: Path,
    while_running: Callable[[], None] = lambda: None,
) -> list[dict[str, Any]]:
    """Run `command` (a `monitor run`) until /healthz answers 200 and the first polls are
    done, call `while_running`, stop it with SIGTERM (exit 0), and return its log records:
    every line on stderr must be one JSON object with time, level and event."""
    base = f"http://127.0.0.1:{port}"

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(base + path, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()
        except OSError:
            return 0, ""

    def samples(name: str) -> list[float]:
        status, text = get("/metrics")
        assert status == 200, text
        return [
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name
        ]

    stdout_path, stderr_path = tmp_path / "stdout", tmp_path / "stderr"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=stdout, stderr=stderr, start_new_session=True
        )
    try:

        def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"monitor run exited:\n{stderr_path.read_text()}")
            return get("/healthz")[0] == 200

        wait_for(healthy, timeout=60, message="/healthz to answer 200")
        # Every enabled source is polled at once; one of them fails. Healthy still.
        wait_for(
            lambda: sum(samples("monitor_polls_total")) >= 1,
            timeout=60,
            message="the first polls to finish",
        )
        status, body = get("/healthz")
        assert status == 200 and body.startswith("ok"), body
        while_running()

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0, stderr_path.read_text()
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # extraction workers, if any were left
        process.wait(timeout=10)

    records = []
    for line in stderr_path.read_text().splitlines():
        record = json.loads(line)  # every line on stderr is one JSON object
        assert isinstance(record, dict), line
        assert all(key in record for key in LOG_KEYS), line
        assert record["level"] in LEVELS, line
        datetime.fromisoformat(record["time"])
        records.append(record)
    events = [r["event"] for r in records]
    assert events[0] == "service_start" and events[-1] == "service_stop"
    assert records[0]["listen"] == f"127.0.0.1:{port}"
    assert records[0]["outputs"] == "console"  # no secrets in the environment
    assert records[-1]["reason"] == "SIGTERM"
    assert "poll" in events
    return records


def test_the_image_command_serves_healthz_on_the_shipped_config_and_stops_on_sigterm(
    image_env: tuple[dict[str, str], Path, int], tmp_path: Path
) -> None:
    env, workdir, port = image_env
    command = image_command()
    # `monitor` is found on the image's PATH, in its virtualenv (here: this one).
    found = shutil.which(command[0], path=env["PATH"])
    assert found is not None and Path(found).parent == Path(sys.prefix) / "bin", found

    def health_check() -> None:
        # The image's own HEALTHCHECK command says it is healthy too (on this test's port).
        check = [part.replace(":9464/", f":{port}/") for part in healthcheck_command()]
        probe = subprocess.run(check, env=env, capture_output=True, timeout=30, check=False)
        assert probe.returncode == 0, probe.stderr

    # Exactly ENTRYPOINT + CMD, found on the image's PATH.
    records = run_as_shipped(command, env, workdir, port, tmp_path, health_check)
    assert records[0]["database"] == f"sqlite:///{workdir / 'monitor.db'}"
    assert (workdir / "monitor.db").is_file()
