"""Scene input for inference: GeoTIFFs read in row strips, plain PNG/JPEG in pixel space.

Both kinds expose the same strip interface so the sliding window never cares where pixels
come from. GeoTIFF strips are scaled with the training ``BandScaler`` (identical numbers to
training); rows shared by consecutive tile rows are kept, not read twice.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from satseg.inference.pipeline import GDAL_LOCK
from satseg.io.raster import BandScaler, RasterError, make_scaler, read_plain_image

PLAIN_EXTS = {".png", ".jpg", ".jpeg"}
RASTER_EXTS = {".tif", ".tiff"}
SCENE_EXTS = PLAIN_EXTS | RASTER_EXTS
SCALE_COLS = 2048  # columns scaled at a time (bounds float temporaries on wide scenes)
NOT_GEOREFERENCED = (
    "input has no georeference (plain PNG/JPEG or no CRS): outputs are in pixel space "
    "(identity transform, GeoJSON coordinates are pixel column/row, no area in m²)"
)


@dataclass
class SceneSource:
    """A readable scene: size, georeference and a ``strip(y0, y1)`` reader."""

    path: Path
    width: int
    height: int
    crs: Any  # rasterio CRS or None
    transform: Any  # affine.Affine
    nodata: float | None
    scaler: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    _src: Any = None
    _plain: np.ndarray | None = None
    _scaler_obj: BandScaler | None = None
    _cache: tuple[int, np.ndarray, np.ndarray] | None = None

    def __post_init__(self) -> None:
        # Only the selected bands are read; the same scaler renumbered 1..n applies to them.
        self._bands = list(self._scaler_obj.bands) if self._scaler_obj else []
        self._local = (
            dataclasses.replace(self._scaler_obj, bands=list(range(1, len(self._bands) + 1)))
            if self._scaler_obj
            else None
        )

    @property
    def georeferenced(self) -> bool:
        return self.crs is not None

    def strip(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows [y0, y1) as (h, W, 3) uint8 RGB and an (h, W) bool nodata mask."""
        if self._plain is not None:
            rgb = self._plain[y0:y1]
            return rgb, np.zeros(rgb.shape[:2], bool)
        parts_rgb, parts_nd = [], []
        start = y0
        if self._cache is not None:
            cy0, crgb, cnd = self._cache
            cy1 = cy0 + crgb.shape[0]
            if cy0 <= y0 < cy1:  # reuse the rows the previous tile row already read
                parts_rgb.append(crgb[y0 - cy0 : min(y1, cy1) - cy0])
                parts_nd.append(cnd[y0 - cy0 : min(y1, cy1) - cy0])
                start = min(y1, cy1)
        if start < y1:
            rgb, nd = self._read(start, y1)
            parts_rgb.append(rgb)
            parts_nd.append(nd)
        rgb = parts_rgb[0] if len(parts_rgb) == 1 else np.concatenate(parts_rgb)
        nd = parts_nd[0] if len(parts_nd) == 1 else np.concatenate(parts_nd)
        self._cache = (y0, rgb, nd)
        return rgb, nd

    def _read(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray]:
        from rasterio.windows import Window

        assert self._local is not None
        win = Window(0, y0, self.width, y1 - y0)
        with GDAL_LOCK:
            data = self._src.read(self._bands, window=win)
        rgb = np.empty((y1 - y0, self.width, 3), np.uint8)
        nodata = np.empty((y1 - y0, self.width), bool)
        # the scaler works per pixel; column blocks keep its float temporaries small
        for c in range(0, self.width, SCALE_COLS):
            part = data[:, :, c : c + SCALE_COLS]
            rgb[:, c : c + SCALE_COLS] = self._local.apply(part)
            nodata[:, c : c + SCALE_COLS] = self._local.nodata_mask(part)
        return rgb, nodata

    def close(self) -> None:
        if self._src is not None:
            self._src.close()
            self._src = None

    def __enter__(self) -> SceneSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_scene(
    path: Path | str, bands: list[int] | None = None, scale: str = "percentile"
) -> SceneSource:
    """Open a GeoTIFF (windowed) or PNG/JPEG (in memory); raise RasterError on bad input."""
    p = Path(path)
    if not p.exists():
        raise RasterError(f"{p} does not exist", "missing")
    if p.stat().st_size == 0:
        raise RasterError(f"{p.name} is empty (0 bytes)", "empty_file")
    ext = p.suffix.lower()
    if ext in PLAIN_EXTS:
        rgb = read_plain_image(p)
        from affine import Affine

        h, w = rgb.shape[:2]
        return SceneSource(
            p, w, h, None, Affine.identity(), None, {"plain": True}, [NOT_GEOREFERENCED], _plain=rgb
        )
    if ext not in RASTER_EXTS:
        raise RasterError(f"{p.name}: unsupported file type {ext or '(none)'}", "format")
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(p)
    except RasterioIOError as err:
        raise RasterError(
            f"{p.name} is not a readable raster (corrupt or truncated): {err}", "decode"
        ) from err
    try:
        scaler = make_scaler(src, bands=bands, scale=scale)
        _check_readable(src, scaler.bands)
    except RasterError:
        src.close()
        raise
    except Exception as err:  # GDAL decode errors surface as RasterioIOError/CPLE_*
        src.close()
        raise RasterError(f"{p.name} could not be decoded: {err}", "decode") from err
    warn = [] if src.crs is not None else [NOT_GEOREFERENCED]
    return SceneSource(
        p,
        src.width,
        src.height,
        src.crs,
        src.transform,
        src.nodata,
        scaler.to_dict(),
        warn,
        _src=src,
        _scaler_obj=scaler,
    )


def _check_readable(src: Any, bands: list[int]) -> None:
    """Fail fast when the first block does not decode (corrupt or truncated header data).

    Deliberately not a whole-scene read: damage further in surfaces while streaming, and
    an all-nodata scene is detected after the (then cheap: every tile skipped) pass.
    """
    from rasterio.windows import Window

    h, w = src.block_shapes[0] if src.block_shapes else (1, 1)
    src.read(bands, window=Window(0, 0, min(w, src.width), min(h, src.height)))
