"""Score a model on one split of a processed dataset, tune its post-processing, and draw
overlays people can check.

Used after training (``tune``: threshold and minimum object area chosen on the val split,
stored with the model), to re-evaluate the champion on a challenger's val split at the
values it predicts with (a fair comparison), and by monitoring on newly labelled data.
Counts are summed over the whole split (micro average): small patches with one roof do not
swing the score. The scores themselves are ``satseg.metrics``'.

Multi-class (a dataset with a class table, a model with n softmax channels): the class of a
pixel is the argmax, nothing to tune (``tune_classes`` records that), and the scores are
``satseg.metrics.ClassScorer``'s (``iou_<class>``, ``miou``, ...; 255 = ignore left out).
``evaluate`` picks the path from the model and the dataset, and refuses a pair that does not
fit (a binary model on class-index masks, or another number of classes).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from satseg.classes import IGNORE, ModelClasses
from satseg.inference.postprocess import MaskStream, to_u8
from satseg.metrics import CLASS_METRIC_NAMES, METRIC_NAMES, ClassScorer, Scorer, Truth
from satseg.training.data import DatasetError, dataset_classes, list_split, make_dataset

THRESHOLDS = tuple(round(0.3 + 0.05 * i, 2) for i in range(11))  # 0.30 .. 0.80
MIN_AREAS = (0, 16, 32, 64, 128)  # px, 4-connected (as predict.min_area_px)


class Tuned(TypedDict):
    """Post-processing chosen on a split, the scores it gives, and the whole grid."""

    threshold: float
    min_area_px: int
    opening_px: int
    metric: str
    split: str
    metrics: dict[str, float]
    grid: list[dict[str, float]]


def clean(prob: np.ndarray, threshold: float, opening_px: int, min_area_px: int) -> np.ndarray:
    """A patch's probability -> its mask exactly as inference makes it (``MaskStream``)."""
    h, w = prob.shape
    stream = MaskStream(w, h, threshold, opening_px, min_area_px, chunk=max(h, 1))
    u8 = to_u8(prob.astype(np.float32))
    rows = [m for _, m in stream.push(0, u8, np.zeros((h, w), bool))]
    rows += [m for _, m in stream.finish()]
    return np.concatenate(rows) == 1 if rows else np.zeros((h, w), bool)


def score_grid(
    scorers: dict[tuple[float, int], Scorer], truth: np.ndarray, prob: np.ndarray, opening_px: int
) -> None:
    """Score one patch's mask at every (threshold, min area) of ``scorers``."""
    prepared = Truth.of(truth)
    for t in dict.fromkeys(t for t, _ in scorers):
        opened = clean(prob, t, opening_px, 0)  # the opening once per threshold
        for a in dict.fromkeys(a for tt, a in scorers if tt == t):
            scorers[(t, a)].update(prepared, drop_small(opened, a))


def drop_small(mask: np.ndarray, min_area_px: int) -> np.ndarray:
    """``mask`` without its 4-connected components under ``min_area_px`` (as ``clean``)."""
    if min_area_px <= 1 or not mask.any():
        return mask
    import cv2

    _, lab, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=4)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area_px
    keep[0] = False
    return keep[lab]


def _patches(
    model: Any, dataset_dir: Path | str, split: str, batch_size: int, multiclass: bool = False
) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """(index, rgb float, truth, prediction) of each patch, padding cut off: binary, the
    boolean truth and the probability; multi-class, the truth class indices (255 = ignore)
    and the argmax class."""
    sp = list_split(dataset_dir, split)
    i = 0
    for x, y in make_dataset(sp, batch_size, multiclass=multiclass):
        out = np.asarray(model(x, training=False), np.float32)[:, : sp.height, : sp.width]
        target = np.asarray(y)[:, : sp.height, : sp.width, 0]
        pred: np.ndarray
        truth: np.ndarray
        if multiclass:
            pred, truth = out.argmax(axis=-1).astype(np.uint8), target.astype(np.uint8)
        else:
            pred, truth = out[..., 0], target > 0.5
        for k in range(len(pred)):
            yield i, np.asarray(x[k])[: sp.height, : sp.width], truth[k], pred[k]
            i += 1


