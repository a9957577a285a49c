"""Annotations -> polygons in pixel coordinates, with every check the inbox contract names.

LabelMe (pixel coordinates, the seed's format) and GeoJSON (map coordinates in any CRS,
reprojected to the raster's CRS and mapped through its affine transform). Self-intersecting
polygons are repaired with ``shapely.make_valid`` when that leaves an area; a repair that
collapses to lines or points is rejected. A LabelMe file with an empty ``shapes`` list is a
valid all-background scene.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from satseg.ingest.errors import IngestError
from satseg.io.jsonload import JsonError, JsonLimits, load_json
from satseg.vocab import ANNOTATION_TASK_KEY, is_safe_name

AREA_SHAPES = {"polygon", "rectangle", "circle"}


@dataclass
class Labels:
    """Polygons (shapely, pixel coords) plus what was done to get them."""

    kind: str  # labelme | geojson
    geometries: list[Any] = field(default_factory=list)
    repaired: int = 0
    ignored: int = 0  # non-area shapes (lines, points) and labels outside the class filter
    task: dict[str, Any] | None = None  # an exported annotation task's origin (satseg.annotate)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "polygons": len(self.geometries),
            "repaired": self.repaired,
            "ignored": self.ignored,
        }
        if self.task:
            out["task"] = self.task
        return out


def annotation_task(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The ``satseg_task`` key of a LabelMe file exported by ``satseg.annotate``: which task
    and which source scene it came from. Only plain names and numbers are kept (the file is
    user input); anything else is ignored, never an error: the labels themselves count."""
    raw = doc.get(ANNOTATION_TASK_KEY)
    if not isinstance(raw, dict):
        return None
    task, scene = raw.get("task"), raw.get("source_scene")
    if not (isinstance(task, str) and isinstance(scene, str)):
        return None
    if not (is_safe_name(task) and is_safe_name(scene)):
        return None
    out: dict[str, Any] = {"task": task, "source_scene": scene}
    version = raw.get("model_version")
    if isinstance(version, str) and is_safe_name(version):
        out["model_version"] = version
    window = raw.get("window")
    if isinstance(window, dict) and all(
        isinstance(window.get(k), int) and not isinstance(window.get(k), bool)
        for k in ("row", "col", "height", "width")
    ):
        out["window"] = {k: window[k] for k in ("row", "col", "height", "width")}
    return out


def read_json(path: Path, limits: JsonLimits | None = None) -> dict[str, Any]:
    """Parse an annotation file; empty, oversized, too deeply nested, non-JSON or non-object
    content is rejected (:mod:`satseg.io.jsonload`: nothing here can recurse or blow up)."""
    if path.stat().st_size == 0:
        raise IngestError(f"{path.name} is empty (0 bytes)", "empty_file", "annotation")
    try:
        doc = load_json(path, limits or _json_limits())
    except JsonError as e:
        raise IngestError(str(e), e.check, "annotation") from e
    if not isinstance(doc, dict):
        raise IngestError(
            f"{path.name}: expected a JSON object, got {type(doc).__name__}",
            "json_schema",
            "annotation",
        )
    return doc


def _json_limits() -> JsonLimits:
    """``ingest.max_annotation_mb`` / ``ingest.max_json_depth`` of the current settings."""
    from satseg.config import get_settings

    return JsonLimits.from_params(get_settings().params().ingest)


def is_geojson(doc: dict[str, Any]) -> bool:
    return doc.get("type") in ("FeatureCollection", "Feature")


def _repair(poly: Any, what: str) -> tuple[list[Any], bool]:
    """Valid polygon parts of ``poly``; (parts, repaired?). Rejects repairs without area."""
    from shapely import make_valid
    from shapely.geometry import GeometryCollection, MultiPolygon, Polygon

    if poly.is_valid:
        return ([poly] if poly.area > 0 else []), False
    fixed = make_valid(poly)
    parts: list[Any] = []
    stack = [fixed]
    while stack:
        g = stack.pop()
        if isinstance(g, Polygon) and g.area > 0:
            parts.append(g)
        elif isinstance(g, MultiPolygon | GeometryCollection):
            stack.extend(g.geoms)
    if not parts:
        raise IngestError(
            f"{what} is self-intersecting and cannot be repaired (no area left)",
            "self_intersection",
            "annotation",
        )
    return parts, True


