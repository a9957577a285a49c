"""Start and follow retraining runs through Airflow's own trigger path and metadata DB.

``start`` first validates the conf with :data:`TrainingRequest` (the run options plus an
optional override of each ``TrainParams`` field, with its range), then uses the same function
the REST API's ``POST /dags/{id}/dagRuns`` uses, so the DAG's typed ``Param``s (built from
the same models) validate it too, exactly as the trigger form does.
"""

from __future__ import annotations

from typing import Any

from pydantic import create_model

from satseg.params import ParamsError, RetrainRun, TrainParams, build, overrides_model

RETRAIN_DAG = "satseg_retrain"

TrainingRequest = create_model(
    "TrainingRequest",
    __base__=(overrides_model(TrainParams), RetrainRun),
    __doc__="POST /training/start: run options; training options the conf leaves out come "
    "from the worker's params.yaml",
)


class TrainingError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def start(
    conf: dict[str, Any], user: str | None = None, dag_id: str = RETRAIN_DAG
) -> dict[str, Any]:
    """Queue a run of ``dag_id`` with ``conf``; the scheduler picks it up like any other."""
    try:
        conf = build(TrainingRequest, conf, "conf").model_dump(exclude_unset=True)
    except ParamsError as e:
        raise TrainingError(400, f"invalid conf for {dag_id}: {e}") from e
    return trigger(dag_id, conf, user, "started through /satseg/training/start")


def trigger(dag_id: str, conf: dict[str, Any], user: str | None, note: str) -> dict[str, Any]:
    """Queue a run of ``dag_id`` through Airflow's own trigger path (the DAG's ``Param``s
    validate ``conf`` again); Airflow's refusals as :class:`TrainingError` with a status."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound, DagRunAlreadyExists, ParamValidationError
    from airflow.utils.types import DagRunTriggeredByType

    try:
        run = trigger_dag(
            dag_id,
            triggered_by=DagRunTriggeredByType.REST_API,
            triggering_user_name=user,
            conf=conf,
            note=note,
        )
    except DagNotFound as e:
        raise TrainingError(404, f"DAG {dag_id} is not known to Airflow yet ({e})") from e
    except DagRunAlreadyExists as e:
        raise TrainingError(409, str(e)) from e
    except (ParamValidationError, ValueError) as e:
        raise TrainingError(400, f"invalid conf for {dag_id}: {e}") from e
    if run is None:
        raise TrainingError(500, f"Airflow did not create a run of {dag_id}")
    return {"dag_id": dag_id, "run_id": run.run_id, "state": str(run.state), "conf": conf}


def status(run_id: str, dag_id: str = RETRAIN_DAG) -> dict[str, Any] | None:
    """Run state plus each task's state and try number, or None for an unknown run."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if run is None:
            return None
        tis = session.scalars(
            select(TaskInstance)
            .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            .order_by(TaskInstance.task_id, TaskInstance.map_index)
        ).all()
        return {
            "dag_id": dag_id,
            "run_id": run_id,
            "state": str(run.state),
            "run_type": str(run.run_type),
            "queued_at": run.queued_at,
            "start_date": run.start_date,
            "end_date": run.end_date,
            "conf": run.conf,
            "tasks": [
                {
                    "task_id": ti.task_id,
                    "map_index": ti.map_index,
                    "state": None if ti.state is None else str(ti.state),
                    "try_number": ti.try_number,
                }
                for ti in tis
            ],
        }
