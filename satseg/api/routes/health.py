"""``GET /health``: 200 when every dependency answers, 503 naming the ones that do not."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from satseg.api import health
from satseg.api.deps import SettingsDep

router = APIRouter()


@router.get("/health", summary="Metadata DB, MLflow, DVC remote, disk and Redis (when used)")
def get_health(settings: SettingsDep) -> JSONResponse:
    api_params = settings.params().api
    healthy, body = health.run_checks(settings, api_params)
    return JSONResponse(jsonable_encoder(body), status_code=200 if healthy else 503)
