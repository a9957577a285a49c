"""The satseg pages in a real browser (Playwright driving Debian's chromium) on a real
``airflow api-server`` with the plugin and SimpleAuthManager: log in through Airflow's login
page, open each page inside the Airflow UI, see the map's tiles and polygons, promote a model,
release a quarantined file; without a login nothing is shown; nothing is fetched from outside.

Screenshots go to a temp folder, or to ``$SATSEG_SCREENSHOTS`` (``docs/img`` for the README).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from satseg.synthetic import SceneStyle
from tests.api.conftest import SCENES, quarantine_bad_pair, register_version
from tests.api.test_multiclass_pages import SCENE as CLASS_SCENE
from tests.api.test_multiclass_pages import make_class_prediction
from tests.ops.procs import BIN, REPO, Procs, free_port, http, wait_for

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
PASSWORDS = {"admin": "admin-" + secrets.token_hex(8), "viewer": "viewer-" + secrets.token_hex(8)}
PAGES = {
    "predictions": "Predictions",
    "models": "Models",
    "data": "Data",
    "monitoring": "Monitoring",
    "annotate": "Annotate",
}


def _site(root: Path, predicted: Path) -> Any:
    """A SATSEG_HOME with two predicted binary scenes and a multi-class one, two model
    versions (v1 champion), a quarantined pair and a day of monitoring (a real drift check
    and performance plot)."""
    from satseg.config import Settings
    from satseg.inference.predict import relocate_source
    from satseg.monitoring import performance as perf
    from satseg.monitoring.checks import run_drift
    from satseg.registry import store
    from tests.monitoring.monitor_synth import make_scenes, version_sample_dataset, write_params

    settings = Settings(home=root / "satseg", params_file=write_params(root / "params.yaml"))
    settings.ensure_dirs()
    shutil.copytree(predicted / "predictions", settings.predictions, dirs_exist_ok=True)
    shutil.copytree(predicted / "sources", settings.raw / "predict-done", dirs_exist_ok=True)
    for name, ext in SCENES.items():
        relocate_source(
            settings.predictions / name, settings.raw / "predict-done" / f"{name}.{ext}"
        )
    classes = make_class_prediction(root / "classes")
    shutil.copytree(root / "classes" / "predictions", settings.predictions, dirs_exist_ok=True)
    shutil.copy2(classes, settings.raw / "predict-done" / classes.name)
    relocate_source(
        settings.predictions / CLASS_SCENE, settings.raw / "predict-done" / classes.name
    )
    store.promote(settings, register_version(settings, 0.61, "city-v1"))
    register_version(settings, 0.72, "city-v2")
    quarantine_bad_pair(settings)
    version_sample_dataset(settings, "city", 1, SceneStyle(), root / "ref")  # DVC city-v1
    desert = make_scenes(root / "current", 2, 700, SceneStyle(brightness=35))
    run_drift(settings, str(settings.processed / "city"), desert, label="desert", log_mlflow=False)
    hist = settings.state / "performance.csv"
    for v, iou, day in ((1, 0.78, 1), (2, 0.69, 8)):
        perf.record_evaluation(
            hist,
            {"iou": iou, "dice": iou + 0.06},
            model_name="m",
            model_version=v,
            dataset_tag=f"city-v{v}",
            when=datetime(2026, 11, day, 6, 0, tzinfo=UTC),
        )
    days = sorted(p for p in settings.reports.iterdir() if p.is_dir())
    perf.plot_history(perf.load_history(hist), days[-1] / "performance.png")
    return settings


def ui_env(home: Path, db_url: str, **extra: str) -> dict[str, str]:
    """The environment of an api-server with the satseg plugin, SimpleAuthManager users
    admin and viewer (``PASSWORDS``) and fresh secrets; ``home`` is AIRFLOW_HOME."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "passwords.json").write_text(json.dumps(PASSWORDS))
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW_CONFIG": str(REPO / "airflow.cfg"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            **extra,
        }
    )
    return env


