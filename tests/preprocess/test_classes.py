"""Class tables: labels -> class-index masks in painter's order, holes, unknown labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml
from affine import Affine
from pyproj import CRS

from satseg.classes import BINARY_FG, IGNORE, ClassTable
from satseg.ingest.errors import IngestError
from satseg.ingest.labels import (
    _labelme_bulk,
    _labelme_shapes,
    _Rule,
    geojson_labels,
    labelme_labels,
)
from satseg.io.mask import MaskReader
from satseg.params import IngestParams, ParamsError, load_params
from satseg.preprocess.masks import PolygonSet, rasterize

REPO = Path(__file__).resolve().parents[2]
CLASSES = [
    {"name": "building", "color": "#3c1098", "values": [1]},
    {"name": "land", "color": "#8429f6", "values": [2]},
    {"name": "road", "color": "#6ec1e4", "labels": ["road", "street"], "values": [3]},
]
B, L, R = 0, 1, 2  # class indices


def _table(**kw) -> ClassTable:
    t = ClassTable.from_params(IngestParams(classes=CLASSES, **kw))
    assert t is not None
    return t


def _sq(x0: float, y0: float, x1: float, y1: float, label: str, **kw) -> dict:
    pts = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
    return {"label": label, "points": pts, "shape_type": "polygon", **kw}


def _doc(shapes: list[dict], w: int = 40, h: int = 40) -> dict:
    return {"shapes": shapes, "imageWidth": w, "imageHeight": h}


def _mask(doc: dict, table: ClassTable | None, w: int = 40, h: int = 40) -> np.ndarray:
    lab = labelme_labels(doc, w, h, table=table)
    fill = table.unlabeled if table is not None else 0
    return rasterize(PolygonSet.from_geometries(lab.geometries, lab.values), w, h, fill)


# land everywhere, a hole in it, a building inside the hole, a road over the land
NESTED = [
    _sq(0, 0, 39, 39, "land", group_id=7),
    _sq(10, 10, 29, 29, "land", group_id=7, flags={"hole": True}),
    _sq(14, 14, 19, 19, "building"),
    _sq(0, 35, 39, 39, "street"),
]


def test_painters_order_and_holes_give_the_hand_made_label_map() -> None:
    got = _mask(_doc(NESTED), _table())
    want = np.full((40, 40), L, np.uint8)
    want[10:30, 10:30] = IGNORE  # the hole is unlabeled ...
    want[14:20, 14:20] = B  # ... except the building painted after it
    want[35:40, :] = R  # 'street' is one of the road class's labels
    np.testing.assert_array_equal(got, want)


def test_a_background_class_fills_what_no_shape_covers() -> None:
    got = _mask(_doc([_sq(5, 5, 9, 9, "building")]), _table(unlabeled="land"))
    assert got[0, 0] == L and got[7, 7] == B and (got != IGNORE).all()


def test_binary_honours_holes_and_is_otherwise_unchanged() -> None:
    ring = [_sq(0, 0, 19, 19, "building", group_id=1)]
    hole = [_sq(5, 5, 9, 9, "building", group_id=1, flags={"hole": True})]
    plain = _mask(_doc(ring), None)
    assert (plain[:20, :20] == BINARY_FG).all() and (plain[20:, :] == 0).all()
    holed = _mask(_doc(ring + hole), None)
    assert (holed[5:10, 5:10] == 0).all() and holed[0, 0] == BINARY_FG
    legacy = PolygonSet.from_geometries(labelme_labels(_doc(ring), 40, 40).geometries)
    np.testing.assert_array_equal(rasterize(legacy, 40, 40) * 255, plain)  # OR path, same pixels


def test_unknown_label_is_named_or_skipped() -> None:
    doc = _doc([_sq(0, 0, 9, 9, "building"), _sq(10, 10, 19, 19, "swimming pool")])
    with pytest.raises(IngestError) as e:
        labelme_labels(doc, 40, 40, table=_table())
    assert e.value.check == "unknown_label" and "'swimming pool'" in str(e.value)
    assert "building, land, road, street" in str(e.value)
    lab = labelme_labels(doc, 40, 40, table=_table(unknown_label="ignore"))
    assert lab.values == [B] and lab.ignored == 1


def test_a_hole_without_its_outer_ring_is_rejected() -> None:
    doc = _doc([_sq(5, 5, 9, 9, "land", group_id=3, flags={"hole": True})])
    with pytest.raises(IngestError) as e:
        labelme_labels(doc, 40, 40, table=_table())
    assert e.value.check == "labelme_holes" and "group_id 3" in str(e.value)


def test_bulk_and_shape_by_shape_paths_agree_on_classes() -> None:
    kw = {"tolerance_px": 1.0, "name": "t"}
    bulk = _labelme_bulk(NESTED, 40, 40, rule=_Rule(table=_table()), **kw)
    slow = _labelme_shapes(NESTED, 40, 40, rule=_Rule(table=_table()), **kw)
    assert bulk is not None
    assert bulk.values == slow.values == [L, IGNORE, B, R]
    assert [g.wkt for g in bulk.geometries] == [g.wkt for g in slow.geometries]
    assert bulk.holes == slow.holes == 1


def test_geojson_values_from_a_named_property() -> None:
    def feat(x0: float, value: str) -> dict:
        ring = [[x0, 0], [x0 + 10, 0], [x0 + 10, -10], [x0, -10], [x0, 0]]
        return {
            "type": "Feature",
            "properties": {"lc": value, "label": "ignored"},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        }

    doc = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "EPSG:32633"}},
        "features": [feat(500000, "land"), feat(500020, "road")],
    }
    t = Affine(1, 0, 500000, 0, -1, 0)
    lab = geojson_labels(doc, CRS.from_epsg(32633), t, 40, 40, table=_table(), label_property="lc")
    assert lab.values == [L, R]
    with pytest.raises(IngestError, match="'ignored' is not in the class table"):
        geojson_labels(doc, CRS.from_epsg(32633), t, 40, 40, table=_table())


def test_mask_raster_values_map_through_the_table(tmp_path: Path) -> None:
    data = np.array([[0, 1, 2], [3, 9, 1]], np.uint8)
    path = tmp_path / "m.tif"
    with rasterio.open(path, "w", driver="GTiff", width=3, height=2, count=1, dtype="uint8") as d:
        d.write(data, 1)
    with MaskReader(path, lut=_table().value_lut()) as m:
        got = m.rows(0, 2)
    np.testing.assert_array_equal(got, [[IGNORE, B, L], [R, IGNORE, B]])  # 0 and 9: unmapped


@pytest.mark.parametrize(
    ("ingest", "needle"),
    [
        ({"classes": CLASSES, "labels": ["building"]}, "not both"),
        ({"classes": CLASSES, "unlabeled": "sky"}, "'sky'"),
        ({"classes": [*CLASSES, {"name": "rail", "labels": ["road"]}]}, "'road' maps to both"),
        ({"classes": [{"name": "a", "values": [1]}, {"name": "b", "values": [1]}]}, "value 1"),
        ({"classes": [{"name": "a", "values": [255]}]}, "255 is ignore"),
        ({"classes": [{"name": "Bad Name"}]}, "name"),
    ],
)
def test_bad_class_tables_are_named(tmp_path: Path, ingest: dict, needle: str) -> None:
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"ingest": ingest}))
    with pytest.raises(ParamsError) as e:
        load_params(p)
    assert needle in str(e.value)


def test_the_shipped_multiclass_params_validate() -> None:
    params = load_params(REPO / "include" / "params.multiclass.yaml")
    table = ClassTable.from_params(params.ingest)
    assert table is not None and table.names == ("building", "land", "road", "vegetation", "water")
    assert table.unlabeled == IGNORE
    assert json.loads(json.dumps(table.to_json()))["classes"][4]["name"] == "water"


def test_training_reads_a_class_table_dataset_and_refuses_a_broken_table(tmp_path: Path) -> None:
    from satseg.classes import binary_json
    from satseg.training.data import DatasetError, dataset_classes, read_manifest

    table = _table()
    doc = {"dataset": "lc", "tag": "lc-v1", "counts": {"train": 1, "val": 1}}
    (tmp_path / "manifest.json").write_text(json.dumps({**doc, "classes": table.to_json()}))
    assert read_manifest(tmp_path)["classes"] == table.to_json()
    assert dataset_classes(tmp_path).names == ("building", "land", "road")
    one = {**table.to_json(), "classes": table.to_json()["classes"][:1]}
    (tmp_path / "manifest.json").write_text(json.dumps({**doc, "classes": one}))
    with pytest.raises(DatasetError, match="at least 2 classes"):
        read_manifest(tmp_path)
    gaps = {**table.to_json(), "classes": table.to_json()["classes"][1:]}  # indices 1, 2
    (tmp_path / "manifest.json").write_text(json.dumps({**doc, "classes": gaps}))
    with pytest.raises(DatasetError, match="bad class table"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({**doc, "classes": binary_json()}))
    assert read_manifest(tmp_path)["dataset"] == "lc" and not dataset_classes(tmp_path).multiclass


def test_model_classes_binary_default_and_multiclass_round_trip() -> None:
    from satseg.classes import ClassTable, ModelClasses
    from satseg.params import IngestParams

    old = ModelClasses.from_json(None)  # a model registered before class tables
    assert (old.names, old.multiclass, old.channels) == (("building",), False, 1)
    ing = IngestParams.model_validate(
        {"classes": [{"name": "land", "color": "#aa8800"}, {"name": "water", "color": "#0000ff"}]}
    )
    table = ClassTable.from_params(ing)
    assert table is not None
    mc = ModelClasses.from_json(table.to_json())
    assert mc.names == ("land", "water") and mc.multiclass and mc.channels == 2
    assert mc.rgb() == [(0xAA, 0x88, 0x00), (0, 0, 255)]


def test_rare_classes_get_the_oversampled_copies() -> None:
    from satseg.preprocess.dataset import oversampled, rare_classes

    # px: land, water, ignore; water is 10 % of the train pixels -> rare
    patches = [{"id": f"l{i}", "px": [100, 0, 0], "positive": True} for i in range(8)] + [
        {"id": "w", "px": [20, 80, 0], "positive": True},
        {"id": "v", "px": [90, 8, 2], "positive": True},
    ]
    scenes = [{"scene": "a", "patches": patches}]
    rare = rare_classes(scenes, {"a": {p["id"]: "train" for p in patches}})
    assert rare == [1]
    assert [p["id"] for p in patches if oversampled(p, rare, 0.1)] == ["w"]
    # a binary patch is oversampled when positive, exactly as before
    assert oversampled({"positive": True}, [], 0.1) and not oversampled(
        {"positive": False}, [], 0.1
    )
