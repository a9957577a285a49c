"""The FastAPI app mounted at /satseg by the Airflow plugin, behind Airflow's auth.

Every route needs a logged-in Airflow user (JWT from ``POST /auth/token`` or the UI's
cookie); routes that change data or start runs also need the right to trigger the DAG
they feed, so a viewer can look but not upload, check out, promote or train.
The dependencies are module-level objects so tests can override exactly these.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import (
    GetUserDep,
    requires_access_dag,
    requires_authenticated,
)
from fastapi import Body, Depends, FastAPI, File, Form, HTTPException, Query, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from satseg import __version__
from satseg.api import catalog, health, training, uploads
from satseg.config import Settings, get_settings

INGEST_DAG = "satseg_ingest"
AUTHENTICATED = requires_authenticated()
MAY_RUN_INGEST = requires_access_dag("POST", DagAccessEntity.RUN, param_dag_id=INGEST_DAG)
MAY_RUN_RETRAIN = requires_access_dag(
    "POST", DagAccessEntity.RUN, param_dag_id=training.RETRAIN_DAG
)
MAY_READ_RETRAIN = requires_access_dag(
    "GET", DagAccessEntity.RUN, param_dag_id=training.RETRAIN_DAG
)
MULTIPART_SLACK = 64 * 1024  # multipart headers and boundaries around the file


def current_user(user: GetUserDep) -> str:
    return user.get_name()


def settings_dep() -> Settings:
    return get_settings()


SettingsDep = Annotated[Settings, Depends(settings_dep)]
UserDep = Annotated[str, Depends(current_user)]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class UploadSizeLimit:
    """Refuse oversized uploads while they stream in, before they are spooled to disk."""

    def __init__(self, app: ASGIApp, limit: Callable[[], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/data/upload"):
            await self.app(scope, receive, send)
            return
        limit = self.limit() + MULTIPART_SLACK
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            response = JSONResponse(
                {
                    "detail": f"upload larger than {self.limit() // (1024 * 1024)} MB",
                    "check": "size",
                },
                status_code=413,
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                # FastAPI re-raises HTTPExceptions met while reading the body.
                raise HTTPException(413, f"upload larger than {self.limit() // (1024 * 1024)} MB")
            return message

        await self.app(scope, limited, send)


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
    )
    app.add_middleware(UploadSizeLimit, limit=lambda: get_settings().max_upload_mb * 1024 * 1024)

    @app.exception_handler(catalog.Unavailable)
    async def _unavailable(_: Any, exc: catalog.Unavailable) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(catalog.BadRequest)
    async def _bad_request(_: Any, exc: catalog.BadRequest) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(catalog.NotFound)
    async def _not_found(_: Any, exc: catalog.NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.get("/health", summary="Metadata DB, MLflow, DVC remote, disk and Redis (when used)")
    def get_health(settings: SettingsDep) -> JSONResponse:
        api_params = settings.params().api
        healthy, body = health.run_checks(settings, api_params)
        return JSONResponse(jsonable_encoder(body), status_code=200 if healthy else 503)

    @app.get("/datasets", summary="Processed datasets and what is waiting in raw/")
    def get_datasets(settings: SettingsDep) -> list[dict[str, Any]]:
        return catalog.datasets(settings)

    @app.get("/data/versions", summary="Versions (DVC tags) of one or all datasets")
    def get_versions(settings: SettingsDep, dataset: Annotated[str | None, Query()] = None) -> Any:
        return jsonable_encoder(catalog.data_versions(settings, dataset))

    @app.post(
        "/data/checkout/{tag}",
        summary="Restore a dataset version's files",
        dependencies=[Depends(MAY_RUN_INGEST)],
    )
    def post_checkout(tag: str, settings: SettingsDep) -> Any:
        return jsonable_encoder(catalog.checkout(settings, tag))

    @app.post(
        "/data/upload",
        status_code=201,
        summary="Upload imagery or labels into the inbox (picked up by satseg_ingest)",
        dependencies=[Depends(MAY_RUN_INGEST)],
    )
    def post_upload(
        settings: SettingsDep,
        file: Annotated[UploadFile, File(description="GeoTIFF, PNG, JPEG, LabelMe or GeoJSON")],
        dataset: Annotated[
            str | None,
            Form(description="inbox subfolder: a dataset name, or predict for scenes to segment"),
        ] = None,
    ) -> dict[str, Any]:
        try:
            saved = uploads.save_upload(file.file, file.filename, dataset, settings)
        except uploads.UploadError as e:
            raise HTTPException(e.status, {"error": e.message, "check": e.check}) from e
        return jsonable_encoder(saved)

    @app.get("/models", summary="Registered model versions with metrics and aliases")
    def get_models(settings: SettingsDep) -> Any:
        return jsonable_encoder(catalog.models(settings))

    @app.post(
        "/models/{version}/promote",
        summary="Make a model version the champion",
        dependencies=[Depends(MAY_RUN_RETRAIN)],
    )
    def post_promote(version: str, settings: SettingsDep) -> Any:
        return jsonable_encoder(catalog.promote(settings, version))

    @app.post(
        "/training/start",
        status_code=201,
        summary="Trigger satseg_retrain with a conf (validated by the DAG's params)",
        dependencies=[Depends(MAY_RUN_RETRAIN)],
    )
    def post_training_start(
        user: UserDep,
        conf: Annotated[
            dict[str, Any] | None, Body(examples=[{"epochs": 5, "arch": "unet"}])
        ] = None,
    ) -> dict[str, Any]:
        try:
            return jsonable_encoder(training.start(conf or {}, user=user))
        except training.TrainingError as e:
            raise HTTPException(e.status, e.message) from e

    @app.get(
        "/training/status/{run_id}",
        summary="State of a satseg_retrain run and its tasks",
        dependencies=[Depends(MAY_READ_RETRAIN)],
    )
    def get_training_status(run_id: str) -> Any:
        out = training.status(run_id)
        if out is None:
            raise HTTPException(404, f"no {training.RETRAIN_DAG} run {run_id!r}")
        return jsonable_encoder(out)

    return app


def openapi_json() -> str:
    """The OpenAPI document (for docs builds without a running server)."""
    return json.dumps(create_app().openapi(), indent=2)
