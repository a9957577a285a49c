"""A multi-class champion scored on a labelled split: per-class IoU and mean IoU.

The monitor re-evaluates the champion on each dataset's newest version. For a model whose
class table (``ModelClasses``) is multi-class, the predicted class of a pixel is the argmax of
the model's n softmax channels and the scores are ``satseg.metrics.ClassScorer``'s (truth
pixels of value IGNORE (255) count for nothing). Binary models keep
``satseg.training.evaluate.evaluate``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from satseg.classes import IGNORE, ModelClasses
from satseg.metrics import ClassScorer
from satseg.monitoring import MonitorError


def dataset_classes(dataset_dir: Path | str) -> ModelClasses:
    """The class table a processed dataset was made with (binary when the manifest has none)."""
    from satseg.manifest import ManifestError, read_manifest

    try:
        doc = read_manifest(dataset_dir, require=()).doc
    except ManifestError as e:
        raise MonitorError(str(e)) from e
    return ModelClasses.from_json(doc.get("classes"))


def mismatch(model: ModelClasses, data: ModelClasses) -> str | None:
    """Why ``model`` cannot be scored on a dataset with classes ``data`` (None when it can)."""
    if model.multiclass != data.multiclass:
        kinds = {True: "multi-class", False: "binary"}
        return (
            f"{kinds[model.multiclass]} model {list(model.names)} vs "
            f"{kinds[data.multiclass]} dataset {list(data.names)}"
        )
    if model.multiclass and model.names != data.names:
        return f"model classes {list(model.names)} differ from the dataset's {list(data.names)}"
    return None


def _batches(
    dataset_dir: Path | str, split: str, batch_size: int
) -> Iterator[tuple[np.ndarray, np.ndarray, int, int]]:
    """(float images (b, H32, W32, 3) zero-padded, uint8 truth (b, h, w), h, w) per batch."""
    import cv2

    from satseg.io.raster import read_plain_image, to_model_input
    from satseg.training.data import DatasetError, list_split, padded

    try:
        sp = list_split(dataset_dir, split)
    except DatasetError as e:
        raise MonitorError(str(e)) from e
    h, w = sp.height, sp.width
    ph, pw = padded(h), padded(w)
    for i in range(0, len(sp), batch_size):
        imgs, masks = sp.images[i : i + batch_size], sp.masks[i : i + batch_size]
        x = np.zeros((len(imgs), ph, pw, 3), np.float32)
        truth = np.empty((len(imgs), h, w), np.uint8)
        for k, (ip, mp) in enumerate(zip(imgs, masks, strict=True)):
            x[k, :h, :w] = to_model_input(read_plain_image(ip))
            m = cv2.imread(str(mp), cv2.IMREAD_UNCHANGED)
            if m is None:
                raise MonitorError(f"{mp}: not a readable mask PNG")
            truth[k] = m if m.ndim == 2 else m[..., 0]
        yield x, truth, h, w


def evaluate_classes(
    model: Any,
    dataset_dir: Path | str,
    names: Sequence[str],
    split: str = "val",
    *,
    batch_size: int = 4,
) -> dict[str, float]:
    """``ClassScorer`` scores (``iou_<class>``, ``dice_<class>``, ..., ``miou``, ``mdice``,
    ``pixel_accuracy``) of ``model``'s argmax class on ``split`` (micro average)."""
    scorer = ClassScorer(tuple(names), IGNORE)
    for x, truth, h, w in _batches(dataset_dir, split, batch_size):
        out = np.asarray(model(x, training=False))
        if out.ndim != 4 or out.shape[-1] != len(names):
            raise MonitorError(
                f"model gives {out.shape[-1] if out.ndim == 4 else out.shape} output channels; "
                f"its class table has {len(names)} classes ({', '.join(names)})"
            )
        scorer.update(truth, np.argmax(out[:, :h, :w, :], axis=-1).astype(np.uint8))
    return scorer.result()
