"""Small ingest parameters for fast tests, and builders for every bad input of the issue."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from satseg.synthetic import labelme_doc, make_png_pair, make_scene

TEST_PARAMS = {
    "preprocess": {
        "patch_size": 128,
        "stride": 128,
        "oversample": 2,
        "val_fraction": 0.25,
        "workers": 1,
    }
}


@pytest.fixture(autouse=True)
def _small_params(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """128 px patches and a 50 ms completeness poll (set before ``settings`` is built)."""
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(TEST_PARAMS))
    monkeypatch.setenv("SATSEG_PARAMS_FILE", str(p))
    monkeypatch.setenv("SATSEG_STABLE_POLLS_S", "0.05")


def _pair(folder: Path, name: str, seed: int, w: int = 256, h: int = 256, **kw) -> Path:
    """GeoTIFF + LabelMe pair named ``name``; returns the image path."""
    return make_scene(folder, name, w, h, seed, geojson=False, **kw).image


def _labelme(folder: Path, name: str, shapes: list[dict], w: int = 256, h: int = 256) -> None:
    doc = labelme_doc([], f"{name}.tif", w, h)
    doc["shapes"] = shapes
    (folder / f"{name}.json").write_text(json.dumps(doc))


def _poly(points: list[list[float]], label: str = "building") -> dict:
    return {"label": label, "points": points, "shape_type": "polygon"}


def bad_zero_byte(d: Path) -> None:
    _pair(d, "zero", 1)
    (d / "zero.tif").write_bytes(b"")


def bad_truncated_tiff(d: Path) -> None:
    img = _pair(d, "trunc", 2, 512, 512)
    data = img.read_bytes()
    img.write_bytes(data[: len(data) // 2])


def bad_corrupt_png(d: Path) -> None:
    s = make_png_pair(d, "badpng", 200, 200, 3)
    s.image.write_bytes(s.image.read_bytes()[:3000])


def bad_not_json(d: Path) -> None:
    _pair(d, "notjson", 4)
    (d / "notjson.json").write_text("{ this is not json ]")


def bad_no_shapes(d: Path) -> None:
    _pair(d, "noshapes", 5)
    doc = json.loads((d / "noshapes.json").read_text())
    del doc["shapes"]
    (d / "noshapes.json").write_text(json.dumps(doc))


def bad_two_points(d: Path) -> None:
    _pair(d, "twopts", 6)
    _labelme(d, "twopts", [_poly([[10, 10], [50, 50]])])


def bad_self_intersecting(d: Path) -> None:
    _pair(d, "selfx", 7)
    # a zero-area "polygon" whose repair leaves only a line: cannot be repaired
    _labelme(d, "selfx", [_poly([[10, 10], [60, 60], [30, 30], [90, 90]])])


def bad_points_outside(d: Path) -> None:
    _pair(d, "outside", 8)
    _labelme(d, "outside", [_poly([[10, 10], [400, 10], [400, 60], [10, 60]])])


def bad_geojson_crs(d: Path) -> None:
    s = make_scene(d, "badcrs", 256, 256, 9, labelme=False)
    doc = json.loads(s.geojson.read_text())
    doc["crs"] = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::999999"}}
    s.geojson.write_text(json.dumps(doc))


def bad_geojson_footprint(d: Path) -> None:
    s = make_scene(d, "faraway", 256, 256, 10, labelme=False)
    doc = json.loads(s.geojson.read_text())
    for f in doc["features"]:
        f["geometry"]["coordinates"] = [
            [[x + 50_000.0, y] for x, y in ring] for ring in f["geometry"]["coordinates"]
        ]
    s.geojson.write_text(json.dumps(doc))


def bad_size_mismatch(d: Path) -> None:
    _pair(d, "sizemm", 11)
    doc = json.loads((d / "sizemm.json").read_text())
    doc["imageWidth"] = 300
    (d / "sizemm.json").write_text(json.dumps(doc))


def bad_band_count(d: Path) -> None:
    _pair(d, "fiveband", 12, bands=5)


def bad_dtype(d: Path) -> None:
    _pair(d, "floaty", 13, dtype="float32")


def bad_unsafe_name(d: Path) -> None:
    _pair(d, "unsafe", 14)
    os.rename(d / "unsafe.tif", d / "un safe;rm -rf.tif")
    os.rename(d / "unsafe.json", d / "un safe;rm -rf.json")


def bad_traversal_name(d: Path) -> None:
    top = d.parent  # the inbox itself: the dataset comes from the name prefix
    _pair(top, "x..__evil", 15)  # dataset "x.." (path traversal in the dataset part)
    _pair(d, "back", 16)
    os.rename(d / "back.tif", d / "x\\..\\..\\back.tif")
    os.rename(d / "back.json", d / "x\\..\\..\\back.json")


def bad_unsupported(d: Path) -> None:
    (d / "notes.txt").write_text("hello")


def bad_missing_annotation(d: Path) -> None:
    make_scene(d, "lonely", 256, 256, 17, labelme=False, geojson=False)


BAD: dict[str, tuple[Callable[[Path], None], set[str]]] = {
    "zero_byte": (bad_zero_byte, {"empty_file"}),
    "truncated_tiff": (bad_truncated_tiff, {"decode"}),
    "corrupt_png": (bad_corrupt_png, {"truncated"}),
    "not_json": (bad_not_json, {"json_parse"}),
    "no_shapes": (bad_no_shapes, {"labelme_shapes"}),
    "two_points": (bad_two_points, {"polygon_points"}),
    "self_intersecting": (bad_self_intersecting, {"self_intersection"}),
    "points_outside": (bad_points_outside, {"points_outside"}),
    "geojson_crs": (bad_geojson_crs, {"crs"}),
    "geojson_footprint": (bad_geojson_footprint, {"footprint"}),
    "size_mismatch": (bad_size_mismatch, {"size_mismatch"}),
    "band_count": (bad_band_count, {"band_count"}),
    "dtype": (bad_dtype, {"dtype"}),
    "unsafe_name": (bad_unsafe_name, {"unsafe_name"}),
    "traversal_name": (bad_traversal_name, {"unsafe_name"}),
    "unsupported_type": (bad_unsupported, {"unsupported_type"}),
    "missing_annotation": (bad_missing_annotation, {"missing_annotation"}),
}


def drop_good(inbox: Path) -> dict[str, Path]:
    """One pair of each accepted format into ``inbox/demo`` (and a top-level prefixed PNG)."""
    d = inbox / "demo"
    out = {
        "tif_labelme": make_scene(d, "alpha", 384, 256, 21, geojson=False).image,
        # GeoJSON in WGS84: reprojected to the raster's UTM zone on ingest
        "tif_geojson": make_scene(
            d, "beta", 256, 320, 22, labelme=False, geojson_crs="EPSG:4326"
        ).image,
        "tif_mask": make_scene(
            d, "gamma", 256, 256, 23, labelme=False, geojson=False, mask_tif=True
        ).image,
        "png_labelme": make_png_pair(inbox, "demo__delta", 256, 256, 24).image,
    }
    return out


def inventory(root: Path, skip_suffixes: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """sha256 -> relative paths of regular files under root (symlinks skipped)."""
    out: dict[str, list[str]] = {}
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        if p.is_symlink() or not p.is_file() or p.name.endswith(skip_suffixes):
            continue
        out.setdefault(hashlib.sha256(p.read_bytes()).hexdigest(), []).append(
            str(p.relative_to(root))
        )
    return out


def total_bytes(root: Path, skip_suffixes: tuple[str, ...] = ()) -> int:
    return sum(
        p.stat().st_size
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and not p.name.endswith(skip_suffixes)
    )


def error_records(quarantine: Path) -> dict[str, dict]:
    """original inbox path -> its .error.json."""
    out = {}
    for p in quarantine.rglob("*.error.json"):
        rec = json.loads(p.read_text())
        out[rec["original"]] = rec
    return out


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, dirs_exist_ok=True)