def tune(
    model: Any,
    dataset_dir: Path | str,
    split: str = "val",
    *,
    metric: str = "iou",
    opening_px: int = 0,
    thresholds: Sequence[float] = THRESHOLDS,
    min_areas: Sequence[int] = MIN_AREAS,
    overlay_dir: Path | str | None = None,
    n_overlays: int = 4,
    batch_size: int = 4,
) -> Tuned:
    """Every score of each (threshold, min area) on ``split`` in one pass of the model; the
    pair with the best ``metric`` wins (ties: nearer 0.5, then the smaller area).

    Masks are made as inference makes them (uint8 probability, opening, area filter), so
    the chosen values mean the same at prediction. With ``overlay_dir``, the first
    ``n_overlays`` patches are drawn at the chosen values.
    """
    if metric not in METRIC_NAMES:
        raise ValueError(f"metric {metric!r}: choose one of {', '.join(METRIC_NAMES)}")
    combos = [(float(t), int(a)) for t in thresholds for a in min_areas]
    if not combos:
        raise ValueError("tune needs at least one threshold and one min area")
    scorers = {c: Scorer() for c in combos}
    kept: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    stems = [p.stem for p in list_split(dataset_dir, split).images]
    for i, rgb, truth, prob in _patches(model, dataset_dir, split, batch_size):
        score_grid(scorers, truth, prob, opening_px)
        if overlay_dir is not None and i < n_overlays:
            kept.append((stems[i], rgb, truth, prob))
    grid = [{"threshold": t, "min_area_px": a, **s.result()} for (t, a), s in scorers.items()]
    best = max(grid, key=lambda g: (g[metric], -abs(g["threshold"] - 0.5), -g["min_area_px"]))
    t, a = float(best["threshold"]), int(best["min_area_px"])
    for stem, rgb, truth, prob in kept:
        pred = clean(prob, t, opening_px, a)
        rgb8 = (rgb * 255).round().astype(np.uint8)
        write_overlay(Path(overlay_dir or ".") / f"{stem}.png", rgb8, truth, pred)
    metrics = {k: float(v) for k, v in best.items() if k not in ("threshold", "min_area_px")}
    return Tuned(
        threshold=t,
        min_area_px=a,
        opening_px=int(opening_px),
        metric=metric,
        split=split,
        metrics=metrics,
        grid=grid,
    )


def evaluate(
    model: Any,
    dataset_dir: Path | str,
    split: str = "val",
    *,
    overlay_dir: Path | str | None = None,
    n_overlays: int = 4,
    batch_size: int = 4,
    threshold: float = 0.5,
    opening_px: int = 0,
    min_area_px: int = 0,
) -> dict[str, float]:
    """Scores (``satseg.metrics.Scorer``: pixel IoU/Dice/precision/recall, object
    precision/recall/F1 and counts, boundary IoU) of the foreground at ``threshold`` after
    the given opening and area filter (none by default).

    With ``overlay_dir``, the first ``n_overlays`` patches are written as
    ``<id>.png`` panels: image | truth (green) | prediction (red).

    A multi-class model or dataset is scored by ``evaluate_classes`` (argmax; threshold,
    opening and min area do not apply).
    """
    classes = dataset_classes(dataset_dir)
    if classes.multiclass or output_channels(model) > 1:
        return evaluate_classes(
            model,
            dataset_dir,
            split,
            overlay_dir=overlay_dir,
            n_overlays=n_overlays,
            batch_size=batch_size,
        )
    return tune(
        model,
        dataset_dir,
        split,
        opening_px=opening_px,
        thresholds=(threshold,),
        min_areas=(min_area_px,),
        overlay_dir=overlay_dir,
        n_overlays=n_overlays,
        batch_size=batch_size,
    )["metrics"]


def as_deployed(settings: Any, postprocess: Mapping[str, Any] | None) -> dict[str, Any]:
    """``evaluate`` keyword arguments for a model as inference runs it: params.yaml's
    ``predict:`` values where set, else the model's tuned ones, else the pre-tuning ones."""
    from satseg.inference.params import PredictParams

    p = PredictParams.from_params(settings.params()).for_model(postprocess)
    threshold, min_area_px = p.mask_rule()
    return {"threshold": threshold, "min_area_px": min_area_px, "opening_px": p.opening_px}


