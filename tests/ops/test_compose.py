"""docker-compose.yaml, the image and the init job, checked without a Docker engine.

The compose file is validated against the Compose Specification's JSON schema (the check
``docker compose config`` does) after interpolating it the way compose does, and read for
literal secrets, defaults on credentials and the shape the issue asks for.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
ONE_SHOT = {"postgres-init", "airflow-init"}
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
    return obj  # numbers, booleans and None (a pass-through environment key) stay as they are


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
    assert set(services) == AIRFLOW_SERVICES | ONE_SHOT | {"postgres", "redis", "mlflow"}
    for name, svc in services.items():
        if name not in ONE_SHOT:
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
    assert froms == ["apache/airflow:slim-3.3.2-python3.11"]  # no unrelated providers
    pins = (REPO / "requirements.lock").read_text()
    assert re.search(r"^apache-airflow==3\.3\.2$", pins, re.M)
    # the runtime lock only, and the build fails when the result is not exactly that lock
    run = " ".join(re.findall(r"^RUN\s+((?:.*\\\n)*.*)$", text, re.M)).replace("\\\n", " ")
    assert re.search(
        r"pip install --no-cache-dir -r /opt/satseg/requirements\.lock\s+&&\s+pip check\s+"
        r"&&\s+python /opt/satseg/docker/check_env\.py /opt/satseg/requirements\.lock",
        run,
    ), run
    assert "requirements-dev" not in text
    for tool in ("pytest", "ruff", "mypy", "playwright"):
        assert not re.search(rf"^{tool}==", pins, re.M), f"{tool} is in the runtime lock"
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


# --- issue 20: a first `up` that works, on a host of the documented size -----------------

# (host CPUs, host memory, .env lines): the minimum the defaults fit, and the sizes README
# "Production: docker compose" and .env.example give for bigger hosts
HOST_SIZES = [
    (2, "8g", {}),
    (4, "16g", {"SATSEG_WORKER_CPUS": "4", "SATSEG_WORKER_MEMORY": "10g"}),
    (
        8,
        "32g",
        {"SATSEG_WORKER_CPUS": "8", "SATSEG_WORKER_MEMORY": "24g", "SATSEG_POSTGRES_CPUS": "2"},
    ),
]
_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}


def _bytes(value: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([bkmg]?)", str(value).lower())
    assert m, value
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def _render(raw: dict[str, Any], env_example: dict[str, str], **env: str) -> dict[str, Any]:
    missing: list[str] = []
    out = interpolate(raw, {**_filled(env_example), **env}, missing)
    assert missing == []
    return out


def over_host(config: dict[str, Any], cpus: float, memory: str) -> list[str]:
    """What Docker would refuse (a CPU limit above the host's) or the host could not hold
    (the long-running services' memory limits together above its memory)."""
    problems = []
    total = 0
    for name, svc in config["services"].items():
        limits = svc.get("deploy", {}).get("resources", {}).get("limits", {})
        if float(limits["cpus"]) > cpus:
            problems.append(f"{name}: cpus {limits['cpus']} > host {cpus}")
        if name not in ONE_SHOT:
            total += _bytes(limits["memory"])
    if total > _bytes(memory):
        problems.append(f"memory limits {total / 2**30:.1f} GiB > host {memory}")
    return problems


@pytest.mark.parametrize(("cpus", "memory", "env"), HOST_SIZES, ids=lambda v: str(v))
def test_limits_fit_the_host_size(raw, env_example, cpus, memory, env) -> None:
    config = _render(raw, env_example, **env)
    assert over_host(config, cpus, memory) == []
    if env:  # the host-size knobs reach the limits
        assert config["services"]["airflow-worker"]["deploy"]["resources"]["limits"] == {
            "cpus": env["SATSEG_WORKER_CPUS"],
            "memory": env["SATSEG_WORKER_MEMORY"],
        }
    readme = (REPO / "README.md").read_text()
    example = (REPO / ".env.example").read_text()
    sized = f"{cpus} CPUs / {int(_bytes(memory) / 2**30)} GiB"
    assert sized in readme, f"README does not name the host size {sized}"
    assert all(f"{k}={v}" in example for k, v in env.items()), env


def test_the_host_size_check_catches_a_limit_too_big(raw, env_example) -> None:
    config = _render(raw, env_example, SATSEG_WORKER_CPUS="4")
    assert over_host(config, 2, "8g") == ["airflow-worker: cpus 4 > host 2"]
    config = _render(raw, env_example, SATSEG_WORKER_MEMORY="6g")
    assert over_host(config, 2, "8g") == ["memory limits 10.9 GiB > host 8g"]


def _container_env(svc: dict[str, Any], dotenv: dict[str, str]) -> dict[str, str]:
    """A service's environment as the container gets it: a key without a value is taken from
    .env / the shell when defined there, else left out (compose's rule)."""
    out = {}
    for key, val in svc["environment"].items():
        if val is None:
            if key in dotenv:
                out[key] = dotenv[key]
        else:
            out[key] = str(val)
    return out


def _sample(name: str, annotation: Any) -> tuple[str, Any]:
    text = str(annotation)
    if "bool" in text:
        return "true", True
    if "int" in text:
        return "7", 7
    if "float" in text:
        return "0.25", 0.25
    if "Path" in text:
        return f"/srv/{name}", Path(f"/srv/{name}")
    return f"value-of-{name}", f"value-of-{name}"


FIXED_BY_THE_STACK = {"home": "/data/satseg", "params_file": "/etc/satseg/params.yaml"}


def test_every_setting_reaches_every_airflow_container(
    raw, env_example, monkeypatch, tmp_path
) -> None:
    from satseg.config import Settings

    dotenv = {**_filled(env_example)}
    expected = {}
    for name, info in Settings.model_fields.items():
        if name in FIXED_BY_THE_STACK:
            continue
        text, value = _sample(name, info.annotation)
        key = "AIRFLOW_BASE_URL" if name == "airflow_ui_url" else f"SATSEG_{name.upper()}"
        dotenv[key] = text
        expected[name] = value
    config = interpolate(raw, dotenv, [])
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    for svc_name in AIRFLOW_SERVICES | {"airflow-init"}:
        env = _container_env(config["services"][svc_name], dotenv)
        for field in Settings.model_fields:
            assert f"SATSEG_{field.upper()}" in env, f"{svc_name} drops SATSEG_{field.upper()}"
        for k in [k for k in os.environ if k.startswith("SATSEG_")]:
            monkeypatch.delenv(k)
        for k, v in env.items():
            if k.startswith("SATSEG_"):
                monkeypatch.setenv(k, v)
        s = Settings()
        for name, value in expected.items():
            assert getattr(s, name) == value, (svc_name, name)
        assert str(s.home) == FIXED_BY_THE_STACK["home"]
        assert str(s.params_file) == FIXED_BY_THE_STACK["params_file"]


def test_unset_settings_keep_satseg_defaults(config, env_example, monkeypatch, tmp_path) -> None:
    """A pass-through key that .env does not set is left out: no empty strings."""
    from satseg.config import Settings

    env = _container_env(config["services"]["airflow-worker"], _filled(env_example))
    monkeypatch.chdir(tmp_path)
    for k in [k for k in os.environ if k.startswith("SATSEG_")]:
        monkeypatch.delenv(k)
    for k, v in env.items():
        if k.startswith("SATSEG_"):
            monkeypatch.setenv(k, v)
    s = Settings()
    defaults = Settings.model_construct()
    for name in ("encoder_weights", "alert_email_to", "alert_email_from", "retrain_cron"):
        assert getattr(s, name) == getattr(defaults, name), name
    assert s.mlflow_uri == "http://mlflow:5000" and s.dvc_remote == "/data/dvc-remote"


def test_params_file_is_mounted_from_the_host(raw, env_example) -> None:
    config = _render(raw, env_example, SATSEG_PARAMS_HOST_FILE="/etc/site/params.yaml")
    for name in AIRFLOW_SERVICES | {"airflow-init"}:
        svc = config["services"][name]
        mounts = [v for v in svc["volumes"] if isinstance(v, dict)]
        assert {
            "type": "bind",
            "source": "/etc/site/params.yaml",
            "target": svc["environment"]["SATSEG_PARAMS_FILE"],
            "read_only": True,
            "bind": {"selinux": "z"},
        } in mounts, name
    default = _render(raw, env_example)["services"]["airflow-worker"]["volumes"]
    assert any(isinstance(v, dict) and v["source"] == "./include/params.yaml" for v in default)
    assert (REPO / "include" / "params.yaml").exists()


def _bind_mounts(svc: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, SELinux label or '') of each bind mount of a service."""
    out = []
    for v in svc.get("volumes", []):
        if isinstance(v, dict):
            if v.get("type") == "bind":
                out.append((v["source"], v.get("bind", {}).get("selinux", "")))
        elif v.split(":")[0].startswith((".", "/", "~")):
            opts = v.split(":")[2].split(",") if v.count(":") >= 2 else []
            out.append((v.split(":")[0], next((o for o in opts if o in ("z", "Z")), "")))
    return out


def test_every_bind_mount_is_selinux_labelled(config) -> None:
    seen = 0
    for name, svc in config["services"].items():
        for source, label in _bind_mounts(svc):
            seen += 1
            assert label in ("z", "Z"), f"{name}: {source} has no SELinux label"
    assert seen >= 2
    assert _bind_mounts({"volumes": ["./docker/postgres-init:/docker-entrypoint-initdb.d:ro"]}) == [
        ("./docker/postgres-init", "")
    ]  # the check sees what the issue found


def test_databases_are_set_up_on_every_start_not_only_on_an_empty_volume(config) -> None:
    services = config["services"]
    pg = services["postgres"]
    assert not any("docker-entrypoint-initdb.d" in str(v) for v in pg["volumes"])
    job = services["postgres-init"]
    assert job["image"] == pg["image"] and job["restart"] == "no"
    assert job["command"] == ["bash", "/satseg-init/10-satseg-databases.sh"]
    assert job["environment"]["PGHOST"] == "postgres"
    assert job["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("airflow-init", "mlflow"):
        assert services[name]["depends_on"]["postgres-init"] == {
            "condition": "service_completed_successfully"
        }, name
    script = (REPO / "docker" / "postgres-init" / "10-satseg-databases.sh").read_text()
    assert "\\gexec" in script and "WHERE NOT EXISTS" in script  # idempotent
    assert script.count("ALTER ROLE") == 2  # passwords follow .env


def test_workers_wait_for_the_execution_api_and_mlflow(config) -> None:
    services = config["services"]
    worker = services["airflow-worker"]["depends_on"]
    assert worker["airflow-apiserver"] == {"condition": "service_healthy"}
    assert worker["mlflow"] == {"condition": "service_healthy"}
    assert worker["airflow-init"] == {"condition": "service_completed_successfully"}
    assert services["airflow-triggerer"]["depends_on"]["airflow-apiserver"] == {
        "condition": "service_healthy"
    }
    api_url = services["airflow-worker"]["environment"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    assert api_url.startswith("http://airflow-apiserver:8080/")
    assert services["airflow-apiserver"]["healthcheck"]["test"]


def test_redis_drops_root_through_its_entrypoint(config) -> None:
    redis = config["services"]["redis"]
    assert "entrypoint" not in redis and "user" not in redis
    command = redis["command"]
    script = command[-1] if command[:2] == ["sh", "-c"] else " ".join(command)
    # the image's docker-entrypoint.sh switches to the redis user for `redis-server ...`;
    # `sh -c 'exec redis-server'` alone would bypass it and run as root
    assert re.match(r"exec docker-entrypoint\.sh redis-server\b", script) or command[0] == (
        "redis-server"
    ), command
    assert "--requirepass" in script


def _mlflow_flags(command: list[str]) -> dict[str, str]:
    return {
        command[i]: command[i + 1] for i in range(0, len(command) - 1) if command[i][:2] == "--"
    }


def test_mlflow_allowed_hosts_and_cors_origins_come_from_env(raw, env_example) -> None:
    config = _render(
        raw,
        env_example,
        MLFLOW_ALLOWED_HOSTS="mlflow,mlflow:5000,mlflow.example.org",
        MLFLOW_CORS_ALLOWED_ORIGINS="https://mlflow.example.org",
    )
    flags = _mlflow_flags(config["services"]["mlflow"]["command"])
    assert flags["--allowed-hosts"] == "mlflow,mlflow:5000,mlflow.example.org"
    assert flags["--cors-allowed-origins"] == "https://mlflow.example.org"
    default = _mlflow_flags(_render(raw, env_example)["services"]["mlflow"]["command"])
    assert "mlflow:5000" in default["--allowed-hosts"].split(",")  # what the workers send
    assert default["--cors-allowed-origins"]


# --- several hosts ---------------------------------------------------------------------

MULTIHOST = REPO / "docker" / "compose.multihost.yaml"


def merge(base: Any, over: Any) -> Any:
    """Compose's merge of an override file: mappings merged, ports/extra_hosts appended."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base[k], v) if k in base and base[k] is not None else v
        return out
    if isinstance(base, list) and isinstance(over, list):
        return base + [v for v in over if v not in base]
    return over


def test_multihost_override_validates_and_shares_the_state(raw, env_example) -> None:
    over = yaml.safe_load(MULTIHOST.read_text())
    env = {
        **_filled(env_example),
        "SATSEG_IMAGE": "registry.example.org/satseg:0.1.0",
        "SATSEG_CENTRAL_IP": "10.0.0.10",
        "SATSEG_NFS_SERVER": "10.0.0.5",
    }
    missing: list[str] = []
    merged = interpolate(merge(raw, over), env, missing)
    assert missing == []
    validator = _schema_validator()
    errors = sorted(validator.iter_errors(merged), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    for vol in ("satseg-home", "dvc-remote", "mlflow-artifacts", "airflow-logs"):
        opts = merged["volumes"][vol]["driver_opts"]
        assert opts["type"] == "nfs" and "addr=10.0.0.5" in opts["o"] and "nfsvers=4" in opts["o"]
    assert merged["volumes"]["postgres-data"] is None  # the database stays on a local disk
    for name in AIRFLOW_SERVICES | {"airflow-init", "mlflow"}:
        assert merged["services"][name]["image"] == "registry.example.org/satseg:0.1.0", name
    # every host a worker's URLs name resolves to the central host, which publishes it
    worker = merged["services"]["airflow-worker"]
    browser_links = {"AIRFLOW__API__BASE_URL", "SATSEG_AIRFLOW_UI_URL"}  # not dialled
    hosts = {
        urlsplit(v).hostname
        for k, v in worker["environment"].items()
        if k not in browser_links and isinstance(v, str) and "://" in v and urlsplit(v).hostname
    }
    assert hosts == {"postgres", "redis", "airflow-apiserver", "mlflow"}
    assert {h: worker["extra_hosts"][h] for h in hosts} == dict.fromkeys(hosts, "10.0.0.10")
    published = {
        "postgres": "5432",
        "redis": "6379",
        "airflow-apiserver": "8080",
        "mlflow": "5000",
    }
    for svc, port in published.items():
        assert f"10.0.0.10:{port}:{port}" in merged["services"][svc]["ports"], svc
    # and without the multi-host variables compose refuses to start
    missing = []
    interpolate(merge(raw, over), _filled(env_example), missing)
    assert {"SATSEG_IMAGE", "SATSEG_CENTRAL_IP", "SATSEG_NFS_SERVER"} <= set(missing)


# --- .env generator ----------------------------------------------------------------------


def test_new_env_fills_every_required_secret(env_example, tmp_path) -> None:
    import subprocess
    import sys

    from cryptography.fernet import Fernet

    r = subprocess.run(
        [sys.executable, str(REPO / "docker" / "new_env.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    env = {}
    for line in r.stdout.splitlines():
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            env[k] = v
    assert set(env) == set(env_example)
    for name in REQUIRED:
        assert env[name], name
        assert re.fullmatch(r"[A-Za-z0-9_=-]+", env[name]), f"{name} is not URL-safe"
    Fernet(env["AIRFLOW_FERNET_KEY"].encode())  # a valid key
    assert len({env[n] for n in SECRETS}) == len(SECRETS)  # all different
    missing: list[str] = []
    interpolate(yaml.safe_load(COMPOSE.read_text()), env, missing)
    assert missing == []
