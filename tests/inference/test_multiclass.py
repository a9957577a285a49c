"""Multi-class prediction: class raster COG (colour table, category names, nodata 255),
per-class probability bands, per-class polygons, a quicklook with a legend, STAC with the
classification extension and per-class areas in the summary.

The model is a real Keras model with fixed weights: a nearest-colour classifier (1x1 conv +
softmax, logits = -|x - mu_c|^2 / 2s^2) whose class centroids are the mean colours of the
generated land-cover scene's classes (``satseg.synthetic.make_landcover_scene``), so its
answer is known: land, road, vegetation and water land on the painted truth.
"""

from __future__ import annotations

import ctypes
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from satseg.classes import IGNORE, ClassTable, ModelClasses
from satseg.inference.params import CLASS_OUTPUT_NAMES, OUTPUT_NAMES
from satseg.inference.predict import predict_scene
from satseg.params import IngestParams
from satseg.synthetic import LANDCOVER_CLASSES, make_landcover_scene

FAST = {"precision": "fp32", "tile": 128, "overlap": 32}
COLORS = ("#e6194b", "#bfae84", "#404040", "#3cb44b", "#4363d8")
PIXEL_M2 = 0.5 * 0.5  # make_landcover_scene's pixel size
NODATA_BLOCK = (slice(0, 40), slice(0, 70))  # top-left corner set to nodata


def class_doc(names: tuple[str, ...] = LANDCOVER_CLASSES) -> dict[str, Any]:
    """The class table JSON as training records it (``ClassTable.to_json``)."""
    ing = IngestParams.model_validate(
        {
            "classes": [
                {"name": n, "color": c} for n, c in zip(names, COLORS[: len(names)], strict=True)
            ],
            "unlabeled": "ignore",
        }
    )
    table = ClassTable.from_params(ing)
    assert table is not None
    return table.to_json()


@pytest.fixture(scope="module")
def landcover(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A 320 x 288 land-cover scene (EPSG:32637, 0.5 m) with a nodata corner (value 0)."""
    tmp = tmp_path_factory.mktemp("lc")
    sc = make_landcover_scene(tmp, "lc", 320, 288, seed=3)
    with rasterio.open(sc.image) as src:
        data, profile = src.read(), src.profile
    data[:, NODATA_BLOCK[0], NODATA_BLOCK[1]] = 0
    sc.image = tmp / "lc_nodata.tif"
    with rasterio.open(sc.image, "w", **{**profile, "nodata": 0}) as dst:
        dst.write(data)
    sc.truth = sc.truth.copy()
    sc.truth[NODATA_BLOCK] = IGNORE
    return sc


def centroid_model(image: Path, truth: np.ndarray, n: int = len(LANDCOVER_CLASSES)) -> Any:
    """Nearest-colour classifier over the mean model-input colour of each painted class."""
    import tensorflow as tf

    from satseg.io.raster import to_model_input
    from satseg.io.scene import open_scene

    with open_scene(image) as src:
        rgb, _ = src.rows(0, src.height)
    x = to_model_input(rgb[None])[0]
    mu = np.stack([x[truth == i].mean(axis=0) for i in range(n)]).astype(np.float32)  # (n, 3)
    s2 = np.float32(2 * 0.08**2)
    inp = tf.keras.Input((None, None, 3))
    out = tf.keras.layers.Conv2D(n, 1, activation="softmax", name="classes")(inp)
    model = tf.keras.Model(inp, out, name="centroid_model")
    kernel = (2 * mu.T / s2).reshape(1, 1, 3, n)
    bias = -(mu**2).sum(axis=1) / s2
    model.get_layer("classes").set_weights([kernel, bias])
    return model


@pytest.fixture(scope="module")
def class_model(landcover: Any) -> Any:
    return centroid_model(landcover.image, landcover.truth)


@pytest.fixture
def class_info(model_info: dict[str, Any]) -> dict[str, Any]:
    return {**model_info, "classes": class_doc()}


@pytest.fixture(scope="module")
def predicted(
    tmp_path_factory: pytest.TempPathFactory, landcover: Any, class_model: Any
) -> dict[str, Any]:
    from tests.inference.conftest import MODEL_INFO

    out = tmp_path_factory.mktemp("pred")
    info = {**MODEL_INFO, "classes": class_doc()}
    return predict_scene(class_model, landcover.image, out, model_info=info, **FAST)


def read(path: str | Path) -> np.ndarray:
    with rasterio.open(path) as d:
        return d.read()


def gdal_category_names(path: str | Path) -> list[str]:
    """Band 1's category names as GDAL itself reads them (rasterio's libgdal via ctypes:
    rasterio has no getter, and GDAL's Python bindings are not installed)."""
    import glob

    lib = sorted(glob.glob(str(Path(rasterio.__file__).parent.parent / "rasterio.libs/libgdal*")))
    if not lib:
        pytest.skip("rasterio's bundled libgdal not found")
    gdal = ctypes.CDLL(lib[0])
    gdal.GDALOpen.restype = ctypes.c_void_p
    gdal.GDALOpen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    gdal.GDALGetRasterBand.restype = ctypes.c_void_p
    gdal.GDALGetRasterBand.argtypes = [ctypes.c_void_p, ctypes.c_int]
    gdal.GDALGetRasterCategoryNames.restype = ctypes.POINTER(ctypes.c_char_p)
    gdal.GDALGetRasterCategoryNames.argtypes = [ctypes.c_void_p]
    gdal.GDALClose.argtypes = [ctypes.c_void_p]
    gdal.GDALAllRegister()
    gdal.CPLSetThreadLocalConfigOption.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    # as a GIS opens it: sidecars read (satseg's own reads switch that off)
    gdal.CPLSetThreadLocalConfigOption(b"GDAL_PAM_ENABLED", b"YES")
    gdal.CPLSetThreadLocalConfigOption(b"GDAL_DISABLE_READDIR_ON_OPEN", b"NO")
    ds = gdal.GDALOpen(str(path).encode(), 0)
    assert ds, f"GDAL could not open {path}"
    try:
        # GTiff loads the PAM sidecar with the georeferencing, as a GIS reads it first
        gdal.GDALGetGeoTransform.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_double)]
        gdal.GDALGetGeoTransform(ds, (ctypes.c_double * 6)())
        names = gdal.GDALGetRasterCategoryNames(gdal.GDALGetRasterBand(ds, 1))
        out = []
        i = 0
        while names and names[i] is not None:
            out.append(names[i].decode())
            i += 1
        return out
    finally:
        gdal.GDALClose(ds)


