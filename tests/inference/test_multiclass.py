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
import shapely

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
    assert [c["name"] for c in doc["satseg"]["classes"]] == list(LANDCOVER_CLASSES)
    assert "threshold" not in doc["satseg"]
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


def test_column_bands_give_the_same_classes_and_polygons(
    tmp_path: Path, landcover: Any, class_model: Any, class_info: dict[str, Any]
) -> None:
    """The scene in three column bands: the same class raster, probability bands,
    uncertainty, per-class polygons and class areas as whole rows."""
    from satseg.inference.blend import column_bands

    params = {**FAST, "tile": 64, "overlap": 16}
    assert len(column_bands(320, 64, 48, 120)) == 3
    runs = [
        predict_scene(
            class_model,
            landcover.image,
            tmp_path / f"b{band}",
            model_info=class_info,
            column_band=band,
            **params,
        )
        for band in (0, 120)
    ]
    whole, banded = runs
    for key in ("classes", "probability", "uncertainty"):
        np.testing.assert_array_equal(read(banded["outputs"][key]), read(whole["outputs"][key]))
    # the same regions per class (cut into other row chunks: vertices may start elsewhere)
    va, vb = (json.loads(Path(r["outputs"]["vectors"]).read_text())["features"] for r in runs)
    assert va and len(va) == len(vb)
    for name in LANDCOVER_CLASSES:
        ga, gb = (
            shapely.union_all(
                [
                    shapely.geometry.shape(f["geometry"])
                    for f in v
                    if f["properties"]["class"] == name
                ]
            )
            for v in (va, vb)
        )
        assert shapely.symmetric_difference(ga, gb).area <= 1e-6 * max(ga.area, 1e-12), name
        assert sorted(
            f["properties"]["area_px"] for f in va if f["properties"]["class"] == name
        ) == sorted(f["properties"]["area_px"] for f in vb if f["properties"]["class"] == name)
    assert banded["class_areas"] == whole["class_areas"]


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


def test_registered_model_carries_its_class_table_into_prediction(
    settings: Any, tmp_path: Path, landcover: Any, class_model: Any
) -> None:
    """Logged with the ``classes`` run tag and registered: the version's ModelRef and the
    info from ``load_registered_model`` carry the table; prediction makes the class outputs."""
    import mlflow

    from satseg.inference.jobs import load_registered_model, predict_many
    from satseg.inference.params import PredictParams
    from satseg.registry import store, tracking
    from satseg.registry.ref import CLASSES_TAG

    data = {"dataset": "lc", "tag": "lc-v1", "md5": "0" * 32}
    tracking.setup(settings)
    with mlflow.start_run() as run:
        mlflow.set_tags({**tracking.lineage_tags(data), CLASSES_TAG: json.dumps(class_doc())})
        uri = tracking.log_keras_model(class_model)
    ref = store.register(settings, uri, run.info.run_id, tracking.lineage_tags(data))
    assert ref.classes == class_doc()
    model, info = load_registered_model(settings, ref.version)
    assert ModelClasses.from_json(info["classes"]).names == LANDCOVER_CLASSES
    params = PredictParams(**FAST)
    (res,) = predict_many(model, info, [landcover.image], tmp_path / "out", params)
    assert res["status"] == "ok" and res["model"]["version"] == ref.version
    assert [c["name"] for c in res["class_areas"]] == list(LANDCOVER_CLASSES)
    direct = predict_scene(
        class_model, landcover.image, tmp_path / "direct", model_info=info, **FAST
    )
    np.testing.assert_array_equal(
        read(res["outputs"]["classes"]), read(direct["outputs"]["classes"])
    )


def test_onnx_runtime_gives_the_class_raster_of_tensorflow(
    tmp_path: Path, landcover: Any, class_model: Any, class_info: dict[str, Any]
) -> None:
    """The multi-class model exported by registration's own step: ONNX Runtime returns every
    channel and predicts the same class raster as TensorFlow."""
    from satseg.inference.runtime import OrtPredictor
    from satseg.io.scene import open_scene
    from satseg.registry import artifacts as A

    with open_scene(landcover.image) as src:
        rgb, _ = src.rows(0, 256)
    tiles = np.stack([rgb[y : y + 128, x : x + 128] for y in (0, 128) for x in (0, 128)])
    A.export(class_model, tmp_path / "art", tiles, tiles, {"tile": 128})
    art = A.load_dir(tmp_path / "art")
    assert art is not None and art.usable("fp32")[0]
    ort = OrtPredictor(art.path("fp32"), 128, "fp32", multiclass=True)
    assert ort(tiles[:2].astype(np.float32) / 255).shape == (2, 128, 128, 5)
    info = {**class_info, "artifacts": art}
    tf_res = predict_scene(
        class_model,
        landcover.image,
        tmp_path / "tf",
        model_info=info,
        runtime="tensorflow",
        **FAST,
    )
    ort_res = predict_scene(
        class_model,
        landcover.image,
        tmp_path / "ort",
        model_info=info,
        runtime="onnxruntime",
        **FAST,
    )
    assert (tf_res["runtime"], ort_res["runtime"]) == ("tensorflow", "onnxruntime")
    a, b = read(tf_res["outputs"]["classes"]), read(ort_res["outputs"]["classes"])
    assert np.mean(a == b) > 0.999  # float32 round-off may flip an exact tie, nothing more
    prob_a, prob_b = read(tf_res["outputs"]["probability"]), read(ort_res["outputs"]["probability"])
    assert np.abs(prob_a.astype(int) - prob_b).max() <= 1


