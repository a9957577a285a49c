"""Sliding-window geometry and seamless blending in a strip buffer.

Tiles overlap; each tile's prediction is weighted by a smooth window that falls towards the
tile edges (where a CNN sees zero padding instead of context) and the weighted sum is
normalised. Only a strip of rows a few tiles high is kept, and finished rows leave as soon
as no later tile can touch them, so memory depends on the scene width, never its height.
A scene wider than ``predict.column_band`` is streamed in column bands (``column_bands``),
each with its own strip buffer; the columns two neighbouring bands share are carried from
one band to the next, so the blend is the same as in one pass and memory stays flat in the
width too.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

EPS = 1e-3  # edge weight floor: pixels seen only by a tile edge (scene border) still count
FLUSH_ROWS = 64  # finished rows are handed on in pieces of this many


def positions(length: int, tile: int, stride: int) -> list[int]:
    """Tile origins along one axis: every ``stride``, the last one flush with the end."""
    if length <= tile:
        return [0]
    out = list(range(0, length - tile, stride))
    out.append(length - tile)
    return out


@dataclass(frozen=True)
class Band:
    """A column band of the tile grid: tiles at ``xs`` (scene columns) cover [x0, x1); the
    band finishes the columns [x0, own1) (``own1`` = the next band's x0, or the width)."""

    xs: tuple[int, ...]
    x0: int
    x1: int
    own1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0


def column_bands(width: int, tile: int, stride: int, max_width: int = 0) -> list[Band]:
    """The tile grid's columns cut into bands at most ``max_width`` px wide (0: one band).

    Each band holds at least two tile columns, so only neighbouring bands share columns
    (``overlap <= tile/2``: no pixel is under three tile columns of different bands).
    """
    xs = positions(width, tile, stride)
    if max_width <= 0 or width <= max_width:
        return [Band(tuple(xs), 0, width, width)]
    per = max(2, (max_width - tile) // stride + 1)
    groups = [xs[i : i + per] for i in range(0, len(xs), per)]
    if len(groups) > 1 and len(groups[-1]) < 2:
        last = groups.pop()
        groups[-1] = groups[-1] + last
    return [
        Band(
            tuple(g),
            g[0],
            min(width, g[-1] + tile),
            groups[i + 1][0] if i + 1 < len(groups) else width,
        )
        for i, g in enumerate(groups)
    ]


def weight_window(tile: int, kind: str = "hann") -> np.ndarray:
    """(tile, tile) float32 weights: separable squared Hann (sin⁴) with a floor of EPS.

    sin⁴ falls faster towards the edges than plain Hann (sin²): at the default 1/4 overlap
    it cut the whole-vs-shifted difference of a 31 px receptive-field net 3x (seam test).
    ``kind="uniform"`` (plain averaging) exists to show what blending buys.
    """
    w1 = window_1d(tile, kind)
    return np.outer(w1, w1).astype(np.float32)


def window_1d(tile: int, kind: str = "hann") -> np.ndarray:
    """One axis of ``weight_window`` (float64)."""
    if kind == "uniform":
        return np.ones(tile, np.float64)
    if kind != "hann":
        raise ValueError(f"unknown window {kind!r}")
    w1 = np.sin(math.pi * (np.arange(tile, dtype=np.float64) + 0.5) / tile) ** 4
    return EPS + (1.0 - EPS) * w1


class StripBlender:
    """Weighted accumulation of tile predictions over a scene, one strip of rows at a time.

    ``add`` tiles in row-major order; ``flush(next_y)`` returns the rows above ``next_y``
    (the origin of the next tile still to come), which no later tile can change. The
    window is separable and the tiles form a grid, so the sum of weights at a pixel is
    the product of two 1-D sums: no weight buffer is kept, only the weighted predictions.
    Tiles skipped as all-nodata cover only nodata pixels, whose value is never used.

    ``band`` (``column_bands``): only that band's tiles and columns; ``flush`` returns its
    finished columns [x0, own1) (``x0`` is the first). The weighted sums of the columns it
    shares with the next band go to ``carry_out`` (scene-high, overlap-wide), which the
    next band's blender takes as ``carry_in`` and adds before it normalises.
    """

    def __init__(
        self,
        width: int,
        height: int,
        tile: int,
        stride: int,
        batch: int,
        window: str = "hann",
        channels: int = 1,
        band: Band | None = None,
        carry_in: np.ndarray | None = None,
    ) -> None:
        self.width, self.height, self.tile = width, height, tile
        self.band = band or column_bands(width, tile, stride)[0]
        self.xs, self.ys = list(self.band.xs), positions(height, tile, stride)
        self.x0, bw = self.band.x0, self.band.width
        self.own = self.band.own1 - self.x0  # columns this band finishes
        # a batch reaches at most ceil(batch / tiles per row) rows of tiles past the one it
        # starts in; the model loop predicts a pending batch early rather than let rows of
        # skipped (all-nodata) tiles stretch it further (``reach``)
        self.reach = stride * math.ceil(batch / len(self.xs))
        self.cap = tile + self.reach
        self.y0 = 0  # scene row of buffer row 0
        # channels > 1 (multi-class): tiles (tile, tile, channels), rows (h, width, channels)
        self.channels = channels
        extra = (channels,) if channels > 1 else ()
        self.acc = np.zeros((self.cap, bw, *extra), np.float32)
        self.nodata = np.zeros((self.cap, bw), bool)
        self.carry_in = carry_in
        self.carry_out = None
        if self.own < bw:
            self.carry_out = np.zeros((height, bw - self.own, *extra), np.float32)
        self.window = weight_window(tile, window)
        if channels > 1:
            self.window = self.window[..., None]
        w1 = window_1d(tile, window)
        all_xs = positions(width, tile, stride)
        self.wx = _coverage(width, all_xs, w1)[self.x0 : self.x0 + self.own]
        self.wy = _coverage(height, self.ys, w1)

    def add(self, y: int, x: int, prob: np.ndarray) -> None:
        """Add one tile's (tile, tile) prediction at scene origin (y, x); clips at the edges."""
        h = min(self.tile, self.height - y)
        w = min(self.tile, self.width - x)
        x -= self.x0
        r = y - self.y0
        if r < 0 or r + h > self.cap:
            raise ValueError(f"tile at row {y} outside the strip buffer [{self.y0}, +{self.cap})")
        self.acc[r : r + h, x : x + w] += prob[:h, :w] * self.window[:h, :w]

    def set_nodata(self, y: int, nodata: np.ndarray) -> None:
        """Record the input nodata mask of rows [y, y+h) of the band's columns (it travels
        with the strip)."""
        r = y - self.y0
        if r < 0 or r + nodata.shape[0] > self.cap:
            raise ValueError(f"rows at {y} outside the strip buffer [{self.y0}, +{self.cap})")
        self.nodata[r : r + nodata.shape[0]] = nodata

    def flush(self, upto: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yield ``(row0, prob, valid)`` for finished rows [y0, upto) of the columns the band
        finishes (from ``x0``); then shift the strip. ``valid`` is False where the input was
        nodata.
        """
        upto = min(upto, self.height)
        n = upto - self.y0
        if n <= 0:
            return
        inv_x = (1.0 / self.wx).astype(np.float32)
        if self.channels > 1:
            inv_x = inv_x[:, None]
        for a in range(0, n, FLUSH_ROWS):  # small pieces: bounded temporaries on wide scenes
            b = min(n, a + FLUSH_ROWS)
            inv_y = (1.0 / self.wy[self.y0 + a : self.y0 + b]).astype(np.float32)
            acc = self.acc[a:b]
            if self.carry_in is not None:  # the previous band's share of the first columns
                acc[:, : self.carry_in.shape[1]] += self.carry_in[self.y0 + a : self.y0 + b]
            if self.carry_out is not None:  # this band's share of the next band's columns
                self.carry_out[self.y0 + a : self.y0 + b] = acc[:, self.own :]
            prob = acc[:, : self.own] * inv_x
            prob *= inv_y[:, None, None] if self.channels > 1 else inv_y[:, None]
            valid = ~self.nodata[a:b, : self.own]
            prob[~valid] = 0.0
            yield self.y0 + a, prob, valid
        # shift the unfinished rows to the top of the buffer, in pieces that do not overlap
        # their source (an overlapping slice assignment copies the whole source first)
        keep, step = self.cap - n, max(1, min(n, FLUSH_ROWS))
        for buf in (self.acc, self.nodata):
            for s in range(0, keep, step):
                e = min(keep, s + step)
                buf[s:e] = buf[n + s : n + e]
            buf[keep:] = 0
        self.y0 = upto


def _coverage(length: int, starts: list[int], w1: np.ndarray) -> np.ndarray:
    """Sum of the 1-D window over all tile positions along one axis."""
    out = np.zeros(length, np.float64)
    for s in starts:
        n = min(len(w1), length - s)
        out[s : s + n] += w1[:n]
    return out
