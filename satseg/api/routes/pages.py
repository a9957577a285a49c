"""satseg's own pages (Predictions, Models, Data, Monitoring, Annotate), shown in the Airflow UI.

Server-rendered HTML (Jinja2) with a little JavaScript, under ``/satseg/pages/``: the plugin
registers each page as an Airflow UI external view (an iframe in the UI's navigation), and a
browser logged in to the UI sends its session cookie, so the pages need the same login as the
REST API (the app's dependency). A page opened without a login is redirected to Airflow's login
page (``satseg.api.app``); everything else answers 401. Every script, style sheet and image is
served from the package (``satseg/api/static``, Leaflet vendored there): nothing loads from the
internet, and the Content-Security-Policy of every page forbids it.

Actions (promote, roll back, release, discard) are POSTs from the pages' script, which also
sends ``X-Requested-With: satseg``: a cross-site form cannot set that header, and the cookie is
``SameSite=Lax``. They need the right to run the DAG they affect, like the REST API.
"""

from __future__ import annotations

import pathlib
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Path, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from satseg.api import tiles, views
from satseg.api.deps import (
    CAN_RUN_INGEST,
    CAN_RUN_RETRAIN,
    MAY_RUN_INGEST,
    MAY_RUN_RETRAIN,
    SettingsDep,
    UserDep,
)

STATIC = pathlib.Path(__file__).resolve().parent.parent / "static"
TEMPLATES = pathlib.Path(__file__).resolve().parent.parent / "templates"
PAGES = (
    ("predictions", "Predictions"),
    ("models", "Models"),
    ("data", "Data"),
    ("monitoring", "Monitoring"),
    ("annotate", "Annotate"),
)
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'self'; base-uri 'none'"
)
# the Evidently report inlines its scripts: it runs sandboxed (no cookies, no API) and offline
REPORT_CSP = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'unsafe-inline'; img-src data: blob:; font-src data:"
)

router = APIRouter(prefix="/pages", include_in_schema=False)
CanIngest = Annotated[bool, Depends(CAN_RUN_INGEST)]
CanRetrain = Annotated[bool, Depends(CAN_RUN_RETRAIN)]


def _env() -> Any:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape())
    env.filters["num"] = lambda v, d=1: "-" if v is None else f"{v:,.{d}f}"
    env.filters["pct"] = lambda v: "-" if v is None else f"{100 * v:.2f} %"
    return env


_ENV: Any = None


def render(request: Request, template: str, **context: Any) -> HTMLResponse:
    """A page from ``templates/`` with the navigation, behind the CSP."""
    global _ENV
    if _ENV is None:
        _ENV = _env()
    root = str(request.scope.get("root_path", "")).rstrip("/")
    html = _ENV.get_template(template).render(
        root=root, base=f"{root}/pages", pages=PAGES, **context
    )
    return HTMLResponse(html, headers={"Content-Security-Policy": CSP})


def _missing(e: views.Missing) -> HTTPException:
    return HTTPException(status_code=404, detail=str(e))


def same_site(x_requested_with: Annotated[str | None, Header()] = None) -> None:
    """Actions come from the pages' script (a header a cross-site form cannot send)."""
    if x_requested_with != "satseg":
        raise HTTPException(status_code=403, detail="actions are sent by the satseg pages")


# --- navigation and static files -----------------------------------------------------------
@router.get("")
@router.get("/")
def index(request: Request) -> RedirectResponse:
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return RedirectResponse(f"{root}/pages/predictions", status_code=307)


@router.get("/static/{path:path}")
def static(path: str) -> FileResponse:
    """A file of ``satseg/api/static`` (the resolved path must stay inside it)."""
    target = (STATIC / path).resolve()
    if not target.is_relative_to(STATIC) or not target.is_file():
        raise HTTPException(status_code=404, detail="no such file")
    return FileResponse(target, headers={"Cache-Control": "max-age=3600"})


# --- predictions ---------------------------------------------------------------------------
@router.get("/predictions")
def predictions_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    return render(request, "predictions.html", page="predictions", rows=views.predictions(settings))


@router.get("/predictions/{scene}")
def scene_page(request: Request, scene: str, settings: SettingsDep) -> HTMLResponse:
    try:
        row = views.scene(settings, scene)
        # the map's main layer: the binary mask, or a multi-class model's class raster
        main = "classes" if row["classes"] else "mask"
        raster = views.output_file(settings, scene, main)
    except views.Missing as e:
        raise _missing(e) from e
    info = tiles.layer_info(raster)
    source = None
    if row["source_kind"] == "tiles":
        source = tiles.layer_info(row["source_path"])
    mapcfg = {
        "scene": scene,
        "base": f"{str(request.scope.get('root_path', '')).rstrip('/')}/pages/predictions/{scene}",
        "outputs": info,
        "main": main,
        "classes": [
            {"index": c.get("index"), "name": c.get("name"), "color": c.get("color")}
            for c in row["classes"] or []
        ],
        "source": source,
        "source_kind": row["source_kind"],
        "has_quicklook": "quicklook" in row["downloads"],
    }
    return render(request, "scene.html", page="predictions", row=row, mapcfg=mapcfg)


