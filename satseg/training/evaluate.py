"""Score a model on one split of a processed dataset, and draw overlays people can check.

Used after training, to re-evaluate the champion on a challenger's val split (a fair
comparison), and by monitoring on newly labelled data. Pixel counts are summed over the
whole split (micro average): small patches with one roof do not swing the score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from satseg.training.data import list_split, make_dataset
from satseg.training.losses import scores


def evaluate(
    model: Any,
    dataset_dir: Path | str,
    split: str = "val",
    *,
    overlay_dir: Path | str | None = None,
    n_overlays: int = 4,
    batch_size: int = 4,
    threshold: float = 0.5,
) -> dict[str, float]:
    """``{"iou", "dice", "precision", "recall"}`` of the foreground at ``threshold``.

    With ``overlay_dir``, the first ``n_overlays`` patches are written as
    ``<id>.png`` panels: image | truth (green) | prediction (red).
    """
    sp = list_split(dataset_dir, split)
    tp = fp = fn = 0
    done = 0
    for x, y in make_dataset(sp, batch_size):
        prob = np.asarray(model(x, training=False))[:, : sp.height, : sp.width, 0]
        truth = np.asarray(y)[:, : sp.height, : sp.width, 0] > 0.5
        pred = prob > threshold
        tp += int(np.sum(truth & pred))
        fp += int(np.sum(~truth & pred))
        fn += int(np.sum(truth & ~pred))
        if overlay_dir is not None:
            for i in range(len(pred)):
                if done + i < n_overlays:
                    rgb = (np.asarray(x[i])[: sp.height, : sp.width] * 255).round().astype(np.uint8)
                    write_overlay(
                        Path(overlay_dir) / f"{sp.images[done + i].stem}.png",
                        rgb,
                        truth[i],
                        pred[i],
                    )
        done += len(pred)
    return scores(tp, fp, fn)


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
