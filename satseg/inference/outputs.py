"""Small per-scene outputs: quicklook PNG and STAC Item (classification extension for a
multi-class model's class raster).

The quicklook is built from decimated copies collected while the scene streams through
(no second read of the full-resolution data). The STAC Item (1.0.0, projection extension)
lets catalogues and QGIS' STAC browser find the COGs and the GeoJSON.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from satseg import __version__
from satseg.io.atomic import write_bytes

STAC_VERSION = "1.0.0"
PROJ_EXT = "https://stac-extensions.github.io/projection/v1.1.0/schema.json"
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
CLASSIFICATION_EXT = "https://stac-extensions.github.io/classification/v2.0.0/schema.json"


class Decimator:
    """Keeps every ``f``-th row/column of streamed pieces (quicklook without a second read).

    Pieces arrive in any order (column bands: ``col0``); each lands in one preallocated
    image of the decimated scene.
    """

    def __init__(self, width: int, height: int, max_side: int = 1024) -> None:
        self.f = max(1, int(np.ceil(max(width, height) / max_side)))
        self.shape = (-(-height // self.f), -(-width // self.f))
        self._img: np.ndarray | None = None

    def push(self, row0: int, rows: np.ndarray, col0: int = 0) -> None:
        first, firstc = (-row0) % self.f, (-col0) % self.f
        if first >= rows.shape[0] or firstc >= rows.shape[1]:
            return
        part = rows[first :: self.f, firstc :: self.f]
        if self._img is None:
            self._img = np.zeros((*self.shape, *rows.shape[2:]), rows.dtype)
        r, c = (row0 + first) // self.f, (col0 + firstc) // self.f
        self._img[r : r + part.shape[0], c : c + part.shape[1]] = part

    def image(self) -> np.ndarray:
        return self._img if self._img is not None else np.zeros((0, 0), np.uint8)


def write_quicklook(path: Path, rgb: np.ndarray, mask: np.ndarray) -> Path:
    """RGB with buildings tinted red and outlined; nodata (255 in mask) dimmed."""
    import cv2

    h = min(rgb.shape[0], mask.shape[0])
    w = min(rgb.shape[1], mask.shape[1])
    img = rgb[:h, :w].astype(np.float32)
    m = mask[:h, :w]
    fg = m == 1
    img[fg] = img[fg] * 0.55 + np.array([255.0, 0.0, 0.0]) * 0.45
    img[m == 255] *= 0.3
    out = np.clip(img, 0, 255).astype(np.uint8)
    contours, _ = cv2.findContours(fg.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, (255, 255, 0), 1)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("could not encode quicklook PNG")
    return write_bytes(path, buf.tobytes())


def write_class_quicklook(
    path: Path, rgb: np.ndarray, classes: np.ndarray, names: list[str], colors: list[Any]
) -> Path:
    """RGB under the class colours (value i = ``names[i]`` in ``colors[i]``, RGB tuples),
    nodata (255) dimmed, with a legend of the classes in the top-left corner."""
    import cv2

    h = min(rgb.shape[0], classes.shape[0])
    w = min(rgb.shape[1], classes.shape[1])
    img = rgb[:h, :w].astype(np.float32)
    c = classes[:h, :w]
    for i, col in enumerate(colors):
        m = c == i
        img[m] = img[m] * 0.4 + np.array(col, np.float32) * 0.6
    img[c == 255] *= 0.3
    out = np.ascontiguousarray(np.clip(img, 0, 255).astype(np.uint8))
    _legend(out, names, colors)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("could not encode quicklook PNG")
    return write_bytes(path, buf.tobytes())


def _legend(img: np.ndarray, names: list[str], colors: list[Any]) -> None:
    """Draw a legend box (swatch + name per class) into ``img`` (RGB, in place)."""
    import cv2

    scale = 0.4 if img.shape[1] < 400 else 0.5
    font = cv2.FONT_HERSHEY_SIMPLEX
    line = int(22 * scale / 0.5)
    sw = max(8, line - 6)
    tw = max((cv2.getTextSize(n, font, scale, 1)[0][0] for n in names), default=0)
    bw = min(img.shape[1], 12 + sw + 6 + tw)
    bh = min(img.shape[0], 8 + line * len(names))
    box = img[:bh, :bw].astype(np.float32)
    img[:bh, :bw] = (box * 0.3 + 255 * 0.7).astype(np.uint8)
    for i, (name, col) in enumerate(zip(names, colors, strict=True)):
        y = 6 + i * line
        rgb = tuple(int(v) for v in col)
        cv2.rectangle(img, (6, y), (6 + sw, y + sw), rgb, -1)
        cv2.rectangle(img, (6, y), (6 + sw, y + sw), (0, 0, 0), 1)
        org = (6 + sw + 6, y + sw - 1)
        cv2.putText(img, name, org, font, scale, (0, 0, 0), 1, cv2.LINE_AA)


def classification_classes(names: list[str], colors: list[str]) -> list[dict[str, Any]]:
    """``classification:classes`` of the class raster (STAC classification extension)."""
    rows: list[dict[str, Any]] = [
        {"value": i, "name": _stac_name(n), "title": n, "color_hint": c.lstrip("#").upper()}
        for i, (n, c) in enumerate(zip(names, colors, strict=True))
    ]
    rows.append({"value": 255, "name": "nodata", "title": "No data", "nodata": True})
    return rows


def _stac_name(name: str) -> str:
    """A class name as the extension allows it (letters, digits, ``-`` and ``_``)."""
    import re

    return re.sub(r"[^0-9A-Za-z_-]+", "_", name) or "class"


def footprint_wgs84(crs: Any, transform: Any, width: int, height: int) -> dict[str, Any] | None:
    """Scene outline as a GeoJSON Polygon in EPSG:4326 (edges densified), or None."""
    if crs is None:
        return None
    from rasterio.warp import transform_geom

    corners = [(0, 0), (width, 0), (width, height), (0, height), (0, 0)]
    ring = [list(transform * c) for c in corners]
    geom = transform_geom(crs, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]}, precision=7)
    return dict(geom)


def stac_item(
    scene: str,
    source: Path,
    outputs: dict[str, Path],
    *,
    crs: Any,
    transform: Any,
    width: int,
    height: int,
    properties: dict[str, Any],
    classes: tuple[list[str], list[str]] | None = None,
) -> dict[str, Any]:
    """STAC Item describing the prediction assets (relative hrefs, so the folder can move).

    ``classes`` (names, hex colours) of a multi-class model: the class raster asset gets
    ``classification:classes`` and the probability asset one band per class.
    """
    geom = footprint_wgs84(crs, transform, width, height)
    bbox = None
    if geom is not None:
        xs = [c[0] for c in geom["coordinates"][0]]
        ys = [c[1] for c in geom["coordinates"][0]]
        bbox = [min(xs), min(ys), max(xs), max(ys)]
    epsg = crs.to_epsg() if crs is not None else None
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    item: dict[str, Any] = {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [PROJ_EXT] if classes is None else [PROJ_EXT, CLASSIFICATION_EXT],
        "id": scene,
        "geometry": geom,
        "properties": {
            "datetime": now,
            "created": now,
            "proj:epsg": epsg,
            "proj:wkt2": None if crs is None or epsg else crs.to_wkt(),
            "proj:shape": [height, width],
            "proj:transform": list(transform)[:6],
            "processing:software": {"satseg": __version__},
            **properties,
        },
        "links": [],
        "assets": _assets(outputs, source, classes),
    }
    if bbox is not None:
        item["bbox"] = bbox
    if item["properties"]["proj:wkt2"] is None:
        del item["properties"]["proj:wkt2"]
    return item


# (title, media type, roles) of each prediction asset in the STAC Item
_ASSETS: dict[str, tuple[str, str, list[str]]] = {
    "probability": ("Building probability (uint8, 0-255 = 0-1)", COG_TYPE, ["data"]),
    "mask": ("Building mask (1 building, 0 background, 255 nodata)", COG_TYPE, ["data"]),
    "uncertainty": (
        "Uncertainty (uint8, 0-255 = 0-1: entropy, or TTA variance x 4)",
        COG_TYPE,
        ["data", "uncertainty"],
    ),
    "vectors": ("Building polygons (EPSG:4326, area_m2)", "application/geo+json", ["data"]),
    "quicklook": ("Quicklook with mask overlay", "image/png", ["overview", "visual"]),
}


_CLASS_ASSETS: dict[str, tuple[str, str, list[str]]] = {
    "probability": (
        "Class probabilities (uint8 0-255 = 0-1, one band per class)",
        COG_TYPE,
        ["data"],
    ),
    "classes": ("Class raster (uint8 class index, 255 nodata)", COG_TYPE, ["data"]),
    "uncertainty": (
        "Uncertainty (uint8, 0-255 = 0-1: class entropy / log2(n), or TTA variance x 4)",
        COG_TYPE,
        ["data", "uncertainty"],
    ),
    "vectors": (
        "Polygons per class (EPSG:4326, class, class_index, area_m2)",
        "application/geo+json",
        ["data"],
    ),
    "quicklook": ("Quicklook with class colours and legend", "image/png", ["overview", "visual"]),
}


def _assets(
    outputs: dict[str, Path], source: Path, classes: tuple[list[str], list[str]] | None = None
) -> dict[str, dict[str, Any]]:
    """The STAC assets: outputs by relative href, the input scene by absolute URI."""
    table = _ASSETS if classes is None else _CLASS_ASSETS
    assets: dict[str, dict[str, Any]] = {
        key: {"href": outputs[key].name, "type": media, "title": title, "roles": roles}
        for key, (title, media, roles) in table.items()
        if key in outputs
    }
    if classes is not None:
        names, colors = classes
        if "classes" in assets:
            assets["classes"]["classification:classes"] = classification_classes(names, colors)
    assets["source"] = {
        "href": source.resolve().as_uri(),
        "title": "Input scene",
        "roles": ["source"],
    }
    return assets
