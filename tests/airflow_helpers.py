"""The Airflow plumbing DAG tests share: load a DAG, run it, read states, Asset events, XComs.

Everything reads the metadata DB of the session's ``airflow_db`` fixture (tests/conftest.py).
Airflow is imported inside the helpers, after conftest has set Airflow's environment.
A DAG object keeps the last ``dag.test(run_conf=...)``'s conf in its params, so a test that
runs a DAG with different confs either names every key it changes or loads it afresh.
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DAGS = REPO / "dags"


def load_module(name: str, path: Path) -> ModuleType:
    """A helper file that is not in a package (tests/alerting, tests/inference, docker/), by path.

    Registered in ``sys.modules`` under ``name``, so it is loaded once per session.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader, path
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def dagbag(folder: Path = DAGS) -> Any:
    """A DagBag of ``folder`` (all of satseg's DAG files by default)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(folder))


def load_dag(dag_id: str) -> Any:
    """Parse ``dags/<dag_id>.py`` afresh; it must import cleanly."""
    bag = dagbag(DAGS / f"{dag_id}.py")
    assert bag.import_errors == {}
    return bag.dags[dag_id]


def task_states(dr: Any) -> dict[str, str]:
    """``task_id`` (``task_id[i]`` for mapped instances) -> state of a DAG run."""
    return {
        f"{ti.task_id}[{ti.map_index}]" if ti.map_index >= 0 else ti.task_id: str(ti.state)
        for ti in dr.get_task_instances()
    }


def run_dag(
    dag: Any, conf: dict[str, Any] | None = None, *, expect: str | None = None, **kw: Any
) -> Any:
    """``dag.test(run_conf=conf, **kw)``; with ``expect``, assert the run ended in that state."""
    dr = dag.test(run_conf=conf, **kw)
    if expect is not None:
        assert str(dr.state) == expect, task_states(dr)
    return dr


def asset_events(run_id: str) -> dict[str, list[dict[str, Any]]]:
    """Asset name -> extras of the events a run emitted, in emission order."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    out: dict[str, list[dict[str, Any]]] = {}
    with create_session() as session:
        rows = session.execute(
            select(AssetModel.name, AssetEvent.extra)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_run_id == run_id)
            .order_by(AssetEvent.id)
        ).all()
    for name, extra in rows:
        out.setdefault(name, []).append(dict(extra or {}))
    return out


def events_of(asset: str, run_id: str) -> list[dict[str, Any]]:
    """Extras of the events of one Asset a run emitted."""
    return asset_events(run_id).get(asset, [])


def xcom(dr: Any, task_id: str, key: str = "return_value") -> Any:
    """A task's XCom in a DAG run (the first one for mapped tasks), or None."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(run_id=dr.run_id, key=key, dag_ids=dr.dag_id, task_ids=task_id)
        row = session.scalars(query).first()
        return None if row is None else XComModel.deserialize_value(row)


def unpause(dag_id: str) -> None:
    """Unpause a DAG (tests create DAGs paused), so Asset events can queue runs of it."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=False))


def queued_for(dag_id: str) -> int:
    """How many Asset-triggered runs of ``dag_id`` wait in the queue."""
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(AssetDagRunQueue)
                .where(AssetDagRunQueue.target_dag_id == dag_id)
            )
            or 0
        )


def airflow_api() -> Any:
    """A TestClient of Airflow's own API server app (REST API v2 + /auth), logged in as admin
    through ``POST /auth/token`` with the simple auth manager's generated password."""
    import json
    import os

    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    client = TestClient(create_app())  # the auth manager writes its passwords file here
    generated = Path(os.environ["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    password = json.loads(generated.read_text())["admin"]
    r = client.post("/auth/token", json={"username": "admin", "password": password})
    assert r.status_code == 201, r.text
    client.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
    return client


def awaiting_input(dag_id: str, task_id: str, timeout: float = 600, stop: Any = None) -> Any:
    """The task instance of ``dag_id.task_id`` parked in ``awaiting_input`` (a HITL request);
    waits until ``timeout`` or until the event ``stop`` is set."""
    import time

    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    end = time.monotonic() + timeout
    while time.monotonic() < end and not (stop and stop.is_set()):
        with create_session() as session:
            ti = session.scalar(
                select(TI).where(
                    TI.dag_id == dag_id,
                    TI.task_id == task_id,
                    TI.state == TaskInstanceState.AWAITING_INPUT,
                )
            )
            if ti is not None:
                session.expunge(ti)
                return ti
        time.sleep(0.5)
    raise TimeoutError(f"no {dag_id}.{task_id} came to await input (waited up to {timeout} s)")


def sweep_hitl_timeouts() -> None:
    """Run the scheduler's own sweep that applies a HITL request's defaults after its timeout
    (``SchedulerJobRunner.check_awaiting_input_timeouts``; ``dag.test()`` never runs it)."""
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    SchedulerJobRunner(job=Job()).check_awaiting_input_timeouts()


class HitlAnswer:
    """Answers the next HITL request of ``dag_id.task_id`` from a thread while the main thread
    runs ``dag.test()`` (which waits for such answers and never gives them itself).

    ``chosen`` ("Approve" / "Reject") is sent as a person would from "Required Actions":
    ``PATCH /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/-1/hitlDetails`` of the
    real Airflow API app. ``chosen=None`` answers nothing: once the request's timeout passed,
    the scheduler's sweep applies its defaults. ``detail`` is the request as the REST API
    shows it (subject, body, options, defaults); ``response`` the PATCH's answer.
    """

    def __init__(self, dag_id: str, task_id: str, chosen: str | None, **params_input: Any):
        import threading

        self.dag_id, self.task_id, self.chosen, self.params_input = (
            dag_id,
            task_id,
            chosen,
            params_input,
        )
        self.detail: dict[str, Any] = {}
        self.response: dict[str, Any] = {}
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stop = threading.Event()

    def __enter__(self) -> HitlAnswer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()  # the run is over: a request that never came will not come now
        self._thread.join(timeout=60)
        if self.error is not None and exc[0] is None:
            raise self.error

    def _run(self) -> None:
        import time
        from datetime import datetime

        try:
            ti = awaiting_input(self.dag_id, self.task_id, stop=self._stop)
            api = airflow_api()
            url = (
                f"/api/v2/dags/{self.dag_id}/dagRuns/{ti.run_id}/taskInstances/"
                f"{self.task_id}/-1/hitlDetails"
            )
            r = api.get(url)
            assert r.status_code == 200, r.text
            self.detail = r.json()
            if self.chosen is None:
                while ti.trigger_timeout and datetime.now(UTC) <= ti.trigger_timeout:
                    time.sleep(0.2)
                sweep_hitl_timeouts()
                return
            payload = {"chosen_options": [self.chosen], "params_input": self.params_input}
            r = api.patch(url, json=payload)
            assert r.status_code == 200, r.text
            self.response = r.json()
        except BaseException as e:  # re-raised in the test's thread
            self.error = e
            _fail_waiting(self.dag_id, self.task_id)  # so dag.test() ends instead of waiting


def _fail_waiting(dag_id: str, task_id: str) -> None:
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import update

    with create_session() as session:
        session.execute(
            update(TI)
            .where(TI.dag_id == dag_id, TI.task_id == task_id)
            .where(TI.state == TaskInstanceState.AWAITING_INPUT)
            .values(state=TaskInstanceState.FAILED)
        )
