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


# ---- multi-class: softmax outputs, sparse class-index targets, 255 = ignore ---------------

MULTICLASS_LOSS = {
    "bce_dice": "ce_dice",
    "bce_jaccard": "ce_jaccard",
    "focal": "focal",
    "bce": "ce",
}


def _sparse(y_true: tf.Tensor, n: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(one-hot (b,h,w,n), valid (b,h,w,1) float, index (b,h,w) int) of a class-index target;
    any value outside 0..n-1 (255 = ignore, padding) is not valid: no loss, no metric."""
    idx = tf.cast(tf.round(y_true[..., 0]), tf.int32)
    valid = tf.logical_and(idx >= 0, idx < n)
    idx = tf.where(valid, idx, 0)
    validf = tf.cast(valid, tf.float32)[..., None]
    return tf.one_hot(idx, n, dtype=tf.float32) * validf, validf, idx


def multiclass_loss(
    name: str, n: int, class_weights: list[float] | None = None, gamma: float = 2.0
) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """Loss of ``n`` softmax channels against class-index targets (ignore 255 masked out).

    ``ce_dice`` / ``ce_jaccard``: cross-entropy (weighted by ``class_weights`` when given,
    normalised by the weights of the valid pixels, as PyTorch's weighted mean) plus 1 - the
    soft Dice / Jaccard of each class over the batch, averaged over the classes; ``ce``
    alone; ``focal``: categorical focal loss (gamma 2, class weights as alpha). Computed in
    float32 (mixed bfloat16 training hands in float32 or bfloat16 probabilities).
    """
    kind = MULTICLASS_LOSS.get(name, name)
    if kind not in ("ce_dice", "ce_jaccard", "focal", "ce"):
        raise ValueError(f"loss {name!r}: choose one of {', '.join(MULTICLASS_LOSS)}")
    if class_weights is not None and len(class_weights) != n:
        raise ValueError(f"{len(class_weights)} class weights for {n} classes")
    cw = None if class_weights is None else tf.constant(class_weights, tf.float32)

    def loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        onehot, valid, idx = _sparse(y_true, n)
        p = tf.clip_by_value(tf.cast(y_pred, tf.float32), EPS, 1.0)
        w = valid[..., 0] if cw is None else tf.gather(cw, idx) * valid[..., 0]
        logp = tf.reduce_sum(onehot * tf.math.log(p), axis=-1)
        if kind == "focal":
            p_t = tf.reduce_sum(onehot * p, axis=-1)
            logp = (1.0 - p_t) ** gamma * logp
        ce = -tf.reduce_sum(w * logp, axis=(1, 2)) / tf.maximum(tf.reduce_sum(w, axis=(1, 2)), EPS)
        if kind in ("ce", "focal"):
            return ce
        pv = p * valid
        inter = tf.reduce_sum(onehot * pv, axis=(0, 1, 2))
        total = tf.reduce_sum(onehot + pv, axis=(0, 1, 2))
        if kind == "ce_dice":
            score = (2.0 * inter + 1.0) / (total + 1.0)
        else:
            score = (inter + 1.0) / (total - inter + 1.0)
        return ce + 1.0 - tf.reduce_mean(score)

    loss.__name__ = kind
    return loss


class ClassScores(tf.keras.metrics.Metric):  # type: ignore[misc]
    """Per-class IoU and Dice (``iou_<name>``, ``dice_<name>``), ``miou``, ``mdice`` and
    ``pixel_accuracy`` of the argmax over the epoch: a confusion matrix of the valid pixels,
    the same definitions as ``satseg.metrics.ClassScorer`` (means over the classes present
    in truth or prediction), so the epoch curves and the final figures agree."""

    def __init__(self, names: tuple[str, ...] | list[str] = (), **kwargs: Any) -> None:
        super().__init__(name=kwargs.pop("name", "class_scores"), **kwargs)
        self.names = tuple(names)
        n = len(self.names)
        self.cm = self.add_weight(name="cm", shape=(n, n), initializer="zeros", dtype=tf.float32)

    def update_state(self, y_true: tf.Tensor, y_pred: tf.Tensor, sample_weight: Any = None) -> None:
        n = len(self.names)
        _, valid, idx = _sparse(y_true, n)
        pred = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
        keep = tf.reshape(valid[..., 0] > 0, [-1])
        t = tf.boolean_mask(tf.reshape(idx, [-1]), keep)
        p = tf.boolean_mask(tf.reshape(pred, [-1]), keep)
        cm = tf.math.bincount(t * n + p, minlength=n * n, maxlength=n * n, dtype=tf.float32)
        self.cm.assign_add(tf.reshape(cm, (n, n)))

    def result(self) -> dict[str, tf.Tensor]:
        tp = tf.linalg.diag_part(self.cm)
        fp = tf.reduce_sum(self.cm, axis=0) - tp
        fn = tf.reduce_sum(self.cm, axis=1) - tp

        def ratio(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
            return tf.where(b > 0, a / tf.maximum(b, 1.0), 1.0)

        iou, dice = ratio(tp, tp + fp + fn), ratio(2 * tp, 2 * tp + fp + fn)
        present = tf.cast(tp + fp + fn > 0, tf.float32)
        n_present = tf.reduce_sum(present)

        def mean(x: tf.Tensor) -> tf.Tensor:
            return tf.where(
                n_present > 0, tf.reduce_sum(x * present) / tf.maximum(n_present, 1), 1.0
            )

        out = {"miou": mean(iou), "mdice": mean(dice)}
        out["pixel_accuracy"] = ratio(tf.reduce_sum(tp), tf.reduce_sum(self.cm))
        for i, name in enumerate(self.names):
            out[f"iou_{name}"] = iou[i]
            out[f"dice_{name}"] = dice[i]
        return out

    def reset_state(self) -> None:
        self.cm.assign(tf.zeros_like(self.cm))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "names": list(self.names)}


def class_metrics(names: tuple[str, ...] | list[str]) -> list[ClassScores]:
    return [ClassScores(names)]


def balanced_weights(
    pixels: dict[str, int], names: tuple[str, ...], cap: float = 10.0
) -> list[float]:
    """sklearn's 'balanced' weights ``n_px / (n_classes x class px)`` of the train split's
    ``class_pixels``, capped at ``cap``; a class with no pixel gets the cap (it costs nothing
    until it appears)."""
    counts = [float(pixels.get(n, 0)) for n in names]
    total = sum(counts)
    return [min(cap, total / (len(names) * c)) if c > 0 else cap for c in counts]
