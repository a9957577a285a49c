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

from satseg.classes import BINARY_BG, BINARY_FG, ClassTable, UnknownLabel
from satseg.ingest.errors import IngestError
from satseg.io.jsonload import JsonError, JsonLimits, load_json
from satseg.vocab import ANNOTATION_TASK_KEY, is_safe_name

AREA_SHAPES = {"polygon", "rectangle", "circle"}


@dataclass
class Labels:
    """Polygons (shapely, pixel coords) plus what was done to get them."""

    kind: str  # labelme | geojson
    geometries: list[Any] = field(default_factory=list)
    values: list[int] = field(default_factory=list)  # stored mask value of each, painter's order
    repaired: int = 0
    ignored: int = 0  # non-area shapes (lines, points) and labels outside the class filter
    holes: int = 0
    task: dict[str, Any] | None = None  # an exported annotation task's origin (satseg.annotate)

    def add(self, parts: list[Any], value: int) -> None:
        self.geometries.extend(parts)
        self.values.extend([value] * len(parts))

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "polygons": len(self.geometries),
            "repaired": self.repaired,
            "ignored": self.ignored,
        }
        if self.holes:
            out["holes"] = self.holes
        if self.task:
            out["task"] = self.task
        return out


@dataclass
class _Rule:
    """Which shapes count and the mask value each gets: a binary filter or a class table."""

    classes: list[str] | None = None  # binary: foreground labels; None = all
    table: ClassTable | None = None
    outers: set[Any] = field(default_factory=set)  # group_ids of outer rings seen so far

    @property
    def keep_lines(self) -> bool:
        return self.table is not None

    def value(self, label: str, what: str) -> int | None:
        """Stored value of a shape labelled ``label``; None when it is skipped."""
        if self.table is None:
            return None if self.classes is not None and label not in self.classes else BINARY_FG
        try:
            return self.table.index_of(label, what)
        except UnknownLabel as e:
            raise IngestError(str(e), "unknown_label", "annotation") from e

    def shape_value(self, s: dict[str, Any], label: str, what: str) -> int | None:
        """``value`` for a LabelMe shape; a hole (``flags.hole``) clears its outer ring's pixels."""
        v = self.value(label, what)
        flags = s.get("flags")
        group = s.get("group_id")
        if not (isinstance(flags, dict) and flags.get("hole") is True):
            if group is not None and v is not None:
                self.outers.add((group, label))
            return v
        if v is None:
            return None
        if (group, label) not in self.outers:
            raise IngestError(
                f"{what}: a hole (flags.hole) whose group_id {group!r} names no earlier outer "
                f"{label!r} ring (holes follow their outer ring and share its group_id)",
                "labelme_holes",
                "annotation",
            )
        return self.table.unlabeled if self.table is not None else BINARY_BG


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


def _repair(poly: Any, what: str, keep_lines: bool = False) -> tuple[list[Any], bool]:
    """Valid polygon parts of ``poly``; (parts, repaired?). Rejects repairs without area,
    unless ``keep_lines`` (class tables: contour-traced land cover has one-pixel slivers):
    then the ring is kept as drawn, and the mask gets the pixels it passes through."""
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
    if not parts and keep_lines:
        return [poly], True
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
    table: ClassTable | None = None,
    tolerance_px: float = 1.0,
    name: str = "annotation",
) -> Labels:
    """Polygons of a LabelMe document for an image of ``width`` x ``height`` pixels.

    Shapes keep the document's (painter's) order, each with its mask value: foreground for a
    binary dataset, its class index with a ``table``. A hole (``flags: {"hole": true}``,
    sharing a ``group_id`` with an earlier outer ring of its label) paints its pixels back to
    unlabeled, so that smaller shapes painted after it show through.

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
    rule = _Rule(classes=classes, table=table)
    kw: dict[str, Any] = {"rule": rule, "tolerance_px": tolerance_px, "name": name}
    bulk = _labelme_bulk(shapes, width, height, **kw)
    if bulk is None:
        rule.outers.clear()
    return bulk if bulk is not None else _labelme_shapes(shapes, width, height, **kw)


def _labelme_bulk(
    shapes: list[Any],
    width: int,
    height: int,
    *,
    rule: _Rule,
    tolerance_px: float,
    name: str,
) -> Labels | None:
    """``_labelme_shapes``'s result for regular shapes, or None to take that path."""
    import shapely

    out = Labels(kind="labelme")
    points: list[list[Any]] = []
    where: list[int] = []
    values: list[int] = []
    for i, s in enumerate(shapes):
        if not isinstance(s, dict):
            return None
        stype = s.get("shape_type") or "polygon"
        if not isinstance(stype, str):
            return None
        label = str(s.get("label", ""))
        v = rule.shape_value(s, label, f"{name}: shape {i}") if stype in AREA_SHAPES else None
        if v is None:
            out.ignored += 1
            continue
        pts = s.get("points", [])
        if stype != "polygon" or not isinstance(pts, list) or len(pts) < 3:
            return None
        points.append(pts)
        where.append(i)
        values.append(v)
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
        out.holes += _is_hole(shapes[where[k]])
        if valid[k]:
            if area[k] > 0:
                out.add([poly], values[k])
            continue
        label = str(shapes[where[k]].get("label", ""))
        parts, fixed = _repair(poly, f"{name}: shape {where[k]} ({label!r})", rule.keep_lines)
        out.add(parts, values[k])
        out.repaired += int(fixed)
    return out


