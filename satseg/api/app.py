"""The FastAPI app mounted at /satseg by the Airflow plugin, behind Airflow's auth.

``create_app`` only assembles: one router per area (``satseg.api.routes``), Airflow's login
on every route, the upload size cap and the mapping of catalog errors to 400/404. The auth
dependencies live in ``satseg.api.deps`` and are re-exported here for tests to override.
"""

from __future__ import annotations

import json

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from satseg import __version__
from satseg.api import catalog
from satseg.api.deps import (
    AUTHENTICATED,
    MAY_READ_PREDICT,
    MAY_READ_RETRAIN,
    MAY_RUN_INGEST,
    MAY_RUN_PREDICT,
    MAY_RUN_RETRAIN,
    current_user,
)
from satseg.api.routes import datasets, docs, health, models, predictions, training, uploads
from satseg.config import get_settings

__all__ = [
    "AUTHENTICATED",
    "MAY_READ_PREDICT",
    "MAY_READ_RETRAIN",
    "MAY_RUN_INGEST",
    "MAY_RUN_PREDICT",
    "MAY_RUN_RETRAIN",
    "create_app",
    "current_user",
    "openapi_json",
]
ROUTERS = (
    health.router,
    datasets.router,
    uploads.router,
    models.router,
    training.router,
    predictions.router,
    docs.router,
)
ERROR_STATUS: dict[type[Exception], int] = {catalog.BadRequest: 400, catalog.NotFound: 404}


async def _catalog_error(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=ERROR_STATUS[type(exc)])


def create_app() -> FastAPI:
    app = FastAPI(
        title="satseg",
        version=__version__,
        summary="Data, models and training of satseg, on Airflow's API server",
        description=(
            "Authenticate like the Airflow API: `POST /auth/token` with "
            '`{"username": ..., "password": ...}`, then send `Authorization: Bearer <token>`.'
        ),
        dependencies=[Depends(AUTHENTICATED)],
        # served by satseg.api.routes.docs, behind the login and without a CDN
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(
        uploads.UploadSizeLimit, limit=lambda: get_settings().max_upload_mb * 1024 * 1024
    )
    for error in ERROR_STATUS:
        app.add_exception_handler(error, _catalog_error)
    for router in ROUTERS:
        app.include_router(router)
    return app


def openapi_json() -> str:
    """The OpenAPI document (for docs builds without a running server)."""
    return json.dumps(create_app().openapi(), indent=2)