def test_a_linknet_with_five_softmax_outputs_streams_consistently(
    tmp_path: Path, landcover: Any, class_info: dict[str, Any]
) -> None:
    """A real architecture (untrained LinkNet-resnet18, 5 softmax channels) through the
    whole pass, two tile layouts: the outputs are consistent with each other."""
    from satseg.inference.engine import configure_tf

    configure_tf()
    from satseg.models.factory import build_model

    model = build_model("linknet", "resnet18", classes=5)
    res = predict_scene(
        model,
        landcover.image,
        tmp_path / "a",
        model_info=class_info,
        precision="fp32",
        tile=64,
        overlap=16,
    )
    prob, cls = read(res["outputs"]["probability"]), read(res["outputs"]["classes"])[0]
    assert prob.shape == (5, 288, 320)
    valid = cls != IGNORE
    top2 = np.sort(prob, axis=0)[-2:]
    clear = valid & (top2[1] > top2[0] + 1)
    np.testing.assert_array_equal(prob.argmax(axis=0)[clear], cls[clear])
    counts = np.bincount(cls[valid], minlength=5)
    assert [c["pixels"] for c in res["class_areas"]] == counts.tolist()


def test_blender_with_channels_reconstructs_and_stays_a_strip() -> None:
    """n channels blend like one (each channel on its own), in a strip that does not grow
    with the scene height."""
    from satseg.inference.blend import StripBlender

    def blend(field: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
        h, w, n = field.shape
        b = StripBlender(w, h, 64, 48, 4, channels=n)
        out = np.full(field.shape, np.nan, np.float32)
        for i, y in enumerate(b.ys):
            for x in b.xs:
                t = np.zeros((64, 64, n), np.float32)
                src = field[y : y + 64, x : x + 64]
                t[: src.shape[0], : src.shape[1]] = src
                b.add(y, x, t)
            upto = b.ys[i + 1] if i + 1 < len(b.ys) else h
            for r0, rows, valid in b.flush(upto):
                assert valid.shape == rows.shape[:2]
                out[r0 : r0 + rows.shape[0]] = rows
        return out, b.acc.shape

    rng = np.random.default_rng(1)
    field = rng.random((700, 150, 4), dtype=np.float32)
    out, tall = blend(field)
    np.testing.assert_allclose(out, field, atol=1e-5)
    _, short = blend(field[:130])
    assert tall == short and tall[1:] == (150, 4) and tall[0] < 300


def test_class_polygons_streamed_in_chunks_are_whole_per_class(tmp_path: Path) -> None:
    """Every 4-connected region of each class is one polygon with its class, however the
    rows are chunked; burnt back they give the class raster; IGNORE makes no polygon."""
    import cv2
    import shapely
    from affine import Affine
    from rasterio.features import rasterize

    from satseg.inference.vectorize import PolygonWriter

    h, w, names = 300, 160, ("a", "b", "c")
    noise = cv2.GaussianBlur(np.random.default_rng(4).random((h, w)).astype(np.float32), (0, 0), 4)
    cls = np.digitize(noise, np.quantile(noise, [0.4, 0.75])).astype(np.uint8)
    cls[:, 70:73] = 2  # a thin region across every chunk
    cls[250:, :30] = IGNORE
    path = tmp_path / "c.geojson"
    with PolygonWriter(path, w, h, None, Affine.identity(), classes=names) as pw:
        for r0 in range(0, h, 37):
            pw.push(r0, cls[r0 : r0 + 37])
    feats = json.loads(path.read_text())["features"]
    for i, name in enumerate(names):
        mine = [f for f in feats if f["properties"]["class"] == name]
        assert all(f["properties"]["class_index"] == i for f in mine)
        n_comp = cv2.connectedComponents((cls == i).astype(np.uint8), connectivity=4)[0] - 1
        assert len(mine) == n_comp == pw.count_by_value[i], name
        geoms = [shapely.geometry.shape(f["geometry"]) for f in mine]
        assert all(g.is_valid for g in geoms)
        burnt = rasterize([(g, 1) for g in geoms], out_shape=(h, w), dtype="uint8")
        np.testing.assert_array_equal(burnt, (cls == i).astype(np.uint8))
    assert len(feats) == pw.count


def test_int8_tensorflow_lite_returns_every_class(
    tmp_path: Path,
    landcover: Any,
    class_model: Any,
    class_info: dict[str, Any],
    predicted: dict[str, Any],
) -> None:
    """The dynamic-range int8 TFLite graph keeps the n channels: nearly the fp32 classes."""
    res = predict_scene(
        class_model,
        landcover.image,
        tmp_path / "q",
        model_info=class_info,
        **{**FAST, "precision": "int8", "runtime": "tensorflow"},
    )
    assert res["params"]["precision"] == "int8"
    a, b = read(res["outputs"]["classes"]), read(predicted["outputs"]["classes"])
    assert np.mean(a == b) > 0.98


def test_a_binary_predictor_is_refused_for_a_multiclass_model(
    class_model: Any, class_info: dict[str, Any], model_info: dict[str, Any]
) -> None:
    """One predictor serves every scene of a task: it must match the model's class table."""
    from satseg.inference.engine import as_predictor
    from satseg.inference.runtime import predictor_for

    binary = as_predictor(class_model, 128, "fp32")
    with pytest.raises(ValueError, match="binary but the model's class table is multi-class"):
        predictor_for(binary, 128, "tensorflow", "fp32", class_info)
    multi = predictor_for(class_model, 128, "tensorflow", "fp32", class_info)
    assert multi.multiclass and predictor_for(multi, 128, "auto", "auto", class_info) is multi
    assert multi(np.zeros((2, 128, 128, 3), np.float32)).shape == (2, 128, 128, 5)
    assert not predictor_for(class_model, 128, "tensorflow", "fp32", model_info).multiclass
