"""Windowed patching: exact crops, padding, nodata drop, strip-bounded reads, PNG contract."""

from __future__ import annotations

import json
import os
import pickle
import signal
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import psutil
import pytest
import rasterio
from rasterio.windows import Window
from shapely.geometry import Polygon

from satseg.io.forkpool import can_fork
from satseg.io.mask import MaskReader
from satseg.io.raster import RasterError, make_scaler
from satseg.io.scene import GeoTiffReader, PlainImageReader, open_scene
from satseg.preprocess.masks import PolygonSet
from satseg.preprocess.patches import PatchParams, grid_positions, patch_scene, share_rows
from satseg.synthetic import make_png_pair, make_scene, rasterize_polygons


class Recording:
    """Wraps a source and records every read (instrumentation, not a stub)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.reads = inner, []
        self.width, self.height = inner.width, inner.height
        self.crs, self.transform = inner.crs, inner.transform

    def rows(self, y0: int, y1: int):
        self.reads.append((y0, y1 - y0))
        return self.inner.rows(y0, y1)


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
    src = Recording(open_scene(s.image, None, "percentile"))
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
    src = open_scene(s.image, None, "percentile")
    polys = PolygonSet.from_geometries(Polygon(p) for p in s.polygons)
    out = patch_scene(src, polys, tmp_path / "o", "n", PatchParams(64, 64, 0.05, 0.5), workers=1)
    kept = {(p["row"], p["col"]) for p in out.patches}
    assert out.dropped_nodata == 2 * len(grid_positions(128, 64, 64))  # cols 0 and 64 are nodata
    assert all(c >= 128 for _, c in kept) and len(kept) == 4
    names = sorted(p.name for p in (tmp_path / "o" / "images").iterdir())
    assert names == sorted(f"{p['id']}.png" for p in out.patches)  # dropped ones not written
    small = make_png_pair(tmp_path, "small", 80, 80, 1)
    big = patch_scene(
        PlainImageReader(small.image),
        PolygonSet(),
        tmp_path / "p",
        "small",
        PatchParams(128, 128, 0.05, 0.5),
    )
    assert big.dropped_nodata == 1 and big.patches == []  # 80x80 of 128x128 is 61 % padding


def test_overlapping_stride(tmp_path: Path) -> None:
    s = make_scene(tmp_path, "o", 256, 256, seed=6, geojson=False)
    out = patch_scene(
        open_scene(s.image, None, "percentile"),
        PolygonSet(),
        tmp_path / "x",
        "o",
        PatchParams(128, 64, 0.05, 0.9),
    )
    assert out.grid == (3, 3) and len(out.patches) == 9


def test_uint16_single_band_uses_the_shared_scaler(tmp_path: Path) -> None:
    s = make_scene(tmp_path, "u", 200, 150, seed=7, bands=1, dtype="uint16", geojson=False)
    src = GeoTiffReader(s.image)
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
        PlainImageReader(s.image),
        PolygonSet(),
        tmp_path / "q",
        "j",
        PatchParams(128, 128, 0.05, 0.5),
    )
    json.dumps({"patches": out.patches, "features": out.features, "summary": out.summary()})


# ----------------------------------------------------------------- forked worker processes
def _tall_scene(tmp_path: Path, **kw: Any):
    """1100 rows of 512-row GeoTIFF blocks: three block rows, so up to three processes."""
    return make_scene(tmp_path, "t", 300, 1100, seed=11, geojson=False, **kw)


def _pngs(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.png")}


@pytest.mark.skipif(not can_fork(), reason="forked workers run on Linux only")
@pytest.mark.parametrize("labels_kind", ["polygons", "mask_tif"])
def test_forked_workers_give_what_one_process_gives(tmp_path: Path, labels_kind: str) -> None:
    s = _tall_scene(tmp_path, nodata=0, nodata_border=40, mask_tif=labels_kind == "mask_tif")
    params = PatchParams(128, 128, 0.05, 0.5)
    rows = grid_positions(1100, 128, 128)
    assert len(share_rows(rows, 3, 512)) == 3  # two forked workers besides this process

    def run(workers: int, out: Path):
        src = open_scene(s.image, None, "percentile")
        if labels_kind == "mask_tif":
            labels: Any = MaskReader(tmp_path / "t_mask.tif")
        else:
            labels = PolygonSet.from_geometries(Polygon(p) for p in s.polygons)
        try:
            return patch_scene(src, labels, out, "t", params, workers=workers)
        finally:
            src.close()

    one, three = run(1, tmp_path / "one"), run(3, tmp_path / "three")
    assert three.patches == one.patches and three.features == one.features
    assert np.array_equal(three.hist, one.hist) and three.dropped_nodata == one.dropped_nodata
    assert [(p["row"], p["col"]) for p in three.patches] == sorted(
        (p["row"], p["col"]) for p in three.patches
    )
    # dropped: the right column (66 % padding) and the bottom-left corner (padding + border)
    assert len(one.patches) == 17 and one.dropped_nodata == 10
    assert any(p["positive"] for p in one.patches) and any(p["nodata"] for p in one.patches)
    assert _pngs(tmp_path / "three") == _pngs(tmp_path / "one")
    assert psutil.Process().children() == []  # every worker reaped


class _WorkersFail:
    """A real source whose reopened copies, the forked workers', fail in a given way."""

    def __init__(self, inner: Any, how: str, parent_fails: bool = False) -> None:
        self.inner, self.how, self.parent_fails = inner, how, parent_fails
        self.width, self.height = inner.width, inner.height
        self.crs, self.transform = inner.crs, inner.transform
        self.block_rows = inner.block_rows

    def rows(self, y0: int, y1: int):
        if self.parent_fails:
            raise RasterError(f"rows {y0}+ unreadable in the parent", "decode")
        return self.inner.rows(y0, y1)

    def reopen(self) -> Any:
        worker = _WorkersFail(self.inner.reopen(), self.how)
        worker.rows = worker.fail  # type: ignore[method-assign]
        return worker

    def fail(self, y0: int, y1: int):
        if self.how == "raster_error":
            raise RasterError(f"rows {y0}-{y1} unreadable, truncated", "decode")
        if self.how == "killed":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.how == "unpicklable":
            err = ValueError("odd failure")
            err.handle = lambda: None  # type: ignore[attr-defined]
            raise err
        time.sleep(30)  # "slow": still busy when the parent fails
        return self.inner.rows(y0, y1)


