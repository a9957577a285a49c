"""satseg's pages through FastAPI's TestClient: what each page shows, tiles, downloads, actions,
and that nothing is served without a login (the real login: test_pages_browser.py)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import quarantine_bad_pair, register_version

HTML = {"Accept": "text/html"}
ACTION = {"X-Requested-With": "satseg"}


def _client(allowed: bool = True) -> TestClient:
    from fastapi import HTTPException

    from satseg.api import app as api
    from satseg.api import deps

    def forbidden() -> None:
        raise HTTPException(status_code=403, detail="Forbidden")

    app = api.create_app()
    app.dependency_overrides[api.AUTHENTICATED] = lambda: None
    app.dependency_overrides[api.current_user] = lambda: "tester"
    for dep in (api.MAY_RUN_INGEST, api.MAY_RUN_RETRAIN):
        app.dependency_overrides[dep] = (lambda: None) if allowed else forbidden
    for can in (deps.CAN_RUN_INGEST, deps.CAN_RUN_RETRAIN):
        app.dependency_overrides[can] = lambda: allowed
    return TestClient(app)


@pytest.fixture
def client(settings):
    with _client() as c:
        yield c


@pytest.fixture
def viewer(settings):
    with _client(allowed=False) as c:
        yield c


def _png(content: bytes) -> np.ndarray:
    import cv2

    return cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)


def _map_config(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="map-config">(.*?)</script>', html, re.S)
    assert m, html
    return json.loads(m.group(1))


def test_without_a_login_pages_redirect_to_the_login_and_the_rest_is_401(settings) -> None:
    from satseg.api.app import create_app

    with TestClient(create_app(), follow_redirects=False) as c:
        r = c.get("/pages/predictions", headers=HTML)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/auth/login?next=")
        assert "pages%2Fpredictions" in r.headers["location"]
        for path in (
            "/pages/predictions",  # not a browser navigation: 401
            "/pages/predictions/city/tiles/mask/18/1/1.png",
            "/pages/predictions/city/files/mask",
            "/pages/static/vendor/leaflet/leaflet.js",
            "/pages/quarantine/download/2026-01-01/a.tif",
            "/pages/monitoring/files/2026-01-01/x.html",
        ):
            assert c.get(path).status_code == 401, path
        assert c.post("/pages/quarantine/release", json={"ref": "x"}).status_code == 401
        assert c.post("/pages/models/1/promote", headers=ACTION).status_code == 401


def test_predictions_list_and_scene_maps(client, settings, with_predictions) -> None:
    with_predictions()
    r = client.get("/pages/predictions")
    assert r.status_code == 200 and "default-src 'self'" in r.headers["content-security-policy"]
    page = r.text
    assert "/pages/predictions/city" in page and "/pages/predictions/plain" in page
    assert "test-roof v7" in page and "demo-v1" in page and "pixel space" in page
    assert "<th>building</th><th>background</th>" in page  # binary scenes only
    summary = json.loads((settings.home / "predictions/city/summary.json").read_text())
    assert f"{summary['building_area_m2']:,.1f} m²" in page
    assert "https://" not in page and "http://" not in page  # nothing from the internet

    city = _map_config(client.get("/pages/predictions/city").text)
    assert city["outputs"]["georeferenced"] and city["source_kind"] == "tiles"
    west, south, east, north = city["outputs"]["bounds"]
    assert 38.9 < west < east < 39.1 and 25.2 < south < north < 25.4  # the scene's UTM 37N spot
    plain = _map_config(client.get("/pages/predictions/plain").text)
    assert not plain["outputs"]["georeferenced"] and plain["source_kind"] == "image"
    assert (plain["outputs"]["width"], plain["outputs"]["height"]) == (300, 200)
    assert client.get("/pages/predictions/nope").status_code == 404
    assert client.get("/pages/predictions/..%2F..%2Fetc").status_code == 404


def test_tiles_are_the_mask_read_in_windows(
    client, settings, with_predictions, monkeypatch
) -> None:
    import morecantile
    import rasterio

    from satseg.api import tiles

    with_predictions()
    cfg = _map_config(client.get("/pages/predictions/city").text)["outputs"]
    west, south, east, north = cfg["bounds"]
    z = cfg["maxzoom"]
    t = morecantile.tms.get("WebMercatorQuad").tile((west + east) / 2, (south + north) / 2, z)
    painted = 0
    for layer in ("mask", "probability", "source"):
        r = client.get(f"/pages/predictions/city/tiles/{layer}/{z}/{t.x}/{t.y}.png")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
        img = _png(r.content)
        assert img.shape[:2] == (256, 256)
        if layer == "mask":
            painted = int((img[..., 3] > 0).sum())
    assert painted > 0  # buildings are drawn
    far = client.get(f"/pages/predictions/city/tiles/mask/{z}/{t.x + 50}/{t.y}.png")
    assert far.status_code == 200 and not _png(far.content)[..., 3].any()  # outside: clear
    # pixel space: tile 0/0/0 is the mask's first 256 x 256 pixels, building for building
    r = client.get("/pages/predictions/plain/tiles/mask/0/0/0.png")
    with rasterio.open(settings.home / "predictions/plain/mask.tif") as src:
        mask = src.read(1)
    drawn = _png(r.content)[:200, :256, 3] > 0
    assert (drawn == (mask[:, :256] == 1)).all()
    # a coarse tile of a raster without overviews is refused rather than decoding it whole
    monkeypatch.setattr(tiles, "MAX_DECODED_SIDE", 128)
    r = client.get(f"/pages/predictions/city/tiles/source/{z - 3}/{t.x // 8}/{t.y // 8}.png")
    assert r.status_code == 422 and "zoom in" in r.text
    assert client.get("/pages/predictions/city/tiles/other/1/0/0.png").status_code == 422
    for bad in ("-1/0/0", "31/0/0", f"{z}/-1/0"):
        assert client.get(f"/pages/predictions/city/tiles/mask/{bad}.png").status_code == 422


def test_downloads_are_the_outputs_and_nothing_else(client, with_predictions) -> None:
    outs = with_predictions()
    for key, name in (("mask", "mask.tif"), ("vectors", "mask.geojson"), ("stac", "item.json")):
        r = client.get(f"/pages/predictions/city/files/{key}")
        assert r.status_code == 200 and r.content == (outs["city"] / name).read_bytes()
        assert f"city-{name}" in r.headers["content-disposition"]
    geo = client.get("/pages/predictions/city/files/vectors").json()
    assert geo["type"] == "FeatureCollection" and geo["features"]
    plain_src = client.get("/pages/predictions/plain/files/source")
    assert plain_src.status_code == 200 and plain_src.content[:4] == b"\x89PNG"
    for bad in ("source", "summary", "..%2Fplain%2Fmask.tif", "key"):
        assert client.get(f"/pages/predictions/city/files/{bad}").status_code == 404, bad


def test_models_page_promote_and_roll_back(client, viewer, settings, with_predictions) -> None:
    with_predictions()  # loads TensorFlow's roof model once for the session
    v1 = register_version(settings, 0.61)
    v2 = register_version(settings, 0.72, tag="city-v2")
    from satseg.registry import store

    store.promote(settings, v1)
    page = client.get("/pages/models").text
    assert f"v{v1}" in page and f"v{v2}" in page and "champion" in page and "challenger" in page
    assert "0.7200" in page and "val_iou_building" in page
    assert "city-v2" in page and "abababab" in page  # lineage: dataset tag and DVC md5
    assert f'/pages/models/{v2}/promote"' in page
    assert "/promote" not in viewer.get("/pages/models").text  # no buttons for a viewer

    assert client.post(f"/pages/models/{v2}/promote").status_code == 403  # not from a page
    r = client.post(f"/pages/models/{v2}/promote", headers=ACTION)
    assert r.status_code == 200 and r.json() == {"champion": v2, "by": "tester"}
    assert store.champion(settings).version == v2
    assert "Roll back to v" + v1 in client.get("/pages/models").text
    assert viewer.post("/pages/models/rollback", headers=ACTION).status_code == 403
    assert client.post("/pages/models/rollback", headers=ACTION).json()["champion"] == v1
    assert client.post("/pages/models/rollback", headers=ACTION).status_code == 409
    assert client.post("/pages/models/99/promote", headers=ACTION).status_code == 404


def test_data_page_shows_the_quarantine_and_its_actions_work(client, viewer, settings) -> None:
    from satseg.inbox import quarantine as q

    image = quarantine_bad_pair(settings)
    page = client.get("/pages/data").text
    items = {i.record.original: i for i in q.list_quarantined(settings)}
    img, label = items["demo/roof.tif"], items["demo/roof.json"]
    assert f'data-ref="{img.ref}"' in page and "json_parse" in page and "partner_rejected" in page
    assert "/pages/quarantine/release" in page
    assert "/pages/quarantine/release" not in viewer.get("/pages/data").text

    r = client.get(f"/pages/quarantine/download/{img.ref}")
    assert r.status_code == 200 and r.content == image
    assert (
        viewer.post("/pages/quarantine/release", json={"ref": img.ref}, headers=ACTION).status_code
        == 403
    )
    assert client.post("/pages/quarantine/release", json={"ref": img.ref}).status_code == 403
    r = client.post("/pages/quarantine/release", json={"ref": img.ref}, headers=ACTION)
    assert r.status_code == 200 and r.json()["to"] == "inbox/demo/roof.tif"
    assert (settings.inbox / "demo" / "roof.tif").read_bytes() == image
    r = client.post("/pages/quarantine/discard", json={"ref": label.ref}, headers=ACTION)
    assert r.status_code == 200 and not label.path.exists()
    r = client.post("/pages/quarantine/release", json={"ref": "../../etc/passwd"}, headers=ACTION)
    assert r.status_code == 404 and r.json()["detail"]["check"] == "not_found"
    page = client.get("/pages/data").text
    assert "Nothing in quarantine" in page
    assert "release &rarr; inbox/demo/roof.tif" in page and "discard" in page and "tester" in page


def test_monitoring_page_serves_reports_sandboxed(client, settings) -> None:
    from satseg.monitoring import performance as perf

    day = settings.reports / "2026-04-02"
    hist = settings.state / "performance.csv"
    for i, iou in enumerate((0.8, 0.7)):
        perf.record_evaluation(
            hist,
            {"iou": iou, "dice": iou + 0.05},
            model_name="m",
            model_version=i + 1,
            dataset_tag=f"city-v{i + 1}",
        )
    perf.plot_history(perf.load_history(hist), day / "performance.png")
    (day / "drift-manual__x.html").write_text("<html><body>report</body></html>")
    summary = {
        "drift_detected": True,
        "n_drifted": 2,
        "share_drifted": 0.25,
        "n_current": 32,
        "n_reference": 64,
    }
    (day / "drift-manual__x.json").write_text(json.dumps(summary))
    page = client.get("/pages/monitoring").text
    assert (
        "2026-04-02" in page and "drift-manual__x.html" in page and "2 feature(s) drifted" in page
    )
    png = client.get("/pages/monitoring/files/2026-04-02/performance.png")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    html = client.get("/pages/monitoring/files/2026-04-02/drift-manual__x.html")
    assert html.status_code == 200 and "sandbox" in html.headers["content-security-policy"]
    for bad in (
        "2026-04-02/..%2F..%2Fstate%2Fperformance.csv",
        "x/performance.png",
        "2026-04-02/missing.html",
    ):
        assert client.get(f"/pages/monitoring/files/{bad}").status_code == 404, bad


def test_annotate_page_lists_the_exported_tasks(
    client, settings, with_predictions, tmp_path, monkeypatch
) -> None:
    from satseg.annotate.export import export_tasks
    from satseg.config import get_settings, reset_settings_cache

    assert "No open labelling tasks" in client.get("/pages/annotate").text
    with_predictions()
    params = tmp_path / "annotate.yaml"  # the roof model is sure of itself: take any window
    params.write_text("annotate: {min_uncertainty: 0.0, window_px: 128}\n")
    monkeypatch.setenv("SATSEG_PARAMS_FILE", str(params))
    reset_settings_cache()
    out = export_tasks(get_settings(), ["city"], dataset="city", budget=2)
    assert len(out["exported"]) == 2
    page = client.get("/pages/annotate").text
    for t in out["exported"]:
        assert t["task"] in page and f"{t['score']:.3f}" in page
    assert page.count("<td>open</td>") == 2 and "city" in page


def test_static_files_come_from_the_package_only(client) -> None:
    r = client.get("/pages/static/vendor/leaflet/leaflet.js")
    assert r.status_code == 200 and b"Leaflet" in r.content[:400]
    assert client.get("/pages/static/vendor/leaflet/LICENSE").status_code == 200
    for bad in ("..%2Fapp.py", "..%2F..%2Fconfig.py", "nope.js"):
        assert client.get(f"/pages/static/{bad}").status_code == 404, bad
    assert (
        client.get("/pages", follow_redirects=False)
        .headers["location"]
        .endswith("/pages/predictions")
    )


def test_the_plugin_puts_each_page_in_the_airflow_ui(client) -> None:
    import runpy
    from pathlib import Path

    plugin = runpy.run_path(
        str(Path(__file__).resolve().parents[2] / "plugins" / "satseg_plugin.py")
    )
    views = plugin["SatsegPlugin"].external_views
    assert len({v["url_route"] for v in views}) == len(views) == 5
    for v in views:
        assert v["href"].startswith("/satseg/pages/") and v["category"] == "satseg"
        page = client.get(v["href"].removeprefix("/satseg"))
        assert page.status_code == 200 and f"<h1>{v['name']}</h1>" in page.text, v
    assert client.get(views[0]["icon"].removeprefix("/satseg")).status_code == 200
