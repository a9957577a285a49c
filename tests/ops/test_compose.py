"""docker-compose.yaml, the image and the init job, checked without a Docker engine.

The compose file is validated against the Compose Specification's JSON schema (the check
``docker compose config`` does) after interpolating it the way compose does, and read for
literal secrets, defaults on credentials and the shape the issue asks for.
"""

from __future__ import annotations

import configparser
import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yaml"
# vendored copy (Apache-2.0, see tests/ops/data/README.md); ../shared has the same file
SCHEMA = Path(__file__).resolve().parent / "data" / "compose-spec.json"
SECRETS = {
    "POSTGRES_PASSWORD",
    "AIRFLOW_DB_PASSWORD",
    "MLFLOW_DB_PASSWORD",
    "REDIS_PASSWORD",
    "AIRFLOW_FERNET_KEY",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
    "AIRFLOW_ADMIN_PASSWORD",
}
REQUIRED = SECRETS | {"AIRFLOW_ADMIN_USERNAME"}
AIRFLOW_SERVICES = {
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
_VAR = re.compile(
    r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)"
)


class Missing(Exception):
    pass


def interpolate(obj: Any, env: dict[str, str], missing: list[str]) -> Any:
    """Compose's variable substitution: ${V}, ${V:-d}, ${V-d}, ${V:?msg}, ${V?msg}, $$."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3) or ""
        val = env.get(name)
        empty = val is None or (op is not None and op.startswith(":") and val == "")
        if op in (":?", "?") and empty:
            missing.append(name)
            return ""
        if op in (":-", "-") and empty:
            return arg
        return val or ""

    if isinstance(obj, dict):
        return {k: interpolate(v, env, missing) for k, v in obj.items()}
    if isinstance(obj, list):
        return [interpolate(v, env, missing) for v in obj]
    if isinstance(obj, str):
        return _VAR.sub(sub, obj)
    return obj


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    out = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def _filled(env_example: dict[str, str]) -> dict[str, str]:
    return {**env_example, **{k: f"test-{k.lower()}" for k in REQUIRED}}


@pytest.fixture(scope="module")
def config(raw, env_example) -> dict[str, Any]:
    missing: list[str] = []
    out = interpolate(raw, _filled(env_example), missing)
    assert missing == []
    return out


def _schema_validator():
    if not SCHEMA.exists():
        pytest.skip(f"compose schema not available at {SCHEMA}")
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    return jsonschema.Draft7Validator(schema)


def test_compose_file_validates_against_the_compose_schema(raw, config) -> None:
    validator = _schema_validator()
    for doc in (raw, config):  # as written, and as `docker compose config` renders it
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    broken = json.loads(json.dumps(config))
    broken["services"]["airflow-worker"]["helthcheck"] = broken["services"]["airflow-worker"].pop(
        "healthcheck"
    )  # a typo compose would reject
    assert list(validator.iter_errors(broken)), "the validator must catch a bad field"


def test_compose_refuses_to_start_without_each_secret(raw, env_example) -> None:
    missing: list[str] = []
    interpolate(raw, {}, missing)
    assert set(missing) == REQUIRED
    # .env.example lists every one of them, with no value filled in
    for name in REQUIRED - {"AIRFLOW_ADMIN_USERNAME"}:
        assert env_example.get(name) == "", f"{name} must be listed empty in .env.example"


def test_no_literal_secrets_in_the_compose_file(raw) -> None:
    text = COMPOSE.read_text()
    # credentials only ever come from a required variable, never with a default
    for m in re.finditer(r"\$\{([A-Za-z_0-9]+)(:?[-?])?", text):
        name, op = m.group(1), m.group(2)
        if re.search(r"PASSWORD|SECRET|FERNET|TOKEN", name):
            assert op in (":?",), f"${{{name}}} must be written ${{{name}:?...}} (no default)"
    # every URL with user info takes its password from such a variable
    for m in re.finditer(r"://([^/@\s]*):([^/@\s]*)@", text):
        assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", m.group(2)), (
            f"literal password in {m.group(0)}"
        )
    # and no environment entry named like a secret carries a literal value
    for name, svc in raw["services"].items():
        for key, val in (svc.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|FERNET_KEY|JWT|TOKEN|AUTH$", key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", str(val)), f"{name}.{key}={val!r}"
    assert not re.search(
        r"(?i)(password|secret)\s*[:=]\s*['\"]?[A-Za-z0-9]{6,}['\"]?\s*$", text, re.M
    )


def test_stack_has_every_service_with_health_and_limits(config) -> None:
    services = config["services"]
    assert set(services) == AIRFLOW_SERVICES | {"postgres", "redis", "mlflow", "airflow-init"}
    for name, svc in services.items():
        if name != "airflow-init":
            assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        limits = svc.get("deploy", {}).get("resources", {}).get("limits", {})
        assert limits.get("cpus") and limits.get("memory"), f"{name} has no resource limits"
    for name in AIRFLOW_SERVICES:
        svc = services[name]
        assert svc["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert svc["environment"]["AIRFLOW__CORE__AUTH_MANAGER"].endswith("FabAuthManager")
        assert svc["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
        assert "satseg-home:/data/satseg" in svc["volumes"]
    assert services["airflow-init"]["command"] == ["bash", "/opt/satseg/docker/airflow-init.sh"]
    assert "airflow-init" not in services["airflow-init"].get("depends_on", {})


def test_worker_scales(config) -> None:
    worker = config["services"]["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["command"] == "celery worker"
    assert "hostname" not in worker  # each replica gets its own celery@<container id>


def test_named_volumes_and_loopback_ports(config) -> None:
    volumes = set(config["volumes"])
    assert {"satseg-home", "postgres-data", "mlflow-artifacts", "dvc-remote"} <= volumes
    assert "mlflow-artifacts:/data/mlflow-artifacts" in config["services"]["mlflow"]["volumes"]
    for svc in config["services"].values():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{port} is published beyond loopback by default"


def test_dockerfile_builds_from_the_pinned_airflow_with_the_lock() -> None:
    text = (REPO / "docker" / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert froms == ["apache/airflow:3.3.2-python3.11"]
    assert "pip install --no-cache-dir -r /opt/satseg/requirements.lock" in text
    pins = (REPO / "requirements.lock").read_text()
    assert re.search(r"^apache-airflow==3\.3\.2$", pins, re.M)
    # everything the image copies exists and is let through the .dockerignore
    ignore = (REPO / "docker" / "Dockerfile.dockerignore").read_text().split()
    for src in re.findall(r"^COPY\s+(?:--\S+\s+)*(.+)\s+\S+$", text, re.M):
        for path in src.split():
            assert (REPO / path).exists(), path
            assert f"!{path}" in ignore or f"!{path}/" in ignore, f"{path} is ignored"
    assert (REPO / "docker" / "airflow-init.sh").stat().st_mode & stat.S_IXUSR


def test_airflow_cfg_embedded_defaults_and_no_secrets() -> None:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(REPO / "airflow.cfg")
    assert cfg["core"]["executor"] == "LocalExecutor"
    assert "sql_alchemy_conn" not in cfg["database"] if cfg.has_section("database") else True
    assert cfg["core"]["auth_manager"].endswith("SimpleAuthManager")
    for section in cfg.sections():
        for key, value in cfg[section].items():
            if (
                re.search(r"password|secret|fernet|token", key)
                and key != "simple_auth_manager_passwords_file"
            ):
                pytest.fail(f"[{section}] {key} = {value!r}: secrets belong in the environment")
