"""Cloud-Optimized GeoTIFF output written block by block, published atomically.

Rows are written into an uncompressed tiled GeoTIFF beside the target (cheap, windowed);
on close GDAL's COG driver copies it once into the final layout (512 px tiles, DEFLATE with
the horizontal predictor, overviews) under a temp name that is renamed over the target.
A crash leaves the previous output intact and only a hidden temp file behind.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from satseg.cpus import available_cpus
from satseg.io.atomic import atomic_path
from satseg.io.gdal import GDAL_LOCK

BLOCK = 512


class CogWriter:
    """``write(row0, rows, valid=None)`` in any order; the COG appears at ``path`` on exit."""

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        crs: Any,
        transform: Any,
        *,
        nodata: float | None = None,
        with_mask: bool = False,
        tags: dict[str, Any] | None = None,
        description: str = "",
        resampling: str = "average",
    ) -> None:
        self.path = Path(path)
        self.profile: dict[str, Any] = {
            "driver": "GTiff",
            "width": width,
            "height": height,
            "count": 1,
            "dtype": "uint8",
            "crs": crs,
            "transform": transform,
            "nodata": nodata,
            "tiled": True,
            "blockxsize": BLOCK,
            "blockysize": BLOCK,
            "compress": "none",
            "BIGTIFF": "IF_SAFER",
        }
        self.with_mask = with_mask
        self.tags = {k: str(v) for k, v in (tags or {}).items()}
        self.description = description
        self.resampling = resampling
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._dst: Any = None

    def __enter__(self) -> CogWriter:
        import rasterio

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmpdir = tempfile.TemporaryDirectory(
            prefix=f".{self.path.stem}.", dir=self.path.parent
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NotGeoreferencedWarning for pixel-space outputs
            self._dst = rasterio.open(Path(self._tmpdir.name) / "work.tif", "w", **self.profile)
        if self.tags:
            self._dst.update_tags(**self.tags)
        if self.description:
            self._dst.set_band_description(1, self.description)
        return self

    def write(self, row0: int, rows: np.ndarray, valid: np.ndarray | None = None) -> None:
        from rasterio.windows import Window

        h, w = rows.shape
        win = Window(0, row0, w, h)
        m = None
        if self.with_mask:
            m = np.full((h, w), 255, np.uint8) if valid is None else valid.astype(np.uint8) * 255
        with GDAL_LOCK:
            self._dst.write(rows, 1, window=win)
            if m is not None:
                self._dst.write_mask(m, window=win)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tmpdir is not None
        try:
            work = Path(self._dst.name)
            self._dst.close()
            if exc_type is None:
                self._publish(work)
        finally:
            self._tmpdir.cleanup()

    def _publish(self, work: Path) -> None:
        import rasterio
        from rasterio.shutil import copy as rio_copy

        threads = str(available_cpus())
        with (
            atomic_path(self.path) as tmp,
            rasterio.Env(GDAL_NUM_THREADS=threads),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            rio_copy(
                work,
                tmp,
                driver="COG",
                COMPRESS="DEFLATE",
                PREDICTOR="YES" if self.resampling == "average" else "NO",
                BLOCKSIZE=str(BLOCK),
                OVERVIEWS="AUTO",
                RESAMPLING=self.resampling.upper(),
                NUM_THREADS=threads,
                BIGTIFF="IF_SAFER",
            )
