"""Mask quality, once: pixel IoU/Dice/precision/recall, object F1 and boundary IoU.

Every score of a binary mask satseg reports (training evaluation, champion re-evaluation,
monitoring on new labels, post-processing tuning) is computed here, with numpy and OpenCV.

- **Pixel** scores count true/false positives over everything seen (micro average).
- **Object** scores (SpaceNet style): connected components of truth and prediction
  (4-connected, as the polygons are); a predicted object matches a true one when their IoU
  is at least ``iou_threshold`` (0.5), each object matched at most once (greedy, highest IoU
  first). Precision = matched / predicted, recall = matched / true, F1 their harmonic mean.
- **Boundary IoU** (Cheng et al., CVPR 2021): IoU of the mask pixels within ``d`` of each
  mask's contour, ``d = dilation_ratio`` x the image diagonal (2 % by default), computed as
  in the authors' reference code (the image border counts as contour).

A ratio whose denominator is zero (no truth and no prediction) is 1.0: nothing to find,
nothing found.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DILATION_RATIO = 0.02  # boundary width as a share of the image diagonal (Cheng et al.)
MATCH_IOU = 0.5  # SpaceNet: a predicted building counts when IoU >= 0.5 with a true one
CONNECTIVITY = 4  # objects are 4-connected, like the mask filter and the polygons
METRIC_NAMES = ("iou", "dice", "boundary_iou", "object_f1")  # what promotion may rank on
CLASS_METRIC_NAMES = ("miou", "mdice", "pixel_accuracy")  # multi-class; plus iou_<class>


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else 1.0


def pixel_counts(truth: np.ndarray, pred: np.ndarray) -> tuple[int, int, int]:
    """(tp, fp, fn) pixel counts of two boolean masks of the same shape."""
    t, p = _bool(truth), _bool(pred)
    _same_shape(t, p)
    return int(np.sum(t & p)), int(np.sum(~t & p)), int(np.sum(t & ~p))


def pixel_scores(tp: float, fp: float, fn: float) -> dict[str, float]:
    """IoU, Dice, precision, recall from pixel counts (empty truth and prediction -> 1.0)."""
    return {
        "iou": _ratio(tp, tp + fp + fn),
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
    }


def components(mask: np.ndarray) -> tuple[int, np.ndarray]:
    """(number of objects, int32 label image; 0 = background) of a boolean mask."""
    import cv2

    n, lab = cv2.connectedComponents(_bool(mask).view(np.uint8), connectivity=CONNECTIVITY)
    return int(n) - 1, lab.astype(np.int32, copy=False)


def match_objects(
    truth_labels: np.ndarray,
    n_truth: int,
    pred_labels: np.ndarray,
    n_pred: int,
    iou_threshold: float = MATCH_IOU,
) -> list[tuple[int, int, float]]:
    """One-to-one matches ``(truth_id, pred_id, iou)`` with IoU >= ``iou_threshold``.

    Labels are 1-based component ids (0 = background). Greedy on descending IoU, so each
    object is used once; above 0.5 a match is unique anyway.
    """
    if n_truth == 0 or n_pred == 0:
        return []
    both = (truth_labels > 0) & (pred_labels > 0)
    pair = truth_labels[both].astype(np.int64) * (n_pred + 1) + pred_labels[both]
    codes, inter = np.unique(pair, return_counts=True)
    t_ids, p_ids = codes // (n_pred + 1), codes % (n_pred + 1)
    t_area = np.bincount(truth_labels.ravel(), minlength=n_truth + 1)
    p_area = np.bincount(pred_labels.ravel(), minlength=n_pred + 1)
    iou = inter / (t_area[t_ids] + p_area[p_ids] - inter)
    order = np.argsort(-iou, kind="stable")
    used_t: set[int] = set()
    used_p: set[int] = set()
    out = []
    for k in order:
        if iou[k] < iou_threshold:
            break
        t, p = int(t_ids[k]), int(p_ids[k])
        if t in used_t or p in used_p:
            continue
        used_t.add(t)
        used_p.add(p)
        out.append((t, p, float(iou[k])))
    return out


def object_counts(
    truth: np.ndarray, pred: np.ndarray, iou_threshold: float = MATCH_IOU
) -> tuple[int, int, int]:
    """(matched, unmatched predictions, missed true objects) of two boolean masks."""
    _same_shape(_bool(truth), _bool(pred))
    nt, lt = components(truth)
    n_p, lp = components(pred)
    tp = len(match_objects(lt, nt, lp, n_p, iou_threshold))
    return tp, n_p - tp, nt - tp


def object_scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Object precision, recall, F1 and the counts behind them."""
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {
        "object_precision": precision,
        "object_recall": recall,
        "object_f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "object_tp": float(tp),
        "object_fp": float(fp),
        "object_fn": float(fn),
    }


