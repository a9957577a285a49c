"""Polygons -> binary masks, one window at a time.

Rings are rounded to integer pixel coordinates once, globally, and only then shifted into a
window: rounding after the shift would make a vertex at x.5 land on different pixels in
different windows. Each polygon is filled on its own with its holes (``cv2.fillPoly`` fills
the rings of one call even-odd), so overlapping polygons unite and holes stay empty. The
rule is the one the seed project and the reference masks use (``cv2.fillPoly`` on rounded
vertices, boundary pixels included).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

MARGIN = 16


@dataclass
class PolygonSet:
    """Polygons in pixel coordinates with a bounding-box index for window queries."""

    rings: list[list[np.ndarray]] = field(default_factory=list)  # [exterior, *holes] int32 (n, 2)
    bbox: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.int64))

    @classmethod
    def from_geometries(cls, geoms: Iterable[object]) -> PolygonSet:
        """From shapely Polygons / MultiPolygons whose coordinates are (col, row) pixels."""
        from shapely.geometry import MultiPolygon, Polygon

        rings: list[list[np.ndarray]] = []
        for g in geoms:
            parts = g.geoms if isinstance(g, MultiPolygon) else [g]
            for p in parts:
                if not isinstance(p, Polygon) or p.is_empty:
                    continue
                rs = [p.exterior, *p.interiors]
                rings.append([np.round(np.asarray(r.coords)[:, :2]).astype(np.int32) for r in rs])
        return cls.from_rings(rings)

    @classmethod
    def from_rings(cls, rings: list[list[np.ndarray]]) -> PolygonSet:
        bbox = np.array(
            [[*r[0].min(0), *r[0].max(0)] for r in rings] if rings else np.zeros((0, 4)),
            np.int64,
        ).reshape(-1, 4)
        return cls(rings=rings, bbox=bbox)

    def __len__(self) -> int:
        return len(self.rings)

    def burn(self, mask: np.ndarray, row0: int, col0: int, value: int = 1) -> np.ndarray:
        """Set ``value`` inside every polygon that touches the window ``mask`` covers."""
        import cv2

        h, w = mask.shape[:2]
        if not self.rings:
            return mask
        b = self.bbox
        hit = np.nonzero(
            (b[:, 2] >= col0) & (b[:, 0] < col0 + w) & (b[:, 3] >= row0) & (b[:, 1] < row0 + h)
        )[0]
        if not hit.size:
            return mask
        # cv2 clips edges that leave the canvas with rounding that shifts boundary pixels;
        # filling on a canvas MARGIN px larger keeps every window identical to one big canvas.
        m = MARGIN
        canvas = np.zeros((h + 2 * m, w + 2 * m), np.uint8)
        offset = np.array([col0 - m, row0 - m], np.int32)
        for i in hit:
            cv2.fillPoly(canvas, [r - offset for r in self.rings[i]], 1)
        mask[canvas[m : m + h, m : m + w] > 0] = value
        return mask


def rasterize(polys: PolygonSet, width: int, height: int) -> np.ndarray:
    """Whole-image mask (tests and small images only)."""
    return polys.burn(np.zeros((height, width), np.uint8), 0, 0)
