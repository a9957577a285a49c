"""Label mask rasters (``<stem>_mask.tif``): the annotation as pixels, read in row strips.

Its problems are the annotation's, not the image's, so they raise ``LabelRasterError``
(a ``RasterError`` with the same ``check`` names: ``empty_file``, ``decode``, ``band_count``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from satseg.io.gdal import GDAL_LOCK, gdal_context
from satseg.io.raster import RasterError


class LabelRasterError(RasterError):
    """A problem with a label mask raster (the annotation, not the image)."""


class MaskReader:
    """A 1-band label mask GeoTIFF: any value > 0 is foreground."""

    def __init__(self, path: Path | str) -> None:
        import rasterio
        from rasterio.errors import RasterioError

        self.path = Path(path)
        if self.path.stat().st_size == 0:
            raise LabelRasterError(f"{self.path.name} is empty (0 bytes)", "empty_file")
        try:
            with GDAL_LOCK, gdal_context():
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

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows [y0, y1) as (h, width) uint8 0/1."""
        from rasterio.errors import RasterioError
        from rasterio.windows import Window

        y1 = min(y1, self.height)
        try:
            with GDAL_LOCK, gdal_context():
                data = self._src.read(1, window=Window(0, y0, self.width, y1 - y0))
        except RasterioError as e:
            raise LabelRasterError(f"{self.path.name}: corrupt or truncated ({e})", "decode") from e
        return (data > 0).astype(np.uint8)

    def reopen(self) -> MaskReader:
        """The same mask on new file handles, for a forked worker process."""
        return MaskReader(self.path)

    def close(self) -> None:
        self._src.close()

    def __enter__(self) -> MaskReader:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