def write_overlay(path: Path, rgb: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> Path:
    """Three panels side by side, so a reviewer sees misses and false alarms at a glance."""
    import cv2

    from satseg.io.atomic import write_bytes

    def tint(mask: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
        out = rgb.astype(np.float32)
        out[mask] = 0.5 * out[mask] + 0.5 * np.array(colour, np.float32)
        return out.astype(np.uint8)

    sep = np.full((rgb.shape[0], 4, 3), 255, np.uint8)
    panel = np.concatenate([rgb, sep, tint(truth, (0, 255, 0)), sep, tint(pred, (255, 0, 0))], 1)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    return write_bytes(path, buf.tobytes())


# ---- multi-class ----------------------------------------------------------------------------


class TunedClasses(TypedDict):
    """What ``tune_classes`` stores with a multi-class model: argmax, no threshold, no area
    filter (the scores are those of the raw argmax), and the val scores."""

    decision: str
    min_area_px: int
    opening_px: int
    metric: str
    split: str
    metrics: dict[str, float]


def output_channels(model: Any) -> int:
    """Output channels of a Keras model (1 = binary sigmoid, n = n-class softmax)."""
    return int(model.output_shape[-1])


def resolve_metric(metric: str, classes: ModelClasses) -> str:
    """The score ``metric`` (``train.promotion_metric``) names for a model of ``classes``.

    Binary: one of ``METRIC_NAMES``. Multi-class: ``iou`` / ``dice`` (the binary defaults)
    mean ``miou`` / ``mdice``; ``miou``, ``mdice``, ``pixel_accuracy``, ``iou_<class>``,
    ``dice_<class>`` with a class of the table. Anything else is a ValueError saying why.
    """
    names = ", ".join(classes.names)
    if not classes.multiclass:
        if metric not in METRIC_NAMES:
            raise ValueError(
                f"promotion_metric {metric!r}: a binary model is ranked on one of "
                f"{', '.join(METRIC_NAMES)} ({metric} needs a multi-class dataset)"
            )
        return metric
    m = {"iou": "miou", "dice": "mdice"}.get(metric, metric)
    if m in CLASS_METRIC_NAMES:
        return m
    kind, _, name = m.partition("_")
    if kind in ("iou", "dice") and name:
        if name not in classes.names:
            raise ValueError(
                f"promotion_metric {metric!r}: no class {name!r} in the class table ({names})"
            )
        return m
    raise ValueError(
        f"promotion_metric {metric!r}: a multi-class model is ranked on miou | mdice | "
        f"pixel_accuracy | iou_<class> | dice_<class> (classes: {names}); {metric} is "
        "binary only"
    )


def _check_pair(model: Any, classes: ModelClasses, dataset_dir: Path | str) -> None:
    ch = output_channels(model)
    if not classes.multiclass:
        raise DatasetError(
            f"{dataset_dir}: a binary dataset (0/255 masks) cannot score a {ch}-class model"
        )
    if ch != len(classes.names):
        what = "a binary (1-channel) model" if ch == 1 else f"a {ch}-class model"
        raise DatasetError(
            f"{dataset_dir}: {len(classes.names)} classes ({', '.join(classes.names)}) "
            f"cannot score {what}"
        )


def evaluate_classes(
    model: Any,
    dataset_dir: Path | str,
    split: str = "val",
    *,
    overlay_dir: Path | str | None = None,
    n_overlays: int = 4,
    batch_size: int = 4,
) -> dict[str, float]:
    """``ClassScorer`` scores of the model's argmax on ``split`` (ignore pixels left out).

    With ``overlay_dir``, the first ``n_overlays`` patches are written as ``<id>.png``
    panels: image | truth | prediction in the class colours (ignore: black).
    """
    classes = dataset_classes(dataset_dir)
    _check_pair(model, classes, dataset_dir)
    scorer = ClassScorer(classes.names, IGNORE)
    stems = [p.stem for p in list_split(dataset_dir, split).images]
    for i, rgb, truth, pred in _patches(model, dataset_dir, split, batch_size, multiclass=True):
        scorer.update(truth, pred)
        if overlay_dir is not None and i < n_overlays:
            rgb8 = (rgb * 255).round().astype(np.uint8)
            write_class_overlay(
                Path(overlay_dir) / f"{stems[i]}.png", rgb8, truth, pred, classes.rgb()
            )
    return scorer.result()


def tune_classes(
    model: Any,
    dataset_dir: Path | str,
    split: str = "val",
    *,
    metric: str = "miou",
    overlay_dir: Path | str | None = None,
    n_overlays: int = 4,
    batch_size: int = 4,
) -> TunedClasses:
    """The multi-class counterpart of ``tune``: nothing is tuned (the class is the argmax,
    no threshold; no area filter or opening: the scores are the raw argmax's), the val
    scores and the ranking ``metric`` are recorded."""
    metric = resolve_metric(metric, dataset_classes(dataset_dir))
    scores = evaluate_classes(
        model,
        dataset_dir,
        split,
        overlay_dir=overlay_dir,
        n_overlays=n_overlays,
        batch_size=batch_size,
    )
    return TunedClasses(
        decision="argmax", min_area_px=0, opening_px=0, metric=metric, split=split, metrics=scores
    )


def write_class_overlay(
    path: Path,
    rgb: np.ndarray,
    truth: np.ndarray,
    pred: np.ndarray,
    colors: list[tuple[int, int, int]],
) -> Path:
    """Three panels: image | truth | prediction, each class in its colour over the image."""
    import cv2

    from satseg.io.atomic import write_bytes

    lut = np.zeros((256, 3), np.float32)  # 255 (ignore) and unknown values: black
    lut[: len(colors)] = np.asarray(colors, np.float32)

    def paint(idx: np.ndarray) -> np.ndarray:
        return (0.4 * rgb.astype(np.float32) + 0.6 * lut[idx]).astype(np.uint8)

    sep = np.full((rgb.shape[0], 4, 3), 255, np.uint8)
    panel = np.concatenate([rgb, sep, paint(truth), sep, paint(pred)], 1)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    return write_bytes(path, buf.tobytes())
