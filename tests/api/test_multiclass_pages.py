"""A multi-class scene in the API and the pages: the class raster's tiles in the class colours
(nodata transparent), the probability of a one-band-per-class raster, the legend with the
classes' colours and areas, the per-class shares in the scene list, the class raster and its
sidecar among the downloads and the on-demand prediction's outputs.

The prediction is real: the nearest-colour classifier of ``tests.inference.test_multiclass``
(fixed weights, its answer known) segments a generated land-cover scene through
``satseg.inference.predict.predict_scene``; the binary scenes of ``tests/api/conftest.py``
sit beside it, unchanged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.api.test_pages import _client, _map_config, _png

SCENE = "landcover"
NODATA_BLOCK = (slice(0, 64), slice(0, 96))  # the scene's top-left corner is nodata (0)


def make_class_prediction(root: Path) -> Path:
    """``root/sources/landcover.tif`` (320 x 288, EPSG:32637, 0.5 m, a nodata corner) and its
    multi-class prediction in ``root/predictions/landcover/``; the source's path."""
    import rasterio

    from satseg.inference.predict import predict_scene
    from satseg.synthetic import make_landcover_scene
    from tests.inference.conftest import MODEL_INFO
    from tests.inference.test_multiclass import centroid_model, class_doc

    sc = make_landcover_scene(root / "work", "lc", 320, 288, seed=3)
    model = centroid_model(sc.image, sc.truth)
    with rasterio.open(sc.image) as src:
        data, profile = src.read(), src.profile
    data[:, NODATA_BLOCK[0], NODATA_BLOCK[1]] = 0
    source = root / "sources" / f"{SCENE}.tif"
    source.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(source, "w", **{**profile, "nodata": 0}) as dst:
        dst.write(data)
    info = {**MODEL_INFO, "name": "test-landcover", "classes": class_doc()}
    predict_scene(
        model,
        source,
        root / "predictions" / SCENE,
        model_info=info,
        precision="fp32",
        tile=128,
        overlap=32,
    )
    shutil.rmtree(root / "work")
    return source


@pytest.fixture(scope="session")
def class_predicted(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("class_predicted")
    make_class_prediction(root)
    return root


@pytest.fixture
def scenes(settings, with_predictions, class_predicted) -> dict[str, Path]:
    """The binary scenes (city, plain) and the multi-class one in this test's SATSEG_HOME."""
    from satseg.inference.predict import relocate_source

    out = with_predictions()
    shutil.copytree(class_predicted / "predictions", settings.predictions, dirs_exist_ok=True)
    src = settings.raw / "predict-done" / f"{SCENE}.tif"
    shutil.copy2(class_predicted / "sources" / f"{SCENE}.tif", src)
    relocate_source(settings.predictions / SCENE, src)
    return {**out, SCENE: settings.predictions / SCENE}


@pytest.fixture
def client(settings):
    with _client() as c:
        yield c


def _summary(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "summary.json").read_text())


def _tile_at(cfg: dict[str, Any], fx: float, fy: float) -> tuple[int, int, int]:
    """The maxzoom tile at a fraction (fx from the west, fy from the north) of the bounds."""
    import morecantile

    west, south, east, north = cfg["bounds"]
    z = cfg["maxzoom"]
    lon, lat = west + fx * (east - west), north - fy * (north - south)
    t = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, z)
    return z, t.x, t.y


