"""``/openapi.json``, ``/docs`` (Swagger UI) and ``/redoc``: behind the login, no CDN.

FastAPI's own docs routes skip the app's dependencies (anyone could read the API's shape)
and load their JavaScript and CSS from a CDN (a blank page on an offline site). These are
ordinary routes, so the app's login applies to them like to every other route, and the
Swagger UI and ReDoc files come from the pinned ``fastapi-offline`` package, served here.
A browser logged in to the Airflow UI sends its ``_token`` cookie, which Airflow accepts.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSET_PREFIX = "/docs/assets"
ASSET_FILES = frozenset(
    {"swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"}
)

router = APIRouter(include_in_schema=False)


def _root(request: Request) -> str:
    """The prefix the app is mounted under (``/satseg`` on the Airflow API server)."""
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get("/openapi.json")
def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_swagger_ui_html(
        openapi_url=f"{root}/openapi.json",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSET_PREFIX}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSET_PREFIX}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSET_PREFIX}/favicon.png",
        swagger_ui_parameters={"validatorUrl": None},  # the public validator is a remote call
    )


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    root = _root(request)
    return get_redoc_html(
        openapi_url=f"{root}/openapi.json",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSET_PREFIX}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSET_PREFIX}/favicon.png",
        with_google_fonts=False,
    )


@router.get(ASSET_PREFIX + "/{name}")
def asset(name: str) -> FileResponse:
    if name not in ASSET_FILES:  # a fixed list: no path from the request reaches the disk
        raise HTTPException(status_code=404, detail="no such asset")
    return FileResponse(ASSETS / name)
