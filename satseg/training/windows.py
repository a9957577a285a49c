"""Whole train scenes in RAM, random windows cut from them, and U-Net border weights.

Ingest cuts every scene into a fixed grid of patches (``<scene>_rNNNNN_cNNNNN``); trained only
on that grid, a model sees each building at one position and scale, always cut at the same
place. :func:`load_mosaics` puts the grid back together (the original patches of the train
split, not the augmented copies), and :func:`sample_windows` draws fresh windows from the
whole scenes every epoch, at random positions and scales (TorchGeo's ``RandomGeoSampler``):
scenes are picked in proportion to their usable area, windows whose share of nodata (no patch,
or the black padding at scene edges) exceeds ``max_nodata`` are redrawn.

:func:`border_weights` is the weight map of Ronneberger et al. (U-Net, 2015):
``1 + w0 * exp(-(d1 + d2)^2 / (2 sigma^2))`` on background pixels, d1 and d2 the distances to
the nearest and second-nearest building, so the narrow street between two terraces costs more
than open ground when it is called building. Numpy and OpenCV only (no TensorFlow).
"""

from __future__ import annotations

import functools
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PATCH_ID = re.compile(r"^(?P<scene>.+)_r(?P<row>\d{5})_c(?P<col>\d{5})$")


@dataclass
class Mosaic:
    """One train scene put back together from its patches."""

    name: str
    image: np.ndarray  # (H, W, 3) uint8 RGB
    mask: np.ndarray  # (H, W) uint8 0/1, or class indices with 255 = ignore (multi-class)
    valid: np.ndarray  # (H, W) bool: inside a kept patch and not black edge padding
    weight: np.ndarray | None = None  # (H, W) float32 border weights, when asked for

    @functools.cached_property
    def integral(self) -> np.ndarray:
        """Summed-area table of ``valid`` ((H+1, W+1), int64), for window nodata shares."""
        s = np.zeros((self.valid.shape[0] + 1, self.valid.shape[1] + 1), np.int64)
        s[1:, 1:] = self.valid.cumsum(0).cumsum(1)
        return s

    def valid_share(self, y: int, x: int, size: int) -> float:
        s = self.integral
        total = s[y + size, x + size] - s[y, x + size] - s[y + size, x] + s[y, x]
        return float(total) / (size * size)


def group_patches(
    images: list[Path], masks: list[Path]
) -> dict[str, list[tuple[int, int, Path, Path]]]:
    """scene -> [(row, col, image, mask)] of the grid patches (augmented copies left out)."""
    out: dict[str, list[tuple[int, int, Path, Path]]] = defaultdict(list)
    for img, msk in zip(images, masks, strict=True):
        m = PATCH_ID.match(img.stem)
        if m:
            out[m["scene"]].append((int(m["row"]), int(m["col"]), img, msk))
    return dict(out)


def load_mosaics(
    images: list[Path], masks: list[Path], size: tuple[int, int], *, multiclass: bool = False
) -> list[Mosaic]:
    """The scenes of a split's grid patches, each as one array (patch ``size`` = (h, w)).

    Binary masks become 0/1; ``multiclass`` masks keep their class indices, and the scene
    area no patch covers is 255 (ignore), not class 0."""
    import cv2

    from satseg.classes import IGNORE

    ph, pw = size
    out = []
    for scene, parts in sorted(group_patches(images, masks).items()):
        h = max(r for r, _, _, _ in parts) + ph
        w = max(c for _, c, _, _ in parts) + pw
        image = np.zeros((h, w, 3), np.uint8)
        mask = np.full((h, w), IGNORE if multiclass else 0, np.uint8)
        covered = np.zeros((h, w), bool)
        for r, c, ip, mp in parts:
            bgr = cv2.imread(str(ip), cv2.IMREAD_COLOR)
            m = cv2.imread(str(mp), cv2.IMREAD_GRAYSCALE)
            if bgr is None or m is None:
                raise OSError(f"{ip.name}: patch image or mask is unreadable")
            image[r : r + ph, c : c + pw] = bgr[..., ::-1]
            mask[r : r + ph, c : c + pw] = m if multiclass else m > 127
            covered[r : r + ph, c : c + pw] = True
        valid = covered & (image.max(axis=-1) > 0)
        out.append(Mosaic(scene, image, mask, valid))
    return out


