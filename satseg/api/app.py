"""The FastAPI app mounted at /satseg by the Airflow plugin, behind Airflow's auth.

``create_app`` only assembles: one router per area (``satseg.api.routes``), Airflow's login
on every route, the upload size cap and the mapping of catalog errors to 400/404. The auth
dependencies live in ``satseg.api.deps`` and are re-exported here for tests to override.
"""

from __future__ import annotations

import json

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

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
from satseg.api.routes import (
    datasets,
    docs,
    health,
    models,
    pages,
    predictions,
    training,
    uploads,
)
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
    pages.router,
)
ERROR_STATUS: dict[type[Exception], int] = {catalog.BadRequest: 400, catalog.NotFound: 404}


async def _catalog_error(_: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=ERROR_STATUS[type(exc)])


async def _http_error(request: Request, exc: Exception) -> Response:
    """A page opened without a login goes to Airflow's login page (then back); else 401 JSON."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 401 and pages.wants_page(request):
        return RedirectResponse(pages.login_url(request), status_code=303)
    return await http_exception_handler(request, exc)


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
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for router in ROUTERS:
        app.include_router(router)
    return app


def openapi_json() -> str:
    """The OpenAPI document (for docs builds without a running server)."""
    return json.dumps(create_app().openapi(), indent=2)
