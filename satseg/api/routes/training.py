"""Start a satseg_retrain run and follow it (``satseg.api.training`` does the work)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException
from fastapi.encoders import jsonable_encoder

from satseg.api import training
from satseg.api.deps import MAY_READ_RETRAIN, MAY_RUN_RETRAIN, UserDep

router = APIRouter()


@router.post(
    "/training/start",
    status_code=201,
    summary="Trigger satseg_retrain with a conf (validated by the DAG's params)",
    dependencies=[Depends(MAY_RUN_RETRAIN)],
)
def post_training_start(
    user: UserDep,
    conf: Annotated[dict[str, Any] | None, Body(examples=[{"epochs": 5, "arch": "unet"}])] = None,
) -> dict[str, Any]:
    try:
        return jsonable_encoder(training.start(conf or {}, user=user))
    except training.TrainingError as e:
        raise HTTPException(e.status, e.message) from e


@router.get(
    "/training/status/{run_id}",
    summary="State of a satseg_retrain run and its tasks",
    dependencies=[Depends(MAY_READ_RETRAIN)],
)
def get_training_status(run_id: str) -> Any:
    out = training.status(run_id)
    if out is None:
        raise HTTPException(404, f"no {training.RETRAIN_DAG} run {run_id!r}")
    return jsonable_encoder(out)
