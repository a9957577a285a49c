"""Test-time augmentation and per-pixel uncertainty around any predictor.

A predictor maps a batch ``(n, t, t, 3)`` float32 to probabilities ``(n, t, t)``. ``TTA``
runs it on the flipped / rotated views of the batch (the dihedral group D4 or its flips),
maps each answer back and averages the probabilities. Its ``spread`` is the per-pixel
variance across the views, scaled by 4 to [0, 1] (a probability's variance is at most
0.25): where the views disagree the model is unsure (multi-class: the largest class's).
Without TTA, uncertainty is the binary entropy of the probability (bits, [0, 1]), computed
from the blended probability itself; multi-class, the entropy over the classes / log2(n).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from satseg.inference.postprocess import to_u8

Predictor = Callable[[np.ndarray], np.ndarray]
MODES = ("none", "flips", "d4")  # satseg.params.Tta


def views(mode: str) -> list[tuple[int, bool]]:
    """``(k, flip)`` of each view: rotate by ``k`` x 90 degrees after an optional left-right flip."""
    if mode == "none":
        return [(0, False)]
    if mode == "flips":  # identity, left-right, up-down (= flip + rot180), both (= rot180)
        return [(0, False), (0, True), (2, True), (2, False)]
    if mode == "d4":
        return [(k, f) for f in (False, True) for k in range(4)]
    raise ValueError(f"tta {mode!r}: choose one of {', '.join(MODES)}")


def forward(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """One view of a batch ``(n, h, w, ...)``: flip columns, then rotate ``k`` x 90 degrees."""
    if flip:
        x = x[:, :, ::-1]
    return np.rot90(x, k, axes=(1, 2)) if k else x


def inverse(y: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """Undo ``forward`` on the predictor's answer ``(n, h, w)``."""
    if k:
        y = np.rot90(y, -k, axes=(1, 2))
    return y[:, :, ::-1] if flip else y


class TTA:
    """``predictor`` averaged over the views of ``mode``; ``predict`` also gives the spread."""

    def __init__(self, predictor: Any, mode: str = "none") -> None:
        self.predictor = predictor
        self.mode = mode
        self.views = views(mode)
        self.precision = getattr(predictor, "precision", "fp32")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.predict(x)[0]

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(mean probability, 4 x variance across views or None without TTA)."""
        if len(self.views) == 1:
            return np.asarray(self.predictor(x), np.float32), None
        total = sq = None
        for k, flip in self.views:
            view = np.ascontiguousarray(forward(x, k, flip))
            y = inverse(np.asarray(self.predictor(view), np.float32), k, flip)
            total = y.copy() if total is None else total + y
            sq = y * y if sq is None else sq + y * y
        assert total is not None and sq is not None
        n = np.float32(len(self.views))
        mean = total / n
        var = np.maximum(sq / n - mean * mean, 0.0)
        if var.ndim == 4:  # multi-class (n, t, t, classes): the most disputed class counts
            var = var.max(axis=-1)
        return mean, np.minimum(4.0 * var, 1.0).astype(np.float32)


def entropy(prob: np.ndarray) -> np.ndarray:
    """Binary entropy in bits ([0, 1]; 1 at p = 0.5) of a probability array, float32."""
    p = np.clip(np.asarray(prob, np.float32), 1e-6, 1 - 1e-6)
    h = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    h[(prob <= 0) | (prob >= 1)] = 0.0
    return h.astype(np.float32)


_LUT_STEPS = 65535  # 16-bit probability steps: the uint8 entropy is within one level


@functools.cache
def _entropy_lut() -> np.ndarray:
    return to_u8(entropy(np.arange(_LUT_STEPS + 1, dtype=np.float32) / _LUT_STEPS))


def entropy_u8(prob: np.ndarray) -> np.ndarray:
    """``to_u8(entropy(prob))`` through a 65536-entry table of the probability in 16-bit
    steps: a third of the CPU of the logarithms, within one level (1/255 bit) of them."""
    q = np.asarray(prob, np.float32) * np.float32(_LUT_STEPS)
    q += np.float32(0.5)
    np.clip(q, 0, _LUT_STEPS, out=q)
    return _entropy_lut()[q.astype(np.uint16)]


def class_entropy(prob: np.ndarray) -> np.ndarray:
    """Shannon entropy of per-class probabilities ``(..., n)`` over the last axis, divided by
    log2(n): [0, 1], 1 where every class is equally likely; float32 ``(...)``."""
    p = np.asarray(prob, np.float32)
    n = p.shape[-1]
    if n < 2:
        return np.zeros(p.shape[:-1], np.float32)
    total = p.sum(axis=-1, keepdims=True)
    q = p / np.maximum(total, np.float32(1e-12))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q > 0, q * np.log2(np.maximum(q, np.float32(1e-12))), np.float32(0.0))
    h = -terms.sum(axis=-1) / np.float32(np.log2(n))
    return np.clip(h, 0.0, 1.0).astype(np.float32)