@router.get("/predictions/{scene}/tiles/{layer}/{z}/{x}/{y}.png")
def tile(
    scene: str,
    layer: tiles.Layer,
    z: Annotated[int, Path(ge=0, le=tiles.MAX_ZOOM)],
    x: Annotated[int, Path(ge=0)],
    y: Annotated[int, Path(ge=0)],
    settings: SettingsDep,
) -> Response:
    """One XYZ tile of the mask (multi-class: the class raster), the probability or the
    source imagery (one windowed read)."""
    palette = None
    try:
        if layer == "source":
            row = views.scene(settings, scene)
            if row["source_kind"] != "tiles":
                raise views.Missing(f"{scene}: the source is not a GeoTIFF on this server")
            path, scaler = row["source_path"], row["summary"].get("scaler")
        else:
            path, scaler = views.output_file(settings, scene, layer), None
            if layer == "probability":
                palette = views.class_palette(settings, scene)
        png = tiles.render_tile(path, layer, z, x, y, scaler, palette)
    except views.Missing as e:
        raise _missing(e) from e
    except tiles.TileTooCoarse as e:
        raise HTTPException(status_code=422, detail=str(e)) from e
    return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=60"})


@router.get("/predictions/{scene}/files/{key}")
def scene_file(scene: str, key: str, settings: SettingsDep) -> FileResponse:
    """A scene's output (``mask`` or ``classes`` + ``classes_aux``, ``probability``,
    ``vectors``, ``stac``, ``quicklook``) or, for PNG/JPEG scenes, the ``source`` image the map shows."""
    try:
        if key == "source":
            row = views.scene(settings, scene)
            if row["source_kind"] != "image":
                raise views.Missing(f"{scene}: no source image to show")
            return FileResponse(row["source_path"])
        if key not in views.DOWNLOADS:
            raise views.Missing(f"no output {key!r}")
        path = views.output_file(settings, scene, key)
    except views.Missing as e:
        raise _missing(e) from e
    media = "application/geo+json" if path.suffix == ".geojson" else None
    return FileResponse(path, media_type=media, filename=f"{scene}-{path.name}")


# --- models --------------------------------------------------------------------------------
@router.get("/models")
def models_page(request: Request, settings: SettingsDep, can: CanRetrain) -> HTMLResponse:
    return render(request, "models.html", page="models", reg=views.models(settings), can=can)


@router.post(
    "/models/{version}/promote", dependencies=[Depends(MAY_RUN_RETRAIN), Depends(same_site)]
)
def promote(version: str, settings: SettingsDep, user: UserDep) -> dict[str, Any]:
    from satseg.api import catalog

    ref = catalog.promote(settings, version)
    return {"champion": ref.version, "by": user}


@router.post("/models/rollback", dependencies=[Depends(MAY_RUN_RETRAIN), Depends(same_site)])
def rollback(settings: SettingsDep, user: UserDep) -> dict[str, Any]:
    from satseg.registry.store import RegistryError, rollback

    try:
        ref = rollback(settings)
    except RegistryError as e:
        raise HTTPException(status_code=409, detail=str(e)) from e
    return {"champion": ref.version, "by": user}


# --- data and the quarantine ---------------------------------------------------------------
@router.get("/data")
def data_page(request: Request, settings: SettingsDep, can: CanIngest) -> HTMLResponse:
    return render(request, "data.html", page="data", data=views.data(settings), can=can)


def _quarantine_error(e: Any) -> HTTPException:
    status = {"not_found": 404, "exists": 409}.get(e.check, 400)
    return HTTPException(status_code=status, detail={"check": e.check, "reason": str(e)})


@router.post("/quarantine/{action}", dependencies=[Depends(MAY_RUN_INGEST), Depends(same_site)])
def quarantine_action(
    action: str, settings: SettingsDep, user: UserDep, ref: Annotated[str, Body(embed=True)]
) -> dict[str, Any]:
    """``release`` (back to the inbox) or ``discard`` one quarantined file."""
    from satseg.inbox import quarantine as q

    try:
        if action == "release":
            dest = q.release(settings, ref, user)
            return {"released": ref, "to": str(dest.relative_to(settings.home))}
        if action == "discard":
            q.discard(settings, ref, user)
            return {"discarded": ref}
    except q.QuarantineActionError as e:
        raise _quarantine_error(e) from e
    raise HTTPException(status_code=404, detail=f"no action {action!r}")


@router.get("/quarantine/download/{ref:path}")
def quarantine_download(ref: str, settings: SettingsDep, user: UserDep) -> FileResponse:
    from satseg.inbox import quarantine as q

    try:
        item = q.download(settings, ref, user)
    except q.QuarantineActionError as e:
        raise _quarantine_error(e) from e
    return FileResponse(item.path, filename=item.path.name, media_type="application/octet-stream")


# --- monitoring and annotation -------------------------------------------------------------
@router.get("/monitoring")
def monitoring_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    return render(request, "monitoring.html", page="monitoring", days=views.reports(settings))


@router.get("/monitoring/files/{day}/{name}")
def report_file(day: str, name: str, settings: SettingsDep) -> FileResponse:
    try:
        path = views.report_file(settings, day, name)
    except views.Missing as e:
        raise _missing(e) from e
    headers = {"Content-Security-Policy": REPORT_CSP} if path.suffix == ".html" else {}
    return FileResponse(path, headers=headers)


@router.get("/annotate")
def annotate_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    tasks = views.annotation_tasks(settings)
    return render(request, "annotate.html", page="annotate", tasks=tasks)


# --- a page opened without a login (``satseg.api.app`` maps the 401 here) -------------------
def wants_page(request: Request) -> bool:
    """A browser navigating to a page (not a script, a tile or an API client)."""
    path = request.url.path.removeprefix(str(request.scope.get("root_path", "")))
    accept = request.headers.get("accept", "")
    return request.method == "GET" and path.startswith("/pages") and "text/html" in accept


def login_url(request: Request) -> str:
    """Airflow's login page, coming back to ``request``'s page after it."""
    try:
        from airflow.api_fastapi.app import get_auth_manager

        return str(get_auth_manager().get_url_login(next_url=str(request.url)))
    except RuntimeError:  # no auth manager in this process (tests without the api-server)
        from urllib.parse import urlencode

        return "/auth/login?" + urlencode({"next": str(request.url)})
