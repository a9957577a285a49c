"""Approve a pending promotion from the Airflow UI, in a real browser.

``satseg_retrain`` runs with ``promotion: approve`` under ``airflow dags test`` (a separate
process, as a worker would run it) and parks its ``approve`` task in ``awaiting_input``. A
person logged in to the Airflow UI (Playwright driving Debian's chromium) opens the task's
"Required Actions", sees the challenger's metrics and clicks "Approve"; the run then goes on
and promotes the challenger to champion.

Both processes share one real PostgreSQL metadata database (SQLite cannot serve a parked
``dags test`` and the api-server's writes at once without lock waits).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from satseg.synthetic import SceneStyle
from satseg.training.sample import write_sample_dataset
from tests.api.test_pages_browser import CHROMIUM, PASSWORDS, Visitor
from tests.ops.procs import BIN, REPO, Procs, free_port, http, wait_for
from tests.ops.services import fresh_databases, require_services

pytestmark = pytest.mark.slow  # api-server + one tiny retrain under `airflow dags test`: ~2 min

DAG_ID = "satseg_retrain"
CONF = {
    "epochs": 1,
    "batch_size": 4,
    "sweep": None,
    "promotion": "approve",
    "approval_timeout_h": 24,
    "on_timeout": "reject",
}


@pytest.fixture(scope="module")
def parked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An api-server and a retrain run waiting for approval, on one PostgreSQL database."""
    from satseg.config import Settings

    if not CHROMIUM.is_file():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install -y chromium; .ci/run does)")
    require_services()
    root = tmp_path_factory.mktemp("approve-ui")
    settings = Settings(home=root / "satseg")
    settings.ensure_dirs()
    write_sample_dataset(
        settings.processed / "tiny", dataset="tiny", tag="tiny-v1", n_train=8, n_val=4,
        style=SceneStyle(building_density=2.0),
    )  # fmt: skip
    home = root / "airflow"
    home.mkdir()
    (home / "passwords.json").write_text(json.dumps(PASSWORDS))
    with fresh_databases("ui") as dbs:
        env = dict(os.environ)
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW_CONFIG": str(REPO / "airflow.cfg"),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": dbs.url("airflow"),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
                "SATSEG_HOME": str(settings.home),
                "SATSEG_PROMOTION_MARGIN": "-1.0",  # every challenger beats the champion
            }
        )
        import subprocess

        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True,
                       capture_output=True)  # fmt: skip
        procs = Procs(root / "logs", env)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        try:
            procs.airflow("api-server", "api-server", "--host", "127.0.0.1", "--port", str(port))
            wait_for(
                "api-server",
                lambda: http("GET", base + "/api/v2/monitor/health", timeout=3)[0] == 200,
                timeout=180,
                procs=procs,
            )
            procs.airflow("retrain", "dags", "test", DAG_ID, "--conf", json.dumps(CONF))
            token = _token(base)
            run = wait_for(
                "the approve task to await input",
                lambda: _awaiting(base, token),
                timeout=600,
                procs=procs,
            )
            yield {"base": base, "run": run, "procs": procs, "settings": settings,
                   "token": token}  # fmt: skip
        finally:
            procs.stop_all()


@pytest.fixture(scope="module")
def browser(parked: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def _token(base: str) -> str:
    status, body = http(
        "POST", base + "/auth/token", {"username": "admin", "password": PASSWORDS["admin"]}
    )
    assert status == 201, body
    return str(body["access_token"])


def _awaiting(base: str, token: str) -> str | None:
    """The run id of the retrain whose ``approve`` task awaits input, else None."""
    status, body = http("GET", f"{base}/api/v2/dags/{DAG_ID}/dagRuns", token=token, timeout=5)
    if status != 200:
        return None
    for r in body.get("dag_runs", []):
        url = f"{base}/api/v2/dags/{DAG_ID}/dagRuns/{r['dag_run_id']}/taskInstances/approve"
        s, ti = http("GET", url, token=token, timeout=5)
        if s == 200 and ti.get("state") == "awaiting_input":
            return str(r["dag_run_id"])
    return None


def test_approve_a_pending_promotion_from_the_ui(parked: dict[str, Any], browser: Any) -> None:
    from satseg.registry import store

    base, run, procs = parked["base"], parked["run"], parked["procs"]
    assert store.champion(parked["settings"]) is None  # nothing promoted before the answer
    v = Visitor(browser, base)
    try:
        v.log_in("admin")
        v.page.goto(f"{base}/dags/{DAG_ID}/runs/{run}/tasks/approve/required_actions")
        v.page.get_by_text("Promote satseg model version 1").first.wait_for(timeout=60_000)
        v.page.get_by_text("challenger v1").first.wait_for()  # the metrics table is shown
        v.page.wait_for_load_state("networkidle")
        v.page.screenshot(path=str(_shot("page_approval.png")))
        v.page.get_by_role("button", name="Approve").click()
        procs.expect_dead.add("retrain")
        assert procs.procs["retrain"].wait(timeout=600) == 0, procs.tail("retrain")
        assert v.outside == [], f"requests left the server: {v.outside}"
    finally:
        v.close()
    url = f"{base}/api/v2/dags/{DAG_ID}/dagRuns/{run}"
    status, dr = http("GET", url, token=parked["token"])
    assert status == 200 and dr["state"] == "success", (dr, procs.tail("retrain"))
    status, ti = http("GET", url + "/taskInstances/approve", token=parked["token"])
    assert ti["state"] == "success"
    champ = store.champion(parked["settings"])
    assert champ is not None and champ.version == "1"


def _shot(name: str) -> Path:
    out = Path(os.environ.get("SATSEG_SCREENSHOTS") or Path(os.environ.get("TMPDIR", "/tmp")))
    out.mkdir(parents=True, exist_ok=True)
    return out / name
