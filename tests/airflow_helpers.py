"""The Airflow plumbing DAG tests share: load a DAG, run it, read states, Asset events, XComs.

Everything reads the metadata DB of the session's ``airflow_db`` fixture (tests/conftest.py).
Airflow is imported inside the helpers, after conftest has set Airflow's environment.
A DAG object keeps the last ``dag.test(run_conf=...)``'s conf in its params, so a test that
runs a DAG with different confs either names every key it changes or loads it afresh.
"""

from __future__ import annotations

import importlib.util
import sys
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