def boundary_width(shape: tuple[int, ...], dilation_ratio: float = DILATION_RATIO) -> int:
    """Boundary band width in pixels: ``dilation_ratio`` x image diagonal, at least 1."""
    if not 0 < dilation_ratio <= 1:
        raise ValueError(f"dilation_ratio must be in (0, 1], got {dilation_ratio}")
    h, w = shape[:2]
    return max(1, round(dilation_ratio * float(np.hypot(h, w))))


def boundary(mask: np.ndarray, width: int) -> np.ndarray:
    """Mask pixels within ``width`` px of the mask's contour (the image edge counts)."""
    import cv2

    m = _bool(mask).view(np.uint8)
    padded = cv2.copyMakeBorder(m, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=width)[1:-1, 1:-1]
    return (m > 0) & (eroded == 0)


def boundary_counts(
    truth: np.ndarray, pred: np.ndarray, dilation_ratio: float = DILATION_RATIO
) -> tuple[int, int]:
    """(intersection, union) of the two masks' boundary bands (sum these over a split)."""
    t, p = _bool(truth), _bool(pred)
    _same_shape(t, p)
    width = boundary_width(t.shape, dilation_ratio)
    bt, bp = boundary(t, width), boundary(p, width)
    return int(np.sum(bt & bp)), int(np.sum(bt | bp))


def boundary_iou(
    truth: np.ndarray, pred: np.ndarray, dilation_ratio: float = DILATION_RATIO
) -> float:
    """Boundary IoU of one pair of masks (1.0 when both are empty)."""
    inter, union = boundary_counts(truth, pred, dilation_ratio)
    return _ratio(inter, union)


@dataclass
class Truth:
    """What scoring needs of a true mask, computed once when many predictions are scored
    against it (post-processing tuning): the mask, its objects and its boundary band."""

    mask: np.ndarray
    n: int
    labels: np.ndarray
    band: np.ndarray

    @classmethod
    def of(cls, truth: np.ndarray, dilation_ratio: float = DILATION_RATIO) -> Truth:
        t = _bool(truth)
        _same_shape(t, t)
        n, labels = components(t)
        return cls(t, n, labels, boundary(t, boundary_width(t.shape, dilation_ratio)))


@dataclass
class Scorer:
    """Accumulate every score over many (truth, prediction) pairs, e.g. a split's patches.

    Pixel, object and boundary counts are summed, then turned into ratios (micro average).
    """

    dilation_ratio: float = DILATION_RATIO
    iou_threshold: float = MATCH_IOU
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("tp", "fp", "fn", "otp", "ofp", "ofn", "bi", "bu"), 0
        )
    )

    def update(self, truth: np.ndarray | Truth, pred: np.ndarray) -> None:
        """Add one pair; ``truth`` may be a prepared ``Truth`` (same ``dilation_ratio``)."""
        t = truth if isinstance(truth, Truth) else Truth.of(truth, self.dilation_ratio)
        p = _bool(pred)
        _same_shape(t.mask, p)
        c = self.counts
        tp, fp, fn = pixel_counts(t.mask, p)
        c["tp"] += tp
        c["fp"] += fp
        c["fn"] += fn
        n_p, lp = components(p)
        otp = len(match_objects(t.labels, t.n, lp, n_p, self.iou_threshold))
        c["otp"] += otp
        c["ofp"] += n_p - otp
        c["ofn"] += t.n - otp
        bp = boundary(p, boundary_width(p.shape, self.dilation_ratio))
        c["bi"] += int(np.sum(t.band & bp))
        c["bu"] += int(np.sum(t.band | bp))

    def result(self) -> dict[str, float]:
        """Pixel scores, object scores (with counts) and ``boundary_iou``."""
        c = self.counts
        return {
            **pixel_scores(c["tp"], c["fp"], c["fn"]),
            **object_scores(c["otp"], c["ofp"], c["ofn"]),
            "boundary_iou": _ratio(c["bi"], c["bu"]),
        }


