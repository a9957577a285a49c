"""Mask rows -> building polygons in EPSG:4326 (RFC 7946 GeoJSON), streamed.

Each chunk of mask rows is polygonised on its own (GDAL polygonize via
``rasterio.features.shapes``, 4-connected like the min-area filter); polygons cut by a chunk
boundary are held back and unioned with their continuation in the next chunk, so every
building comes out whole. Areas are computed in the source CRS when it is projected (exact
planimetric m²) and geodesically on the WGS84 ellipsoid otherwise. Features are written to
the file as they finish, never collected for the whole scene: the buildings a chunk
finishes are transformed, measured, oriented and encoded together (shapely's array
functions, one PROJ call, orjson), which costs a fraction of doing it feature by feature.

Optional tidying works on each whole building (after the pieces are joined), in pixel
space: ``regularize`` squares the footprint with buildingregulariser (edges snapped to the
building's main direction, right angles, 45° allowed); ``simplify_px`` removes vertices
within that tolerance, preserving topology (no self-intersections, holes kept).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np

from satseg.io.atomic import atomic_path
from satseg.io.gdal import GDAL_LOCK

COORD_DECIMALS = 7  # ~1 cm at the equator


class PolygonWriter:
    """Context manager: ``push(row0, mask_rows)`` in scene order, then close -> GeoJSON file.

    With ``classes`` (multi-class), the rows are a class raster (value i = ``classes[i]``,
    other values ignored) and every class is polygonised on its own: each feature has
    ``class`` (the name) and ``class_index``; ``regularize`` squares ``building`` only.
    """

    def __init__(
        self,
        path: Path,
        width: int,
        height: int,
        crs: Any,
        transform: Any,
        properties: dict[str, Any] | None = None,
        *,
        regularize: bool = False,
        simplify_px: float = 0.0,
        classes: tuple[str, ...] | None = None,
    ) -> None:
        self.path, self.width, self.height = Path(path), width, height
        self.regularize, self.simplify_px = regularize, float(simplify_px)
        self.crs, self.transform = crs, transform
        self.properties = properties or {}
        self.classes = classes
        self.values = list(range(len(classes))) if classes is not None else [1]
        self.count = 0
        self.total_area_m2 = 0.0
        self.count_by_value = dict.fromkeys(self.values, 0)
        self.area_by_value = dict.fromkeys(self.values, 0.0)
        # pixel-space polygons touching the last chunk's bottom, per class value
        self._open: dict[int, list[Any]] = {v: [] for v in self.values}
        self._fh: IO[str] | None = None
        self._ctx: Any = None
        self._bbox = [np.inf, np.inf, -np.inf, -np.inf]
        self.georeferenced = crs is not None
        self._to_wgs84: Any = None
        self._geod: Any = None
        self._metres: float | None = None
        self._pending: list[tuple[Any, int]] = []  # finished pieces not yet written

    def _projection(self) -> None:
        """PROJ objects, made in the thread that uses them (pyproj contexts are per thread)."""
        from pyproj import CRS, Geod, Transformer

        c = CRS.from_user_input(self.crs.to_wkt() if hasattr(self.crs, "to_wkt") else self.crs)
        self._to_wgs84 = Transformer.from_crs(c, "EPSG:4326", always_xy=True)
        if c.is_projected:
            unit = c.axis_info[0].unit_conversion_factor if c.axis_info else 1.0
            self._metres = float(unit)
        else:
            self._geod = Geod(ellps="WGS84")

    # --- context ---
    def __enter__(self) -> PolygonWriter:
        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        self._fh = open(tmp, "w", encoding="utf-8")
        self._fh.write('{"type": "FeatureCollection",\n"features": [\n')
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._fh is not None
        try:
            if exc_type is None:
                for value in self.values:
                    for poly in self._open[value]:
                        self._emit(poly, value)
                    self._open[value] = []
                self._write_pending()
                extra = dict(self.properties)
                if self.count and self.georeferenced:
                    extra["bbox"] = [round(v, COORD_DECIMALS) for v in self._bbox]
                tail = json.dumps(extra, default=str)[1:-1]
                self._fh.write("\n]" + (",\n" + tail if tail else "") + "\n}\n")
        finally:
            self._fh.close()
            self._ctx.__exit__(exc_type, exc, tb)

    # --- streaming ---
    def push(self, row0: int, mask: np.ndarray) -> None:
        """Polygonise mask rows [row0, row0+h) (1 = building; other values ignored; with
        ``classes``, each class value)."""
        for value in self.values:
            self._push_value(row0, mask, value)
        self._write_pending()

    def _push_value(self, row0: int, mask: np.ndarray, value: int) -> None:
        from affine import Affine
        from rasterio import features

        h = mask.shape[0]
        fg = mask == value
        row1 = row0 + h
        polys: list[Any] = []
        if fg.any():
            with GDAL_LOCK:  # GDALPolygonize
                shapes = list(
                    features.shapes(
                        fg.view(np.uint8),
                        mask=fg,
                        connectivity=4,
                        transform=Affine.translation(0, row0),
                    )
                )
            polys = [_polygon(geom["coordinates"]) for geom, _ in shapes]
        top = [p for p in polys if p.bounds[1] <= row0]
        rest = [p for p in polys if p.bounds[1] > row0]
        candidates = _merge_across(self._open[value], top) + rest
        self._open[value] = []
        last = row1 >= self.height
        for p in candidates:
            if not last and p.bounds[3] >= row1:
                self._open[value].append(p)
            else:
                self._emit(p, value)

    # --- output ---
    def _emit(self, poly_px: Any, value: int = 1) -> None:
        """One whole building (or region of one class): tidied (when asked), then queued for
        the next ``_write_pending``."""
        regularize = self.regularize
        if self.classes is not None:
            regularize = regularize and self.classes[value] == "building"
        self._pending.extend(
            (piece, value) for piece in tidy(poly_px, regularize, self.simplify_px)
        )

    def _write_pending(self) -> None:
        """Write the queued pieces: world and WGS84 coordinates, areas, RFC 7946 winding and
        the bbox computed for all of them at once, then one feature line each."""
        import orjson
        import shapely

        assert self._fh is not None
        pending = [(g, v) for g, v in self._pending if not g.is_empty]
        self._pending = []
        if not pending:
            return
        px = np.empty(len(pending), dtype=object)  # not np.array(list): no sequence probing
        for i, (g, _) in enumerate(pending):
            px[i] = g
        values = [v for _, v in pending]
        areas_px = shapely.area(px)
        areas_m2: list[float | None] = [None] * len(px)
        if not self.georeferenced:
            geoms = px  # pixel space: x = column, y = row
        else:
            if self._to_wgs84 is None:
                self._projection()
            t = self.transform
            world = shapely.transform(
                px, lambda c: c @ np.array([[t.a, t.d], [t.b, t.e]]) + np.array([t.c, t.f])
            )
            geoms = shapely.transform(world, self._project, interleaved=False)
            if self._metres is not None:
                areas_m2 = list(shapely.area(world) * self._metres**2)
            else:
                areas_m2 = [abs(self._geod.geometry_area_perimeter(g)[0]) for g in geoms]
            b = shapely.bounds(geoms)
            self._bbox = [
                min(self._bbox[0], float(b[:, 0].min())),
                min(self._bbox[1], float(b[:, 1].min())),
                max(self._bbox[2], float(b[:, 2].max())),
                max(self._bbox[3], float(b[:, 3].max())),
            ]
        geoms = shapely.orient_polygons(geoms, exterior_cw=False)  # RFC 7946: exterior CCW
        _, coords, (ring_end, poly_end) = shapely.to_ragged_array(geoms)
        coords = np.round(coords, COORD_DECIMALS)
        lines, first = [], self.count == 0
        for i, value in enumerate(values):
            props: dict[str, Any] = {"id": self.count, "area_px": round(float(areas_px[i]), 1)}
            if self.classes is not None:
                props["class"] = self.classes[value]
                props["class_index"] = value
            if areas_m2[i] is not None:
                area = float(areas_m2[i])  # type: ignore[arg-type]
                props["area_m2"] = round(area, 2)
                self.total_area_m2 += area
                self.area_by_value[value] += area
            rings = [
                coords[ring_end[r] : ring_end[r + 1]] for r in range(poly_end[i], poly_end[i + 1])
            ]
            feature = {
                "type": "Feature",
                "properties": props,
                "geometry": {"type": "Polygon", "coordinates": rings},
            }
            lines.append(orjson.dumps(feature, option=orjson.OPT_SERIALIZE_NUMPY).decode())
            self.count += 1
            self.count_by_value[value] += 1
        self._fh.write(("" if first else ",\n") + ",\n".join(lines))

    def _project(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._to_wgs84.transform(x, y)  # type: ignore[no-any-return]


REGULARIZE: dict[
    str, Any
] = {  # buildingregulariser settings, in pixels (the polygons are pixel outlines)
    "parallel_threshold": 2.0,
    "allow_45_degree": True,
    "diagonal_threshold_reduction": 15,
    "allow_circles": True,
    "circle_threshold": 0.9,
    "simplify": True,
    "simplify_tolerance": 2.0,
}
COLLINEAR_PX = 0.05  # regularised outlines keep collinear vertices; drop them


def tidy(poly: Any, regularize: bool = False, simplify_px: float = 0.0) -> list[Any]:
    """Polygons to write for one building: regularised and/or simplified (never empty ones).

    Regularisation can split a self-touching outline into pieces; each becomes a polygon.
    """
    if poly.is_empty:
        return []
    geoms = [poly]
    if regularize:
        from buildingregulariser.regularization import regularize_single_polygon

        done = [r["geometry"] for r in regularize_single_polygon(poly, **REGULARIZE)]
        geoms = [g for g in done if g is not None and not g.is_empty and g.area > 0] or [poly]
        geoms = [g.simplify(COLLINEAR_PX, preserve_topology=True) for g in geoms]
    if simplify_px > 0:
        geoms = [g.simplify(simplify_px, preserve_topology=True) for g in geoms]
    return [g for g in _polygons(geoms) if g.area > 0]


def _polygons(geoms: list[Any]) -> list[Any]:
    out: list[Any] = []
    for g in geoms:
        out.extend(getattr(g, "geoms", [g]))
    return [g for g in out if g.geom_type == "Polygon" and not g.is_empty]


def _merge_across(above: list[Any], below: list[Any]) -> list[Any]:
    """Union pieces of one building split at a chunk row; untouched pieces pass as they are.

    Pieces touch only along the shared row, so candidate pairs come from an STR-tree of
    bounding boxes and each connected group is unioned on its own (a scene-wide union of
    every boundary piece is quadratic in a noisy mask).
    """
    import shapely

    if not above or not below:
        return above + below
    items = above + below
    tree = shapely.STRtree(items)
    parent = list(range(len(items)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    n_above = len(above)
    for j, poly in enumerate(below, start=n_above):
        for i in tree.query(poly, predicate="intersects"):
            if i < n_above:  # pieces of one chunk never touch each other (4-connected)
                parent[root(int(i))] = root(j)
    groups: dict[int, list[Any]] = {}
    for k, poly in enumerate(items):
        groups.setdefault(root(k), []).append(poly)
    out = []
    for members in groups.values():
        if len(members) == 1:
            out.append(members[0])
            continue
        merged = shapely.union_all(members)
        out.extend(getattr(merged, "geoms", [merged]))  # corner-only contact stays apart
    return out


def _polygon(rings: list[Any]) -> Any:
    """A shapely polygon from GeoJSON-like rings (lists of (x, y)), without the per-vertex
    checks of ``shapely.geometry.shape``."""
    import shapely

    shell = shapely.linearrings(np.asarray(rings[0], dtype=np.float64))
    holes = [shapely.linearrings(np.asarray(r, dtype=np.float64)) for r in rings[1:]]
    return shapely.polygons(shell, holes=holes or None)