def test_class_raster_has_colours_names_nodata_and_the_painted_classes(
    predicted: dict[str, Any], landcover: Any
) -> None:
    out = predicted["outputs"]
    assert set(out) == set(CLASS_OUTPUT_NAMES) and "mask" not in out
    mc = ModelClasses.from_json(class_doc())
    with rasterio.open(out["classes"]) as d:
        cls = d.read(1)
        assert d.dtypes[0] == "uint8" and d.nodata == IGNORE and d.count == 1
        assert d.crs.to_epsg() == 32637
        cmap = d.colormap(1)
        for i, rgb in enumerate(mc.rgb()):
            assert cmap[i] == (*rgb, 255)
        assert cmap[IGNORE][3] == 0
        assert d.tags()["classes"] == ",".join(LANDCOVER_CLASSES)
        assert "0 building" in (d.descriptions[0] or "")
    assert gdal_category_names(out["classes"]) == list(LANDCOVER_CLASSES)
    # nodata exactly where the scene is nodata
    nd = np.zeros(cls.shape, bool)
    nd[NODATA_BLOCK] = True
    np.testing.assert_array_equal(cls == IGNORE, nd)
    truth = landcover.truth
    for i, name in enumerate(LANDCOVER_CLASSES):
        if name == "building":  # roofs share land's colours: a colour model cannot tell
            continue
        inter = np.count_nonzero((cls == i) & (truth == i))
        union = np.count_nonzero(((cls == i) | (truth == i)) & (truth != IGNORE))
        assert inter / union > 0.85, (name, inter / union)


def test_probability_bands_agree_with_the_class_raster(predicted: dict[str, Any]) -> None:
    out = predicted["outputs"]
    with rasterio.open(out["probability"]) as d:
        prob = d.read()
        assert d.count == len(LANDCOVER_CLASSES) and d.dtypes[0] == "uint8"
        assert list(d.descriptions) == list(LANDCOVER_CLASSES)
    cls = read(out["classes"])[0]
    valid = cls != IGNORE
    top2 = np.sort(prob, axis=0)[-2:]
    clear = valid & (top2[1] > top2[0])  # no tie after rounding to uint8
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(prob.argmax(axis=0)[clear], cls[clear])
    total = prob.astype(int).sum(axis=0)[valid]
    assert np.abs(total - 255).max() <= len(LANDCOVER_CLASSES)  # softmax sums to 1
    with rasterio.open(out["uncertainty"]) as d:
        unc = d.read(1)
        assert d.tags()["uncertainty"] == "entropy"
    # sure pixels (one class near 255) are certain, ties are not
    assert unc[valid & (top2[1] > 250)].mean() < unc[valid & (top2[1] < 160)].mean()


