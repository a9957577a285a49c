"""XYZ map tiles of a prediction's rasters (mask or class raster, probability, source imagery)
with rio-tiler.

Each tile is one windowed read: rio-tiler reads the tile's window from the overview level that
fits the zoom (the COGs written by ``satseg.inference.cog`` have overviews), never the whole
file. A source GeoTIFF without overviews read at a coarse zoom would decode every block under
the tile, so a tile whose read would decode more than ``MAX_DECODED_SIDE`` pixels along a side
is refused (``TileTooCoarse``); the map shows the scene's quicklook at those zooms instead and
``layer_info`` says from which zoom tiles exist.

Georeferenced rasters are tiled in Web Mercator (Leaflet's default CRS); rasters in pixel space
(a PNG/JPEG scene's outputs, a GeoTIFF without CRS) with rio-tiler's ``ImageReader``, whose zoom
``maxzoom`` is full resolution: the map (``CRS.Simple``, one unit = one pixel) asks for zoom
``z + maxzoom`` (Leaflet's ``zoomOffset``). Only GeoTIFFs are opened (checked by content with
``satseg.io.sniff``), by GDAL's GTiff driver alone, with satseg's offline GDAL settings.

A multi-class scene has a ``classes`` layer (``classes.tif``) drawn with the colour table the
predictor wrote into the file (class ``i`` in its colour, nodata 255 transparent), the same
colours a GIS shows. Its ``probability`` layer (``prob.tif``, one band per class) shows, per
pixel, the winning class's probability: that class's colour, more opaque as it is surer (the
binary layer's rule, the building colour replaced by the class's).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from satseg.classes import IGNORE
from satseg.io.gdal import GDAL_LOCK, gdal_env
from satseg.io.raster import RasterError
from satseg.io.sniff import sniff

Layer = Literal["mask", "classes", "probability", "source"]
RGB = tuple[int, int, int]
TILE = 256
MAX_ZOOM = 30  # Web Mercator tiles of about 4 cm; pixel-space maps need far fewer levels
MAX_DECODED_SIDE = 2048  # pixels decoded along a side for one tile, at most
MASK_COLOURS = {0: (0, 0, 0, 0), 1: (255, 59, 48, 200), 255: (0, 0, 0, 0)}
BUILDING_RGB = (255, 59, 48)


class TileTooCoarse(Exception):
    """The tile would read more than ``MAX_DECODED_SIDE`` pixels along a side (no overview)."""


@contextmanager
def open_reader(path: Path) -> Iterator[Any]:
    """rio-tiler reader of the GeoTIFF ``path`` (``ImageReader`` when it has no CRS)."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rio_tiler.io import ImageReader, Reader

    if sniff(path) != "GTiff":
        raise RasterError(f"{path.name} is not a GeoTIFF: no tiles", "format")
    with gdal_env(), warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, driver="GTiff") as src:
            cls = Reader if src.crs is not None else ImageReader
            with cls(str(path), dataset=src) as reader:
                yield reader


def layer_info(path: Path) -> dict[str, Any]:
    """What the map needs: georeferenced or not, zoom range with tiles, size, overviews."""
    with GDAL_LOCK, open_reader(path) as r:
        src = r.dataset
        geo = src.crs is not None
        info: dict[str, Any] = {
            "georeferenced": geo,
            "width": src.width,
            "height": src.height,
            "maxzoom": int(r.maxzoom),
            "overviews": list(src.overviews(1)),
        }
        native = _pixel_size_at_maxzoom(r) if geo else 1.0
        extent = max(src.width, src.height)
        info["minzoom"] = _first_zoom(int(r.maxzoom), native, info["overviews"], extent)
        if geo:
            info["bounds"] = [float(v) for v in r.get_geographic_bounds("EPSG:4326")]
    return info


def _pixel_size_at_maxzoom(reader: Any) -> float:
    """Source pixels per tile pixel at ``maxzoom`` (about 1 by rio-tiler's choice)."""
    from rio_tiler.constants import WGS84_CRS

    bounds = reader.get_geographic_bounds(WGS84_CRS)
    west, _, east, _ = bounds
    span = 256 * 2**reader.maxzoom * (east - west) / 360.0  # tile pixels across the scene
    return max(reader.dataset.width / max(span, 1e-9), 1e-9)


def _first_zoom(maxzoom: int, native: float, overviews: list[int], extent: int) -> int:
    """The coarsest zoom whose tiles decode at most ``MAX_DECODED_SIDE`` pixels per side."""
    z = maxzoom
    while z > 0:
        decimation = native * 2 ** (maxzoom - (z - 1))
        if _decoded_side(decimation, overviews, extent) > MAX_DECODED_SIDE:
            break
        z -= 1
    return z


def _decoded_side(decimation: float, overviews: list[int], extent: float) -> float:
    """Pixels GDAL decodes along a side for a 256 px tile at ``decimation`` source px/tile px
    (at most the raster's ``extent``: a tile larger than the raster reads only the raster)."""
    usable = [f for f in overviews if f <= decimation] or [1]
    return min(TILE * decimation, extent) / max(usable)


