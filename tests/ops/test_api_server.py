"""The plugin on a real ``airflow api-server`` (SQLite, SimpleAuthManager): auth is Airflow's."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.ops.procs import BIN, REPO, Procs, free_port, http, multipart, wait_for

pytestmark = pytest.mark.slow

PASSWORDS = {"admin": "admin-" + secrets.token_hex(8), "viewer": "viewer-" + secrets.token_hex(8)}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("apiserver")
    home, satseg_home = root / "airflow", root / "satseg"
    home.mkdir()
    pw_file = home / "passwords.json"
    pw_file.write_text(json.dumps(PASSWORDS))
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW_CONFIG": str(REPO / "airflow.cfg"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(pw_file),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "SATSEG_HOME": str(satseg_home),
        }
    )
    airflow = str(BIN / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    subprocess.run([airflow, "dags", "reserialize"], env=env, check=True, capture_output=True)
    procs = Procs(root / "logs", env)
    base = f"http://127.0.0.1:{port}"
    try:
        procs.airflow("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port))
        wait_for(
            "api-server",
            lambda: http("GET", base + "/api/v2/monitor/health", timeout=3)[0] == 200,
            timeout=180,
            procs=procs,
        )
        yield {"base": base, "home": satseg_home, "procs": procs}
    finally:
        procs.stop_all()


def _token(base: str, user: str) -> str:
    status, body = http(
        "POST", base + "/auth/token", {"username": user, "password": PASSWORDS[user]}
    )
    assert status == 201, body
    return str(body["access_token"])


def test_unauthenticated_is_401_everywhere(server) -> None:
    base = server["base"]
    for path in ("/satseg/health", "/satseg/datasets", "/satseg/models", "/satseg/data/versions"):
        status, body = http("GET", base + path)
        assert status == 401, (path, body)
    status, _ = http("POST", base + "/satseg/training/start", {"epochs": 1})
    assert status == 401
    status, _ = http("GET", base + "/satseg/health", token="not-a-jwt")
    assert status == 403  # Airflow's answer to a forged token


def test_authenticated_user_gets_data(server) -> None:
    base, home = server["base"], server["home"]
    (home / "processed" / "city").mkdir(parents=True)
    (home / "processed" / "city" / "manifest.json").write_text('{"counts": {"train": 4}}')
    token = _token(base, "admin")
    status, body = http("GET", base + "/satseg/datasets", token=token)
    assert status == 200
    assert [(d["name"], d["counts"]) for d in body] == [("city", {"train": 4})]
    status, body = http("GET", base + "/satseg/health", token=token)
    assert status == 200, body
    assert body["checks"]["metadata_db"] == {**body["checks"]["metadata_db"], "status": "ok"}
    assert body["checks"]["metadata_db"]["dialect"] == "sqlite"
    # the docs are served under the plugin's prefix, behind the login (issue 15 class 6)
    for page in ("/satseg/openapi.json", "/satseg/docs", "/satseg/redoc"):
        assert http("GET", base + page)[0] == 401, page
    status, spec = http("GET", base + "/satseg/openapi.json", token=token)
    assert status == 200 and "/data/upload" in spec["paths"]
    status, page = http("GET", base + "/satseg/docs", token=token)
    assert status == 200 and "https://" not in page and "http://" not in page
    js = "/satseg/docs/assets/swagger-ui-bundle.js"
    assert js in page and "'/satseg/openapi.json'" in page
    # a browser logged in to the Airflow UI sends its session cookie
    assert http("GET", base + "/satseg/docs", headers={"Cookie": f"_token={token}"})[0] == 200
    assert http("GET", base + js)[0] == 401
    assert http("GET", base + js, token=token)[0] == 200


def test_upload_through_the_server_and_roles(server) -> None:
    base, home = server["base"], server["home"]
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 100
    data, ctype = multipart({"dataset": "farm"}, {"file": ("field_1.png", png)})
    viewer = _token(base, "viewer")
    status, body = http(
        "POST",
        base + "/satseg/data/upload",
        data=data,
        token=viewer,
        headers={"Content-Type": ctype},
    )
    assert status == 403, body  # a viewer may look, not feed the pipeline
    assert http("GET", base + "/satseg/datasets", token=viewer)[0] == 200
    assert not (home / "inbox" / "farm" / "field_1.png").exists()
    admin = _token(base, "admin")
    status, body = http(
        "POST",
        base + "/satseg/data/upload",
        data=data,
        token=admin,
        headers={"Content-Type": ctype},
    )
    assert status == 201, body
    assert (home / "inbox" / "farm" / "field_1.png").read_bytes() == png
    bad, ctype = multipart({}, {"file": ("../../x.png", png)})
    status, body = http(
        "POST", base + "/satseg/data/upload", data=bad, token=admin, headers={"Content-Type": ctype}
    )
    assert status == 400 and body["detail"]["check"] == "path_traversal"


def test_training_start_goes_through_airflow(server) -> None:
    base = server["base"]
    token = _token(base, "admin")
    status, body = http("POST", base + "/satseg/training/start", {"epochs": 1}, token=token)
    assert status == 201, body
    run_id = body["run_id"]
    status, st = http("GET", base + f"/satseg/training/status/{run_id}", token=token)
    assert status == 200, st
    assert st["state"] == "queued" and st["conf"] == {"epochs": 1} and st["run_type"] == "manual"
    # Airflow's own API sees the same run, triggered by the same user
    status, run = http("GET", base + f"/api/v2/dags/satseg_retrain/dagRuns/{run_id}", token=token)
    assert status == 200 and run["conf"] == {"epochs": 1}
    assert run["triggering_user_name"] == "admin"
    # the DAG's typed params validate the conf, like the trigger form
    status, body = http("POST", base + "/satseg/training/start", {"epochs": 0}, token=token)
    assert status == 400 and "epochs" in body["detail"]
    # a viewer may follow runs but not start them
    viewer = _token(base, "viewer")
    assert http("GET", base + f"/satseg/training/status/{run_id}", token=viewer)[0] == 200
    status, _ = http("POST", base + "/satseg/training/start", {"epochs": 1}, token=viewer)
    assert status == 403
