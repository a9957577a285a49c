"""Cloud-Optimized GeoTIFF output written block by block, published atomically.

Rows are written into an uncompressed tiled GeoTIFF beside the target (cheap, windowed);
on close its overviews are built in that file, then GDAL's COG driver copies it once into
the final layout (512 px tiles, DEFLATE with the horizontal predictor, those overviews) under
a temp name that is renamed over the target. A crash leaves the previous output intact and
only a hidden temp file behind.

Left to build the overviews itself, the COG driver writes them DEFLATE-compressed to a temp
file and decompresses them again for the copy: built in the uncompressed work file, the same
levels cost about 0.7x the publish time (20000², issue 18). Their pixels are the driver's
where a level's grid is the same; where a side halves to an odd size GDAL's overview builder
rounds it up (as ``gdaladdo`` does) and the COG driver down, so that level is 1 px larger.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from satseg.cpus import available_cpus
from satseg.io.atomic import atomic_path, write_bytes
from satseg.io.gdal import GDAL_LOCK

BLOCK = 512


class CogWriter:
    """``write(row0, rows, valid=None, col0=0)`` in any order; the COG appears at ``path`` on
    exit. ``read(row0, h)`` gives back full-width rows written so far (and their validity).

    ``count`` > 1: rows are ``(h, w, count)`` and each band gets its ``descriptions`` entry.
    A class raster gets ``colormap`` (value -> RGBA, the GDAL colour table) and
    ``categories`` (class names by value): GeoTIFF holds no category names, so they go to
    the GDAL PAM sidecar ``<name>.aux.xml`` (category names and a raster attribute table,
    which GDAL and QGIS read with the file).
    """

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
        count: int = 1,
        descriptions: list[str] | None = None,
        colormap: dict[int, tuple[int, int, int, int]] | None = None,
        categories: list[str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.count = count
        self.descriptions = list(descriptions or [])
        self.colormap = colormap
        self.categories = categories
        self.profile: dict[str, Any] = {
            "driver": "GTiff",
            "width": width,
            "height": height,
            "count": count,
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
            self._dst = rasterio.open(Path(self._tmpdir.name) / "work.tif", "w+", **self.profile)
        if self.tags:
            self._dst.update_tags(**self.tags)
        if self.description:
            self._dst.set_band_description(1, self.description)
        for band, text in enumerate(self.descriptions, start=1):
            self._dst.set_band_description(band, text)
        if self.colormap:
            self._dst.write_colormap(1, self.colormap)
        return self

    def write(
        self, row0: int, rows: np.ndarray, valid: np.ndarray | None = None, col0: int = 0
    ) -> None:
        from rasterio.windows import Window

        h, w = rows.shape[:2]
        win = Window(col0, row0, w, h)
        m = None
        if self.with_mask:
            m = np.full((h, w), 255, np.uint8) if valid is None else valid.astype(np.uint8) * 255
        with GDAL_LOCK:
            if self.count > 1:
                self._dst.write(np.moveaxis(rows, -1, 0), window=win)
            else:
                self._dst.write(rows, 1, window=win)
            if m is not None:
                self._dst.write_mask(m, window=win)

    def read(self, row0: int, h: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Full-width rows [row0, row0+h) written so far (band 1) and, with a mask, where
        they are valid (None without one)."""
        from rasterio.windows import Window

        win = Window(0, row0, self.profile["width"], h)
        with GDAL_LOCK:
            data = self._dst.read(1, window=win)
            valid = self._dst.read_masks(1, window=win) > 0 if self.with_mask else None
        return data, valid

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._tmpdir is not None
        try:
            work = Path(self._dst.name)
            if exc_type is None and self.PREBUILD_OVERVIEWS:
                self._build_overviews()
            self._dst.close()
            if exc_type is None:
                self._publish(work)
        finally:
            self._tmpdir.cleanup()

    PREBUILD_OVERVIEWS = True  # False: the COG driver makes them (the tests' reference)

    def _build_overviews(self) -> None:
        """The levels the COG driver's ``OVERVIEWS=AUTO`` would make (halving, rounded down,
        until both sides fit in one block), with this raster's resampling, into the work
        file."""
        import rasterio
        from rasterio.enums import Resampling

        factors: list[int] = []
        w, h = self.profile["width"], self.profile["height"]
        while w > BLOCK or h > BLOCK:
            factors.append(2 ** (len(factors) + 1))
            w, h = w // 2, h // 2
        if factors:
            with GDAL_LOCK, rasterio.Env(GDAL_NUM_THREADS=str(available_cpus())):
                self._dst.build_overviews(factors, Resampling[self.resampling])

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
        if self.categories is not None:
            write_bytes(aux_path(self.path), pam_categories(self.categories, self.colormap or {}))


def aux_path(path: Path) -> Path:
    """GDAL's PAM sidecar of ``path`` (``<name>.aux.xml``)."""
    return path.with_name(path.name + ".aux.xml")


def pam_categories(names: list[str], colormap: dict[int, tuple[int, int, int, int]]) -> bytes:
    """PAM XML for band 1: category names (value i = ``names[i]``) and a raster attribute
    table (Value, Class, Red, Green, Blue, Alpha) with the same names and colours."""
    from xml.sax.saxutils import escape

    cats = "".join(f"<Category>{escape(n)}</Category>" for n in names)
    fields = [("Value", 0, 5), ("Class", 2, 2), ("Red", 0, 6), ("Green", 0, 7), ("Blue", 0, 8)]
    fields.append(("Alpha", 0, 9))
    defs = "".join(
        f'<FieldDefn index="{i}"><Name>{n}</Name><Type>{t}</Type><Usage>{u}</Usage></FieldDefn>'
        for i, (n, t, u) in enumerate(fields)
    )
    rows = []
    for i, name in enumerate(names):
        r, g, b, a = colormap.get(i, (0, 0, 0, 255))
        cells = [str(i), escape(name), str(r), str(g), str(b), str(a)]
        rows.append(f'<Row index="{i}">' + "".join(f"<F>{c}</F>" for c in cells) + "</Row>")
    rat = f'<GDALRasterAttributeTable tableType="thematic">{defs}{"".join(rows)}</GDALRasterAttributeTable>'
    xml = (
        f'<PAMDataset>\n  <PAMRasterBand band="1">\n    <CategoryNames>{cats}</CategoryNames>\n'
        f"    {rat}\n  </PAMRasterBand>\n</PAMDataset>\n"
    )
    return xml.encode("utf-8")
