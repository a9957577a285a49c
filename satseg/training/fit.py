"""Fit one model on a processed dataset version (no MLflow here: see satseg.registry).

Returns the model holding the best epoch's weights (highest val IoU), so evaluation and the
logged model both describe the checkpoint that early stopping chose.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from satseg.models import build_model, uncompiled_copy  # first: selects tf.keras

# isort: split
import tensorflow as tf

from satseg.io.atomic import atomic_path
from satseg.training.config import TrainConfig
from satseg.training.data import list_split, make_dataset
from satseg.training.losses import get_loss, metrics

log = logging.getLogger(__name__)

BN_MOMENTUM = 0.9


def save_model(model: tf.keras.Model, path: Path) -> Path:
    """Atomically write an uncompiled HDF5 copy (loads back without custom losses).

    HDF5, not ``.keras``: tf-keras reads ``.keras`` archives with many seeks into a
    compressed zip, 15 s for MA-Net against 0.7 s for HDF5 here.
    """
    with atomic_path(path, suffix=".h5") as tmp, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*HDF5 file.*legacy", category=UserWarning)
        uncompiled_copy(model).save(str(tmp), save_format="h5")
    return path


def load_saved(path: Path | str) -> tf.keras.Model:
    import satseg.models.manet  # noqa: F401  (registers the custom layers)

    return tf.keras.models.load_model(str(path), compile=False)


def set_bn_momentum(model: tf.keras.Model, momentum: float) -> None:
    """Faster-moving BatchNorm statistics than the encoders' 0.99.

    With 0.99, a run of a few hundred steps still carries the initial (0, 1) statistics, so
    validation (inference mode) scores far below training although the weights are good.
    """
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.momentum = momentum


class EpochLog(tf.keras.callbacks.Callback):  # type: ignore[misc]
    """One log line per epoch (Airflow task logs, CLI stderr) instead of Keras' stdout bar."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        text = " ".join(f"{k}={v:.4g}" for k, v in (logs or {}).items())
        log.info("epoch %d/%d %s", epoch + 1, self.epochs, text)


class TimeBudget(tf.keras.callbacks.Callback):  # type: ignore[misc]
    """Stop after the epoch that crosses ``minutes`` (nightly runs must end before morning)."""

    def __init__(self, minutes: float) -> None:
        super().__init__()
        self.seconds = minutes * 60.0
        self.start = 0.0

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self.start = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if time.monotonic() - self.start >= self.seconds:
            log.info(
                "time budget of %.1f min used after epoch %d: stopping",
                self.seconds / 60,
                epoch + 1,
            )
            self.model.stop_training = True


def fit(
    dataset_dir: Path | str,
    cfg: TrainConfig,
    workdir: Path,
    callbacks: Sequence[tf.keras.callbacks.Callback] = (),
    verbose: int = 0,
) -> tuple[tf.keras.Model, dict[str, list[float]]]:
    """Train ``cfg`` on ``dataset_dir``; best weights checkpointed in ``workdir``."""
    tf.keras.backend.clear_session()  # free graphs of earlier runs in this process
    tf.keras.utils.set_random_seed(cfg.seed)
    train, val = list_split(dataset_dir, "train"), list_split(dataset_dir, "val")
    train_ds = make_dataset(
        train,
        cfg.batch_size,
        augment=cfg.augment,
        shuffle=True,
        seed=cfg.seed,
        repeat=cfg.steps_per_epoch is not None,
    )
    val_ds = make_dataset(val, cfg.batch_size)
    model = build_model(cfg.arch, cfg.backbone, encoder_weights=cfg.encoder_weights)
    set_bn_momentum(model, BN_MOMENTUM)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(cfg.learning_rate),
        loss=get_loss(cfg.loss),
        metrics=metrics(),
    )
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt = workdir / "best.weights.h5"
    cbs = [
        tf.keras.callbacks.ModelCheckpoint(
            str(ckpt), monitor="val_iou", mode="max", save_best_only=True, save_weights_only=True
        ),
        tf.keras.callbacks.EarlyStopping(monitor="val_iou", mode="max", patience=cfg.patience),
        tf.keras.callbacks.ReduceLROnPlateau(
            monitor="val_loss", factor=0.5, patience=max(1, cfg.patience // 2), min_lr=1e-6
        ),
        EpochLog(cfg.epochs),
        *([TimeBudget(cfg.time_budget_min)] if cfg.time_budget_min else []),
        *callbacks,
    ]
    log.info(
        "training %s-%s: %d train / %d val patches", cfg.arch, cfg.backbone, len(train), len(val)
    )
    hist = model.fit(
        train_ds,
        validation_data=val_ds,
        epochs=cfg.epochs,
        steps_per_epoch=cfg.steps_per_epoch,
        callbacks=cbs,
        verbose=verbose,
    )
    if ckpt.exists():
        model.load_weights(str(ckpt))
    history: dict[str, Any] = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
    return model, history
