"""Deterministic, georeferenced sample scenes with building-like polygons and their labels.

Tests, benchmarks and the demo use these instead of binary fixtures. A scene is written in
windows, so even 20000x20000 px never sits whole in memory; the same ``seed`` always gives
the same pixels and polygons. ``SceneStyle`` shifts appearance (brightness, contrast, blur,
land cover) to simulate drift.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from satseg.io.atomic import atomic_path, write_json
from satseg.io.progress import progress

BLOCK = 512  # window edge for writing; also the bucket size of the polygon index


@dataclass(frozen=True)
class SceneStyle:
    """Appearance knobs; the defaults are the "training" distribution."""

    brightness: float = 0.0  # added to every band (0-255 scale)
    contrast: float = 1.0  # multiplies deviations from the mean
    blur: int = 0  # box blur radius in px (0 = sharp)
    land_cover: str = "urban"  # urban | desert | vegetation | water
    building_density: float = 1.0  # relative number of buildings


@dataclass
class Scene:
    """Paths of what ``make_scene`` wrote, and the polygons it drew (pixel coordinates)."""

    image: Path
    labelme: Path | None
    geojson: Path | None
    polygons: list[np.ndarray] = field(repr=False)
    crs: str | None
    transform: tuple[float, ...] | None
    width: int
    height: int


_COVER = {  # (base RGB, texture amplitude)
    "urban": ((110, 105, 95), 18.0),
    "desert": ((190, 160, 120), 10.0),
    "vegetation": ((60, 110, 50), 22.0),
    "water": ((30, 60, 110), 6.0),
}


def building_polygons(
    width: int, height: int, seed: int, density: float = 1.0, margin: int = 4
) -> list[np.ndarray]:
    """Rotated rectangles and L-shapes, non-overlapping by construction (one per grid cell)."""
    rng = np.random.default_rng(seed)
    cell = 64
    polys: list[np.ndarray] = []
    for cy in range(0, height, cell):
        for cx in range(0, width, cell):
            if rng.random() > 0.35 * density:
                rng.random(6)  # keep the stream aligned whatever the density
                continue
            w, h, ang, ox, oy, kind = rng.random(6)
            bw, bh = 12 + w * 26, 12 + h * 26
            cxp = cx + cell / 2 + (ox - 0.5) * (cell - max(bw, bh) - 2 * margin) * 0.5
            cyp = cy + cell / 2 + (oy - 0.5) * (cell - max(bw, bh) - 2 * margin) * 0.5
            if kind < 0.7:
                pts = np.array(
                    [[-bw / 2, -bh / 2], [bw / 2, -bh / 2], [bw / 2, bh / 2], [-bw / 2, bh / 2]]
                )
            else:  # L-shape
                pts = np.array(
                    [
                        [-bw / 2, -bh / 2],
                        [bw / 2, -bh / 2],
                        [bw / 2, 0],
                        [0, 0],
                        [0, bh / 2],
                        [-bw / 2, bh / 2],
                    ]
                )
            t = (ang - 0.5) * math.pi / 3
            rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
            pts = pts @ rot.T + [cxp, cyp]
            if (
                pts[:, 0].min() < margin
                or pts[:, 1].min() < margin
                or pts[:, 0].max() > width - margin
                or pts[:, 1].max() > height - margin
            ):
                continue
            polys.append(np.round(pts, 2))
    return polys


def _index(polys: list[np.ndarray]) -> dict[tuple[int, int], list[int]]:
    idx: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(polys):
        x0, y0 = p.min(0) // BLOCK
        x1, y1 = p.max(0) // BLOCK
        for by in range(int(y0), int(y1) + 1):
            for bx in range(int(x0), int(x1) + 1):
                idx.setdefault((by, bx), []).append(i)
    return idx


def render_window(
    row0: int,
    col0: int,
    h: int,
    w: int,
    polys: list[np.ndarray],
    index: dict[tuple[int, int], list[int]],
    seed: int,
    style: SceneStyle = SceneStyle(),
) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (h, w, 3) uint8 and mask (h, w) uint8 of one window; seamless across windows."""
    import cv2

    base, amp = _COVER.get(style.land_cover, _COVER["urban"])
    yy, xx = np.mgrid[row0 : row0 + h, col0 : col0 + w].astype(np.float32)
    # Seamless low-frequency texture: a function of global coordinates only.
    tex = (
        np.sin(xx / 37.0 + seed) * np.cos(yy / 53.0 - seed)
        + 0.5 * np.sin((xx + yy) / 17.0 + 2 * seed)
        + 0.25 * np.cos((xx - 2 * yy) / 7.0)
    ) * amp
    rng = np.random.default_rng([seed, row0, col0])
    noise = rng.normal(0, 4.0, (h, w)).astype(np.float32)
    img = np.empty((h, w, 3), np.float32)
    for b in range(3):
        img[..., b] = base[b] + tex * (1.0 - 0.2 * b) + noise
    # Roads: a regular grid of darker lines.
    road = ((xx.astype(np.int64) % 640) < 10) | ((yy.astype(np.int64) % 640) < 10)
    img[road] = (70, 70, 72)
    mask = np.zeros((h, w), np.uint8)
    roof = np.zeros((h, w, 3), np.uint8)
    shadow = np.zeros((h, w), np.uint8)
    ids: set[int] = set()
    for by in range(row0 // BLOCK, (row0 + h - 1) // BLOCK + 1):
        for bx in range(col0 // BLOCK, (col0 + w - 1) // BLOCK + 1):
            ids.update(index.get((by, bx), ()))
    for i in sorted(ids):
        p = polys[i] - [col0, row0]
        pts = np.round(p).astype(np.int32)
        colour = (200, 200, 205) if i % 3 == 0 else (170, 80, 60) if i % 3 == 1 else (230, 225, 215)
        cv2.fillPoly(shadow, [pts + [3, 3]], 1)
        cv2.fillPoly(roof, [pts], colour)
        cv2.fillPoly(mask, [pts], 1)
    img[shadow.astype(bool)] *= 0.55
    m = mask.astype(bool)
    img[m] = roof[m].astype(np.float32) + noise[m, None] * 0.5
    if style.blur:
        k = 2 * style.blur + 1
        img = np.asarray(cv2.blur(img, (k, k)), dtype=np.float32)  # type: ignore[assignment]
    mean = img.mean()
    img = (img - mean) * style.contrast + mean + style.brightness
    return np.clip(img, 0, 255).astype(np.uint8), mask


def _windows(width: int, height: int) -> Iterator[tuple[int, int, int, int]]:
    for r in range(0, height, BLOCK):
        for c in range(0, width, BLOCK):
            yield r, c, min(BLOCK, height - r), min(BLOCK, width - c)


def make_scene(
    out_dir: Path | str,
    name: str = "scene",
    width: int = 1024,
    height: int = 1024,
    seed: int = 0,
    *,
    crs: str = "EPSG:32637",
    origin: tuple[float, float] = (500000.0, 2800000.0),
    pixel_size: float = 0.5,
    bands: int = 3,
    dtype: str = "uint8",
    nodata: int | None = None,
    nodata_border: int = 0,
    style: SceneStyle = SceneStyle(),
    labelme: bool = True,
    geojson: bool = True,
    geojson_crs: str | None = None,
    mask_tif: bool = False,
    show_progress: bool | None = None,
) -> Scene:
    """Write ``<name>.tif`` (+ ``<name>.json`` LabelMe, ``<name>.geojson``) into ``out_dir``.

    ``bands``/``dtype`` make the 1/4-band and uint16 variants ingest and predict must accept;
    ``nodata_border`` px of nodata along the left edge exercise nodata handling.
    """
    from rasterio.transform import from_origin

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    polys = building_polygons(width, height, seed, style.building_density)
    transform = from_origin(origin[0], origin[1], pixel_size, pixel_size)
    img_path = out / f"{name}.tif"
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": bands,
        "dtype": dtype,
        "crs": crs,
        "transform": transform,
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    if nodata is not None:
        profile["nodata"] = nodata
    _write_rasters(
        img_path,
        out / f"{name}_mask.tif" if mask_tif else None,
        profile,
        polys,
        seed,
        style,
        nodata_border if nodata is not None else 0,
        show_progress,
    )
    lm = (
        write_labelme(out / f"{name}.json", polys, img_path.name, width, height)
        if labelme
        else None
    )
    gj = None
    if geojson:
        gj = write_geojson(out / f"{name}.geojson", polys, transform, crs, geojson_crs)
    return Scene(img_path, lm, gj, polys, crs, tuple(transform)[:6], width, height)


def _write_rasters(
    img_path: Path,
    mask_path: Path | None,
    profile: dict[str, Any],
    polys: list[Any],
    seed: int,
    style: SceneStyle,
    nodata_border: int,
    show_progress: bool | None,
) -> None:
    """Render the scene window by window into ``img_path`` (and the label raster, if asked)."""
    import contextlib

    import rasterio
    from rasterio.windows import Window

    index = _index(polys)
    bands, dtype, nodata = profile["count"], profile["dtype"], profile.get("nodata")
    mask_profile = {**profile, "count": 1, "dtype": "uint8", "nodata": None}
    wins = list(_windows(profile["width"], profile["height"]))
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(img_path))
        mdst = None
        if mask_path is not None:
            mtmp = stack.enter_context(atomic_path(mask_path))
            mdst = stack.enter_context(rasterio.open(mtmp, "w", **mask_profile))
        dst = stack.enter_context(rasterio.open(tmp, "w", **profile))
        for r, c, h, w in progress(wins, desc=f"synth {img_path.stem}", enabled=show_progress):
            rgb, mask = render_window(r, c, h, w, polys, index, seed, style)
            data = _to_bands(rgb, bands, dtype)
            if nodata_border and c < nodata_border:
                data[:, :, : max(0, nodata_border - c)] = nodata
            dst.write(data, window=Window(c, r, w, h))
            if mdst is not None:
                mdst.write(mask[None], window=Window(c, r, w, h))


def _to_bands(rgb: np.ndarray, bands: int, dtype: str) -> np.ndarray:
    chw = np.transpose(rgb, (2, 0, 1)).astype(np.float32)
    if bands == 1:
        chw = chw.mean(0, keepdims=True)
    elif bands == 4:  # a near-infrared-like fourth band: bright on vegetation
        nir = np.clip(chw[1] * 1.3 - chw[0] * 0.3 + 40, 0, 255)
        chw = np.concatenate([chw, nir[None]], 0)
    elif bands != 3:
        chw = np.repeat(chw.mean(0, keepdims=True), bands, 0)
    if dtype == "uint16":
        return (chw * 16).astype(np.uint16)  # 12-bit-like sensor range
    return chw.astype(dtype)


def labelme_doc(
    polys: list[np.ndarray], image_name: str, width: int, height: int, label: str = "building"
) -> dict[str, Any]:
    return {
        "version": "5.2.1",
        "flags": {},
        "shapes": [
            {
                "label": label,
                "points": [[float(x), float(y)] for x, y in p],
                "group_id": None,
                "shape_type": "polygon",
                "flags": {},
            }
            for p in polys
        ],
        "imagePath": image_name,
        "imageData": None,
        "imageHeight": height,
        "imageWidth": width,
    }


def write_labelme(
    path: Path, polys: list[np.ndarray], image_name: str, width: int, height: int
) -> Path:
    return write_json(path, labelme_doc(polys, image_name, width, height))


def write_geojson(
    path: Path,
    polys: list[np.ndarray],
    transform: Any,
    crs: str,
    out_crs: str | None = None,
) -> Path:
    """Footprints in map coordinates (pixel corners through the affine transform)."""
    feats = []
    to = None
    if out_crs and out_crs != crs:
        from pyproj import Transformer

        to = Transformer.from_crs(crs, out_crs, always_xy=True)
    for i, p in enumerate(polys):
        xs, ys = transform * (p[:, 0], p[:, 1])
        xs, ys = np.asarray(xs), np.asarray(ys)
        if to is not None:
            xs, ys = to.transform(xs, ys)
        ring = [[float(x), float(y)] for x, y in zip(xs, ys, strict=True)]
        ring.append(ring[0])
        feats.append(
            {
                "type": "Feature",
                "properties": {"id": i, "label": "building"},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    target = out_crs or crs
    epsg = target.split(":")[-1]
    doc: dict[str, Any] = {"type": "FeatureCollection", "features": feats}
    if target.upper() != "EPSG:4326":
        doc["crs"] = {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{epsg}"}}
    path.write_text(json.dumps(doc))
    return path


def make_png_pair(
    out_dir: Path | str,
    name: str = "sample",
    width: int = 512,
    height: int = 512,
    seed: int = 0,
    style: SceneStyle = SceneStyle(),
    ext: str = "png",
) -> Scene:
    """A plain PNG/JPEG + LabelMe pair in the seed project's format (no georeference)."""
    import cv2

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    polys = building_polygons(width, height, seed, style.building_density)
    rgb, _ = render_window(0, 0, height, width, polys, _index(polys), seed, style)
    img_path = out / f"{name}.{ext}"
    with atomic_path(img_path) as tmp:
        ok, buf = cv2.imencode(f".{ext}", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"could not encode {img_path}")
        tmp.write_bytes(buf.tobytes())
    lm = write_labelme(out / f"{name}.json", polys, img_path.name, width, height)
    return Scene(img_path, lm, None, polys, None, None, width, height)


def rasterize_polygons(polys: list[np.ndarray], width: int, height: int) -> np.ndarray:
    """Reference mask for tests: the same rule the generator uses (cv2.fillPoly, rounded)."""
    import cv2

    mask = np.zeros((height, width), np.uint8)
    if polys:
        cv2.fillPoly(mask, [np.round(p).astype(np.int32) for p in polys], 1)
    return mask


LANDCOVER_CLASSES = ("building", "land", "road", "vegetation", "water")
_LC_RGB = {  # class -> (base RGB, texture amplitude)
    "land": ((190, 165, 125), 12.0),
    "road": ((72, 72, 76), 3.0),
    "vegetation": ((62, 112, 52), 20.0),
    "water": ((28, 58, 105), 5.0),
}


@dataclass
class LandcoverScene:
    """What ``make_landcover_scene`` wrote and drew: shapes in painter's order, the truth."""

    image: Path
    labelme: Path
    shapes: list[dict[str, Any]] = field(repr=False)  # LabelMe shapes, painter's order
    truth: np.ndarray = field(repr=False)  # (h, w) uint8 class index into LANDCOVER_CLASSES
    width: int = 0
    height: int = 0


def landcover_shapes(width: int, height: int, seed: int) -> list[dict[str, Any]]:
    """Land everywhere, a lake with an island (a hole), roads, vegetation patches and
    buildings on dry land: LabelMe shapes in painter's order (largest first)."""
    rng = np.random.default_rng(seed)

    def shape(label: str, pts: Any, **kw: Any) -> dict[str, Any]:
        points = [[float(x), float(y)] for x, y in np.round(np.asarray(pts, float), 2)]
        return {"label": label, "points": points, "shape_type": "polygon", "flags": {}, **kw}

    def ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 24) -> np.ndarray:
        t = np.linspace(0, 2 * math.pi, n, endpoint=False)
        return np.c_[cx + rx * np.cos(t), cy + ry * np.sin(t)]

    w, h = width - 1, height - 1
    out = [shape("land", [[0, 0], [w, 0], [w, h], [0, h]])]
    lx, ly = width * (0.25 + 0.1 * rng.random()), height * (0.7 + 0.1 * rng.random())
    lrx, lry = width * 0.18, height * 0.14
    out.append(shape("water", ellipse(lx, ly, lrx, lry), group_id=1))
    out.append(
        shape("water", ellipse(lx, ly, lrx * 0.3, lry * 0.3), group_id=1, flags={"hole": True})
    )
    out.append(shape("vegetation", ellipse(lx, ly, lrx * 0.22, lry * 0.22)))  # the island
    for _ in range(3):
        cx, cy = width * (0.55 + 0.35 * rng.random()), height * (0.55 + 0.35 * rng.random())
        out.append(shape("vegetation", ellipse(cx, cy, width * 0.06, height * 0.05, 16)))
    ry = int(height * (0.35 + 0.1 * rng.random()))
    rx = int(width * (0.6 + 0.1 * rng.random()))
    out.append(shape("road", [[0, ry], [w, ry], [w, ry + 9], [0, ry + 9]]))
    out.append(shape("road", [[rx, 0], [rx + 9, 0], [rx + 9, ry], [rx, ry]]))
    for p in building_polygons(width, int(height * 0.33), seed + 1, density=1.2):
        if p[:, 1].max() < ry - 2:  # north of the road, clear of the lake
            out.append(shape("building", p))
    return out


def paint_shapes(shapes: list[dict[str, Any]], width: int, height: int) -> np.ndarray:
    """The class-index map of ``shapes`` (painter's order, holes back to 255 = unlabeled):
    the same rule as ingest (``cv2.fillPoly`` on rounded vertices)."""
    import cv2

    out = np.full((height, width), 255, np.uint8)
    for s in shapes:
        pts = np.round(np.asarray(s["points"])).astype(np.int32)
        hole = bool(s.get("flags", {}).get("hole"))
        cv2.fillPoly(out, [pts], 255 if hole else LANDCOVER_CLASSES.index(s["label"]))
    return out


def make_landcover_scene(
    out_dir: Path | str,
    name: str = "landcover",
    width: int = 512,
    height: int = 512,
    seed: int = 0,
    *,
    crs: str = "EPSG:32637",
    origin: tuple[float, float] = (500000.0, 2800000.0),
    pixel_size: float = 0.5,
) -> LandcoverScene:
    """A small georeferenced multi-class scene (GeoTIFF + LabelMe) and its class truth.

    Each class has its own colour and texture, buildings their roofs and shadows, so a model
    can learn them; small enough (whole in memory) for tests and the demo.
    """
    import rasterio
    from rasterio.transform import from_origin

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shapes = landcover_shapes(width, height, seed)
    truth = paint_shapes(shapes, width, height)
    polys = [np.asarray(s["points"]) for s in shapes if s["label"] == "building"]
    rgb, _ = render_window(0, 0, height, width, polys, _index(polys), seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    tex = np.sin(xx / 23.0 + seed) * np.cos(yy / 31.0 - seed)
    noise = np.random.default_rng([seed, 7]).normal(0, 3.0, (height, width)).astype(np.float32)
    img = rgb.astype(np.float32)
    for label, (base, amp) in _LC_RGB.items():
        m = truth == LANDCOVER_CLASSES.index(label)
        for b in range(3):
            img[..., b][m] = base[b] + (tex[m] * amp + noise[m]) * (1.0 - 0.2 * b)
    img_path = out / f"{name}.tif"
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": 3,
        "dtype": "uint8",
        "crs": crs,
        "transform": from_origin(origin[0], origin[1], pixel_size, pixel_size),
    }
    with atomic_path(img_path) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(np.transpose(np.clip(img, 0, 255).astype(np.uint8), (2, 0, 1)))
    doc = labelme_doc([], img_path.name, width, height)
    doc["shapes"] = [{"group_id": None, **s} for s in shapes]
    lm = write_json(out / f"{name}.json", doc)
    return LandcoverScene(img_path, lm, shapes, truth, width, height)