def labelme_labels(
    doc: dict[str, Any],
    width: int,
    height: int,
    *,
    classes: list[str] | None = None,
    tolerance_px: float = 1.0,
    name: str = "annotation",
) -> Labels:
    """Polygons of a LabelMe document for an image of ``width`` x ``height`` pixels.

    A scene can carry thousands of polygons, and checking them one at a time held up ingest
    (0.25 s for 8500 buildings, before any patch was cut). Documents whose area shapes are
    all well-formed polygons are checked and built in bulk with shapely's array functions;
    anything else (rectangles, circles, malformed points) takes the shape-by-shape path,
    which gives the same result and names the first bad shape.
    """
    if "shapes" not in doc:
        raise IngestError(
            f"{name}: LabelMe JSON has no 'shapes' key (use an empty list for a scene without objects)",
            "labelme_shapes",
            "annotation",
        )
    shapes = doc["shapes"]
    if not isinstance(shapes, list):
        raise IngestError(f"{name}: 'shapes' must be a list", "labelme_shapes", "annotation")
    iw, ih = _image_size(doc, name)
    if (iw is not None and iw != width) or (ih is not None and ih != height):
        raise IngestError(
            f"{name}: annotation is for a {iw}x{ih} image, the image is {width}x{height}",
            "size_mismatch",
            "annotation",
        )
    kw: dict[str, Any] = {"classes": classes, "tolerance_px": tolerance_px, "name": name}
    bulk = _labelme_bulk(shapes, width, height, **kw)
    return bulk if bulk is not None else _labelme_shapes(shapes, width, height, **kw)


