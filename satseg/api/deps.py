"""The dependencies every route shares: Airflow's login and DAG permissions, user, settings.

They are module-level objects so tests can override exactly these (``app.dependency_overrides``).
Routes that change data or start runs also need the right to trigger the DAG they feed, so a
viewer can look but not upload, check out, promote or train.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import (
    GetUserDep,
    requires_access_dag,
    requires_authenticated,
)
from fastapi import Depends

from satseg.api.training import RETRAIN_DAG
from satseg.config import Settings, get_settings

INGEST_DAG = "satseg_ingest"
PREDICT_DAG = "satseg_predict"
AUTHENTICATED = requires_authenticated()
MAY_RUN_INGEST = requires_access_dag("POST", DagAccessEntity.RUN, param_dag_id=INGEST_DAG)
MAY_RUN_RETRAIN = requires_access_dag("POST", DagAccessEntity.RUN, param_dag_id=RETRAIN_DAG)
MAY_READ_RETRAIN = requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=RETRAIN_DAG)
MAY_RUN_PREDICT = requires_access_dag("POST", DagAccessEntity.RUN, param_dag_id=PREDICT_DAG)
MAY_READ_PREDICT = requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=PREDICT_DAG)


def current_user(user: GetUserDep) -> str:
    return user.get_name()


def settings_dep() -> Settings:
    return get_settings()


SettingsDep = Annotated[Settings, Depends(settings_dep)]
UserDep = Annotated[str, Depends(current_user)]


def _may_run(dag_id: str) -> Callable[[BaseUser], bool]:
    """Whether the user may trigger ``dag_id`` (the pages show its buttons only then)."""

    def check(user: GetUserDep) -> bool:
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

        return bool(
            get_auth_manager().is_authorized_dag(
                method="POST",
                access_entity=DagAccessEntity.RUN,
                details=DagDetails(id=dag_id),
                user=user,
            )
        )

    return check


CAN_RUN_INGEST = _may_run(INGEST_DAG)
CAN_RUN_RETRAIN = _may_run(RETRAIN_DAG)
