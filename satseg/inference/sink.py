"""Writer side of the inference pipeline: blended rows -> COGs, mask, polygons, quicklook.

Runs on the writer thread; it receives ordered messages (tile probabilities, nodata rows,
flush points) from the model loop and owns every output dataset while the scene streams.
The uncertainty COG gets the TTA spread, blended like the probability, when the model loop
sends one; otherwise the binary entropy of the blended probability. ``ClassRowSink`` is the
same for a multi-class model (n probability bands, a class raster, per-class polygons).

A scene streamed in column bands (``deferred``) gets its rasters band by band (a ``band``
message switches the blenders); the mask and polygons need whole rows, so they follow the
last band down the scene (a row finished there is finished in every band), reading the
probability (binary) or class rows back from the raster being written. That work goes
through ``follower`` (a ``pipeline.Follower``, set by the caller), on its own thread when
the pipeline runs: during the last band it is the whole width's share, and done in line it
held up the writer and, through its full queue, the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from satseg.inference.blend import FLUSH_ROWS, StripBlender
from satseg.inference.cog import CogWriter
from satseg.inference.outputs import Decimator
from satseg.inference.pipeline import Follower
from satseg.inference.postprocess import MaskStream, to_u8
from satseg.inference.tta import class_entropy, entropy_u8
from satseg.inference.vectorize import PolygonWriter


class _Sink:
    """The message loop both sinks share: tiles and nodata rows into the blender (and the
    TTA spread blender), finished rows out at each flush point to ``_flushed``; ``band``
    switches to the next column band's blenders."""

    blender: StripBlender
    spread: StripBlender | None
    deferred = False  # column bands: whole-row work (mask, polygons) follows the last band
    WHOLE_ROWS = FLUSH_ROWS  # rows read back per piece of that work
    _whole = 0  # deferred: rows [0, _whole) have had it
    follower: Follower  # deferred: runs _catch_up (off the writer thread, when enabled)

    def handle(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "band":
            self.blender, self.spread = msg[1], msg[2]
        elif kind == "add":
            for (y, x), prob in zip(msg[1], msg[2], strict=True):
                self.blender.add(y, x, prob)
            if self.spread is not None and len(msg) > 3 and msg[3] is not None:
                for (y, x), var in zip(msg[1], msg[3], strict=True):
                    self.spread.add(y, x, var)
        elif kind == "nodata":
            self.blender.set_nodata(msg[1], msg[2])
            if self.spread is not None:
                self.spread.set_nodata(msg[1], msg[2])
        elif kind == "flush":
            spread = self.spread.flush(msg[1]) if self.spread is not None else None
            self._flushed(self.blender.flush(msg[1]), spread)
            for _ in spread or ():  # run the spread blender's flush to its end (it shifts)
                pass
            if self.deferred and self.blender.band.own1 == self.blender.width:  # last band
                self.follower.advance(self.blender.y0)
        elif kind == "finish":
            if self.deferred:
                self.follower.advance(self.blender.height)
                self.follower.wait()
            self._finish()

    def _catch_up(self, upto: int) -> None:
        """Deferred: whole-row work for rows [_whole, upto), finished in every band."""
        while self._whole < upto:
            h = min(self.WHOLE_ROWS, upto - self._whole)
            self._whole_rows_from_raster(self._whole, h)
            self._whole += h

    def _whole_rows_from_raster(self, row0: int, h: int) -> None:
        raise NotImplementedError

    def _flushed(
        self,
        rows: Iterator[tuple[int, np.ndarray, np.ndarray]],
        spread: Iterator[tuple[int, np.ndarray, np.ndarray]] | None,
    ) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError


class RowSink(_Sink):
    """Writer side of the pipeline: blend tiles, then rows -> COGs, mask, polygons."""

    def __init__(
        self,
        blender: StripBlender,
        masks: MaskStream,
        prob_w: CogWriter,
        mask_w: CogWriter,
        vec: PolygonWriter,
        mask_q: Decimator,
        has_nodata: bool,
        unc_w: CogWriter | None = None,
        spread: StripBlender | None = None,
    ) -> None:
        self.blender, self.masks, self.vec, self.mask_q = blender, masks, vec, mask_q
        self.prob_w, self.mask_w, self.has_nodata = prob_w, mask_w, has_nodata
        self.unc_w, self.spread = unc_w, spread
        self.stats = {"positive_px": 0, "valid_px": 0}

    def _finish(self) -> None:
        for m0, m in self.masks.finish():
            self._mask(m0, m)

    def _whole_rows_from_raster(self, row0: int, h: int) -> None:
        """Deferred: the mask from the probability rows of every band."""
        u8, valid = self.prob_w.read(row0, h)
        nodata = np.zeros(u8.shape, bool) if valid is None else ~valid
        for m0, m in self.masks.push(row0, u8, nodata):
            self._mask(m0, m)

    def _flushed(
        self,
        rows: Iterator[tuple[int, np.ndarray, np.ndarray]],
        spread: Iterator[tuple[int, np.ndarray, np.ndarray]] | None,
    ) -> None:
        x0 = self.blender.x0
        for row0, prob, valid in rows:
            u8 = to_u8(prob)
            self.prob_w.write(row0, u8, valid if self.has_nodata else None, x0)
            if self.unc_w is not None:
                unc = to_u8(next(spread)[1]) if spread is not None else entropy_u8(prob)
                self.unc_w.write(row0, unc, valid if self.has_nodata else None, x0)
            self.stats["valid_px"] += int(np.count_nonzero(valid))
            if not self.deferred:
                for m0, m in self.masks.push(row0, u8, ~valid):
                    self._mask(m0, m)

    def _mask(self, m0: int, m: np.ndarray) -> None:
        self.mask_w.write(m0, m)
        self.vec.push(m0, m)
        self.mask_q.push(m0, m)
        self.stats["positive_px"] += int(np.count_nonzero(m == 1))


# Class rows go to the polygon writer in pieces of at least this many rows: a region that
# spans the scene (land, say) is joined across fewer cuts (fewer unions of a large polygon).
VECTOR_ROWS = 256


class ClassRowSink(_Sink):
    """The writer side for a multi-class model: blended class probabilities ``(h, w, n)`` ->
    the n-band probability COG, the class raster (argmax, ``IGNORE`` on nodata), the
    uncertainty COG, per-class polygons and the quicklook's class rows.

    The class raster is the plain argmax (no threshold, opening or minimum area: those are
    rules of the binary mask); ``class_px`` counts each class's pixels.
    """

    def __init__(
        self,
        blender: StripBlender,
        prob_w: CogWriter,
        class_w: CogWriter,
        vec: PolygonWriter,
        class_q: Decimator,
        has_nodata: bool,
        unc_w: CogWriter,
        spread: StripBlender | None = None,
    ) -> None:
        self.blender, self.vec, self.class_q = blender, vec, class_q
        self.prob_w, self.class_w, self.unc_w = prob_w, class_w, unc_w
        self.has_nodata, self.spread = has_nodata, spread
        self.n = blender.channels
        self.stats = {"valid_px": 0}
        self.class_px = np.zeros(self.n, np.int64)
        self._vec_rows: list[np.ndarray] = []  # class rows not yet polygonised
        self._vec_row0 = 0

    def _flushed(
        self,
        rows: Iterator[tuple[int, np.ndarray, np.ndarray]],
        spread: Iterator[tuple[int, np.ndarray, np.ndarray]] | None,
    ) -> None:
        for row0, prob, valid in rows:
            unc = next(spread)[1] if spread is not None else class_entropy(prob)
            self._rows(row0, prob, valid, unc)

    WHOLE_ROWS = VECTOR_ROWS

    def _finish(self) -> None:
        self._polygonise()

    def _whole_rows_from_raster(self, row0: int, h: int) -> None:
        """Deferred: polygons and quicklook from the class rows of every band."""
        cls, _ = self.class_w.read(row0, h)
        self._whole_rows(row0, cls)

    def _rows(self, row0: int, prob: np.ndarray, valid: np.ndarray, unc: np.ndarray) -> None:
        from satseg.classes import IGNORE

        mask, x0 = (valid if self.has_nodata else None), self.blender.x0
        self.prob_w.write(row0, to_u8(prob), mask, x0)
        self.unc_w.write(row0, to_u8(unc), mask, x0)
        cls = np.argmax(prob, axis=-1).astype(np.uint8)
        cls[~valid] = IGNORE
        self.class_w.write(row0, cls, None, x0)
        if not self.deferred:
            self._whole_rows(row0, cls)
        self.stats["valid_px"] += int(np.count_nonzero(valid))
        self.class_px += np.bincount(cls.ravel(), minlength=256)[: self.n]

    def _whole_rows(self, row0: int, cls: np.ndarray) -> None:
        """Full-width class rows, in order: to the polygon writer and the quicklook."""
        self._vec_rows.append(cls)
        if sum(len(r) for r in self._vec_rows) >= VECTOR_ROWS:
            self._polygonise()
        self.class_q.push(row0, cls)

    def _polygonise(self) -> None:
        """Hand the buffered class rows to the polygon writer in one piece."""
        if self._vec_rows:
            rows = np.concatenate(self._vec_rows)
            self.vec.push(self._vec_row0, rows)
            self._vec_row0 += len(rows)
            self._vec_rows = []