def start_api_server(procs: Procs) -> str:
    """Migrate the metadata DB of ``procs.env``, start ``airflow api-server``; its base URL."""
    subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"], env=procs.env, check=True, capture_output=True
    )
    base = f"http://127.0.0.1:{free_port()}"
    port = base.rsplit(":", 1)[1]
    procs.airflow("api-server", "api-server", "--host", "127.0.0.1", "--port", port)
    wait_for(
        "api-server",
        lambda: http("GET", base + "/api/v2/monitor/health", timeout=3)[0] == 200,
        timeout=180,
        procs=procs,
    )
    return base


def require_chromium() -> None:
    if not CHROMIUM.is_file():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install -y chromium; .ci/run does)")


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's chromium, launched by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def admin_token(base: str) -> str:
    """A REST API token of the admin user (``POST /auth/token``)."""
    status, body = http(
        "POST", base + "/auth/token", {"username": "admin", "password": PASSWORDS["admin"]}
    )
    assert status == 201, body
    return str(body["access_token"])


@pytest.fixture(scope="module")
def server(tmp_path_factory, predicted) -> Iterator[dict[str, Any]]:
    require_chromium()
    root = tmp_path_factory.mktemp("pages")
    settings = _site(root, predicted)
    home = root / "airflow"
    env = ui_env(
        home,
        f"sqlite:///{home}/airflow.db",
        SATSEG_HOME=str(settings.home),
        SATSEG_PARAMS_FILE=str(settings.params_file),
    )
    procs = Procs(root / "logs", env)
    try:
        yield {"base": start_api_server(procs), "settings": settings}
    finally:
        procs.stop_all()


@pytest.fixture(scope="module")
def browser(server) -> Iterator[Any]:
    with chromium() as b:
        yield b


class Visitor:
    """A browser context whose requests must all stay on the api-server (others aborted)."""

    def __init__(self, browser: Any, base: str) -> None:
        self.base, self.outside = base, []
        self.ctx = browser.new_context(viewport={"width": 1280, "height": 800})
        self.ctx.route("**/*", self._route)
        self.page = self.ctx.new_page()

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith((self.base + "/", "data:", "blob:")):
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def log_in(self, user: str) -> None:
        self.page.goto(self.base + "/satseg/pages/predictions")
        self.page.wait_for_url("**/auth/login**")
        self.page.fill("input[name=username]", user)
        self.page.fill("input[name=password]", PASSWORDS[user])
        self.page.locator("button[type=submit]").click()
        self.page.wait_for_url("**/satseg/pages/predictions")

    def close(self) -> None:
        self.ctx.close()


@pytest.fixture
def admin(browser, server) -> Iterator[Visitor]:
    v = Visitor(browser, server["base"])
    v.log_in("admin")
    yield v
    assert v.outside == [], f"requests left the server: {v.outside}"
    v.close()


def _shots() -> Path:
    out = Path(os.environ.get("SATSEG_SCREENSHOTS") or Path(os.environ.get("TMPDIR", "/tmp")))
    out.mkdir(parents=True, exist_ok=True)
    return out


def _in_ui(v: Visitor, page: str) -> Any:
    """Open the page as the Airflow UI shows it (an external view); its frame."""
    v.page.goto(f"{v.base}/plugin/satseg-{page}")
    frame = v.page.frame_locator("iframe")
    frame.locator("h1").first.wait_for()
    return frame


def test_without_a_login_there_is_nothing_to_see(browser, server) -> None:
    v = Visitor(browser, server["base"])
    try:
        v.page.goto(server["base"] + "/satseg/pages/data")
        v.page.wait_for_url("**/auth/login**")
        assert "satseg" not in v.page.title().lower()
        for path in (
            "/satseg/pages/predictions/city/tiles/mask/18/0/0.png",
            "/satseg/pages/static/vendor/leaflet/leaflet.js",
        ):
            assert v.ctx.request.get(server["base"] + path).status == 401, path
        r = v.ctx.request.post(
            server["base"] + "/satseg/pages/quarantine/release",
            data={"ref": "x"},
            headers={"X-Requested-With": "satseg"},
        )
        assert r.status == 401
    finally:
        v.close()