def _labelme_bulk(
    shapes: list[Any],
    width: int,
    height: int,
    *,
    classes: list[str] | None,
    tolerance_px: float,
    name: str,
) -> Labels | None:
    """``_labelme_shapes``'s result for regular shapes, or None to take that path."""
    import shapely

    out = Labels(kind="labelme")
    points: list[list[Any]] = []
    where: list[int] = []
    for i, s in enumerate(shapes):
        if not isinstance(s, dict):
            return None
        stype = s.get("shape_type") or "polygon"
        if not isinstance(stype, str):
            return None
        if stype not in AREA_SHAPES or (
            classes is not None and str(s.get("label", "")) not in classes
        ):
            out.ignored += 1
            continue
        pts = s.get("points", [])
        if stype != "polygon" or not isinstance(pts, list) or len(pts) < 3:
            return None
        points.append(pts)
        where.append(i)
    if not points:
        return out
    flat = [p for pts in points for p in pts]
    try:  # numbers only: numpy would read "50" and true as coordinates
        kinds = {type(c) for p in flat for c in p}
        xy = np.array(flat, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if not kinds <= {int, float}:  # the per-shape path names the bad point
        return None
    if xy.ndim != 2 or xy.shape[1] != 2 or not np.isfinite(xy).all():
        return None
    lo, hi = xy.min(0), xy.max(0)
    if (lo < -tolerance_px).any() or hi[0] > width + tolerance_px or hi[1] > height + tolerance_px:
        return None
    counts = np.fromiter((len(p) for p in points), np.int64, len(points))
    try:
        polys = shapely.polygons(
            shapely.linearrings(xy, indices=np.repeat(np.arange(len(points)), counts))
        )
    except (ValueError, shapely.errors.GEOSException):
        return None
    valid = shapely.is_valid(polys)
    area = shapely.area(polys)
    for k, poly in enumerate(polys.tolist()):
        if valid[k]:
            if area[k] > 0:
                out.geometries.append(poly)
            continue
        label = str(shapes[where[k]].get("label", ""))
        parts, fixed = _repair(poly, f"{name}: shape {where[k]} ({label!r})")
        out.geometries.extend(parts)
        out.repaired += int(fixed)
    return out


def _labelme_shapes(
    shapes: list[Any],
    width: int,
    height: int,
    *,
    classes: list[str] | None,
    tolerance_px: float,
    name: str,
) -> Labels:
    """Shape by shape: the reference path, and the one that names the first bad shape."""
    from shapely.geometry import Point, Polygon, box

    out = Labels(kind="labelme")
    for i, s in enumerate(shapes):
        what = f"{name}: shape {i}"
        if not isinstance(s, dict):
            raise IngestError(f"{what} is not an object", "labelme_shapes", "annotation")
        stype = s.get("shape_type") or "polygon"
        if not isinstance(stype, str):
            raise IngestError(
                f"{what}: 'shape_type' must be a string, got {type(stype).__name__}",
                "labelme_shapes",
                "annotation",
            )
        label = str(s.get("label", ""))
        if stype not in AREA_SHAPES or (classes is not None and label not in classes):
            out.ignored += 1
            continue
        pts = _points(s.get("points", []), f"{what} ({label!r})")
        need = 3 if stype == "polygon" else 2
        if len(pts) < need:
            raise IngestError(
                f"{what} ({label!r}): a {stype} needs at least {need} points, has {len(pts)}",
                "polygon_points",
                "annotation",
            )
        lo, hi = pts.min(0), pts.max(0)
        if (
            (lo < -tolerance_px).any()
            or hi[0] > width + tolerance_px
            or hi[1] > height + tolerance_px
        ):
            raise IngestError(
                f"{what} ({label!r}): points outside the {width}x{height} image "
                f"(x {lo[0]:.1f}..{hi[0]:.1f}, y {lo[1]:.1f}..{hi[1]:.1f})",
                "points_outside",
                "annotation",
            )
        if stype == "rectangle":
            geom = box(*lo, *hi)
        elif stype == "circle":
            geom = Point(pts[0]).buffer(float(np.hypot(*(pts[1] - pts[0]))), 16)
        else:
            geom = Polygon(pts)
        parts, fixed = _repair(geom, f"{what} ({label!r})")
        out.geometries.extend(parts)
        out.repaired += int(fixed)
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _points(raw: Any, what: str) -> np.ndarray:
    """LabelMe ``points`` as an (n, 2) array: a list of [x, y] pairs of finite numbers only
    (``[x, y, z]`` triples or a flat list were silently reshaped into another polygon)."""
    if not isinstance(raw, list):
        raise IngestError(
            f"{what}: 'points' must be a list of [x, y] pairs, got {type(raw).__name__}",
            "labelme_points",
            "annotation",
        )
    for k, p in enumerate(raw):
        if not (isinstance(p, list) and len(p) == 2 and all(_is_number(c) for c in p)):
            raise IngestError(
                f"{what}: point {k} is {json.dumps(p)[:60]}, not an [x, y] pair of numbers",
                "labelme_points",
                "annotation",
            )
        if not all(math.isfinite(c) for c in p):
            raise IngestError(
                f"{what}: point {k} has a non-finite coordinate {json.dumps(p)[:60]}",
                "labelme_points",
                "annotation",
            )
    return np.asarray(raw, dtype=np.float64).reshape(-1, 2)


def _image_size(doc: dict[str, Any], name: str) -> tuple[Any, Any]:
    """``imageWidth``/``imageHeight``: absent (None) or integers; anything else is named."""
    out = []
    for key in ("imageWidth", "imageHeight"):
        v = doc.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise IngestError(
                f"{name}: {key!r} must be an integer number of pixels, got "
                f"{type(v).__name__} {json.dumps(v)[:40]}",
                "labelme_schema",
                "annotation",
            )
        out.append(v)
    return out[0], out[1]


_EPSG = re.compile(r"(?i)^(?:EPSG:|urn:ogc:def:crs:EPSG:[0-9.]*:)([0-9]{1,6})$")
_OGC_URN = re.compile(r"(?i)^urn:ogc:def:crs:OGC:(?:1\.3)?:CRS(?:84|83|27)$")
_WKT = re.compile(r"(?i)^\s*(?:GEOGCS|PROJCS|GEOCCS|GEOGCRS|GEODCRS|PROJCRS|GEOGRAPHICCRS)\s*\[")
# WKT parts that make PROJ read a file (grids, parameter files, PROJ strings) or use a
# transformation it would look up: refused before PROJ sees the string.
_WKT_REFS = re.compile(
    r"(?i)PARAMETERFILE|EXTENSION\s*\[|BOUNDCRS|ABRIDGEDTRANSFORMATION|COORDINATEOPERATION"
    r"|\+proj|nadgrids|geoidgrids|gridshift|\binit\s*=|@"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_WKT = 16384
ACCEPTED_CRS = "EPSG:<code>, urn:ogc:def:crs:EPSG::<code>, urn:ogc:def:crs:OGC:1.3:CRS84 or WKT"


def _crs_text(crs_name: str | int, name: str) -> str:
    """The ``crs`` name as a string PROJ may parse, or IngestError: only EPSG codes, OGC URNs
    and WKT without file references. Checked before PROJ sees it: a PROJ string such as
    ``+proj=longlat +nadgrids=/etc/passwd`` makes PROJ open that file while parsing it."""
    if isinstance(crs_name, int) and not isinstance(crs_name, bool):
        return f"EPSG:{crs_name}"
    text = str(crs_name)
    if m := _EPSG.match(text.strip()):
        return f"EPSG:{int(m.group(1))}"
    if _OGC_URN.match(text.strip()):
        return text.strip()
    if _WKT.match(text) and len(text) <= MAX_WKT and not _CONTROL.search(text):
        if ref := _WKT_REFS.search(text):
            raise IngestError(
                f'{name}: the WKT of "crs" refers to a grid, file or transformation '
                f"({ref.group(0)!r}); give the CRS itself ({ACCEPTED_CRS})",
                "crs",
                "annotation",
            )
        return text
    raise IngestError(
        f'{name}: "crs" name {text[:60]!r} is not accepted: use {ACCEPTED_CRS} '
        "(PROJ strings and other references are refused)",
        "crs",
        "annotation",
    )


def _doc_crs(doc: dict[str, Any], name: str) -> Any:
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    crs = doc.get("crs") or {}
    props = (crs.get("properties") or {}) if isinstance(crs, dict) else None
    crs_name = props.get("name") if isinstance(props, dict) else None
    kind = crs.get("type", "name") if isinstance(crs, dict) else None
    if (
        not isinstance(props, dict)
        or not isinstance(crs_name, str | int | None)
        or kind != "name"
        or (crs_name is None and props)
    ):
        raise IngestError(
            f'{name}: malformed "crs" (expected {{"type": "name", "properties": '
            f'{{"name": "EPSG:..."}}}}), got {json.dumps(crs)[:80]}',
            "crs",
            "annotation",
        )
    if not crs_name:
        return CRS.from_epsg(4326)
    text = _crs_text(crs_name, name)
    try:
        return CRS.from_user_input(text)
    except CRSError as e:
        raise IngestError(f"{name}: unknown CRS {crs_name!r} ({e})", "crs", "annotation") from e


def _feature_polygons(f: Any, what: str, classes: list[str] | None) -> Any:
    """A GeoJSON feature's (multi)polygon, or None when it is skipped (no geometry, another
    class, not an area); IngestError when its members have the wrong JSON types."""
    from shapely.errors import ShapelyError
    from shapely.geometry import shape

    geom_doc = (f or {}).get("geometry") if isinstance(f, dict) else None
    props = (f.get("properties") or {}) if isinstance(f, dict) else {}
    if not isinstance(props, dict):
        raise IngestError(f"{what}: 'properties' must be an object", "geojson_schema", "annotation")
    label = props.get("label", props.get("class"))
    if geom_doc is None or (classes is not None and label not in classes):
        return None
    try:
        geom = shape(geom_doc)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, ShapelyError) as e:
        raise IngestError(  # shapely's shape() has no error of its own for bad input
            f"{what}: invalid geometry ({e})", "geojson_schema", "annotation"
        ) from e
    return geom if geom.geom_type in ("Polygon", "MultiPolygon") else None


def geojson_labels(
    doc: dict[str, Any],
    raster_crs: Any,
    transform: Any,
    width: int,
    height: int,
    *,
    classes: list[str] | None = None,
    name: str = "annotation",
) -> Labels:
    """Footprints of a GeoJSON document in the raster's pixel grid.

    Coordinates go map CRS -> raster CRS (pyproj) -> pixel (inverse affine). Features that
    fall partly outside the raster are kept (the mask clips them); a document none of whose
    footprints touch the raster is rejected, since it almost always means the wrong file.
    """
    from shapely.geometry import box

    to_pixels, crs_names = _pixel_transform(doc, raster_crs, transform, name)
    feats = doc.get("features") if doc.get("type") == "FeatureCollection" else [doc]
    if not isinstance(feats, list):
        raise IngestError(f"{name}: 'features' must be a list", "geojson_schema", "annotation")
    out = Labels(kind="geojson")
    image_box = box(0, 0, width, height)
    touching = 0
    for i, f in enumerate(feats):
        what = f"{name}: feature {i}"
        geom = _feature_polygons(f, what, classes)
        if geom is None:
            out.ignored += 1
            continue
        parts, repaired = _feature_pixels(geom, to_pixels, crs_names, what)
        out.repaired += repaired
        touching += any(g.intersects(image_box) for g in parts)
        out.geometries.extend(parts)
    if out.geometries and not touching:
        b = np.array([g.bounds for g in out.geometries])
        raise IngestError(
            f"{name}: no footprint overlaps the raster: labels span pixels "
            f"x {b[:, 0].min():.0f}..{b[:, 2].max():.0f}, y {b[:, 1].min():.0f}..{b[:, 3].max():.0f}"
            f" of a {width}x{height} image (wrong CRS or wrong file?)",
            "footprint",
            "annotation",
        )
    return out


def _pixel_transform(
    doc: dict[str, Any], raster_crs: Any, transform: Any, name: str
) -> tuple[Any, tuple[str, str]]:
    """map CRS -> raster CRS -> pixel, as a function of (n, 2) arrays; and both CRS names."""
    from pyproj import CRS, Transformer
    from pyproj.exceptions import ProjError

    if raster_crs is None:
        raise IngestError(
            f"{name}: GeoJSON needs a georeferenced raster, the image has no CRS",
            "crs",
            "annotation",
        )
    src_crs = _doc_crs(doc, name)
    dst_crs = CRS.from_user_input(
        raster_crs.to_wkt() if hasattr(raster_crs, "to_wkt") else raster_crs
    )
    try:
        to_raster = Transformer.from_crs(src_crs, dst_crs, always_xy=True)
    except ProjError as e:
        raise IngestError(
            f"{name}: cannot transform {src_crs.to_string()} to {dst_crs.to_string()} ({e})",
            "crs",
            "annotation",
        ) from e
    inverse = ~transform

    def to_pixels(xy: np.ndarray) -> np.ndarray:
        x, y = to_raster.transform(xy[:, 0], xy[:, 1], errcheck=False)
        col, row = inverse * (np.asarray(x), np.asarray(y))
        return np.column_stack([col, row])

    return to_pixels, (src_crs.to_string(), dst_crs.to_string())


def _feature_pixels(
    geom: Any, to_pixels: Any, crs_names: tuple[str, str], what: str
) -> tuple[list[Any], int]:
    """One feature's polygons in pixel space, repaired; and how many needed a repair."""
    import shapely

    if not np.isfinite(shapely.get_coordinates(geom)).all():
        raise IngestError(
            f"{what}: non-finite coordinates (NaN or Infinity)", "polygon_points", "annotation"
        )
    px = shapely.transform(geom, to_pixels)
    coords = shapely.get_coordinates(px)
    if coords.size and not np.isfinite(coords).all():
        raise IngestError(
            f"{what}: coordinates cannot be transformed from {crs_names[0]} "
            f"to the raster's {crs_names[1]}",
            "crs",
            "annotation",
        )
    parts: list[Any] = []
    repaired = 0
    for p in getattr(px, "geoms", [px]):
        if len(p.exterior.coords) < 4:
            raise IngestError(
                f"{what}: a polygon needs at least 3 points", "polygon_points", "annotation"
            )
        got, fixed = _repair(p, what)
        parts.extend(got)
        repaired += int(fixed)
    return parts, repaired


def load_labels(
    path: Path,
    source: Any,
    *,
    classes: list[str] | None = None,
    tolerance_px: float = 1.0,
) -> Labels:
    """Read ``path`` (LabelMe or GeoJSON, by content) for an opened image ``source``."""
    doc = read_json(path)
    if is_geojson(doc) or path.suffix.lower() == ".geojson":
        if not is_geojson(doc):
            raise IngestError(
                f"{path.name}: not a GeoJSON FeatureCollection/Feature",
                "geojson_schema",
                "annotation",
            )
        return geojson_labels(
            doc,
            source.crs,
            source.transform,
            source.width,
            source.height,
            classes=classes,
            name=path.name,
        )
    labels = labelme_labels(
        doc, source.width, source.height, classes=classes, tolerance_px=tolerance_px, name=path.name
    )
    labels.task = annotation_task(doc)
    return labels