def render_tile(
    path: Path,
    layer: Layer,
    z: int,
    x: int,
    y: int,
    scaler: dict | None,
    palette: list[RGB] | None = None,
) -> bytes:
    """One 256 px PNG tile of ``layer``; transparent outside the raster.

    ``palette``: the class colours (index order) of a multi-class probability raster.
    """
    from rio_tiler.errors import TileOutsideBounds

    with GDAL_LOCK, open_reader(path) as r:
        if not r.tile_exists(x, y, z):
            return empty_tile()
        _check_cost(r, z, x, y)
        bands = r.dataset.count
        if layer == "source" and scaler:
            indexes = tuple(scaler["bands"])
        elif layer == "probability" and bands > 1:  # one band per class
            indexes = tuple(range(1, bands + 1))
        else:
            indexes = (1,)
        try:
            img = r.tile(x, y, z, indexes=indexes)  # nearest: crisp edges, classes kept
        except TileOutsideBounds:
            return empty_tile()
        if layer == "mask":
            return bytes(img.render(img_format="PNG", colormap=MASK_COLOURS))
        if layer == "classes":
            return bytes(img.render(img_format="PNG", colormap=class_colours(r.colormap)))
        if layer == "probability" and bands > 1:
            return _render_class_probability(img, palette)
        if layer == "probability":
            return bytes(img.render(img_format="PNG", colormap=probability_colours()))
        return _render_source(img, scaler)


def class_colours(table: dict[int, Any] | None) -> dict[int, tuple[int, int, int, int]]:
    """The class raster's colour table as a tile colormap (nodata 255 transparent)."""
    cmap = {int(k): tuple(int(c) for c in v) for k, v in (table or {}).items()}
    cmap[IGNORE] = (0, 0, 0, 0)
    return cmap  # type: ignore[return-value]


def _render_class_probability(img: Any, palette: list[RGB] | None) -> bytes:
    """The winning class's probability: its colour, alpha = 0.9 x probability (as binary)."""
    data = np.asarray(img.array.data)
    colours = np.asarray(palette or [BUILDING_RGB] * data.shape[0], np.uint8)
    if len(colours) != data.shape[0]:
        raise ValueError(f"{len(colours)} class colours for {data.shape[0]} probability bands")
    best = data.argmax(axis=0)
    rgba = np.empty((*best.shape, 4), np.uint8)
    rgba[..., :3] = colours[best]
    alpha = (data.max(axis=0).astype(np.float32) * 0.9).astype(np.uint8)
    rgba[..., 3] = np.where(img.mask > 0, alpha, 0)
    return _png(rgba)


def _check_cost(reader: Any, z: int, x: int, y: int) -> None:
    """Raise ``TileTooCoarse`` if the tile's window needs too many decoded pixels."""
    from morecantile import Tile

    bounds = reader.tms.xy_bounds(Tile(x=x, y=y, z=z))
    src = reader.dataset
    if reader.crs is not None and reader.tms.rasterio_crs != src.crs:
        from rasterio.warp import transform_bounds

        bounds = transform_bounds(reader.tms.rasterio_crs, src.crs, *bounds)
    left, bottom, right, top = bounds
    res_x = abs(src.transform.a) if reader.crs is not None else abs(reader.transform.a)
    res_y = abs(src.transform.e) if reader.crs is not None else abs(reader.transform.e)
    side = max((right - left) / res_x, (top - bottom) / res_y)
    extent = max(src.width, src.height)
    if _decoded_side(side / TILE, list(src.overviews(1)), extent) > MAX_DECODED_SIDE:
        raise TileTooCoarse(
            f"tile {z}/{x}/{y} of {Path(src.name).name} would decode about {side:.0f} px "
            f"along a side (no overview that coarse); zoom in"
        )


def _render_source(img: Any, scaler: dict | None) -> bytes:
    """The source bands scaled to uint8 as the model saw them (the scene's ``BandScaler``)."""
    if scaler and scaler.get("dtype") != "uint8" and scaler.get("lo"):
        img.rescale(in_range=list(zip(scaler["lo"], scaler["hi"], strict=True)))
    elif img.array.dtype != np.uint8:
        img.rescale(in_range=[(0, 255)] * img.count)
    if img.count == 1:
        img.array = np.ma.concatenate([img.array] * 3)
    return bytes(img.render(img_format="PNG"))


@cache
def probability_colours() -> dict[int, tuple[int, int, int, int]]:
    """0-255 probability -> the building colour, more opaque as the model is surer."""
    return {v: (*BUILDING_RGB, min(255, int(v * 0.9))) for v in range(256)}


@cache
def empty_tile() -> bytes:
    """A fully transparent 256 px PNG (outside the raster)."""
    return _png(np.zeros((TILE, TILE, 4), np.uint8))


def _png(rgba: np.ndarray) -> bytes:
    """An (h, w, 4) RGBA uint8 array as PNG bytes."""
    import cv2

    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    assert ok
    return bytes(buf.tobytes())


def zoom_for_width(width: int, screen: int = 900) -> int:
    """A first zoom showing ``width`` pixels in about ``screen`` (pixel-space maps)."""
    return min(0, math.floor(math.log2(max(screen, 1) / max(width, 1))))