def mosaic_bytes(images: list[Path], size: tuple[int, int]) -> int:
    """RAM that :func:`load_mosaics` (+ float32 weights) would take: grid area x 9 bytes."""
    ph, pw = size
    total = 0
    for parts in group_patches(images, images).values():
        total += (max(r for r, *_ in parts) + ph) * (max(c for _, c, *_ in parts) + pw)
    return total * 9


@dataclass(frozen=True)
class Window:
    scene: int  # index into the mosaics
    y: int
    x: int
    size: int  # edge cut from the scene (resized to the training window)


def sample_windows(
    mosaics: list[Mosaic],
    n: int,
    window: int,
    rng: np.random.Generator,
    *,
    scale_jitter: float = 0.0,
    max_nodata: float = 0.5,
    tries: int = 20,
) -> list[Window]:
    """``n`` random windows: scene by usable area, edge ``window * z`` (z log-uniform in
    ``[1/(1+j), 1+j]``, at most the scene's short side), position uniform; redrawn while the
    nodata share exceeds ``max_nodata`` (the last draw is kept after ``tries``)."""
    areas = np.array([float(m.valid.sum()) for m in mosaics])
    if not len(mosaics) or areas.sum() <= 0:
        raise ValueError("no usable scene area to sample training windows from")
    p = areas / areas.sum()
    span = math.log1p(scale_jitter)
    out = []
    for _ in range(n):
        k = int(rng.choice(len(mosaics), p=p))
        m = mosaics[k]
        h, w = m.valid.shape
        size = round(window * math.exp(rng.uniform(-span, span))) if span else window
        size = max(8, min(size, h, w))
        for _ in range(tries):
            y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
            if 1.0 - m.valid_share(y, x, size) <= max_nodata:
                break
        out.append(Window(k, y, x, size))
    return out


def cut(m: Mosaic, win: Window, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(image uint8, mask uint8 0/1, weight float32 | None) of ``win`` resized to ``window``."""
    import cv2

    sl = np.s_[win.y : win.y + win.size, win.x : win.x + win.size]
    img, mask = m.image[sl], m.mask[sl]
    weight = None if m.weight is None else m.weight[sl]
    if win.size != window:
        dsize = (window, window)
        shrink = win.size > window
        img = cv2.resize(img, dsize, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        mask = cv2.resize(mask, dsize, interpolation=cv2.INTER_NEAREST)
        if weight is not None:
            weight = cv2.resize(weight, dsize, interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(img), np.ascontiguousarray(mask), weight


def border_weights(mask: np.ndarray, w0: float, sigma: float) -> np.ndarray:
    """U-Net weight map of a 0/1 ``mask``: 1 everywhere, plus ``w0 exp(-(d1+d2)^2/2σ^2)`` on
    background pixels between buildings (8-connected components). Distances are Euclidean,
    computed only within 3σ of each building (beyond it the term is < 1.1 % of w0)."""
    import cv2

    m = (np.asarray(mask) > 0).astype(np.uint8)
    h, w = m.shape
    out = np.ones((h, w), np.float32)
    if w0 <= 0:
        return out
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n < 3:  # fewer than two buildings: no gaps between buildings
        return out
    r = math.ceil(3 * sigma)
    d1 = np.full((h, w), np.inf, np.float32)
    d2 = np.full((h, w), np.inf, np.float32)
    for k in range(1, n):
        x, y, bw, bh = (int(v) for v in stats[k, :4])
        y0, y1, x0, x1 = max(0, y - r), min(h, y + bh + r), max(0, x - r), min(w, x + bw + r)
        other = (labels[y0:y1, x0:x1] != k).astype(np.uint8)
        d = cv2.distanceTransform(other, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        a, b = d1[y0:y1, x0:x1], d2[y0:y1, x0:x1]
        np.minimum(b, np.maximum(a, d), out=b)
        np.minimum(a, d, out=a)
    gap = (m == 0) & np.isfinite(d2)
    s = d1[gap] + d2[gap]
    out[gap] += w0 * np.exp(-(s * s) / (2.0 * sigma * sigma))
    return out
