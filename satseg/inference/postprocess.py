"""Probability rows -> clean binary mask rows, streamed with a halo (exact, bounded memory).

Threshold, morphological opening (disk of ``opening_px``) and removal of connected components
smaller than ``min_area_px`` normally need the whole mask. Here rows arrive in strips and
each chunk is processed with ``halo`` extra rows on both sides: opening needs ``opening_px``
rows of context, and a component smaller than ``min_area_px`` spans fewer rows than that,
so a component that reaches the cut edge of the halo is provably large enough to keep.
The result equals whole-scene processing, with memory of a few strips.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

NODATA = 255  # mask raster value for "no input data"


def threshold_u8(threshold: float) -> int:
    """uint8 probability level for ``threshold``: mask = prob_u8 >= this."""
    return int(np.clip(np.ceil(threshold * 255.0 - 1e-9), 0, 255))


def to_u8(prob: np.ndarray) -> np.ndarray:
    """float probability [0, 1] -> uint8 0-255 (rounded)."""
    scaled = prob * np.float32(255.0)
    scaled += np.float32(0.5)
    np.clip(scaled, 0, 255, out=scaled)
    return scaled.astype(np.uint8)


class MaskStream:
    """Push probability rows in scene order; pull finished mask rows (0/1, NODATA)."""

    def __init__(
        self,
        width: int,
        height: int,
        threshold: float,
        opening_px: int,
        min_area_px: int,
        chunk: int = 128,
    ) -> None:
        self.width, self.height = width, height
        self.thr = threshold_u8(threshold)
        self.opening_px = max(0, int(opening_px))
        self.min_area = max(0, int(min_area_px))
        self.open_halo = self.opening_px  # opening result is exact this far from a cut
        self.area_halo = self.min_area + 1 if self.min_area > 1 else 0
        self.halo = self.open_halo + self.area_halo
        self.chunk = chunk
        self._bin = np.zeros((0, width), np.uint8)  # thresholded rows from _row0
        self._nd = np.zeros((0, width), bool)
        self._row0 = 0  # scene row of _bin[0]
        self._next = 0  # next scene row to emit
        self._received = 0
        self.kernel = None
        if self.opening_px > 1:
            import cv2

            self.kernel = cv2.getStructuringElement(
                cv2.MORPH_ELLIPSE, (self.opening_px, self.opening_px)
            )

    def push(
        self, row0: int, prob_u8: np.ndarray, nodata: np.ndarray
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Add rows [row0, row0+h); yield ``(row0, mask_rows)`` that are now final."""
        if row0 != self._received:
            raise ValueError(f"rows must arrive in order: expected {self._received}, got {row0}")
        b = (prob_u8 >= self.thr).astype(np.uint8)
        b[nodata] = 0
        self._bin = np.concatenate([self._bin, b])
        self._nd = np.concatenate([self._nd, nodata])
        self._received += prob_u8.shape[0]
        while self._received - self._next >= self.chunk + self.halo:
            yield self._emit(self._next + self.chunk)

    def finish(self) -> Iterator[tuple[int, np.ndarray]]:
        """Emit the remaining rows once every row of the scene has been pushed."""
        if self._received != self.height:
            raise ValueError(f"received {self._received} of {self.height} rows")
        while self._next < self.height:
            yield self._emit(min(self._next + self.chunk, self.height))

    def _emit(self, end: int) -> tuple[int, np.ndarray]:
        start = self._next
        lo = max(0, start - self.halo)
        hi = min(self.height, end + self.halo)
        ext = self._bin[lo - self._row0 : hi - self._row0]
        mask = self._clean(
            ext, cut_top=lo > 0, cut_bottom=hi < self.height, lo=lo, hi=hi, start=start, end=end
        )
        nd = self._nd[start - self._row0 : end - self._row0]
        out = mask.copy()
        out[nd] = NODATA
        self._next = end
        # keep only what later chunks still need as halo
        keep_from = max(0, end - self.halo)
        drop = keep_from - self._row0
        if drop > 0:
            self._bin = self._bin[drop:]
            self._nd = self._nd[drop:]
            self._row0 = keep_from
        return start, out

    def _clean(
        self,
        ext: np.ndarray,
        *,
        cut_top: bool,
        cut_bottom: bool,
        lo: int,
        hi: int,
        start: int,
        end: int,
    ) -> np.ndarray:
        import cv2

        opened = ext
        if self.kernel is not None:
            opened = cv2.morphologyEx(ext, cv2.MORPH_OPEN, self.kernel)
        # rows of ``opened`` that are exact: at least open_halo from a cut edge
        a0 = max(lo, start - self.area_halo)
        a1 = min(hi, end + self.area_halo)
        band = opened[a0 - lo : a1 - lo]
        if self.min_area > 1 and band.any():
            n, lab, stats, _ = cv2.connectedComponentsWithStats(band, connectivity=4)
            top = stats[:, cv2.CC_STAT_TOP]
            bottom = top + stats[:, cv2.CC_STAT_HEIGHT]
            reaches_cut = np.zeros(n, bool)
            if a0 > 0:
                reaches_cut |= top == 0
            if a1 < self.height:
                reaches_cut |= bottom == band.shape[0]
            drop = (stats[:, cv2.CC_STAT_AREA] < self.min_area) & ~reaches_cut
            drop[0] = False
            if drop.any():
                band = np.where(drop[lab], 0, band).astype(np.uint8)
        return np.ascontiguousarray(band[start - a0 : end - a0])
