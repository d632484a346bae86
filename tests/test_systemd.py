"""deploy/systemd/monitor.service, run outside systemd (no systemd runs here).

Its ExecStart, Environment= lines and WorkingDirectory are run as they stand, with the
unit's paths mapped to temporary ones: /etc/news-monitor is a copy of the shipped config/ (as
the README's install steps put it there), /var/lib/news-monitor an empty directory and
/opt/news-monitor/.venv this virtualenv. The only change is the listen port in the copied
settings.yaml (127.0.0.1 still, a free port instead of 9464). Where `systemd-analyze` is
installed, the unit also passes `systemd-analyze verify`.
"""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT
from tests.test_image import free_port, run_as_shipped
from tests.web import LocalWeb
from tests.world import local_sources_only

UNIT = PROJECT_ROOT / "deploy" / "systemd" / "monitor.service"


def unit_service() -> dict[str, list[str]]:
    """The [Service] section, every value of repeated keys (Environment=) kept in order."""
    values: dict[str, list[str]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service":
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def local_paths(tmp_path: Path) -> dict[str, Path]:
    return {
        "/opt/news-monitor/.venv": Path(sys.prefix),
        "/etc/news-monitor": tmp_path / "etc",
        "/var/lib/news-monitor": tmp_path / "var",
    }


def localise(value: str, paths: dict[str, Path]) -> str:
    for unit_path, local in paths.items():
        value = re.sub(rf"(?<![\w.]){re.escape(unit_path)}(?=/|$|\s)", str(local), value)
    return value


def test_the_unit_command_serves_healthz_on_the_shipped_config_and_stops_on_sigterm(
    tmp_path: Path, web: LocalWeb
) -> None:
    service = unit_service()
    paths = local_paths(tmp_path)
    assert service["KillSignal"] == ["SIGTERM"]
    # The install steps of the README: config in /etc/news-monitor, data in /var/lib/….
    shutil.copytree(PROJECT_ROOT / "config", paths["/etc/news-monitor"])
    local_sources_only(paths["/etc/news-monitor"], web, free_port())
    paths["/var/lib/news-monitor"].mkdir()
    port = free_port()
    settings = paths["/etc/news-monitor"] / "settings.yaml"
    text = settings.read_text()
    assert "listen: 127.0.0.1:9464" in text  # the unit serves health on loopback only
    settings.write_text(text.replace("listen: 127.0.0.1:9464", f"listen: 127.0.0.1:{port}"))

    # What systemd gives a service: a plain PATH, HOME of the user, then Environment= lines
    # (secrets.env is optional, `-`, and absent here: no outputs configured).
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(paths["/var/lib/news-monitor"]),
        "LANG": "C.UTF-8",
    }
    for assignment in service["Environment"]:
        for item in shlex.split(assignment):
            key, _, value = item.partition("=")
            env[key] = localise(value, paths)
    assert service["EnvironmentFile"][0].startswith("-")
    command = shlex.split(localise(service["ExecStart"][0], paths))
    assert command[0] == str(Path(sys.prefix) / "bin" / "monitor") and command[1:] == ["run"]
    workdir = Path(localise(service["WorkingDirectory"][0], paths))

    records = run_as_shipped(command, env, workdir, port, tmp_path)
    database = paths["/var/lib/news-monitor"] / "monitor.db"
    assert records[0]["database"] == f"sqlite:///{database}"
    assert database.is_file()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is absent")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    """Every directive known to this systemd. ExecStart must exist to pass, so it points at
    /bin/true here (the command itself is run by the test above)."""
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keep key case
    unit.read(UNIT)
    text = UNIT.read_text().replace(unit["Service"]["ExecStart"], "/bin/true run")
    copy = tmp_path / "news-monitor.service"
    copy.write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip() == "", result.stderr
