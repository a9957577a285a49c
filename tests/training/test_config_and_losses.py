"""Hyperparameters from params.yaml + overrides, sweep grids, loss/metric definitions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from satseg.metrics import pixel_scores as scores
from satseg.training.config import MAX_SWEEP, TrainConfig, expand_sweep, plan_configs
from satseg.training.losses import LOSS_FNS, PixelScore


def test_params_yaml_then_overrides(settings: Any, tmp_path: Path, monkeypatch: Any) -> None:
    from satseg.config import get_settings, reset_settings_cache

    train = settings.params().train.model_dump()
    cfg = TrainConfig.from_settings(settings)
    assert cfg.arch == train["arch"] and cfg.epochs == train["epochs"]
    over = TrainConfig.from_settings(settings, arch="manet", epochs=3, learning_rate=None)
    assert (over.arch, over.epochs, over.learning_rate) == ("manet", 3, train["learning_rate"])
    p = tmp_path / "params.yaml"
    p.write_text("train:\n  arch: unet\n  batch_size: 2\n")
    monkeypatch.setenv("SATSEG_PARAMS_FILE", str(p))
    reset_settings_cache()
    custom = TrainConfig.from_settings(get_settings())
    assert (custom.arch, custom.batch_size, custom.epochs) == ("unet", 2, train["epochs"])


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"arch": "fcn"}, "arch 'fcn'"),
        ({"loss": "mse"}, "loss 'mse'"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"learning_rate": 0.0}, "learning_rate must be > 0"),
        ({"optimizer": "sgd"}, "unknown training option"),
    ],
)
def test_bad_hyperparameters_fail_before_training(settings: Any, over: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        plan_configs(settings, over)


def test_sweep_grid(settings: Any) -> None:
    configs = plan_configs(
        settings, {"epochs": 2}, {"arch": ["linknet", "unet"], "learning_rate": [1e-3, 3e-4]}
    )
    assert len(configs) == 4
    assert {(c["arch"], c["learning_rate"]) for c in configs} == {
        ("linknet", 1e-3),
        ("linknet", 3e-4),
        ("unet", 1e-3),
        ("unet", 3e-4),
    }
    assert all(c["epochs"] == 2 for c in configs)
    assert expand_sweep({"arch": "unet"}, None) == [{"arch": "unet"}]
    with pytest.raises(ValueError, match="at most"):
        plan_configs(settings, {}, {"seed": list(range(MAX_SWEEP + 1))})
    with pytest.raises(ValueError, match="unknown option"):
        plan_configs(settings, {}, {"dropout": [0.1]})
    with pytest.raises(ValueError, match="arch 'fcn'"):
        plan_configs(settings, {}, {"arch": ["unet", "fcn"]})


def test_scores_from_counts() -> None:
    s = scores(tp=30, fp=10, fn=20)
    assert s["iou"] == pytest.approx(30 / 60) and s["dice"] == pytest.approx(60 / 90)
    assert s["precision"] == pytest.approx(0.75) and s["recall"] == pytest.approx(0.6)
    assert scores(0, 0, 0) == {"iou": 1.0, "dice": 1.0, "precision": 1.0, "recall": 1.0}
    assert scores(0, 5, 0)["iou"] == 0.0


def test_epoch_metric_equals_count_definition() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((3, 16, 16, 1)) > 0.7).astype(np.float32)
    p = rng.random((3, 16, 16, 1)).astype(np.float32)
    t, q = y > 0.5, p > 0.5
    expected = scores(int((t & q).sum()), int((~t & q).sum()), int((t & ~q).sum()))
    for kind in ("iou", "dice", "precision", "recall"):
        m = PixelScore(kind)
        m.update_state(y[:2], p[:2])  # accumulates across batches
        m.update_state(y[2:], p[2:])
        assert float(m.result()) == pytest.approx(expected[kind], rel=1e-5)


@pytest.mark.parametrize("name", list(LOSS_FNS))
def test_losses_reward_better_masks(name: str) -> None:
    rng = np.random.default_rng(1)
    y = tf.constant((rng.random((2, 32, 32, 1)) > 0.8).astype(np.float32))
    perfect = y * 0.98 + 0.01
    noisy = tf.constant(rng.random((2, 32, 32, 1)).astype(np.float32))
    fn = LOSS_FNS[name]
    good, bad = float(tf.reduce_mean(fn(y, perfect))), float(tf.reduce_mean(fn(y, noisy)))
    assert np.isfinite(good) and good < bad