def score_masks(
    truth: np.ndarray, pred: np.ndarray, dilation_ratio: float = DILATION_RATIO
) -> dict[str, float]:
    """Every score of one (truth, prediction) pair, or of a stack of them ((n, h, w))."""
    s = Scorer(dilation_ratio=dilation_ratio)
    t, p = _bool(truth), _bool(pred)
    _same_shape(t, p)
    for ti, pi in zip(t.reshape(-1, *t.shape[-2:]), p.reshape(-1, *p.shape[-2:]), strict=True):
        s.update(ti, pi)
    return s.result()


def _bool(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != bool:
        a = a > 0
    return np.ascontiguousarray(a)


def _same_shape(t: np.ndarray, p: np.ndarray) -> None:
    if t.shape != p.shape:
        raise ValueError(f"truth {t.shape} and prediction {p.shape} differ in shape")
    if t.ndim < 2:
        raise ValueError(f"masks must be 2-D (or stacks of 2-D), got shape {t.shape}")


# ---- multi-class (class-index masks, IGNORE = 255 excluded) --------------------------------


@dataclass
class ClassScorer:
    """Per-class pixel scores of class-index masks, accumulated over many pairs.

    ``truth`` and ``pred`` hold class indices ``0..n-1``; truth pixels equal to ``ignore``
    (255, :data:`satseg.classes.IGNORE`) count for nothing. ``result()`` gives, for each
    class name, ``iou_<name>``, ``dice_<name>``, ``precision_<name>``, ``recall_<name>``, and
    ``miou`` / ``mdice``: the means over the classes present in truth or prediction (a class
    seen nowhere is left out of the mean, as in torchmetrics' ``ignore_index`` with absent
    classes), plus ``pixel_accuracy``.
    """

    names: tuple[str, ...]
    ignore: int = 255
    confusion: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.confusion = np.zeros((len(self.names), len(self.names)), np.int64)

    def update(self, truth: np.ndarray, pred: np.ndarray) -> None:
        t, p = np.asarray(truth), np.asarray(pred)
        _same_shape(t, p)
        n = len(self.names)
        keep = t != self.ignore
        t, p = t[keep].astype(np.int64), p[keep].astype(np.int64)
        bad = (t >= n) | (p >= n) | (t < 0) | (p < 0)
        if bad.any():
            raise ValueError(f"class indices outside 0..{n - 1} (and ignore {self.ignore})")
        self.confusion += np.bincount(t * n + p, minlength=n * n).reshape(n, n)

    def result(self) -> dict[str, float]:
        cm = self.confusion
        tp = np.diag(cm).astype(float)
        fp = cm.sum(axis=0) - tp
        fn = cm.sum(axis=1) - tp
        out: dict[str, float] = {}
        present: list[str] = []
        for i, name in enumerate(self.names):
            for k, v in pixel_scores(tp[i], fp[i], fn[i]).items():
                out[f"{k}_{name}"] = v
            if tp[i] + fp[i] + fn[i] > 0:
                present.append(name)
        out["miou"] = float(np.mean([out[f"iou_{n}"] for n in present])) if present else 1.0
        out["mdice"] = float(np.mean([out[f"dice_{n}"] for n in present])) if present else 1.0
        out["pixel_accuracy"] = _ratio(float(tp.sum()), float(cm.sum()))
        return out


def class_scores(
    truth: np.ndarray, pred: np.ndarray, names: tuple[str, ...] | list[str], ignore: int = 255
) -> dict[str, float]:
    """Per-class scores and mean IoU of one pair (or stack) of class-index masks."""
    s = ClassScorer(tuple(names), ignore)
    s.update(truth, pred)
    return s.result()
