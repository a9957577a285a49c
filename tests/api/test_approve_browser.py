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
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from satseg.synthetic import SceneStyle
from satseg.training.sample import write_sample_dataset
from tests.api.test_pages_browser import (
    Visitor,
    admin_token,
    chromium,
    require_chromium,
    start_api_server,
    ui_env,
)
from tests.ops.procs import Procs, http, wait_for
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

    require_chromium()
    require_services()
    root = tmp_path_factory.mktemp("approve-ui")
    settings = Settings(home=root / "satseg")
    settings.ensure_dirs()
    write_sample_dataset(
        settings.processed / "tiny", dataset="tiny", tag="tiny-v1", n_train=8, n_val=4,
        style=SceneStyle(building_density=2.0),
    )  # fmt: skip
    with fresh_databases("ui") as dbs:
        env = ui_env(
            root / "airflow",
            dbs.url("airflow"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            SATSEG_HOME=str(settings.home),
            SATSEG_PROMOTION_MARGIN="-1.0",  # every challenger beats the champion
        )
        procs = Procs(root / "logs", env)
        try:
            base = start_api_server(procs)
            procs.airflow("retrain", "dags", "test", DAG_ID, "--conf", json.dumps(CONF))
            token = admin_token(base)
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
    with chromium() as b:
        yield b


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