def test_the_classes_layer_is_drawn_in_the_class_colours(client, scenes) -> None:
    from satseg.classes import ModelClasses
    from tests.inference.test_multiclass import class_doc

    page = client.get(f"/pages/predictions/{SCENE}")
    assert page.status_code == 200
    cfg = _map_config(page.text)
    assert cfg["main"] == "classes" and cfg["outputs"]["georeferenced"]
    assert [c["name"] for c in cfg["classes"]] == list(ModelClasses.from_json(class_doc()).names)
    rgb = ModelClasses.from_json(class_doc()).rgb()
    z, x, y = _tile_at(cfg["outputs"], 0.5, 0.5)
    r = client.get(f"/pages/predictions/{SCENE}/tiles/classes/{z}/{x}/{y}.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
    img = _png(r.content)  # BGRA
    assert img.shape == (256, 256, 4)
    drawn = img[..., 3] > 0
    assert drawn.mean() > 0.5
    colours = {tuple(int(v) for v in px[2::-1]) for px in img[drawn]}
    assert colours <= set(rgb) and len(colours) >= 3  # land, road, water... nothing else
    # the scene's top-left tile holds the nodata corner: transparent there, classes elsewhere
    zc, xc, yc = _tile_at(cfg["outputs"], 0.02, 0.02)  # in the nodata corner
    tile = _png(client.get(f"/pages/predictions/{SCENE}/tiles/classes/{zc}/{xc}/{yc}.png").content)
    assert (tile[..., 3] == 0).any() and (tile[..., 3] > 0).any()
    # the multi-band probability: each pixel in its winning class's colour, never broken
    r = client.get(f"/pages/predictions/{SCENE}/tiles/probability/{z}/{x}/{y}.png")
    assert r.status_code == 200
    prob = _png(r.content)
    shown = prob[..., 3] > 0  # alpha = 0.9 x the winning probability
    np.testing.assert_array_equal(shown, drawn)
    same = (prob[..., :3] == img[..., :3]).all(axis=-1)[drawn]
    assert same.mean() > 0.95  # the winning class is the class raster's (bar uint8 ties)
    alpha = prob[..., 3][drawn].astype(int)  # the winner has at least 1/5: 0.9 x 51 = 45
    assert alpha.min() >= 45 and alpha.max() <= 229 and alpha.max() - alpha.min() > 50
    # the binary layer does not exist for this scene, nor the class layer for a binary one
    assert client.get(f"/pages/predictions/{SCENE}/tiles/mask/{z}/{x}/{y}.png").status_code == 404
    assert client.get("/pages/predictions/city/tiles/classes/18/0/0.png").status_code == 404


def test_the_scene_page_has_the_class_legend_and_the_class_downloads(client, scenes) -> None:
    summary = _summary(scenes[SCENE])
    page = client.get(f"/pages/predictions/{SCENE}").text
    assert 'id="legend-classes"' in page and "threshold" not in page
    for c in summary["class_areas"]:
        row = page.split(f'<tr data-class="{c["index"]}">', 1)[1].split("</tr>", 1)[0]
        assert f"background: {c['color']}" in row and c["name"] in row
        assert f"{c['area_m2']:,.1f} m²" in row and f"{100 * c['share']:.2f} %" in row
    for key in ("classes", "classes_aux", "probability", "vectors", "stac", "quicklook"):
        assert f"/pages/predictions/{SCENE}/files/{key}" in page, key
    assert f"/pages/predictions/{SCENE}/files/mask" not in page.replace("files/mask.", "")
    for key, name in (("classes", "classes.tif"), ("classes_aux", "classes.tif.aux.xml")):
        r = client.get(f"/pages/predictions/{SCENE}/files/{key}")
        assert r.status_code == 200 and r.content == (scenes[SCENE] / name).read_bytes()
        assert f"{SCENE}-{name}" in r.headers["content-disposition"]  # the sidecar's name fits
    assert (
        b"<Category>water</Category>"
        in client.get(f"/pages/predictions/{SCENE}/files/classes_aux").content
    )
    assert client.get(f"/pages/predictions/{SCENE}/files/mask").status_code == 404
    assert client.get("/pages/predictions/city/files/classes").status_code == 404
    # GeoJSON: per-class polygons, which the map colours by their class_index
    geo = client.get(f"/pages/predictions/{SCENE}/files/vectors").json()
    assert {f["properties"]["class"] for f in geo["features"]} >= {"land", "road", "water"}
    # a binary scene's page is as before: the mask legend, its threshold, no class table
    city = client.get("/pages/predictions/city").text
    assert 'id="legend-classes"' not in city and "building (mask)" in city
    assert "threshold" in city and _map_config(city)["main"] == "mask"
    assert _map_config(city)["classes"] == []


def test_the_scene_list_shows_each_class_share(client, scenes) -> None:
    summary = _summary(scenes[SCENE])
    page = client.get("/pages/predictions").text
    row = page.split(f'<a href="/pages/predictions/{SCENE}">', 1)[1].split("</tr>", 1)[0]
    for c in summary["class_areas"]:
        assert f"{c['name']} {100 * c['share']:.2f} %" in row, c["name"]
    assert "test-landcover v7" in row and "area per class" in page
    city = page.split('<a href="/pages/predictions/city">', 1)[1].split("</tr>", 1)[0]
    assert f"{_summary(scenes['city'])['building_area_m2']:,.1f} m²" in city  # binary as before


def test_the_prediction_api_lists_the_class_raster(settings, scenes) -> None:
    """``GET /predictions/{id}``'s files: what a finished run's scene folder holds."""
    from satseg.api import predictions

    run = {"state": "success", "conf": {"paths": [str(settings.raw / f"{SCENE}.tif")]}}
    files = predictions.outputs(settings, run)
    assert {"classes.tif", "classes.tif.aux.xml", "prob.tif", "mask.geojson"} <= set(files)
    assert "mask.tif" not in files
    assert files["classes.tif"] == scenes[SCENE] / "classes.tif"
    binary = predictions.outputs(settings, {**run, "conf": {"paths": ["raw/x/city.tif"]}})
    assert "mask.tif" in binary and "classes.tif" not in binary
    assert predictions.outputs(settings, {**run, "state": "running"}) == {}


def test_class_colours_from_a_summary_are_only_colours(settings, scenes) -> None:
    """The pages put a class colour into a style attribute: anything else becomes grey."""
    from satseg.api import views

    path = scenes[SCENE] / "summary.json"
    summary = _summary(scenes[SCENE])
    summary["class_areas"][0]["color"] = "red; background-image: url(//x)"
    path.write_text(json.dumps(summary))
    row = views.scene(settings, SCENE)
    assert row["classes"][0]["color"] == "#808080"
    assert views.class_palette(settings, SCENE)[0] == (128, 128, 128)
    assert np.array_equal(
        views.class_palette(settings, SCENE)[1:],
        [
            tuple(int(c["color"][i : i + 2], 16) for i in (1, 3, 5))
            for c in summary["class_areas"][1:]
        ],
    )
