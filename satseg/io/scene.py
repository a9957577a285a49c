"""One scene reader for every stage: GeoTIFFs read in windows, PNG/JPEG decoded whole.

Ingest (training patches), inference and monitoring read pixels through ``open_scene``, so a
model sees the same numbers in training and in production by construction: the selected
bands, scaled to uint8 RGB by the scene's ``BandScaler`` (``satseg.io.raster``), with a nodata
mask beside them.

Memory is bounded by the scene width, never its area. GeoTIFF reads are served from a chunk
of whole block rows of the file, so each block is decoded once however the callers' strips
fall on the blocks; only the selected bands are read; rows a caller asks for again (the
overlap of consecutive tile rows) are handed back from the previous strip, not read and
scaled twice. uint8 bands are interleaved with ``cv2.merge`` (same numbers as the scaler,
~50x faster); uint16 is stretched a block of columns at a time (bounded float temporaries).
Arrays handed out are shared with that cache: callers must not modify them.

Only GeoTIFF, PNG and JPEG are opened, decided by content (``satseg.io.sniff``) and, for
GeoTIFF, by GDAL's GTiff driver alone; the declared size is checked against ``PixelLimits``
before anything is decoded. PNG/JPEG are decoded as displayed (EXIF orientation applied, as
LabelMe does) and a JPEG libjpeg finds corrupt is refused, not decoded into grey blocks.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from satseg.io.gdal import GDAL_LOCK, gdal_context
from satseg.io.raster import BandScaler, RasterError, decode_plain, make_scaler
from satseg.io.sniff import PixelLimits, check_path, plain_header, sniff, sniff_bytes

SCALE_COLS = 2048  # columns stretched at a time (bounds float temporaries on wide scenes)
MAX_BLOCK_ROWS = 1024  # taller blocks (rare) would make a chunk too big: read per request
NOT_GEOREFERENCED = (
    "input has no georeference (plain PNG/JPEG or no CRS): outputs are in pixel space "
    "(identity transform, GeoJSON coordinates are pixel column/row, no area in m²)"
)

Pixels = tuple[np.ndarray, np.ndarray]  # (h, w, 3) uint8 RGB, (h, w) bool nodata


class SceneReader(Protocol):
    """A readable scene: size, georeference, and rows or windows as RGB + nodata."""

    path: Path
    width: int
    height: int
    crs: Any  # rasterio CRS, or None
    transform: Any  # affine.Affine (identity in pixel space)
    nodata: float | None
    block_rows: int  # rows of one decoding unit of the file (1: any row split is as good)
    warnings: list[str]
    scaling: dict[str, Any]  # how pixels were scaled (the scaler's record)

    @property
    def georeferenced(self) -> bool: ...

    def rows(self, y0: int, y1: int) -> Pixels:
        """Rows [y0, y1) of the full width (clipped to the scene)."""
        ...

    def window(self, row: int, col: int, height: int, width: int) -> Pixels:
        """``height`` x ``width`` pixels from (row, col) (clipped to the scene)."""
        ...

    def describe(self) -> dict[str, Any]: ...

    def reopen(self) -> SceneReader:
        """The same scene on new file handles, for a forked worker process.

        A forked process shares its parent's open file descriptions (and their offsets), so
        it must never read through the parent's handles. Scaling is not re-measured.
        """
        ...

    def close(self) -> None: ...

    def __enter__(self) -> SceneReader: ...

    def __exit__(self, *exc: object) -> None: ...


def open_scene(
    path: Path | str,
    bands: list[int] | None = None,
    scale: str = "percentile",
    *,
    limits: PixelLimits | None = None,
    name: str | None = None,
) -> SceneReader:
    """Open a GeoTIFF (windowed) or PNG/JPEG (in memory); raise RasterError on bad input.

    The format is decided by content and must agree with the suffix of ``name`` (default:
    the path's name; ``name`` is for paths like ``/proc/self/fd/<n>``); the declared size is
    checked against ``limits`` before anything is decoded.
    """
    p = Path(path)
    shown = name or p.name
    check_path(p, shown)
    if not p.exists():
        raise RasterError(f"{shown} does not exist", "missing")
    if p.stat().st_size == 0:
        raise RasterError(f"{shown} is empty (0 bytes)", "empty_file")
    fmt = sniff(p, shown)
    if fmt == "GTiff":
        return GeoTiffReader(p, bands, scale, limits=limits, name=shown)
    return PlainImageReader(p, limits=limits, name=shown, fmt=fmt)


class _Reader:
    """What both readers share: georeference flag and the context manager."""

    crs: Any

    @property
    def georeferenced(self) -> bool:
        return self.crs is not None

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GeoTiffReader(_Reader):
    """Windowed reads of a 1-4 band uint8/uint16 GeoTIFF through a ``BandScaler``."""

    def __init__(
        self,
        path: Path | str,
        bands: list[int] | None = None,
        scale: str = "percentile",
        *,
        scaler: BandScaler | None = None,
        limits: PixelLimits | None = None,
        name: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = name or self.path.name
        self._limits = limits or PixelLimits()
        self._src = _open_dataset(self.path, self.name)
        try:
            self._limits.check(self._src.width, self._src.height, "GTiff", self.name)
            self.scaler = scaler or _measure(self._src, self.name, bands, scale)
        except BaseException:
            self._src.close()
            raise
        self._local = _LocalScaler(self.scaler)
        src = self._src
        self.width, self.height = src.width, src.height
        self.crs, self.transform, self.nodata = src.crs, src.transform, src.nodata
        self.warnings = [] if src.crs is not None else [NOT_GEOREFERENCED]
        self.scaling = self.scaler.to_dict()
        block_h = src.block_shapes[0][0] if src.block_shapes else 1
        self.block_rows = int(block_h) if 1 <= block_h <= MAX_BLOCK_ROWS else 1
        self._chunk = np.zeros((0, 0, 0), np.uint8)  # raw selected bands of whole block rows
        self._chunk_rows = (0, 0)
        self._last: tuple[int, np.ndarray, np.ndarray] | None = None  # the previous rows()

    def rows(self, y0: int, y1: int) -> Pixels:
        """Rows [y0, y1): the start shared with the previous call is reused, the rest is
        scaled from the block-row chunk (loaded, one block row after the other, as needed)."""
        y1 = min(y1, self.height)
        parts: list[Pixels] = []
        y = y0
        if self._last is not None:
            ly0, lrgb, lnd = self._last
            ly1 = ly0 + lrgb.shape[0]
            if ly0 <= y0 < ly1:
                end = min(y1, ly1)
                parts.append((lrgb[y0 - ly0 : end - ly0], lnd[y0 - ly0 : end - ly0]))
                y = end
        while y < y1:
            c0, c1 = self._chunk_rows
            if not c0 <= y < c1:
                self._load_chunk(y, y1)
                c0, c1 = self._chunk_rows
            end = min(y1, c1)
            parts.append(self._local.scale(self._chunk[:, y - c0 : end - c0]))
            y = end
        out = parts[0] if len(parts) == 1 else _concat(parts)
        self._last = (y0, *out)
        return out

    def window(self, row: int, col: int, height: int, width: int) -> Pixels:
        """A window, from the chunk when it holds those rows, else read on its own (only the
        blocks it touches are decoded: sparse samples never load whole block rows)."""
        from rasterio.windows import Window

        h, w = min(height, self.height - row), min(width, self.width - col)
        c0, c1 = self._chunk_rows
        if c0 <= row and row + h <= c1:
            return self._local.scale(self._chunk[:, row - c0 : row + h - c0, col : col + w])
        data = self._read(Window(col, row, w, h), f"window {row},{col} ({h}x{w})")
        return self._local.scale(data)

    def _load_chunk(self, y: int, end: int) -> None:
        from rasterio.windows import Window

        bh = self.block_rows
        start = (y // bh) * bh
        stop = min(self.height, max(-(-end // bh) * bh, start + bh))
        self._chunk = np.zeros((0, 0, 0), np.uint8)  # free the old chunk before reading
        self._chunk_rows = (0, 0)
        self._chunk = self._read(Window(0, start, self.width, stop - start), f"rows {start}-{stop}")
        self._chunk_rows = (start, stop)

    def _read(self, window: Any, what: str) -> np.ndarray:
        try:
            with GDAL_LOCK, gdal_context():
                data: np.ndarray = self._src.read(self.scaler.bands, window=window)
        except _decode_errors() as e:
            raise RasterError(
                f"{self.name}: {what} unreadable, corrupt or truncated ({e})", "decode"
            ) from e
        return data

    def describe(self) -> dict[str, Any]:
        return {
            "format": "GeoTIFF",
            "width": self.width,
            "height": self.height,
            "count": self._src.count,
            "crs": self.crs.to_string() if self.crs else None,
            "transform": list(self.transform)[:6],
            "scaler": self.scaling,
        }

    def reopen(self) -> GeoTiffReader:
        return GeoTiffReader(self.path, scaler=self.scaler, limits=self._limits, name=self.name)

    def close(self) -> None:
        if self._src.closed:
            return
        self._src.close()
        self._chunk, self._last = np.zeros((0, 0, 0), np.uint8), None
        self._chunk_rows = (0, 0)


class _LocalScaler:
    """The scene's scaler applied to an array holding only the selected bands.

    ``BandScaler`` indexes 1-based source bands; reading just those bands saves I/O, so the
    same scaler renumbered 1..n is applied to them.
    """

    def __init__(self, scaler: BandScaler) -> None:
        self._s = dataclasses.replace(scaler, bands=list(range(1, len(scaler.bands) + 1)))
        self._fast = scaler.dtype == "uint8" and len(scaler.bands) in (1, 3)

    def scale(self, data: np.ndarray) -> Pixels:
        """(bands, h, w) selected bands -> (h, w, 3) uint8 RGB and (h, w) bool nodata."""
        if self._fast:
            # Same result as BandScaler.apply for uint8 (no stretch, clip is a no-op), but
            # cv2.merge interleaves bands ~50x faster than numpy's transpose copy.
            import cv2

            planes = [data[0]] * 3 if data.shape[0] == 1 else [data[0], data[1], data[2]]
            return np.asarray(cv2.merge(planes)), np.asarray(self._s.nodata_mask(data))
        h, w = data.shape[1:]
        rgb = np.empty((h, w, 3), np.uint8)
        nodata = np.empty((h, w), bool)
        for c in range(0, w, SCALE_COLS):  # the stretch is per pixel: column blocks suffice
            part = data[:, :, c : c + SCALE_COLS]
            rgb[:, c : c + SCALE_COLS] = self._s.apply(part)
            nodata[:, c : c + SCALE_COLS] = self._s.nodata_mask(part)
        return rgb, nodata


class PlainImageReader(_Reader):
    """PNG/JPEG (the seed's format): decoded whole, these are photo-sized, not scenes."""

    crs: Any = None
    nodata: float | None = None
    block_rows = 1

    def __init__(
        self,
        path: Path | str,
        *,
        limits: PixelLimits | None = None,
        name: str | None = None,
        fmt: str | None = None,
    ) -> None:
        from affine import Affine

        self.path = Path(path)
        self.name = name or self.path.name
        self._rgb = read_plain(self.path, limits or PixelLimits(), self.name)
        # as the file is named (JPG or JPEG), else by content
        self.format = Path(self.name).suffix.lstrip(".").upper() or fmt or "plain"
        self.height, self.width = self._rgb.shape[:2]
        self.transform = Affine.identity()
        self.warnings = [NOT_GEOREFERENCED]
        self.scaling: dict[str, Any] = {"plain": True}

    def rows(self, y0: int, y1: int) -> Pixels:
        rgb = self._rgb[y0:y1]
        return rgb, np.zeros(rgb.shape[:2], bool)

    def window(self, row: int, col: int, height: int, width: int) -> Pixels:
        rgb = self._rgb[row : row + height, col : col + width]
        return rgb, np.zeros(rgb.shape[:2], bool)

    def describe(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "width": self.width,
            "height": self.height,
        }

    def reopen(self) -> PlainImageReader:
        return self  # decoded into memory: no file handle to share

    def close(self) -> None:
        self._rgb = np.zeros((0, 0, 3), np.uint8)


def read_plain(path: Path, limits: PixelLimits, name: str) -> np.ndarray:
    """A PNG/JPEG as (h, w, 3) uint8 RGB, as displayed (EXIF orientation applied).

    The file is read once (``path`` may be ``/proc/self/fd/<n>``); its structure and declared
    size are checked before decoding; a JPEG whose entropy-coded data libjpeg finds corrupt
    is refused (``decode_strict``) instead of decoded into grey or garbled blocks.
    """
    limits.check_file_size(path.stat().st_size, name)  # read whole: bound it first
    data = path.read_bytes()
    fmt = sniff_bytes(data[:16])
    if fmt not in ("PNG", "JPEG"):
        raise RasterError(f"{name} is neither PNG nor JPEG (bad signature)", "decode")
    check_plain_structure(data, name)
    header = plain_header(data, fmt, name)
    limits.check(*header.oriented_size, fmt, name)
    rgb = decode_plain(data, fmt, name)
    return orient(rgb, header.orientation)


def check_plain_structure(data: bytes, name: str) -> None:
    """Reject empty, corrupt and truncated PNG/JPEG bytes before decoding.

    OpenCV decodes a truncated JPEG into a half-grey image with only a warning, so the
    end-of-image markers are checked explicitly.
    """
    if not data:
        raise RasterError(f"{name} is empty (0 bytes)", "empty_file")
    head, tail = data[:16], data[-64:]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        if head[12:16] != b"IHDR":
            raise RasterError(f"{name}: PNG header is corrupt (no IHDR chunk)", "decode")
        if b"IEND" not in tail:
            raise RasterError(f"{name}: PNG is truncated (no IEND chunk)", "truncated")
    elif head.startswith(b"\xff\xd8"):
        if b"\xff\xd9" not in tail.rstrip(b"\x00\r\n \t"):
            raise RasterError(f"{name}: JPEG is truncated (no end-of-image marker)", "truncated")
    else:
        raise RasterError(f"{name} is neither PNG nor JPEG (bad signature)", "decode")


def orient(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels as stored -> as displayed, for EXIF orientation 1-8 (what LabelMe shows)."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }
    if orientation not in ops:
        return rgb
    return np.ascontiguousarray(ops[orientation](rgb))


def _open_dataset(path: Path, name: str) -> Any:
    """``path`` opened by GDAL's GTiff driver only (no other format, whatever the bytes say)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    try:
        with GDAL_LOCK, gdal_context(), warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # NOT_GEOREFERENCED instead
            return rasterio.open(path, driver="GTiff")
    except _decode_errors() as e:
        raise RasterError(
            f"{name} is not a readable GeoTIFF (corrupt or truncated): {e}", "decode"
        ) from e


def _measure(src: Any, name: str, bands: list[int] | None, scale: str) -> BandScaler:
    """Choose the bands and measure the stretch, then check that the first block decodes.

    Deliberately not a whole-scene read: damage further in surfaces while reading, and an
    all-nodata scene is for the caller to detect.
    """
    from rasterio.windows import Window

    try:
        with GDAL_LOCK, gdal_context():
            scaler = make_scaler(src, bands=bands, scale=scale)
            h, w = src.block_shapes[0] if src.block_shapes else (1, 1)
            src.read(scaler.bands, window=Window(0, 0, min(w, src.width), min(h, src.height)))
    except _decode_errors() as e:
        raise RasterError(f"{name} could not be decoded: {e}", "decode") from e
    return scaler


def _decode_errors() -> tuple[type[BaseException], ...]:
    """What rasterio/GDAL raise for bytes they cannot decode."""
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import RasterioError

    return (RasterioError, CPLE_BaseError)


def _concat(parts: list[Pixels]) -> Pixels:
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