def test_each_page_opens_in_the_airflow_ui(admin, server) -> None:
    status, plugins = http(
        "GET", server["base"] + "/api/v2/plugins", token=admin_token(server["base"])
    )
    assert status == 200, plugins
    views = {e["url_route"]: e for p in plugins["plugins"] for e in p["external_views"]}
    assert {f"satseg-{p}" for p in PAGES} <= set(views)
    for page, label in PAGES.items():
        frame = _in_ui(admin, page)
        assert frame.locator("h1").first.inner_text() == label
        if page == "monitoring":
            frame.locator("figure img").first.wait_for()
            assert frame.locator("figure img").first.evaluate("i => i.naturalWidth") > 0
            assert frame.locator(".tag.drift").count() == 1  # the desert scenes drifted
            report = frame.frame_locator("iframe.report")
            report.get_by_text("Dataset Drift").first.wait_for()  # Evidently ran, offline
        if page != "predictions":
            admin.page.wait_for_load_state("networkidle")
            admin.page.wait_for_timeout(500)
            admin.page.screenshot(path=str(_shots() / f"page_{page}.png"))
    frame = _in_ui(admin, "predictions")
    frame.locator("#predictions a", has_text="city").wait_for()
    assert frame.locator("#predictions a", has_text="city").count() == 1
    admin.page.wait_for_load_state("networkidle")
    admin.page.wait_for_timeout(500)
    admin.page.screenshot(path=str(_shots() / "page_predictions.png"))


@pytest.mark.parametrize("scene", ["city", "plain"])
def test_the_map_shows_tiles_and_polygons(admin, server, scene) -> None:
    summary = json.loads((server["settings"].predictions / scene / "summary.json").read_text())
    frame = _in_ui(admin, "predictions")
    frame.locator("#predictions a", has_text=scene).click()
    m = frame.locator("#map")
    m.locator(".leaflet-overlay-pane path").first.wait_for()
    frame.locator(".leaflet-tile-loaded").first.wait_for()
    admin.page.wait_for_load_state("networkidle")
    assert m.get_attribute("data-polygons") == str(summary["polygons"])
    assert m.locator(".leaflet-overlay-pane path").count() == summary["polygons"]
    assert int(m.get_attribute("data-mask-tiles") or 0) >= 1
    if scene == "city":  # GeoTIFF: its imagery as tiles too
        assert int(m.get_attribute("data-source-tiles") or 0) >= 1
        assert frame.locator(".leaflet-control-scale").count() == 1
    else:  # PNG in pixel space: the image itself under the tiles
        img = m.locator("img.leaflet-image-layer")
        assert img.evaluate("i => i.complete && i.naturalWidth") == 300
    for text in ("Legend", "mask COG", "polygons GeoJSON", "STAC item"):
        assert frame.get_by_text(text).count() >= 1, text
    admin.page.screenshot(path=str(_shots() / f"page_scene_{scene}.png"))


