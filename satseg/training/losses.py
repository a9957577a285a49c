"""Losses and metrics for binary masks, written on plain TensorFlow ops.

segmentation-models' own losses do not serialise (STACK_FACTS), so these are used only to
compile the training copy; the model that is saved and logged is never compiled.
Metrics count true/false positives over the whole epoch (micro average at threshold 0.5),
the same definition ``evaluate`` uses, so epoch curves and final figures agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

EPS = 1e-6


def _soft_dice(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    inter = tf.reduce_sum(y_true * y_pred, axis=(1, 2, 3))
    total = tf.reduce_sum(y_true + y_pred, axis=(1, 2, 3))
    return (2.0 * inter + 1.0) / (total + 1.0)


def _soft_jaccard(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    inter = tf.reduce_sum(y_true * y_pred, axis=(1, 2, 3))
    union = tf.reduce_sum(y_true + y_pred, axis=(1, 2, 3)) - inter
    return (inter + 1.0) / (union + 1.0)


def _bce(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    y_pred = tf.clip_by_value(y_pred, EPS, 1.0 - EPS)
    ll = y_true * tf.math.log(y_pred) + (1.0 - y_true) * tf.math.log(1.0 - y_pred)
    return -tf.reduce_mean(ll, axis=(1, 2, 3))


def _focal(
    y_true: tf.Tensor, y_pred: tf.Tensor, gamma: float = 2.0, alpha: float = 0.25
) -> tf.Tensor:
    y_pred = tf.clip_by_value(y_pred, EPS, 1.0 - EPS)
    p_t = y_true * y_pred + (1.0 - y_true) * (1.0 - y_pred)
    a_t = y_true * alpha + (1.0 - y_true) * (1.0 - alpha)
    return tf.reduce_mean(-a_t * (1.0 - p_t) ** gamma * tf.math.log(p_t), axis=(1, 2, 3))


def bce_dice(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    return _bce(y_true, y_pred) + 1.0 - _soft_dice(y_true, y_pred)


def bce_jaccard(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    return _bce(y_true, y_pred) + 1.0 - _soft_jaccard(y_true, y_pred)


def focal(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    return _focal(y_true, y_pred)


def bce(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
    return _bce(y_true, y_pred)


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


def scores(tp: float, fp: float, fn: float) -> dict[str, float]:
    """IoU, Dice, precision, recall from pixel counts (empty truth and prediction -> 1.0)."""

    def ratio(a: float, b: float) -> float:
        return float(a / b) if b > 0 else 1.0

    return {
        "iou": ratio(tp, tp + fp + fn),
        "dice": ratio(2 * tp, 2 * tp + fp + fn),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
    }


class PixelScore(tf.keras.metrics.Metric):  # type: ignore[misc]
    """One of iou/dice/precision/recall from tp/fp/fn accumulated over the epoch."""

    def __init__(self, kind: str = "iou", threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(name=kwargs.pop("name", kind), **kwargs)
        self.kind, self.threshold = kind, threshold
        self.tp = self.add_weight(name="tp", initializer="zeros")
        self.fp = self.add_weight(name="fp", initializer="zeros")
        self.fn = self.add_weight(name="fn", initializer="zeros")

    def update_state(self, y_true: tf.Tensor, y_pred: tf.Tensor, sample_weight: Any = None) -> None:
        t = tf.cast(y_true > 0.5, tf.float32)
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
