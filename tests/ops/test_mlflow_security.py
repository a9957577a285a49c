"""MLflow behind a TLS proxy (issue 20 defect 4): the compose command's --allowed-hosts and
--cors-allowed-origins, from .env, let the proxy's name in and keep other sites out.

A real ``mlflow server`` runs with exactly the flags docker-compose.yaml renders for an .env
that names the proxy (SQLite store instead of PostgreSQL: the flags are what is tested).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.ops.procs import BIN, REPO, Procs, free_port, http, wait_for
from tests.ops.test_compose import _filled, _mlflow_flags, interpolate

pytestmark = pytest.mark.slow

PROXY = "mlflow.example.org"


def _compose_flags() -> dict[str, str]:
    env_example = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            env_example[k.strip()] = v.strip()
    env = {
        **_filled(env_example),
        "MLFLOW_ALLOWED_HOSTS": f"mlflow,mlflow:5000,localhost,localhost:*,127.0.0.1:*,{PROXY}",
        "MLFLOW_CORS_ALLOWED_ORIGINS": f"https://{PROXY}",
    }
    config = interpolate(yaml.safe_load((REPO / "docker-compose.yaml").read_text()), env, [])
    return _mlflow_flags(config["services"]["mlflow"]["command"])


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("mlflow-sec")
    flags = _compose_flags()
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{root / 'mlflow.db'}",
        "MLFLOW_ARTIFACTS_DESTINATION": str(root / "artifacts"),
    }
    procs = Procs(root / "logs", env)
    args = [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--allowed-hosts",
        flags["--allowed-hosts"],
        "--cors-allowed-origins",
        flags["--cors-allowed-origins"],
    ]
    try:
        procs.start("mlflow", str(BIN / "mlflow"), "server", *args)
        uri = f"http://127.0.0.1:{port}"
        wait_for(
            "mlflow server",
            lambda: http("GET", uri + "/health", timeout=3)[0] == 200,
            240,
            1,
            procs,
        )
        yield {"uri": uri}
    finally:
        procs.stop_all()


def _create(server: dict[str, Any], name: str, **headers: str) -> int:
    status, _ = http(
        "POST",
        server["uri"] + "/ajax-api/2.0/mlflow/experiments/create",
        {"name": name},
        headers=headers,
    )
    return status


def test_the_proxy_name_and_origin_may_write(server) -> None:
    # what a browser on https://mlflow.example.org sends through the proxy
    assert _create(server, "from-proxy", Host=PROXY, Origin=f"https://{PROXY}") == 200
    # what the Airflow containers send (no Origin: not a browser)
    assert _create(server, "from-worker", Host="mlflow:5000") == 200


def test_other_sites_and_unknown_hosts_are_refused(server) -> None:
    assert _create(server, "cross-site", Host=PROXY, Origin="https://evil.example.net") == 403
    assert _create(server, "rebinding", Host="attacker.example.net") in (400, 403)
