"""predict_scene end to end on generated scenes with a known answer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from pyproj import Transformer
from rasterio.features import rasterize
from rasterio.windows import Window

from satseg.inference.predict import predict_scene
from satseg.synthetic import make_png_pair, make_scene, rasterize_polygons

FAST = {"precision": "fp32", "tile": 128, "overlap": 32}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def read(path: str | Path) -> np.ndarray:
    with rasterio.open(path) as d:
        return d.read(1)


def polygons_in_scene_crs(geojson: str | Path, crs) -> list:
    doc = json.loads(Path(geojson).read_text())
    to = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return [
        shapely.transform(
            shapely.geometry.shape(f["geometry"]),
            lambda x, y: to.transform(x, y),
            interleaved=False,
        )
        for f in doc["features"]
    ]


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("in"), "city", 600, 440, seed=5, labelme=False)


@pytest.fixture(scope="module")
def predicted(scene, roof_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "city"
    info = {"name": "test-roof", "version": "7", "run_id": "run-abc", "dataset_tag": "demo-v1"}
    return predict_scene(roof_model, scene.image, out, model_info=info, **FAST)


def test_outputs_keep_exact_georeference_and_tags(scene, predicted) -> None:
    with rasterio.open(scene.image) as src:
        want = (src.crs, src.transform, src.width, src.height)
    for key in ("probability", "mask"):
        with rasterio.open(predicted["outputs"][key]) as d:
            assert (d.crs, d.transform, d.width, d.height) == want
            assert d.dtypes[0] == "uint8"
            tags = d.tags()
            assert tags["model_name"] == "test-roof" and tags["model_version"] == "7"
            assert tags["run_id"] == "run-abc" and tags["dataset_tag"] == "demo-v1"
            assert (tags["threshold"], tags["tile"], tags["overlap"]) == ("0.5", "128", "32")
            # Cloud-Optimized: tiled, deflate, overviews, COG layout
            assert d.profile["tiled"] and d.profile["compress"] == "deflate"
            assert d.overviews(1)
            assert d.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    assert set(np.unique(read(predicted["outputs"]["mask"]))) <= {0, 1}


def test_mask_and_polygons_land_on_the_buildings(scene, predicted) -> None:
    truth = rasterize_polygons(scene.polygons, scene.width, scene.height).astype(bool)
    mask = read(predicted["outputs"]["mask"]) == 1
    assert iou(mask, truth) > 0.85
    # GeoJSON (EPSG:4326) back to the input grid: the same pixels as the mask raster
    with rasterio.open(scene.image) as src:
        polys = polygons_in_scene_crs(predicted["outputs"]["vectors"], src.crs)
        burnt = rasterize(polys, out_shape=(src.height, src.width), transform=src.transform) == 1
    assert len(polys) == predicted["polygons"] > 10
    assert iou(burnt, mask) > 0.99
    # and each polygon sits on one generated building, with its area in m² (0.5 m pixels)
    doc = json.loads(Path(predicted["outputs"]["vectors"]).read_text())
    for f, g in zip(doc["features"], polys, strict=True):
        with rasterio.open(scene.image) as src:
            px = rasterize([g], out_shape=(src.height, src.width), transform=src.transform) == 1
        assert truth[px].mean() > 0.8
        assert f["properties"]["area_m2"] == pytest.approx(
            f["properties"]["area_px"] * 0.25, rel=1e-3
        )


def test_geojson_is_rfc7946_and_stac_item_describes_assets(predicted) -> None:
    doc = json.loads(Path(predicted["outputs"]["vectors"]).read_text())
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    for f in doc["features"]:
        ring = f["geometry"]["coordinates"][0]
        assert ring[0] == ring[-1]
        assert shapely.LinearRing(ring).is_ccw  # exterior counter-clockwise
        assert all(38.9 < x < 39.1 and 25.2 < y < 25.4 for x, y in ring)  # UTM 37N scene
    item = json.loads(Path(predicted["outputs"]["stac"]).read_text())
    assert item["stac_version"] == "1.0.0" and item["id"] == "city"
    assert item["properties"]["proj:epsg"] == 32637
    assert {"probability", "mask", "vectors", "quicklook"} <= set(item["assets"])
    out_dir = Path(predicted["out_dir"])
    assert all((out_dir / a["href"]).is_file() for k, a in item["assets"].items() if k != "source")
    bx = item["bbox"]
    assert bx[0] <= doc["bbox"][0] and bx[2] >= doc["bbox"][2]
    ql = Path(predicted["outputs"]["quicklook"]).read_bytes()
    assert ql[:8] == b"\x89PNG\r\n\x1a\n"


def _shifted_copy(src_path: Path, dst: Path, off: int) -> Path:
    with rasterio.open(src_path) as s:
        win = Window(off, off, s.width - off, s.height - off)
        prof = {
            **s.profile,
            "width": s.width - off,
            "height": s.height - off,
            "transform": s.window_transform(win),
        }
        with rasterio.open(dst, "w", **prof) as d:
            d.write(s.read(window=win))
    return dst


def test_no_seams_whole_vs_shifted_by_half_a_tile(tmp_path, context_model) -> None:
    tile, overlap, off = 128, 32, 64
    sc = make_scene(tmp_path, "big", 640, 640, seed=9, labelme=False, geojson=False)
    shifted = _shifted_copy(sc.image, tmp_path / "shifted.tif", off)
    kw = {"tile": tile, "overlap": overlap, "precision": "fp32", "opening_px": 0, "min_area_px": 0}

    def run(path: Path, name: str, window: str) -> tuple[np.ndarray, np.ndarray]:
        r = predict_scene(context_model, path, tmp_path / name, window=window, **kw)
        return read(r["outputs"]["probability"]).astype(int), read(r["outputs"]["mask"])

    m = 32  # away from scene edges (> receptive field / 2)
    errors = {}
    for window in ("hann", "uniform"):
        p_whole, k_whole = run(sc.image, f"whole-{window}", window)
        p_shift, k_shift = run(shifted, f"shift-{window}", window)
        a = p_whole[off + m : -m, off + m : -m]
        b = p_shift[m:-m, m:-m]
        errors[window] = (
            np.abs(a - b).mean(),
            np.abs(a - b).max(),
            (k_whole[off + m : -m, off + m : -m] == k_shift[m:-m, m:-m]).mean(),
        )
        if window == "hann":
            # no visible tile grid: pixel steps across tile-edge columns look like elsewhere
            step = np.abs(np.diff(p_whole[m:-m, m:-m], axis=1)).mean(axis=0)
            stride = tile - overlap
            edges = [x - m - 1 for x in range(stride, 640 - m, stride)] + [
                x + tile - m - 1 for x in range(0, 640 - tile - m, stride) if x + tile - m - 1 > 0
            ]
            edges = [e for e in edges if 0 <= e < step.size]
            assert step[edges].mean() < 1.3 * np.median(step)
    mean_h, max_h, agree_h = errors["hann"]
    mean_u, max_u, _ = errors["uniform"]
    # overlap ≈ receptive field: the hardest case; uint8 probability units
    assert mean_h < 1.0 and max_h <= 16 and agree_h > 0.998, errors
    # the check is sensitive: plain averaging of overlaps shows the tile edges
    assert max_u > 4 * max_h and mean_u > 4 * mean_h, errors


def test_nodata_in_nodata_out(tmp_path, roof_model) -> None:
    sc = make_scene(tmp_path, "nd", 520, 300, seed=2, nodata=0, nodata_border=200, labelme=False)
    r = predict_scene(roof_model, sc.image, tmp_path / "out", **FAST)
    with rasterio.open(sc.image) as s:
        nd_in = s.read_masks(1) == 0
    assert nd_in[:, :200].all() and not nd_in[:, 200:].any()
    with rasterio.open(r["outputs"]["probability"]) as d:
        np.testing.assert_array_equal(d.read_masks(1) == 0, nd_in)
    mask = read(r["outputs"]["mask"])
    np.testing.assert_array_equal(mask == 255, nd_in)
    assert (mask[:, 200:] == 1).any()
    assert r["tiles_skipped_nodata"] > 0  # whole-nodata tiles are not sent to the model
    with rasterio.open(sc.image) as s:
        polys = polygons_in_scene_crs(r["outputs"]["vectors"], s.crs)
        burnt = rasterize(polys, out_shape=nd_in.shape, transform=s.transform)
    assert not burnt[nd_in].any()


@pytest.mark.parametrize(
    ("bands", "dtype"), [(1, "uint8"), (4, "uint8"), (3, "uint16"), (1, "uint16")]
)
def test_band_counts_and_uint16(tmp_path, roof_model, bands: int, dtype: str) -> None:
    sc = make_scene(
        tmp_path,
        f"b{bands}{dtype}",
        300,
        260,
        seed=4,
        bands=bands,
        dtype=dtype,
        labelme=False,
        geojson=False,
    )
    r = predict_scene(roof_model, sc.image, tmp_path / "out", **FAST)
    with rasterio.open(sc.image) as s, rasterio.open(r["outputs"]["mask"]) as d:
        assert (d.crs, d.transform, d.shape) == (s.crs, s.transform, s.shape)
        mask = d.read(1) == 1
    truth = rasterize_polygons(sc.polygons, sc.width, sc.height).astype(bool)
    if bands >= 3:  # colour: every roof is red-bright
        assert iou(mask, truth) > 0.7
    else:  # grey: white roofs only, and nothing outside buildings
        assert mask.sum() > 200 and truth[mask].mean() > 0.9
    assert r["scaler"]["dtype"] == dtype and len(r["scaler"]["bands"]) == min(bands, 3)


def test_png_input_works_in_pixel_space_with_warning(tmp_path, roof_model) -> None:
    sc = make_png_pair(tmp_path, "plain", 300, 240, seed=6)
    r = predict_scene(roof_model, sc.image, tmp_path / "out", **FAST)
    assert r["georeferenced"] is False and "pixel space" in r["warnings"][0]
    item = json.loads(Path(r["outputs"]["stac"]).read_text())
    assert item["geometry"] is None and item["properties"]["satseg:warnings"] == r["warnings"]
    doc = json.loads(Path(r["outputs"]["vectors"]).read_text())
    assert "pixel space" in doc["satseg"]["warning"]
    polys = [shapely.geometry.shape(f["geometry"]) for f in doc["features"]]
    burnt = rasterize(polys, out_shape=(240, 300)) == 1  # pixel coordinates
    truth = rasterize_polygons(sc.polygons, 300, 240).astype(bool)
    assert iou(burnt, truth) > 0.8
    assert all("area_m2" not in f["properties"] for f in doc["features"])
    with rasterio.open(r["outputs"]["mask"]) as d:
        assert d.crs is None and d.shape == (240, 300)


def test_rerun_is_skipped_and_new_model_version_recomputes(tmp_path, roof_model) -> None:
    sc = make_scene(tmp_path, "idem", 200, 200, seed=1, labelme=False, geojson=False)
    info = {"name": "m", "version": "1", "run_id": "r1"}
    first = predict_scene(roof_model, sc.image, tmp_path / "o", model_info=info, **FAST)
    stamp = {k: Path(v).stat().st_mtime_ns for k, v in first["outputs"].items()}
    again = predict_scene(roof_model, sc.image, tmp_path / "o", model_info=info, **FAST)
    assert again["status"] == "skipped"
    assert {k: Path(v).stat().st_mtime_ns for k, v in first["outputs"].items()} == stamp
    newer = predict_scene(
        roof_model, sc.image, tmp_path / "o", model_info={**info, "version": "2"}, **FAST
    )
    assert newer["status"] == "ok"
    with rasterio.open(newer["outputs"]["mask"]) as d:
        assert d.tags()["model_version"] == "2"
    np.testing.assert_array_equal(read(first["outputs"]["mask"]), read(newer["outputs"]["mask"]))
    assert not list((tmp_path / "o").glob(".*"))  # no temp files left behind


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_faster_precisions_match_fp32(tmp_path, roof_model, precision) -> None:
    from satseg.inference.engine import cpu_has_bf16

    if precision == "bf16" and not cpu_has_bf16():
        pytest.skip("CPU without native bfloat16")
    sc = make_scene(tmp_path, "pr", 256, 256, seed=8, labelme=False, geojson=False)
    kw = {**FAST, "opening_px": 0, "min_area_px": 0}
    a = predict_scene(roof_model, sc.image, tmp_path / "a", **kw)
    b = predict_scene(roof_model, sc.image, tmp_path / "b", **{**kw, "precision": precision})
    assert b["params"]["precision"] == precision
    pa, pb = (
        read(a["outputs"]["probability"]).astype(int),
        read(b["outputs"]["probability"]).astype(int),
    )
    assert np.abs(pa - pb).mean() < 2
    assert iou(read(a["outputs"]["mask"]) == 1, read(b["outputs"]["mask"]) == 1) > 0.97


def test_threaded_pipeline_gives_the_same_outputs(tmp_path, roof_model) -> None:
    sc = make_scene(tmp_path, "pipe", 530, 410, seed=12, nodata=0, nodata_border=50, labelme=False)
    a = predict_scene(roof_model, sc.image, tmp_path / "a", pipeline=True, **FAST)
    b = predict_scene(roof_model, sc.image, tmp_path / "b", pipeline=False, **FAST)
    for key in ("probability", "mask"):
        np.testing.assert_array_equal(read(a["outputs"][key]), read(b["outputs"][key]), err_msg=key)
    va, vb = (json.loads(Path(r["outputs"]["vectors"]).read_text()) for r in (a, b))
    assert va == vb


def test_threads_share_gdal_safely_under_cache_pressure(tmp_path, roof_model, monkeypatch) -> None:
    """Regression: with a tiny block cache, reads evict the writer's dirty blocks; without
    the GDAL lock this failed ("Write failed") or hung within a few dozen scenes."""
    import satseg.io.gdal as gdal_mod

    monkeypatch.setattr(gdal_mod, "GDAL_CACHE_MB", 8)
    sc = make_scene(tmp_path, "st", 1500, 1300, seed=3, nodata=0, nodata_border=100, labelme=False)
    first = None
    for _ in range(8):
        r = predict_scene(roof_model, sc.image, tmp_path / "o", force=True, **FAST)
        with rasterio.open(r["outputs"]["probability"]) as d:
            now = (d.read(1), d.read_masks(1))
        if first is None:
            first = now
        assert (now[0] == first[0]).all() and (now[1] == first[1]).all()


def test_full_width_nodata_bands_after_a_partial_batch(tmp_path, roof_model) -> None:
    """Rows of all-nodata tiles after a batch was started (3 tiles a row, batch 2) and at the
    bottom: the pending batch is predicted before it outgrows the strip buffer (it raised
    "outside the strip buffer" before), and the outputs equal those of batch 1."""
    sc = make_scene(tmp_path, "band", 160, 352, seed=2, nodata=0, labelme=False)
    with rasterio.open(sc.image, "r+") as d:
        a = d.read()
        a[:, 48:208] = 0  # tile rows 1-3 (tile 64, stride 48) hold only nodata
        a[:, 300:] = 0  # and the last ones
        d.write(a)
    runs = {}
    for batch in (2, 1):
        params = {**FAST, "tile": 64, "overlap": 16, "batch_size": batch}
        r = predict_scene(roof_model, sc.image, tmp_path / f"out{batch}", **params)
        assert r["tiles_skipped_nodata"] >= 9
        with rasterio.open(r["outputs"]["probability"]) as p:
            runs[batch] = (p.read(1), p.read_masks(1))
    # the same probabilities (uint8; a batch's size may move one rounding by 1)
    diff = np.abs(runs[2][0].astype(int) - runs[1][0].astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    np.testing.assert_array_equal(runs[2][1] == 0, (a == 0).all(axis=0))


@pytest.mark.parametrize("tta", ["none", "flips"])
def test_column_bands_give_the_whole_row_outputs(tmp_path, context_model, tta: str) -> None:
    """A scene streamed in column bands (3 here) writes the same rasters, mask and polygons
    as one pass of whole rows: nodata, a 31 px receptive field across band edges, and the
    TTA spread carried like the probability."""
    sc = make_scene(tmp_path, "wide", 600, 300, seed=8, nodata=0, nodata_border=150, labelme=False)
    runs = {}
    for band in (0, 250):
        out = tmp_path / f"b{band}"
        runs[band] = predict_scene(context_model, sc.image, out, column_band=band, tta=tta, **FAST)
    whole, banded = runs[0], runs[250]
    for key in ("probability", "mask", "uncertainty"):
        with rasterio.open(whole["outputs"][key]) as a, rasterio.open(banded["outputs"][key]) as b:
            np.testing.assert_array_equal(a.read(), b.read(), err_msg=key)
            np.testing.assert_array_equal(a.read_masks(1), b.read_masks(1), err_msg=key)
    va, vb = (json.loads(Path(r["outputs"]["vectors"]).read_text()) for r in (whole, banded))
    assert va["features"] and va["features"] == vb["features"]
    for k in ("tiles", "tiles_skipped_nodata", "polygons", "positive_fraction"):
        assert whole[k] == banded[k], k
    assert whole["tiles_skipped_nodata"] > 0
    ql = [cv2_read(r["outputs"]["quicklook"]) for r in (whole, banded)]
    np.testing.assert_array_equal(ql[0], ql[1])


def cv2_read(path: str | Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path))
    assert img is not None, path
    return img


class _ThresholdPredictor:
    """A predictor without TensorFlow (red channel > 0.5): the memory test measures the
    pipeline's own buffers, not a model's."""

    precision, runtime, multiclass = "fp32", "tensorflow", False

    def __init__(self, tile: int) -> None:
        from satseg.inference.runtime import Choice

        self.tile = tile
        self.choice = Choice("tensorflow", "fp32", "test predictor")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x[..., 0] > 0.5).astype(np.float32)


def test_memory_stays_flat_in_the_scene_width(tmp_path) -> None:
    """Peak traced (numpy) memory of predict_scene for a 4x wider scene: whole rows grow
    with the width, column bands do not (the quicklook, at most 1024 px a side, is the
    same for both widths)."""
    import tracemalloc

    peaks = {}
    params = {**FAST, "tile": 256, "overlap": 64}
    for width in (2048, 8192):
        sc = make_scene(tmp_path, f"w{width}", width, 520, seed=1, labelme=False)
        for band in (0, 2048):
            tracemalloc.start()
            predict_scene(
                _ThresholdPredictor(256),
                sc.image,
                tmp_path / f"o{width}-{band}",
                column_band=band,
                **params,
            )
            peaks[width, band] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
    assert peaks[8192, 0] > 2.5 * peaks[2048, 0], peaks  # whole rows: grows with the width
    # bands: only whole-row uint8 mask work (~1 byte a pixel of ~200 rows) grows
    assert peaks[8192, 2048] < 1.5 * peaks[2048, 2048], peaks


def test_nodata_rows_after_a_batch_that_ended_with_its_row(tmp_path, roof_model) -> None:
    """Two tiles a row, the first all nodata: a batch starts mid-row 0 and ends with row 1,
    so row 2 starts with no batch pending; its nodata rows raised "outside the strip
    buffer" (they arrived before the flush of the rows above). Now predicted, and equal to
    batch 1."""
    sc = make_scene(tmp_path, "n", 224, 300, seed=8, nodata=0, nodata_border=150, labelme=False)
    probs = []
    for batch in (2, 1):
        r = predict_scene(roof_model, sc.image, tmp_path / f"o{batch}", batch_size=batch, **FAST)
        assert r["tiles_skipped_nodata"] == 3
        probs.append(read(r["outputs"]["probability"]))
    np.testing.assert_array_equal(probs[0], probs[1])


def test_column_bands_make_the_mask_while_the_last_band_runs(tmp_path, monkeypatch) -> None:
    """With column bands the mask and polygons need whole rows; they follow the last band
    down the scene (rows it finished are finished in every band) instead of waiting for
    the end, so that work overlaps the model."""
    from satseg.inference import postprocess

    calls = {"model": 0, "first_mask_push": None}

    class Counting(_ThresholdPredictor):
        def __call__(self, x: np.ndarray) -> np.ndarray:
            calls["model"] += 1
            return super().__call__(x)

    push = postprocess.MaskStream.push

    def recording(self, *a, **kw):
        if calls["first_mask_push"] is None:
            calls["first_mask_push"] = calls["model"]
        return push(self, *a, **kw)

    monkeypatch.setattr(postprocess.MaskStream, "push", recording)
    sc = make_scene(tmp_path, "cu", 600, 700, seed=4, labelme=False)
    r = predict_scene(
        Counting(128), sc.image, tmp_path / "o", column_band=250, pipeline=False, **FAST
    )
    from satseg.inference.blend import positions

    rows, n_calls = len(positions(700, 128, 96)), calls["model"]
    assert r["tiles"] == 6 * rows and n_calls == 3 * rows  # 3 bands of 2 tiles: 1 call a row
    # the last band's calls are the final ``rows``: whole rows began among them
    assert n_calls - rows < calls["first_mask_push"] < n_calls, calls


def test_tiles_are_batched_off_the_model_thread_and_timings_say_where_time_went(
    tmp_path, monkeypatch
) -> None:
    """With the pipeline on, cutting and scaling tiles runs on its own thread a batch ahead
    (the model's thread only runs the model); ``timings`` in the summary splits the pass
    into model, writer and publishing time. Without the pipeline it all runs inline."""
    import threading
    import time

    from satseg.inference import predict as predict_mod

    scaled_on: set[str] = set()
    model_on: set[str] = set()
    real = predict_mod.to_model_input

    def recording(x: np.ndarray) -> np.ndarray:
        scaled_on.add(threading.current_thread().name)
        return real(x)

    class Slow(_ThresholdPredictor):
        def __call__(self, x: np.ndarray) -> np.ndarray:
            model_on.add(threading.current_thread().name)
            time.sleep(0.01)
            return super().__call__(x)

    monkeypatch.setattr(predict_mod, "to_model_input", recording)
    sc = make_scene(tmp_path, "bt", 500, 450, seed=5, labelme=False)
    r = predict_scene(Slow(128), sc.image, tmp_path / "o", **FAST)
    main = threading.main_thread().name
    assert model_on == {main} and main not in scaled_on and scaled_on, (model_on, scaled_on)
    t = r["timings"]
    assert set(t) == {
        "stream_s",
        "model_s",
        "writer_busy_s",
        "writer_cpu_s",
        "waited_for_writer_s",
        "writer_tail_s",
        "publish_s",
    }
    n_batches = -(-(r["tiles"] - r["tiles_skipped_nodata"]) // 2)  # FAST: the default batch
    assert t["model_s"] >= 0.01 * n_batches * 0.9 and t["model_s"] <= t["stream_s"]
    assert t["writer_busy_s"] > 0 and t["publish_s"] > 0
    assert r["model_seconds"] == round(t["model_s"], 3)
    scaled_on.clear(), model_on.clear()
    inline = predict_scene(Slow(128), sc.image, tmp_path / "i", pipeline=False, **FAST)
    assert scaled_on == model_on == {main}
    assert inline["timings"]["waited_for_writer_s"] == 0.0
    for key in ("probability", "mask"):
        np.testing.assert_array_equal(read(r["outputs"][key]), read(inline["outputs"][key]))
