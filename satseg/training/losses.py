"""Losses and metrics for binary masks, written on plain TensorFlow ops.

segmentation-models' own losses do not serialise (STACK_FACTS), so these are used only to
compile the training copy; the model that is saved and logged is never compiled.
Targets may carry a second channel of per-pixel weights (U-Net border weights), which the
BCE/focal terms apply; Dice/Jaccard and the metrics read only the mask channel.
Metrics count true/false positives over the whole epoch (micro average at threshold 0.5),
the same definition ``evaluate`` uses, so epoch curves and final figures agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

EPS = 1e-6


def split_target(y_true: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor | None]:
    """(mask (..., 1), border weights (..., 1) or None): targets may carry a weight channel
    (``training.data.make_dataset(border=...)``)."""
    if y_true.shape[-1] == 2:
        return y_true[..., :1], y_true[..., 1:]
    return y_true, None


def _soft_dice(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    inter = tf.reduce_sum(y_true * y_pred, axis=(1, 2, 3))
    total = tf.reduce_sum(y_true + y_pred, axis=(1, 2, 3))
    return (2.0 * inter + 1.0) / (total + 1.0)


def _soft_jaccard(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    inter = tf.reduce_sum(y_true * y_pred, axis=(1, 2, 3))
    union = tf.reduce_sum(y_true + y_pred, axis=(1, 2, 3)) - inter
    return (inter + 1.0) / (union + 1.0)


def _weighted_mean(x: tf.Tensor, w: tf.Tensor | None) -> tf.Tensor:
    """Per-image mean of ``x``, weighted by ``w`` (normalised: the loss keeps its scale)."""
    if w is None:
        return tf.reduce_mean(x, axis=(1, 2, 3))
    return tf.reduce_sum(w * x, axis=(1, 2, 3)) / tf.maximum(tf.reduce_sum(w, axis=(1, 2, 3)), EPS)


def _bce(y_true: tf.Tensor, y_pred: tf.Tensor, w: tf.Tensor | None = None) -> tf.Tensor:
    y_pred = tf.clip_by_value(y_pred, EPS, 1.0 - EPS)
    ll = y_true * tf.math.log(y_pred) + (1.0 - y_true) * tf.math.log(1.0 - y_pred)
    return _weighted_mean(-ll, w)


def _focal(
    y_true: tf.Tensor,
    y_pred: tf.Tensor,
    w: tf.Tensor | None = None,
    gamma: float = 2.0,
    alpha: float = 0.25,
) -> tf.Tensor:
    y_pred = tf.clip_by_value(y_pred, EPS, 1.0 - EPS)
    p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
    a_t = y_true * alpha + (1.0 - y_true) * (1.0 - alpha)
    return _weighted_mean(-a_t * (1.0 - p_t) ** gamma * tf.math.log(p_t), w)


def bce_dice(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    t, w = split_target(y_true)
    return _bce(t, y_pred, w) + 1.0 - _soft_dice(t, y_pred)


def bce_jaccard(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    t, w = split_target(y_true)
    return _bce(t, y_pred, w) + 1.0 - _soft_jaccard(t, y_pred)


def focal(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    t, w = split_target(y_true)
    return _focal(t, y_pred, w)


def bce(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    t, w = split_target(y_true)
    return _bce(t, y_pred, w)


LOSS_FNS: dict[str, Callable[[tf.Tensor, tf.Tensor], tf.Tensor]] = {
    "bce_dice": bce_dice,
    "bce_jaccard": bce_jaccard,
    "focal": focal,
    "bce": bce,
}


def get_loss(name: str) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    try:
        return LOSS_FNS[name]
    except KeyError:
        raise ValueError(f"loss {name!r}: choose one of {', '.join(LOSS_FNS)}") from None


class PixelScore(tf.keras.metrics.Metric):  # type: ignore[misc]
    """One of iou/dice/precision/recall from tp/fp/fn accumulated over the epoch."""

    def __init__(self, kind: str = "iou", threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(name=kwargs.pop("name", kind), **kwargs)
        self.kind, self.threshold = kind, threshold
        self.tp = self.add_weight(name="tp", initializer="zeros")
        self.fp = self.add_weight(name="fp", initializer="zeros")
        self.fn = self.add_weight(name="fn", initializer="zeros")

    def update_state(self, y_true: tf.Tensor, y_pred: tf.Tensor, sample_weight: Any = None) -> None:
        t = tf.cast(split_target(y_true)[0] > 0.5, tf.float32)
        p = tf.cast(y_pred > self.threshold, tf.float32)
        self.tp.assign_add(tf.reduce_sum(t * p))
        self.fp.assign_add(tf.reduce_sum((1.0 - t) * p))
        self.fn.assign_add(tf.reduce_sum(t * (1.0 - p)))

    def result(self) -> tf.Tensor:
        tp, fp, fn = self.tp, self.fp, self.fn
        num, den = {
            "iou": (tp, tp + fp + fn),
            "dice": (2 * tp, 2 * tp + fp + fn),
            "precision": (tp, tp + fp),
            "recall": (tp, tp + fn),
        }[self.kind]
        return tf.where(den > 0, num / tf.maximum(den, 1.0), 1.0)

    def reset_state(self) -> None:
        for v in (self.tp, self.fp, self.fn):
            v.assign(0.0)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "kind": self.kind, "threshold": self.threshold}


def metrics() -> list[PixelScore]:
    return [PixelScore(k) for k in ("iou", "dice", "precision", "recall")]
