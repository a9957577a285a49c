"""Label mask rasters (``<stem>_mask.tif``): the annotation as pixels, read in row strips.

Its problems are the annotation's, not the image's, so they raise ``LabelRasterError``
(a ``RasterError`` with the same ``check`` names: ``empty_file``, ``decode``, ``band_count``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from satseg.io.gdal import GDAL_LOCK, gdal_context
from satseg.io.raster import RasterError
from satseg.io.sniff import PixelLimits, sniff


class LabelRasterError(RasterError):
    """A problem with a label mask raster (the annotation, not the image)."""


class MaskReader:
    """A 1-band label mask GeoTIFF: any value > 0 is foreground, or with ``lut`` (a 256-entry
    uint8 table, ``ClassTable.value_lut``) each raster value maps to its class value.

    Opened like the image: by content (a TIFF, nothing else), with the GTiff driver only, its
    declared size within ``limits``. ``check_grid`` compares it with the image's grid.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        limits: PixelLimits | None = None,
        name: str | None = None,
        lut: np.ndarray | None = None,
    ) -> None:
        import rasterio
        from rasterio.errors import NotGeoreferencedWarning, RasterioError

        self.path = Path(path)
        self.name = name or self.path.name
        self.lut = lut
        self._limits = limits or PixelLimits()
        if self.path.stat().st_size == 0:
            raise LabelRasterError(f"{self.name} is empty (0 bytes)", "empty_file")
        try:
            fmt = sniff(self.path, self.name)
        except RasterError as e:
            raise LabelRasterError(str(e), e.check) from e
        if fmt != "GTiff":
            raise LabelRasterError(f"{self.name}: a mask must be a GeoTIFF, not {fmt}", "format")
        try:
            with GDAL_LOCK, gdal_context(), warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._src = rasterio.open(self.path, driver="GTiff")
        except RasterioError as e:
            raise LabelRasterError(f"{self.name} is not a readable GeoTIFF: {e}", "decode") from e
        src = self._src
        self.width, self.height = src.width, src.height
        self.crs, self.transform = src.crs, src.transform
        try:
            self._limits.check(self.width, self.height, "GTiff", self.name)
        except RasterError as e:
            src.close()
            raise LabelRasterError(str(e), e.check) from e
        if src.count != 1:
            src.close()
            raise LabelRasterError(
                f"{self.name}: a mask needs 1 band, found {src.count}", "band_count"
            )

    def check_grid(self, image: Any) -> None:
        """LabelRasterError ``mask_grid`` unless the mask lies on ``image``'s pixel grid.

        Same size always; when both are georeferenced, the same CRS and transform too (within
        a thousandth of a pixel). A mask without georeference is taken to be in pixel space.
        """
        if (self.width, self.height) != (image.width, image.height):
            raise LabelRasterError(
                f"{self.name} is {self.width}x{self.height}, the image is "
                f"{image.width}x{image.height}",
                "size_mismatch",
            )
        if self.crs is None or image.crs is None:
            return
        tol = 1e-3 * min(abs(image.transform.a), abs(image.transform.e)) or 1e-9
        same_crs = self.crs == image.crs
        if not same_crs or not self.transform.almost_equals(image.transform, precision=tol):
            raise LabelRasterError(
                f"{self.name} is not on the image's grid: mask {_grid(self)}, image "
                f"{_grid(image)} (write the mask on the image's CRS and transform)",
                "mask_grid",
            )

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows [y0, y1) as (h, width) uint8 0/1 (or class values through ``lut``)."""
        from rasterio.errors import RasterioError
        from rasterio.windows import Window

        y1 = min(y1, self.height)
        try:
            with GDAL_LOCK, gdal_context():
                data = self._src.read(1, window=Window(0, y0, self.width, y1 - y0))
        except RasterioError as e:
            raise LabelRasterError(f"{self.name}: corrupt or truncated ({e})", "decode") from e
        if self.lut is not None:  # values over 255 (a uint16 mask) map like unmapped ones
            return self.lut[np.minimum(data, 255).astype(np.uint8)]
        return (data > 0).astype(np.uint8)

    def reopen(self) -> MaskReader:
        """The same mask on new file handles, for a forked worker process."""
        return MaskReader(self.path, limits=self._limits, name=self.name, lut=self.lut)

    def close(self) -> None:
        self._src.close()

    def __enter__(self) -> MaskReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _grid(r: Any) -> str:
    t = r.transform
    crs = r.crs.to_string() if r.crs else "no CRS"
    return f"{crs}, origin ({t.c:.3f}, {t.f:.3f}), pixel {t.a:g} x {t.e:g}"
