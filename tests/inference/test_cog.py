"""CogWriter: the overviews built in the work file give the COG the driver would make."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from satseg.inference.cog import CogWriter


def _write(path: Path, data: np.ndarray, valid: np.ndarray, prebuild: bool, **kw) -> None:
    h, w = data.shape
    CogWriter.PREBUILD_OVERVIEWS = prebuild
    try:
        with CogWriter(path, w, h, "EPSG:32633", from_origin(500000, 4000000, 0.3, 0.3), **kw) as c:
            for r0 in range(0, h, 200):  # in row pieces, as the sink writes them
                c.write(r0, data[r0 : r0 + 200], valid[r0 : r0 + 200])
    finally:
        CogWriter.PREBUILD_OVERVIEWS = True


@pytest.mark.parametrize(
    ("width", "height", "resampling"),
    [
        (1500, 1100, "average"),
        (1025, 513, "nearest"),
        (2049, 300, "average"),
        (400, 300, "average"),
    ],
)
def test_prebuilt_overviews_equal_the_cog_drivers_own(
    tmp_path: Path, width: int, height: int, resampling: str
) -> None:
    """The same levels, a valid COG layout, the same compression; the same pixels and masks
    at every level whose grid is the same (even sides), the same picture where a side is odd
    (the overview is 1 px wider: GDAL's overview builder rounds up, the COG driver down);
    with nodata (an internal mask) and a colour table."""
    rng = np.random.default_rng(width)
    # smooth-ish values with structure, and a nodata corner
    yy, xx = np.mgrid[0:height, 0:width]
    data = ((np.sin(xx / 37.0) + np.cos(yy / 23.0)) * 60 + 128).astype(np.uint8)
    data ^= rng.integers(0, 8, data.shape, dtype=np.uint8)
    valid = np.ones(data.shape, bool)
    valid[: height // 3, : width // 4] = False
    data[~valid] = 0
    kw = {"nodata": 0, "with_mask": True, "resampling": resampling}
    if resampling == "nearest":
        data = (data > 128).astype(np.uint8)
        kw = {"nodata": 255, "resampling": "nearest"}
        kw["colormap"] = {0: (0, 0, 0, 0), 1: (255, 0, 0, 255)}
        data[~valid] = 255
    paths = {b: tmp_path / f"{b}.tif" for b in (True, False)}
    for prebuild, path in paths.items():
        _write(path, data, valid, prebuild, **kw)
    with rasterio.open(paths[True]) as a, rasterio.open(paths[False]) as b:
        assert a.overviews(1) == b.overviews(1)
        if max(width, height) > 512:
            assert a.overviews(1)
        assert a.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert a.profile["compress"] == b.profile["compress"] == "deflate"
        assert a.profile["blockxsize"] == 512
        np.testing.assert_array_equal(a.read(1), data)
        if "colormap" in kw:
            assert a.colormap(1)[1] == b.colormap(1)[1] == (255, 0, 0, 255)
        for f in a.overviews(1):
            shape = (1, height // f, width // f)
            x, y = a.read(out_shape=shape).astype(int), b.read(out_shape=shape).astype(int)
            mx, my = a.read_masks(out_shape=shape), b.read_masks(out_shape=shape)
            if width % f == 0 and height % f == 0:  # the same overview grid: the same pixels
                np.testing.assert_array_equal(x, y, err_msg=f"level {f}")
                np.testing.assert_array_equal(mx, my, err_msg=f"mask {f}")
            else:  # GDAL rounds an odd side up, the COG driver down: the grids differ by 1 px
                # (read back on one grid here): the same picture, not the same pixels
                assert np.abs(x - y).mean() < 2.0, f"level {f}"
                assert (mx != my).mean() < 0.005, f"mask {f}"
