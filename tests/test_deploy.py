"""Static checks of the Dockerfile and deploy/ manifests (no container engine runs here).

checkov (run by `make check-deploy` in CI) checks security posture; these tests check that the
artifacts do what the README says: the image's command, user, volumes and health check, and
that compose, Kubernetes and systemd all run `monitor run` with secrets kept out of files.
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.conftest import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (PROJECT_ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            pairs.append((instruction.upper(), rest.strip()))
    return pairs


def final_stage() -> list[tuple[str, str]]:
    pairs = dockerfile_instructions()
    last_from = max(i for i, (name, _) in enumerate(pairs) if name == "FROM")
    return pairs[last_from:]


def image_command() -> list[str]:
    """ENTRYPOINT + CMD of the final stage, both in exec (JSON) form."""
    stage = dict(final_stage())
    return list(json.loads(stage["ENTRYPOINT"])) + list(json.loads(stage["CMD"]))


def image_environment() -> dict[str, str]:
    env: dict[str, str] = {}
    for name, args in final_stage():
        if name == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def test_the_image_is_multi_stage_slim_and_locked() -> None:
    pairs = dockerfile_instructions()
    bases = [args for name, args in pairs if name == "FROM"]
    assert len(bases) == 2
    assert all(base.startswith("python:3.11-slim") for base in bases)
    installs = [args for name, args in pairs if name == "RUN" and "pip install" in args]
    assert any("--require-hashes -r /tmp/requirements.lock" in args for args in installs)
    lock = (PROJECT_ROOT / "requirements.lock").read_text()
    assert "--hash=sha256:" in lock


def test_the_image_runs_monitor_run_as_a_non_root_user_in_exec_form() -> None:
    stage = final_stage()
    users = [args for name, args in stage if name == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert image_command() == ["monitor", "run"]
    env = image_environment()
    assert env["MONITOR_CONFIG_DIR"] == "/config"
    assert env["MONITOR_DATABASE_URL"].startswith("sqlite:////data/")
    assert '"/data"' in dict(stage)["VOLUME"]
    health = dict(stage)["HEALTHCHECK"]
    assert "/healthz" in health and "CMD" in health
    assert not any("TOKEN" in k or "PASSWORD" in k for k in env)


def test_compose_runs_the_monitor_with_postgres_and_secrets_from_env_file() -> None:
    compose = load_yaml(DEPLOY / "docker-compose.yml")
    monitor, postgres = compose["services"]["monitor"], compose["services"]["postgres"]
    assert monitor["env_file"] == ".env"
    assert "monitor-data:/data" in monitor["volumes"]
    assert any(v.endswith(":/config:ro") for v in monitor["volumes"])
    assert monitor["environment"]["MONITOR_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert monitor["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "postgres-data:/var/lib/postgresql/data" in postgres["volumes"]
    assert set(compose["volumes"]) == {"monitor-data", "postgres-data"}
    # Secrets only as ${VARIABLES} from .env, never written into the file.
    text = (DEPLOY / "docker-compose.yml").read_text()
    assert not re.search(r"(xoxb-|hooks\.slack\.com|PASSWORD:\s+[^$\s])", text)
    example = (DEPLOY / ".env.example").read_text()
    for name in ("SLACK_BOT_TOKEN", "SMTP_PASSWORD", "POSTGRES_PASSWORD"):
        assert re.search(rf"^#?\s*{name}=", example, re.MULTILINE)


@pytest.mark.parametrize("name", ["deployment.yaml", "service.yaml", "networkpolicy.yaml"])
def test_kubernetes_manifests_are_listed_in_the_kustomization(name: str) -> None:
    assert name in load_yaml(DEPLOY / "kubernetes" / "kustomization.yaml")["resources"]


def test_the_kubernetes_deployment_is_one_probed_replica_with_config_and_secret_files() -> None:
    deployment = load_yaml(DEPLOY / "kubernetes" / "deployment.yaml")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["requests"]["cpu"]
    assert container["resources"]["requests"]["memory"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "monitor-config"
    assert volumes["secrets"]["secret"]["secretName"] == "monitor-secrets"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["SLACK_BOT_TOKEN_FILE"].startswith("/run/secrets/monitor/")
    assert env["MONITOR_DATABASE_URL_FILE"].startswith("/run/secrets/monitor/")
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_the_systemd_unit_runs_monitor_run_as_a_service_user() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keep key case
    unit.read(DEPLOY / "systemd" / "monitor.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("/monitor run")
    assert service["User"] == "monitor"
    assert service["KillSignal"] == "SIGTERM"
    assert service["EnvironmentFile"].lstrip("-").startswith("/etc/news-monitor/")
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def kubectl(*args: str) -> list[Any]:
    """The YAML documents a client-side kubectl command prints (no cluster is contacted)."""
    result = subprocess.run(
        ["kubectl", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in YAML(typ="safe").load_all(result.stdout) if doc]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is absent")
def test_kubectl_renders_the_kustomization_and_the_readme_configmap_and_secret() -> None:
    """`kubectl apply -k deploy/kubernetes` gets these resources; the README's commands make
    the ConfigMap and Secret the Deployment mounts."""
    rendered = kubectl("kustomize", str(DEPLOY / "kubernetes"))
    assert sorted(d["kind"] for d in rendered) == [
        "Deployment",
        "Namespace",
        "NetworkPolicy",
        "Service",
    ]
    assert {d["metadata"].get("namespace", d["metadata"]["name"]) for d in rendered} == {
        "news-monitor"
    }
    (configmap,) = kubectl(
        "-n", "news-monitor", "create", "configmap", "monitor-config",
        f"--from-file={PROJECT_ROOT / 'config'}", "--dry-run=client", "-o", "yaml",
    )  # fmt: skip
    assert set(configmap["data"]) == {"settings.yaml", "sources.yaml", "keywords.yaml"}
    (secret,) = kubectl(
        "-n", "news-monitor", "create", "secret", "generic", "monitor-secrets",
        "--from-literal=MONITOR_DATABASE_URL=postgresql+psycopg://monitor:pw@db:5432/monitor",
        "--from-literal=SLACK_BOT_TOKEN=xoxb-example",
        "--dry-run=client", "-o", "yaml",
    )  # fmt: skip
    deployment = next(d for d in rendered if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == configmap["metadata"]["name"]
    assert volumes["secrets"]["secret"]["secretName"] == secret["metadata"]["name"]
    # Every key becomes a file; no `items:`, so a key left out (SMTP_*) breaks nothing.
    assert "items" not in volumes["secrets"]["secret"]
    (container,) = pod["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "secrets")["mountPath"]
    files = {e["value"] for e in container["env"] if e["name"].endswith("_FILE")}
    assert {f"{mount}/{key}" for key in secret["data"]} <= files
