"""Scene readers that hand out horizontal strips: GeoTIFF (windowed) and plain PNG/JPEG.

A strip is ``patch_size`` rows of the full width, so memory is bounded by the scene width,
never its area: a 20000x20000 scene is read 256 rows at a time. Every read goes through
``satseg.io.raster`` (band choice, uint16 stretch) like inference does, so training patches
and production inputs see the same numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from satseg.io.raster import BandScaler, RasterError, make_scaler, read_plain_image

PLAIN_SUFFIXES = {".png", ".jpg", ".jpeg"}
TIFF_SUFFIXES = {".tif", ".tiff"}
GDAL_CACHE_MB = 64


class StripSource(Protocol):
    width: int
    height: int
    crs: Any
    transform: Any

    def read(self, row0: int, nrows: int) -> tuple[np.ndarray, np.ndarray]:
        """(nrows, width, 3) uint8 RGB and (nrows, width) bool nodata for rows row0.."""
        ...

    def describe(self) -> dict[str, Any]: ...

    def reopen(self) -> StripSource:
        """The same source on new file handles, for a forked worker process.

        A forked process shares its parent's open file descriptions (and their offsets), so
        it must never read through the parent's handles.
        """
        ...

    def close(self) -> None: ...


class GeoTiffSource:
    """Windowed reads of a 1-4 band uint8/uint16 GeoTIFF through a ``BandScaler``."""

    def __init__(
        self,
        path: Path,
        bands: list[int] | None = None,
        scale: str = "percentile",
        *,
        scaler: BandScaler | None = None,
    ):
        import rasterio
        from rasterio.errors import RasterioError

        self.path = Path(path)
        # GDAL's block cache defaults to 5 % of RAM and would grow with the scene; reads
        # here are block-aligned chunks, so a small cache is plenty.
        self._env = rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB)
        self._env.__enter__()
        try:
            self._src = rasterio.open(self.path)
        except RasterioError as e:
            self._env.__exit__(None, None, None)
            raise RasterError(f"{self.path.name} is not a readable GeoTIFF: {e}", "decode") from e
        try:
            self.scaler = scaler or make_scaler(self._src, bands, scale)
        except RasterError:
            self.close()
            raise
        except RasterioError as e:
            self.close()
            raise RasterError(f"{self.path.name}: corrupt or truncated ({e})", "decode") from e
        self._local = _LocalScaler(self.scaler)
        self.width, self.height = self._src.width, self._src.height
        self.crs = self._src.crs
        self.transform = self._src.transform
        block_h = self._src.block_shapes[0][0] if self._src.block_shapes else 1
        # chunks of one block row; very tall blocks (rare) would cost memory: read per strip
        self.block_rows = int(block_h) if 1 <= block_h <= 1024 else 1
        self._chunk = np.zeros((0, 0, 0), np.uint8)
        self._chunk_rows = (0, 0)

    def read(self, row0: int, nrows: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``row0..row0+nrows`` (clipped to the scene), served from a block-aligned chunk.

        Reading whole rows of the file's blocks decodes each block once; a 256-row strip of
        a 512-row-tiled file would otherwise decode every tile twice.
        """
        end = min(row0 + nrows, self.height)
        if not (self._chunk_rows[0] <= row0 and end <= self._chunk_rows[1]):
            self._load_chunk(row0, end)
        data = self._chunk[:, row0 - self._chunk_rows[0] : end - self._chunk_rows[0]]
        return self._local.apply(data), self._local.nodata_mask(data)

    def _load_chunk(self, row0: int, end: int) -> None:
        from rasterio.errors import RasterioError
        from rasterio.windows import Window

        bh = self.block_rows
        start = (row0 // bh) * bh
        stop = min(self.height, max(-(-end // bh) * bh, start + bh))
        self._chunk = np.zeros((0, 0, 0), np.uint8)  # free the old chunk before reading
        try:
            self._chunk = self._src.read(
                self.scaler.bands, window=Window(0, start, self.width, stop - start)
            )
        except RasterioError as e:
            raise RasterError(
                f"{self.path.name}: rows {start}-{stop} unreadable, corrupt or truncated ({e})",
                "decode",
            ) from e
        self._chunk_rows = (start, stop)

    def describe(self) -> dict[str, Any]:
        return {
            "format": "GeoTIFF",
            "width": self.width,
            "height": self.height,
            "count": self._src.count,
            "crs": self.crs.to_string() if self.crs else None,
            "transform": list(self.transform)[:6],
            "scaler": self.scaler.to_dict(),
        }

    def reopen(self) -> GeoTiffSource:
        return GeoTiffSource(self.path, scaler=self.scaler)  # the stretch is not re-measured

    def close(self) -> None:
        self._src.close()
        self._env.__exit__(None, None, None)


class _LocalScaler:
    """The scene's scaler applied to an array that holds only the selected bands.

    ``BandScaler`` indexes 1-based source bands; reading just those bands saves I/O.
    """

    def __init__(self, scaler: Any) -> None:
        from dataclasses import replace

        self._s = replace(scaler, bands=list(range(1, len(scaler.bands) + 1)))

    def apply(self, data: np.ndarray) -> np.ndarray:
        if self._s.dtype == "uint8":
            # Same result as BandScaler.apply for uint8 (no stretch, clip is a no-op), but
            # cv2.merge interleaves bands ~50x faster than numpy's transpose copy.
            import cv2

            planes = [data[0]] * 3 if data.shape[0] == 1 else [data[0], data[1], data[2]]
            return np.asarray(cv2.merge(planes))
        return np.asarray(self._s.apply(data))

    def nodata_mask(self, data: np.ndarray) -> np.ndarray:
        return np.asarray(self._s.nodata_mask(data))


class PlainImageSource:
    """PNG/JPEG (the seed's format): decoded whole, these are photo-sized, not scenes."""

    crs = None
    transform = None

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        check_plain_structure(self.path)
        self._rgb = read_plain_image(self.path)
        self.height, self.width = self._rgb.shape[:2]

    def read(self, row0: int, nrows: int) -> tuple[np.ndarray, np.ndarray]:
        rgb = self._rgb[row0 : row0 + nrows]
        return rgb, np.zeros(rgb.shape[:2], bool)

    def reopen(self) -> PlainImageSource:
        return self  # decoded into memory: no file handle to share

    def describe(self) -> dict[str, Any]:
        return {
            "format": self.path.suffix.lstrip(".").upper(),
            "width": self.width,
            "height": self.height,
        }

    def close(self) -> None:
        self._rgb = np.zeros((0, 0, 3), np.uint8)


class LabelRasterError(RasterError):
    """A problem with a label mask raster (the annotation, not the image)."""


class MaskTiffSource:
    """A label mask GeoTIFF (``<stem>_mask.tif``): any value > 0 is foreground."""

    def __init__(self, path: Path) -> None:
        import rasterio
        from rasterio.errors import RasterioError

        self.path = Path(path)
        if self.path.stat().st_size == 0:
            raise LabelRasterError(f"{self.path.name} is empty (0 bytes)", "empty_file")
        try:
            self._src = rasterio.open(self.path)
        except RasterioError as e:
            raise LabelRasterError(
                f"{self.path.name} is not a readable GeoTIFF: {e}", "decode"
            ) from e
        if self._src.count != 1:
            self._src.close()
            raise LabelRasterError(
                f"{self.path.name}: a mask needs 1 band, found {self._src.count}", "band_count"
            )
        self.width, self.height = self._src.width, self._src.height

    def read(self, row0: int, nrows: int) -> np.ndarray:
        from rasterio.errors import RasterioError
        from rasterio.windows import Window

        try:
            data = self._src.read(1, window=Window(0, row0, self.width, nrows))
        except RasterioError as e:
            raise LabelRasterError(f"{self.path.name}: corrupt or truncated ({e})", "decode") from e
        return (data > 0).astype(np.uint8)

    def reopen(self) -> MaskTiffSource:
        return MaskTiffSource(self.path)

    def close(self) -> None:
        self._src.close()


def check_plain_structure(path: Path) -> None:
    """Reject empty and truncated PNG/JPEG files before decoding.

    OpenCV decodes a truncated JPEG into a half-grey image with only a warning, so the
    end-of-image markers are checked explicitly.
    """
    size = path.stat().st_size
    if size == 0:
        raise RasterError(f"{path.name} is empty (0 bytes)", "empty_file")
    with open(path, "rb") as fh:
        head = fh.read(8)
        fh.seek(max(0, size - 64))
        tail = fh.read()
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        if b"IEND" not in tail:
            raise RasterError(f"{path.name}: PNG is truncated (no IEND chunk)", "truncated")
    elif head.startswith(b"\xff\xd8"):
        if b"\xff\xd9" not in tail.rstrip(b"\x00\r\n \t"):
            raise RasterError(
                f"{path.name}: JPEG is truncated (no end-of-image marker)", "truncated"
            )
    else:
        raise RasterError(f"{path.name} is neither PNG nor JPEG (bad signature)", "decode")


def open_source(path: Path, bands: list[int] | None, scale: str) -> StripSource:
    suffix = path.suffix.lower()
    if path.stat().st_size == 0:
        raise RasterError(f"{path.name} is empty (0 bytes)", "empty_file")
    if suffix in TIFF_SUFFIXES:
        return GeoTiffSource(path, bands, scale)
    if suffix in PLAIN_SUFFIXES:
        return PlainImageSource(path)
    raise RasterError(f"{path.name}: unsupported image type {suffix}", "unsupported_type")