@pytest.mark.skipif(not can_fork(), reason="forked workers run on Linux only")
@pytest.mark.parametrize(
    ("how", "error", "message"),
    [
        ("raster_error", RasterError, "unreadable, truncated"),
        ("killed", RuntimeError, "killed by signal 9"),
        ("unpicklable", RuntimeError, "ValueError: odd failure"),
        ("slow", RasterError, "unreadable in the parent"),
    ],
)
def test_a_failing_worker_fails_the_scene_and_leaves_no_process(
    tmp_path: Path, how: str, error: type, message: str
) -> None:
    s = _tall_scene(tmp_path)
    src = _WorkersFail(open_scene(s.image, None, "percentile"), how, parent_fails=how == "slow")
    t0 = time.monotonic()
    with pytest.raises(error, match=message) as info:
        patch_scene(src, PolygonSet(), tmp_path / "x", "t", PatchParams(128, 128), workers=2)
    if how == "raster_error":  # the check survives the trip through the pipe
        assert info.value.check == "decode"
    assert time.monotonic() - t0 < 20  # a slow worker is killed, not waited for
    assert psutil.Process().children() == []


def test_raster_errors_pickle_with_their_check() -> None:
    e = pickle.loads(pickle.dumps(RasterError("broken tile", "decode")))
    assert isinstance(e, RasterError) and str(e) == "broken tile" and e.check == "decode"


@pytest.mark.skipif(not can_fork(), reason="forked workers run on Linux only")
def test_a_worker_that_cannot_be_forked_has_its_share_cut_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    s = _tall_scene(tmp_path)
    polys = PolygonSet.from_geometries(Polygon(p) for p in s.polygons)
    params = PatchParams(128, 128, 0.05, 0.5)
    one = patch_scene(open_scene(s.image, None, "percentile"), polys, tmp_path / "a", "t", params)

    def no_fork() -> int:
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(os, "fork", no_fork)
    out = patch_scene(
        open_scene(s.image, None, "percentile"), polys, tmp_path / "b", "t", params, workers=3
    )
    assert out.patches == one.patches and out.features == one.features
    assert _pngs(tmp_path / "b") == _pngs(tmp_path / "a")
    assert "cannot fork a worker" in caplog.text
