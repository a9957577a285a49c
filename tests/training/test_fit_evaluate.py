"""Fitting learns, evaluation counts pixels correctly and draws overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from satseg.synthetic import SceneStyle
from satseg.training.config import TrainConfig
from satseg.training.data import list_split
from satseg.training.evaluate import evaluate
from satseg.training.fit import fit
from satseg.training.sample import write_sample_dataset


def _constant(prob: float) -> tf.keras.Model:
    inp = tf.keras.Input((None, None, 3))
    out = tf.keras.layers.Lambda(lambda x: tf.ones_like(x[..., :1]) * prob)(inp)
    return tf.keras.Model(inp, out)


def test_evaluate_counts_pixels_and_writes_overlays(tiny_dataset: Path, tmp_path: Path) -> None:
    import cv2

    masks = [cv2.imread(str(p), 0) > 127 for p in list_split(tiny_dataset, "val").masks]
    share = float(np.mean(masks))
    everything = evaluate(_constant(0.9), tiny_dataset, overlay_dir=tmp_path / "ov", n_overlays=3)
    assert everything["iou"] == pytest.approx(share) and everything["precision"] == pytest.approx(
        share
    )
    assert everything["recall"] == 1.0
    assert everything["dice"] == pytest.approx(2 * share / (1 + share))
    nothing = evaluate(_constant(0.1), tiny_dataset)
    pixel = {k: nothing[k] for k in ("iou", "dice", "precision", "recall")}
    assert pixel == {"iou": 0.0, "dice": 0.0, "precision": 1.0, "recall": 0.0}
    assert (nothing["object_f1"], nothing["object_tp"], nothing["boundary_iou"]) == (0.0, 0, 0.0)
    panels = sorted((tmp_path / "ov").glob("*.png"))
    assert len(panels) == 3
    img = cv2.imread(str(panels[0]))
    assert img.shape == (64, 3 * 64 + 8, 3)


def test_evaluate_ignores_padding(tmp_path: Path) -> None:
    d = write_sample_dataset(tmp_path / "odd", n_train=1, n_val=2, size=40)
    res = evaluate(_constant(0.9), d)  # 40 px patches padded to 64: padding is not counted
    import cv2

    share = float(np.mean([cv2.imread(str(p), 0) > 127 for p in list_split(d, "val").masks]))
    assert res["iou"] == pytest.approx(share)


def test_fit_checkpoints_and_early_stops(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(arch="linknet", epochs=4, batch_size=4, patience=1, learning_rate=1e-9)
    _, history = fit(tiny_dataset, cfg, tmp_path / "w", verbose=0)
    assert (tmp_path / "w" / "best.weights.h5").is_file()
    assert 2 <= len(history["val_iou"]) < 4  # no progress at lr 1e-9: stopped after patience
    assert {"loss", "iou", "dice", "precision", "recall", "val_iou", "lr"} <= set(history)


@pytest.mark.slow
def test_pipeline_learns_a_clear_signal(tmp_path: Path) -> None:
    """Roofs are bright, distinct shapes: a few epochs must reach val IoU > 0.5."""
    d = write_sample_dataset(
        tmp_path / "learn", n_train=32, n_val=8, seed=3, style=SceneStyle(building_density=2.0)
    )
    # fp32: the epoch metric of a bf16 clone differs from the float32 model's in the 4th digit
    cfg = TrainConfig(arch="linknet", epochs=6, batch_size=8, patience=6, seed=1, precision="fp32")
    model, history = fit(d, cfg, tmp_path / "w", verbose=0)
    final = evaluate(model, d, "val")
    assert final["iou"] > 0.5, history["val_iou"]
    # The best checkpoint is what we get back, and Keras' epoch metric agrees with evaluate.
    assert final["iou"] == pytest.approx(max(history["val_iou"]), abs=1e-4)


@pytest.mark.parametrize("momentum", [0.5, 0.999])
def test_weight_average_or_best_epoch_whichever_scores_better_on_val(
    tiny_dataset: Path, tmp_path: Path, momentum: float
) -> None:
    """``weight_averaging: ema``: the model handed back holds the weight average when it beats
    the best epoch on val, else the best checkpoint; the history says which, with the score."""
    cfg = TrainConfig(
        arch="linknet", epochs=3, batch_size=4, patience=3, precision="fp32",
        weight_averaging="ema", ema_momentum=momentum,
    )  # fmt: skip
    model, history = fit(tiny_dataset, cfg, tmp_path / "w", verbose=0)
    ema, best = history["ema_val_iou"][0], max(history["val_iou"])
    kept = history["ema_kept"] == [1.0]
    assert kept == (ema > best)
    assert evaluate(model, tiny_dataset, "val")["iou"] == pytest.approx(max(ema, best), abs=1e-4)
    checkpoint = build_like(model)
    checkpoint.load_weights(str(tmp_path / "w" / "best.weights.h5"))
    pairs = zip(model.get_weights(), checkpoint.get_weights(), strict=True)
    same = all(np.array_equal(a, b) for a, b in pairs)
    assert same != kept  # the average is not any epoch's weights


def build_like(model: tf.keras.Model) -> tf.keras.Model:
    clone = tf.keras.models.clone_model(model)
    clone.build(model.input_shape)
    return clone


def test_time_budget_stops_training(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(arch="linknet", epochs=5, batch_size=8, time_budget_min=1e-4)
    _, history = fit(tiny_dataset, cfg, tmp_path / "w")
    assert len(history["loss"]) == 1
