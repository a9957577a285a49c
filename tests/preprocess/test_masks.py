"""Polygon -> mask: pixel-exact for axis-aligned shapes, holes, multipolygons, any window."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import rasterio
import shapely
from shapely.geometry import MultiPolygon, Polygon, box

from satseg.ingest.errors import IngestError
from satseg.ingest.labels import (
    _labelme_bulk,
    _labelme_shapes,
    _Rule,
    geojson_labels,
    labelme_labels,
)
from satseg.preprocess.masks import PolygonSet, rasterize
from satseg.synthetic import labelme_doc, make_scene, rasterize_polygons


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_axis_aligned_shapes_are_pixel_exact() -> None:
    ring = box(10, 20, 50, 60)  # x 10..50, y 20..60: boundary pixels included
    holed = Polygon(
        box(100, 100, 140, 140).exterior.coords, [box(110, 110, 120, 130).exterior.coords]
    )
    multi = MultiPolygon([box(0, 150, 9, 159), box(20, 150, 29, 159)])
    overlap = [box(60, 0, 80, 20), box(70, 10, 90, 30)]
    mask = rasterize(PolygonSet.from_geometries([ring, holed, multi, *overlap]), 160, 170)
    want = np.zeros((170, 160), np.uint8)
    want[20:61, 10:51] = 1
    want[100:141, 100:141] = 1
    want[111:130, 111:120] = 0  # hole interior (its boundary pixels belong to the polygon)
    want[150:160, 0:10] = 1
    want[150:160, 20:30] = 1
    want[0:21, 60:81] = 1
    want[10:31, 70:91] = 1  # overlapping polygons unite, no even-odd gap
    assert np.array_equal(mask, want)


@pytest.mark.parametrize("offset", [(0, 0), (37, 91), (128, 255), (129, 3)])
def test_windows_stitch_to_the_whole_mask(offset: tuple[int, int]) -> None:
    s = make_scene.__globals__["building_polygons"](600, 500, seed=3)
    polys = PolygonSet.from_geometries(Polygon(p) for p in s)
    whole = rasterize(polys, 600, 500)
    r0, c0 = offset
    win = polys.burn(np.zeros((200, 150), np.uint8), r0, c0)
    assert np.array_equal(win, whole[r0 : r0 + 200, c0 : c0 + 150][: win.shape[0], : win.shape[1]])


def test_labelme_mask_equals_generator_mask(tmp_path) -> None:
    s = make_scene(tmp_path, "s", 512, 384, seed=5, geojson=False)
    labels = labelme_labels(json.loads(s.labelme.read_text()), 512, 384)
    assert labels.repaired == 0 and len(labels.geometries) == len(s.polygons)
    mask = rasterize(PolygonSet.from_geometries(labels.geometries), 512, 384)
    assert np.array_equal(mask, rasterize_polygons(s.polygons, 512, 384))


def test_geojson_native_crs_integer_boxes_pixel_exact(tmp_path) -> None:
    polys = [np.array([[10, 10], [60, 10], [60, 40], [10, 40]], float)]
    s = make_scene(tmp_path, "g", 128, 128, seed=1, labelme=False)
    from satseg.synthetic import write_geojson

    with rasterio.open(s.image) as src:
        write_geojson(tmp_path / "g.geojson", polys, src.transform, "EPSG:32637")
        lab = geojson_labels(
            json.loads((tmp_path / "g.geojson").read_text()), src.crs, src.transform, 128, 128
        )
    mask = rasterize(PolygonSet.from_geometries(lab.geometries), 128, 128)
    assert np.array_equal(mask, rasterize_polygons(polys, 128, 128))


def test_geojson_reprojected_from_wgs84(tmp_path) -> None:
    s = make_scene(tmp_path, "w", 400, 300, seed=8, labelme=False, geojson_crs="EPSG:4326")
    with rasterio.open(s.image) as src:
        lab = geojson_labels(json.loads(s.geojson.read_text()), src.crs, src.transform, 400, 300)
    mask = rasterize(PolygonSet.from_geometries(lab.geometries), 400, 300).astype(bool)
    ref = rasterize_polygons(s.polygons, 400, 300).astype(bool)
    assert _iou(mask, ref) > 0.98


def test_self_intersection_repaired_or_rejected() -> None:
    bowtie = {"label": "b", "points": [[0, 0], [40, 40], [40, 0], [0, 40]], "shape_type": "polygon"}
    doc = labelme_doc([], "x.png", 64, 64)
    doc["shapes"] = [bowtie]
    lab = labelme_labels(doc, 64, 64)
    assert lab.repaired == 1 and len(lab.geometries) == 2  # two triangles
    doc["shapes"] = [
        {"label": "b", "points": [[0, 0], [10, 10], [20, 20]], "shape_type": "polygon"}
    ]
    with pytest.raises(IngestError) as e:
        labelme_labels(doc, 64, 64)
    assert e.value.check == "self_intersection" and e.value.role == "annotation"


def test_shape_types_and_label_filter() -> None:
    doc = labelme_doc([], "x.png", 100, 100)
    doc["shapes"] = [
        {"label": "house", "points": [[10, 10], [30, 20]], "shape_type": "rectangle"},
        {"label": "tree", "points": [[60, 60], [70, 60]], "shape_type": "circle"},
        {"label": "road", "points": [[0, 0], [99, 99]], "shape_type": "line"},
        {"label": "edge", "points": [[-0.5, 0], [100.4, 0], [100.4, 5]]},  # within 1 px
    ]
    lab = labelme_labels(doc, 100, 100)
    assert len(lab.geometries) == 3 and lab.ignored == 1
    only = labelme_labels(doc, 100, 100, classes=["house"])
    assert len(only.geometries) == 1 and only.ignored == 3
    mask = rasterize(PolygonSet.from_geometries(only.geometries), 100, 100)
    assert mask[10:21, 10:31].all() and mask.sum() == 11 * 21


def test_empty_shapes_is_a_background_scene() -> None:
    doc = labelme_doc([], "x.png", 50, 40)
    lab = labelme_labels(doc, 50, 40)
    assert lab.geometries == [] and not rasterize(PolygonSet.from_geometries([]), 50, 40).any()


def _equal_labels(a, b) -> bool:
    return a.summary() == b.summary() and all(
        shapely.equals_exact(x, y, 0) for x, y in zip(a.geometries, b.geometries, strict=True)
    )


def test_bulk_labelme_path_equals_the_shape_by_shape_path() -> None:
    """Thousands of polygons are checked in bulk; the result is the per-shape result."""
    rng = np.random.default_rng(5)
    shapes = []
    for i in range(300):
        x, y = rng.uniform(15, 185, 2)
        n = int(rng.integers(3, 9))
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        pts = np.c_[x + 10 * np.cos(ang), y + 10 * np.sin(ang)]
        shapes.append({"label": "a" if i % 3 else "b", "points": pts.tolist()})
    shapes[7]["points"] = [[0, 0], [40, 40], [40, 0], [0, 40]]  # bow-tie: repaired
    shapes[9]["points"] = [[5, 5], [15, 5], [15, 5], [15, 15], [5, 15]]  # repeated vertex
    shapes.append({"label": "a", "points": [[1, 1], [2, 2]], "shape_type": "line"})  # ignored
    doc = labelme_doc([], "x.png", 200, 200)
    doc["shapes"] = shapes
    for classes in (None, ["a"]):
        bulk = _labelme_bulk(
            doc["shapes"], 200, 200, rule=_Rule(classes), tolerance_px=1.0, name="x"
        )
        assert bulk is not None
        slow = _labelme_shapes(
            doc["shapes"], 200, 200, rule=_Rule(classes), tolerance_px=1.0, name="x"
        )
        assert _equal_labels(bulk, slow) and bulk.repaired == 1
        assert _equal_labels(labelme_labels(doc, 200, 200, classes=classes), slow)


@pytest.mark.parametrize(
    "odd",
    [
        {"label": "r", "points": [[1, 1], [5, 5]], "shape_type": "rectangle"},
        {"label": "p", "points": [[1, 1, 0], [5, 1, 0], [5, 5, 0]]},  # 3-D points
        {"label": "p", "points": [1, 1, 5, 1, 5, 5]},  # flat list
        {"label": "p", "points": [[1, 1], [5, "x"], [5, 5]]},  # not numbers
        {"label": "p", "points": [[1, 1], [500, 1], [5, 5]]},  # outside
        {"label": "p", "points": [[1, 1], [5, 1]]},  # two points
        "not a shape",
    ],
)
def test_documents_the_bulk_path_does_not_take_give_the_per_shape_answer(odd) -> None:
    doc = labelme_doc([], "x.png", 64, 64)
    doc["shapes"] = [{"label": "p", "points": [[10, 10], [20, 10], [20, 20]]}, odd]
    assert _labelme_bulk(doc["shapes"], 64, 64, rule=_Rule(), tolerance_px=1.0, name="x") is None
    try:
        want = _labelme_shapes(doc["shapes"], 64, 64, rule=_Rule(), tolerance_px=1.0, name="x")
    except (IngestError, ValueError) as e:
        with pytest.raises(type(e), match=re.escape(str(e))):
            labelme_labels(doc, 64, 64, name="x")
    else:
        assert _equal_labels(labelme_labels(doc, 64, 64, name="x"), want)
