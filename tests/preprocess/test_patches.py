"""Windowed patching: exact crops, padding, nodata drop, strip-bounded reads, PNG contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from shapely.geometry import Polygon

from satseg.io.raster import make_scaler
from satseg.preprocess.masks import PolygonSet
from satseg.preprocess.patches import PatchParams, grid_positions, patch_scene
from satseg.preprocess.source import GeoTiffSource, PlainImageSource, open_source
from satseg.synthetic import make_png_pair, make_scene, rasterize_polygons


class Recording:
    """Wraps a source and records every read (instrumentation, not a stub)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.reads = inner, []
        self.width, self.height = inner.width, inner.height
        self.crs, self.transform = inner.crs, inner.transform

    def read(self, row0: int, nrows: int):
        self.reads.append((row0, nrows))
        return self.inner.read(row0, nrows)


def _png(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_grid_positions() -> None:
    assert grid_positions(100, 128, 128) == [0]
    assert grid_positions(256, 128, 128) == [0, 128]
    assert grid_positions(300, 128, 128) == [0, 128, 256]
    assert grid_positions(300, 128, 64) == [0, 64, 128, 192]


def test_patches_are_exact_crops_and_reads_are_strips(tmp_path: Path) -> None:
    s = make_scene(tmp_path, "s", 300, 200, seed=2, geojson=False)
    polys = PolygonSet.from_geometries(Polygon(p) for p in s.polygons)
    src = Recording(open_source(s.image, None, "percentile"))
    out = patch_scene(
        src, polys, tmp_path / "out", "s", PatchParams(128, 128, 0.05, 0.9), workers=2
    )
    assert out.grid == (2, 3) and len(out.patches) == 6 and out.dropped_nodata == 0
    assert max(n for _, n in src.reads) <= 128 and len(src.reads) == 2  # one strip per patch row
    with rasterio.open(s.image) as d:
        img = np.transpose(d.read(), (1, 2, 0))
    ref = rasterize_polygons(s.polygons, 300, 200)
    for p in out.patches:
        r, c = p["row"], p["col"]
        got = cv2.cvtColor(_png(tmp_path / "out" / "images" / f"{p['id']}.png"), cv2.COLOR_BGR2RGB)
        mask = _png(tmp_path / "out" / "masks" / f"{p['id']}.png")
        assert got.shape == (128, 128, 3) and mask.shape == (128, 128) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        crop = img[r : r + 128, c : c + 128]
        h, w = crop.shape[:2]
        assert np.array_equal(got[:h, :w], crop)
        assert np.array_equal(mask[:h, :w], ref[r : r + 128, c : c + 128] * 255)
        assert not got[h:].any() and not got[:, w:].any() and not mask[h:].any()
        assert p["fg"] == pytest.approx((mask > 0).mean())
        assert p["positive"] == (p["fg"] > 0.05)
    assert len(out.features) == 6 and out.hist.sum() == 3 * 300 * 200


def test_nodata_patches_dropped_and_padding_counts_as_nodata(tmp_path: Path) -> None:
    s = make_scene(tmp_path, "n", 256, 128, seed=4, nodata=0, nodata_border=100, geojson=False)
    src = open_source(s.image, None, "percentile")
    polys = PolygonSet.from_geometries(Polygon(p) for p in s.polygons)
    out = patch_scene(src, polys, tmp_path / "o", "n", PatchParams(64, 64, 0.05, 0.5), workers=1)
    kept = {(p["row"], p["col"]) for p in out.patches}
    assert out.dropped_nodata == 2 * len(grid_positions(128, 64, 64))  # cols 0 and 64 are nodata
    assert all(c >= 128 for _, c in kept) and len(kept) == 4
    names = sorted(p.name for p in (tmp_path / "o" / "images").iterdir())
    assert names == sorted(f"{p['id']}.png" for p in out.patches)  # dropped ones not written
    small = make_png_pair(tmp_path, "small", 80, 80, 1)
    big = patch_scene(
        PlainImageSource(small.image),
        PolygonSet(),
        tmp_path / "p",
        "small",
        PatchParams(128, 128, 0.05, 0.5),
    )
    assert big.dropped_nodata == 1 and big.patches == []  # 80x80 of 128x128 is 61 % padding


def test_overlapping_stride(tmp_path: Path) -> None:
    s = make_scene(tmp_path, "o", 256, 256, seed=6, geojson=False)
    out = patch_scene(
        open_source(s.image, None, "percentile"),
        PolygonSet(),
        tmp_path / "x",
        "o",
        PatchParams(128, 64, 0.05, 0.9),
    )
    assert out.grid == (3, 3) and len(out.patches) == 9


def test_uint16_single_band_uses_the_shared_scaler(tmp_path: Path) -> None:
    s = make_scene(tmp_path, "u", 200, 150, seed=7, bands=1, dtype="uint16", geojson=False)
    src = GeoTiffSource(s.image)
    out = patch_scene(src, PolygonSet(), tmp_path / "p", "u", PatchParams(128, 128, 0.05, 0.9))
    with rasterio.open(s.image) as d:
        scaler = make_scaler(d)  # what inference uses
        window = scaler.apply(d.read(window=Window(0, 0, 128, 128)))
    got = cv2.cvtColor(_png(tmp_path / "p" / "images" / "u_r00000_c00000.png"), cv2.COLOR_BGR2RGB)
    assert np.array_equal(got, window)
    assert got.shape[2] == 3 and (got[..., 0] == got[..., 1]).all()
    assert len(out.patches) == 3 and out.dropped_nodata == 1  # 72x22 px of 128x128: > 90 % padding


def test_scene_json_roundtrip_is_jsonable(tmp_path: Path) -> None:
    s = make_png_pair(tmp_path, "j", 128, 128, 1)
    out = patch_scene(
        PlainImageSource(s.image),
        PolygonSet(),
        tmp_path / "q",
        "j",
        PatchParams(128, 128, 0.05, 0.5),
    )
    json.dumps({"patches": out.patches, "features": out.features, "summary": out.summary()})