def _is_hole(s: dict[str, Any]) -> bool:
    flags = s.get("flags")
    return isinstance(flags, dict) and flags.get("hole") is True


def _labelme_shapes(
    shapes: list[Any],
    width: int,
    height: int,
    *,
    rule: _Rule,
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
        v = rule.shape_value(s, label, what) if stype in AREA_SHAPES else None
        if v is None:
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
        parts, fixed = _repair(geom, f"{what} ({label!r})", rule.keep_lines)
        out.add(parts, v)
        out.repaired += int(fixed)
        out.holes += _is_hole(s)
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


def _feature_polygons(f: Any, what: str, rule: _Rule, prop: str | None) -> tuple[Any, int]:
    """A GeoJSON feature's (multi)polygon and mask value, or (None, 0) when it is skipped (no
    geometry, another class, not an area); IngestError when its members have the wrong JSON
    types or its label is unknown to the class table."""
    from shapely.errors import ShapelyError
    from shapely.geometry import shape

    geom_doc = (f or {}).get("geometry") if isinstance(f, dict) else None
    props = (f.get("properties") or {}) if isinstance(f, dict) else {}
    if not isinstance(props, dict):
        raise IngestError(f"{what}: 'properties' must be an object", "geojson_schema", "annotation")
    label = props.get(prop) if prop is not None else props.get("label", props.get("class"))
    if geom_doc is None:
        return None, 0
    value = rule.value("" if label is None else str(label), what)
    if value is None:
        return None, 0
    try:
        geom = shape(geom_doc)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, ShapelyError) as e:
        raise IngestError(  # shapely's shape() has no error of its own for bad input
            f"{what}: invalid geometry ({e})", "geojson_schema", "annotation"
        ) from e
    return (geom, value) if geom.geom_type in ("Polygon", "MultiPolygon") else (None, 0)


def geojson_labels(
    doc: dict[str, Any],
    raster_crs: Any,
    transform: Any,
    width: int,
    height: int,
    *,
    classes: list[str] | None = None,
    table: ClassTable | None = None,
    label_property: str | None = None,
    name: str = "annotation",
) -> Labels:
    """Footprints of a GeoJSON document in the raster's pixel grid.

    Features keep the document's order (later ones paint over earlier ones); polygon holes
    are the polygons' own interior rings.

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
    rule = _Rule(classes=classes, table=table)
    for i, f in enumerate(feats):
        what = f"{name}: feature {i}"
        geom, value = _feature_polygons(f, what, rule, label_property)
        if geom is None:
            out.ignored += 1
            continue
        parts, repaired = _feature_pixels(geom, to_pixels, crs_names, what)
        out.repaired += repaired
        touching += any(g.intersects(image_box) for g in parts)
        out.add(parts, value)
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
    table: ClassTable | None = None,
    label_property: str | None = None,
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
            table=table,
            label_property=label_property,
            name=path.name,
        )
    labels = labelme_labels(
        doc,
        source.width,
        source.height,
        classes=classes,
        table=table,
        tolerance_px=tolerance_px,
        name=path.name,
    )
    labels.task = annotation_task(doc)
    return labels