def test_a_multiclass_scene_shows_its_classes_and_legend(admin, server) -> None:
    summary = json.loads(
        (server["settings"].predictions / CLASS_SCENE / "summary.json").read_text()
    )
    classes = summary["class_areas"]
    frame = _in_ui(admin, "predictions")
    row = frame.locator("#predictions tr", has_text=CLASS_SCENE)
    for c in classes:  # the list shows each class's share
        assert f"{c['name']} {100 * c['share']:.2f} %" in row.inner_text(), c["name"]
    row.locator("a", has_text=CLASS_SCENE).click()
    m = frame.locator("#map")
    m.locator(".leaflet-overlay-pane path").first.wait_for()
    frame.locator(".leaflet-tile-loaded").first.wait_for()
    admin.page.wait_for_load_state("networkidle")
    assert int(m.get_attribute("data-classes-tiles") or 0) >= 1
    assert m.get_attribute("data-mask-tiles") is None  # no binary mask layer
    assert m.get_attribute("data-polygons") == str(summary["polygons"])
    layers = frame.locator(".leaflet-control-layers-overlays").inner_text()
    assert "classes" in layers and "probability" in layers and "mask" not in layers
    # every polygon is outlined in its class's colour
    strokes = set(
        m.locator(".leaflet-overlay-pane path").evaluate_all(
            "ps => ps.map(p => p.getAttribute('stroke'))"
        )
    )
    drawn = {c["color"] for c in classes if c["polygons"]}
    assert strokes == drawn
    # the legend: one row per class, its colour, its area
    legend = frame.locator("#legend-classes tbody tr")
    assert legend.count() == len(classes)
    for c in classes:
        cell = frame.locator(f"#legend-classes tr[data-class='{c['index']}']")
        assert c["name"] in cell.inner_text() and f"{c['area_m2']:,.1f} m²" in cell.inner_text()
        colour = cell.locator(".swatch").evaluate("s => getComputedStyle(s).backgroundColor")
        rgb = tuple(int(c["color"][i : i + 2], 16) for i in (1, 3, 5))
        assert colour == "rgb({}, {}, {})".format(*rgb), (c["name"], colour)
    for text in ("class raster COG", "GDAL .aux.xml", "polygons GeoJSON"):
        assert frame.get_by_text(text).count() >= 1, text
    admin.page.screenshot(path=str(_shots() / "page_scene_classes.png"))


def test_promote_a_model_version(admin, server) -> None:
    from satseg.registry import store

    settings = server["settings"]
    frame = _in_ui(admin, "models")
    row = frame.locator("tr[data-version='2']")
    row.locator("button", has_text="Promote").click()
    row.locator("button", has_text="Confirm promote?").click()  # asks first
    toast = frame.locator("#toast", has_text="Done")
    toast.wait_for()
    frame.locator("tr[data-version='2'] .tag.champion").wait_for()
    assert store.champion(settings).version == "2"
    frame.locator("button", has_text="Roll back to v1").wait_for()


def test_release_a_quarantined_file(admin, server) -> None:
    from satseg.inbox import quarantine as q

    settings = server["settings"]
    item = next(i for i in q.list_quarantined(settings) if i.record.original == "demo/roof.tif")
    frame = _in_ui(admin, "data")
    buttons = frame.locator(f"tr[data-ref='{item.ref}'] button")
    buttons.filter(has_text="Release").click()
    assert "back to inbox/demo/roof.tif" in frame.locator("#toast").inner_text()
    buttons.filter(has_text="Confirm release?").click()
    frame.locator("#toast", has_text="Done").wait_for()
    frame.locator("#actions td", has_text="release").first.wait_for()
    assert frame.locator(f"tr[data-ref='{item.ref}']").count() == 0
    assert (settings.inbox / "demo" / "roof.tif").is_file() and not item.path.exists()
    (entry,) = [a for a in q.actions(settings) if a["action"] == "release"]
    assert entry["user"] == "admin" and entry["to"] == "demo/roof.tif"


def test_a_viewer_sees_but_cannot_act(browser, server) -> None:
    v = Visitor(browser, server["base"])
    try:
        v.log_in("viewer")
        frame = _in_ui(v, "data")
        assert frame.locator("button", has_text="Discard").count() == 0
        assert frame.locator("a", has_text="Download").count() >= 1
        frame = _in_ui(v, "models")
        assert frame.locator("button", has_text="Promote").count() == 0
        status = v.page.evaluate(
            """url => fetch(url, {method: "POST", headers: {"X-Requested-With": "satseg"}})
                     .then(r => r.status)""",
            server["base"] + "/satseg/pages/models/1/promote",
        )
        assert status == 403
    finally:
        v.close()