def test_polygons_per_class_with_areas_matching_the_class_pixels(
    predicted: dict[str, Any],
) -> None:
    out = predicted["outputs"]
    cls = read(out["classes"])[0]
    doc = json.loads(Path(out["vectors"]).read_text())
    feats = doc["features"]
    assert feats and all({"class", "class_index", "area_m2"} <= set(f["properties"]) for f in feats)
    areas: dict[str, float] = {}
    for f in feats:
        p = f["properties"]
        assert LANDCOVER_CLASSES[p["class_index"]] == p["class"]
        areas[p["class"]] = areas.get(p["class"], 0.0) + p["area_m2"]
    summary = {c["name"]: c for c in predicted["class_areas"]}
    for i, name in enumerate(LANDCOVER_CLASSES):
        px_area = np.count_nonzero(cls == i) * PIXEL_M2
        assert areas.get(name, 0.0) == pytest.approx(px_area, rel=1e-3, abs=0.5), name
        assert summary[name]["area_m2"] == pytest.approx(px_area, rel=1e-3, abs=0.5)
        assert summary[name]["pixels"] == np.count_nonzero(cls == i)
        assert summary[name]["polygons"] == sum(
            1 for f in feats if f["properties"]["class"] == name
        )
    # the lake (with its island as a hole) crosses tile and chunk rows but is one polygon
    water = [f for f in feats if f["properties"]["class"] == "water"]
    big = max(water, key=lambda f: f["properties"]["area_m2"])
    assert big["properties"]["area_m2"] > 0.9 * areas["water"]
    assert len(big["geometry"]["coordinates"]) >= 2  # exterior + the island's hole


def test_stac_summary_and_quicklook(predicted: dict[str, Any]) -> None:
    out = predicted["outputs"]
    item = json.loads(Path(out["stac"]).read_text())
    assert any("classification" in e for e in item["stac_extensions"])
    asset = item["assets"]["classes"]
    assert asset["href"] == CLASS_OUTPUT_NAMES["classes"]
    rows = asset["classification:classes"]
    assert [(r["value"], r["name"]) for r in rows[:-1]] == list(enumerate(LANDCOVER_CLASSES))
    assert [r["color_hint"] for r in rows[:-1]] == [c.lstrip("#").upper() for c in COLORS]
    assert rows[-1] == {"value": 255, "name": "nodata", "title": "No data", "nodata": True}
    assert "mask" not in item["assets"]
    summary = json.loads((Path(predicted["out_dir"]) / "summary.json").read_text())
    assert summary["classes"] == list(LANDCOVER_CLASSES)
    shares = [c["share"] for c in summary["class_areas"]]
    assert sum(shares) == pytest.approx(1.0, abs=1e-4)
    land = summary["class_areas"][1]
    assert land["name"] == "land" and land["share"] > 0.5 and land["area_m2"] > 0
    assert summary["building_area_m2"] == summary["class_areas"][0]["area_m2"]
    # quicklook: class colours over the image and a legend swatch of every class
    import cv2

    ql = cv2.cvtColor(cv2.imread(out["quicklook"]), cv2.COLOR_BGR2RGB)
    assert ql.shape[:2] == (288, 320)
    legend = ql[:80, :120].reshape(-1, 3)
    for rgb in ModelClasses.from_json(class_doc()).rgb():
        assert (np.abs(legend.astype(int) - rgb).sum(axis=1) == 0).sum() >= 25, rgb


def test_same_classes_without_threads_and_with_tta(
    tmp_path: Path,
    landcover: Any,
    class_model: Any,
    class_info: dict[str, Any],
    predicted: dict[str, Any],
) -> None:
    """Streaming inline gives the same files; TTA of a per-pixel (equivariant) model changes
    no class; its uncertainty is the TTA spread."""
    inline = predict_scene(
        class_model,
        landcover.image,
        tmp_path / "inline",
        model_info=class_info,
        pipeline=False,
        **FAST,
    )
    for key in ("classes", "probability", "uncertainty"):
        np.testing.assert_array_equal(read(inline["outputs"][key]), read(predicted["outputs"][key]))
    tta = predict_scene(
        class_model, landcover.image, tmp_path / "tta", model_info=class_info, tta="flips", **FAST
    )
    np.testing.assert_array_equal(
        read(tta["outputs"]["classes"]), read(predicted["outputs"]["classes"])
    )
    with rasterio.open(tta["outputs"]["uncertainty"]) as d:
        assert d.tags()["uncertainty"] == "tta_variance"
        assert int(d.read(1).max()) <= 1  # equivariant: the views agree


def test_binary_model_info_keeps_the_binary_outputs(
    tmp_path: Path, landcover: Any, roof_model: Any, model_info: dict[str, Any]
) -> None:
    """No class table (or {}) is binary: the binary file names, a 1-band probability."""
    res = predict_scene(
        roof_model,
        landcover.image,
        tmp_path / "b",
        model_info={**model_info, "classes": {}},
        **FAST,
    )
    assert set(res["outputs"]) == set(OUTPUT_NAMES) and "class_areas" not in res
    assert read(res["outputs"]["probability"]).shape[0] == 1
