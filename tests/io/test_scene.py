"""The one scene reader: pixels as the BandScaler defines them, block reads, errors by check."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.transform import from_origin

import satseg.io.scene as scene_mod
from satseg.io.mask import LabelRasterError, MaskReader
from satseg.io.raster import RasterError, make_scaler
from satseg.io.scene import (
    NOT_GEOREFERENCED,
    GeoTiffReader,
    PlainImageReader,
    open_scene,
)
from satseg.synthetic import make_png_pair, make_scene


def _expected(path: Path, bands: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The whole scene through BandScaler on a plain rasterio read (the definition)."""
    with rasterio.open(path) as d:
        scaler = make_scaler(d, bands)
        data = d.read()
        return scaler.apply(data), scaler.nodata_mask(data)


class _CountingDataset:
    """The reader's real dataset, recording the windows it is asked for (instrumentation)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.windows = inner, []

    def read(self, bands: Any, window: Any) -> np.ndarray:
        self.windows.append((window.row_off, window.row_off + window.height))
        return self.inner.read(bands, window=window)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _raster(path: Path, count: int, dtype: str, crs: str | None = "EPSG:32637") -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=64,
        height=48,
        count=count,
        dtype=dtype,
        crs=crs,
        transform=from_origin(5e5, 2.8e6, 0.5, 0.5),
    ) as d:
        d.write(np.full((count, 48, 64), 7, dtype))
    return path


def test_uint8_rows_and_windows_are_the_band_scaler_pixels(tmp_path: Path) -> None:
    s = make_scene(tmp_path, "u8", 300, 200, seed=1, nodata=0, nodata_border=40, geojson=False)
    rgb, nd = _expected(s.image)
    assert nd[:, :40].all() and not nd[:, 40:].any()
    with open_scene(s.image) as r:
        assert isinstance(r, GeoTiffReader)
        assert (r.width, r.height, r.nodata) == (300, 200, 0)
        assert r.georeferenced and r.warnings == [] and r.crs.to_epsg() == 32637
        assert r.scaling == {"bands": [1, 2, 3], "dtype": "uint8", "lo": [], "hi": [], "nodata": 0}
        got, gnd = r.rows(0, 200)
        assert got.dtype == np.uint8 and got.shape == (200, 300, 3)
        assert np.array_equal(got, rgb) and np.array_equal(gnd, nd)
        # a window inside the loaded block rows and one read on its own: the same pixels
        for row, col, h, w in [(10, 20, 64, 80), (150, 250, 100, 100)]:
            wrgb, wnd = r.window(row, col, h, w)
            assert np.array_equal(wrgb, rgb[row : row + h, col : col + w])
            assert np.array_equal(wnd, nd[row : row + h, col : col + w])
        d = r.describe()
        assert d["format"] == "GeoTIFF" and d["count"] == 3 and d["crs"] == "EPSG:32637"
    fresh = GeoTiffReader(s.image)
    try:
        wrgb, _ = fresh.window(150, 250, 100, 100)  # no chunk loaded: clipped at the edges
        assert wrgb.shape == (50, 50, 3) and np.array_equal(wrgb, rgb[150:, 250:])
    finally:
        fresh.close()


def test_uint16_band_selection_is_stretched_in_column_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scene_mod, "SCALE_COLS", 64)  # several column blocks per strip
    s = make_scene(tmp_path, "u16", 200, 150, seed=2, bands=4, dtype="uint16", geojson=False)
    rgb, _ = _expected(s.image, [3, 2, 1])
    with open_scene(s.image, [3, 2, 1], "percentile") as r:
        assert r.scaling["bands"] == [3, 2, 1] and len(r.scaling["lo"]) == 3
        got, nd = r.rows(0, 150)
        assert np.array_equal(got, rgb) and not nd.any()
        assert np.array_equal(r.window(30, 70, 50, 90)[0], rgb[30:80, 70:160])
        assert not np.array_equal(got[..., 0], got[..., 2])  # band 3 first, not band 1


def test_one_band_is_grey_in_three_channels(tmp_path: Path) -> None:
    s = make_scene(tmp_path, "g", 130, 90, seed=3, bands=1, geojson=False)
    rgb, _ = _expected(s.image)
    with open_scene(s.image) as r:
        got, _ = r.rows(0, 90)
    assert np.array_equal(got, rgb)
    assert (got[..., 0] == got[..., 1]).all() and (got[..., 1] == got[..., 2]).all()


def test_each_block_row_is_decoded_once_and_overlapping_rows_are_reused(tmp_path: Path) -> None:
    """Strips of 200 rows overlapping by 56 over 512-row blocks: three block reads in all."""
    s = make_scene(tmp_path, "tall", 160, 1100, seed=4, geojson=False)
    rgb, _ = _expected(s.image)
    with open_scene(s.image) as r:
        assert r.block_rows == 512
        counting = _CountingDataset(r._src)  # type: ignore[attr-defined]
        r._src = counting  # type: ignore[attr-defined]
        for y in range(0, 1100, 144):
            got, _ = r.rows(y, y + 200)
            assert np.array_equal(got, rgb[y : y + 200]), y
        assert counting.windows == [(0, 512), (512, 1024), (1024, 1100)]
        again, _ = r.rows(1050, 1100)  # inside the previous strip (1008-1100): no read at all
        assert np.array_equal(again, rgb[1050:]) and len(counting.windows) == 3
        back, _ = r.rows(1000, 1100)  # before it: the block row is read again
        assert np.array_equal(back, rgb[1000:]) and counting.windows[3:] == [(512, 1100)]


def test_reopen_reads_the_same_pixels_on_its_own_handle(tmp_path: Path) -> None:
    s = make_scene(tmp_path, "re", 200, 600, seed=5, bands=4, dtype="uint16", geojson=False)
    r = open_scene(s.image)
    twin = r.reopen()
    try:
        assert twin is not r and twin.scaling == r.scaling
        first, _ = r.rows(0, 600)
        r.close()
        r.close()  # closing twice is harmless
        again, _ = twin.rows(0, 600)
        assert np.array_equal(first, again)
    finally:
        twin.close()


def test_a_geotiff_without_crs_is_read_in_pixel_space_with_the_warning(tmp_path: Path) -> None:
    path = tmp_path / "nocrs.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(
            path, "w", driver="GTiff", width=32, height=16, count=3, dtype="uint8"
        ) as d:
            d.write(np.full((3, 16, 32), 9, np.uint8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = open_scene(path)
    with r:
        assert not r.georeferenced and r.warnings == [NOT_GEOREFERENCED]
        assert (r.rows(0, 16)[0] == 9).all()
    assert not [w for w in caught if "georeference" in str(w.message).lower()]


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_plain_images_are_decoded_whole_in_pixel_space(tmp_path: Path, ext: str) -> None:
    s = make_png_pair(tmp_path, "p", 120, 80, seed=6, ext=ext)
    want = cv2.cvtColor(cv2.imread(str(s.image)), cv2.COLOR_BGR2RGB)
    with open_scene(s.image) as r:
        assert isinstance(r, PlainImageReader) and r.reopen() is r
        assert (r.width, r.height, r.crs, r.nodata) == (120, 80, None, None)
        assert r.transform == Affine.identity() and not r.georeferenced
        assert r.warnings == [NOT_GEOREFERENCED] and r.scaling == {"plain": True}
        rgb, nd = r.rows(10, 50)
        assert np.array_equal(rgb, want[10:50]) and nd.shape == (40, 120) and not nd.any()
        wrgb, wnd = r.window(70, 100, 64, 64)
        assert np.array_equal(wrgb, want[70:, 100:]) and wnd.shape == (10, 20)
        assert r.describe() == {"format": ext.upper(), "width": 120, "height": 80}


def _truncated_tif(tmp: Path) -> Path:
    s = make_scene(tmp / "src", "t", 512, 512, seed=1, labelme=False, geojson=False)
    bad = tmp / "truncated.tif"
    bad.write_bytes(s.image.read_bytes()[: s.image.stat().st_size // 2])
    return bad


def _cut(tmp: Path, ext: str, keep: int) -> Path:
    s = make_png_pair(tmp / "src", "c", 200, 200, seed=3, ext=ext)
    bad = tmp / f"cut.{ext}"
    bad.write_bytes(s.image.read_bytes()[:keep])
    return bad


def _bytes(name: str, data: bytes) -> Any:
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(data)
        return tmp / name

    return make


BAD = {  # kind -> (make the file, RasterError.check)
    "missing": (lambda t: t / "nothere.tif", "missing"),
    "empty_tif": (_bytes("empty.tif", b""), "empty_file"),
    "empty_png": (_bytes("empty.png", b""), "empty_file"),
    "garbage_tif": (_bytes("garbage.tif", b"not a tiff at all" * 50), "decode"),
    "truncated_tif": (_truncated_tif, "decode"),
    "truncated_png": (lambda t: _cut(t, "png", 3000), "truncated"),
    "truncated_jpg": (lambda t: _cut(t, "jpg", 3000), "truncated"),
    "png_header": (_bytes("bad.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40), "decode"),
    "png_signature": (_bytes("text.png", b"hello, not an image"), "decode"),
    "text_file": (_bytes("notes.txt", b"hello"), "format"),
    "five_bands": (lambda t: _raster(t / "five.tif", 5, "uint8"), "band_count"),
    "float32": (lambda t: _raster(t / "float.tif", 3, "float32"), "dtype"),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_files_raise_raster_error_with_their_check(tmp_path: Path, kind: str) -> None:
    make, check = BAD[kind]
    path = make(tmp_path)
    with pytest.raises(RasterError) as info, open_scene(path) as r:
        for y in range(0, r.height, 128):  # damage past the first block surfaces while reading
            r.rows(y, y + 128)
    assert info.value.check == check
    if check not in {"band_count", "dtype"}:  # those are the file's properties, said as such
        assert path.name in str(info.value)


def test_band_selection_outside_the_file_is_refused(tmp_path: Path) -> None:
    path = _raster(tmp_path / "three.tif", 3, "uint8")
    with pytest.raises(RasterError) as info:
        open_scene(path, [4])
    assert info.value.check == "band_selection"


def test_a_first_block_that_does_not_decode_fails_at_open(tmp_path: Path) -> None:
    s = make_scene(tmp_path, "fb", 600, 600, seed=7, labelme=False, geojson=False)
    with rasterio.open(s.image) as d:
        offset = int(d.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1))
        size = int(d.get_tag_item("BLOCK_SIZE_0_0", "TIFF", bidx=1))
    data = bytearray(s.image.read_bytes())
    data[offset : offset + size] = b"\xff" * size  # the first tile's deflate stream: garbage
    s.image.write_bytes(bytes(data))
    with pytest.raises(RasterError) as info:
        open_scene(s.image)
    assert info.value.check == "decode" and "could not be decoded" in str(info.value)


def test_mask_raster_is_read_as_zero_one_rows(tmp_path: Path) -> None:
    s = make_scene(tmp_path, "m", 140, 100, seed=8, labelme=False, geojson=False, mask_tif=True)
    with rasterio.open(tmp_path / "m_mask.tif") as d:
        want = (d.read(1) > 0).astype(np.uint8)
    with MaskReader(tmp_path / "m_mask.tif") as m:
        assert (m.width, m.height) == (140, 100)
        assert np.array_equal(m.rows(20, 200), want[20:])
        twin = m.reopen()
    assert np.array_equal(twin.rows(0, 100), want) and want.any()
    twin.close()
    with pytest.raises(LabelRasterError) as info:
        MaskReader(s.image)  # three bands
    assert info.value.check == "band_count" and isinstance(info.value, RasterError)
    (tmp_path / "e_mask.tif").write_bytes(b"")
    with pytest.raises(LabelRasterError) as info:
        MaskReader(tmp_path / "e_mask.tif")
    assert info.value.check == "empty_file"
