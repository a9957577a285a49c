"""Fit one model on a processed dataset version (no MLflow here: see satseg.registry).

Returns the model holding the best epoch's weights (highest val IoU; val mIoU on a
multi-class dataset), so evaluation and the logged model both describe the checkpoint that
early stopping chose. A dataset whose manifest has a class table trains ``n`` softmax
channels (channel i = class index i) with the multi-class twin of ``cfg.loss``
(``losses.multiclass_loss``) and per-class epoch metrics (``losses.ClassScores``).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from satseg.models import build_model, uncompiled_copy  # first: selects tf.keras

# isort: split
import tensorflow as tf

from satseg.classes import ModelClasses
from satseg.inference.engine import resolve_precision, to_mixed_bfloat16
from satseg.io.atomic import atomic_path
from satseg.training.config import TrainConfig
from satseg.training.data import (
    CACHE_MAX_BYTES,
    Augment,
    DatasetError,
    dataset_classes,
    list_split,
    make_dataset,
    make_window_dataset,
)
from satseg.training.evaluate import resolve_metric
from satseg.training.losses import (
    balanced_weights,
    class_metrics,
    get_loss,
    metrics,
    multiclass_loss,
)
from satseg.training.windows import border_weights, group_patches, load_mosaics, mosaic_bytes

log = logging.getLogger(__name__)

BN_MOMENTUM = 0.9
WARMUP = 0.05  # share of the run spent warming the learning rate up (cosine schedule)
FLOOR = 0.02  # cosine decays to this share of the peak rate


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


def cosine_lr(progress: float, base: float, warmup: float = WARMUP, floor: float = FLOOR) -> float:
    """Learning rate at ``progress`` (0-1) of a run: linear warmup from base/10 over the first
    ``warmup`` share, then cosine decay to ``base * floor`` at 1 (and after)."""
    p = min(max(progress, 0.0), 1.0)
    if p < warmup:
        return base * (0.1 + 0.9 * p / warmup)
    q = (p - warmup) / (1.0 - warmup)
    return base * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * q)))


class CosineBudget(tf.keras.callbacks.Callback):  # type: ignore[misc]
    """Sets the learning rate before every batch from how far the run has got.

    Progress is the larger of epochs done / ``epochs`` and, with a time budget, minutes spent
    / ``minutes``: the decay ends when the nightly budget does, whatever the CPU's speed.
    """

    def __init__(self, base: float, epochs: int, minutes: float | None) -> None:
        super().__init__()
        self.base, self.epochs, self.seconds = base, epochs, (minutes or 0) * 60.0
        self.start, self.epoch = 0.0, 0

    def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
        self.start = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.epoch = epoch

    def progress(self, batch: int) -> float:
        steps = (self.params or {}).get("steps") or 1
        p = (self.epoch + batch / steps) / self.epochs
        if self.seconds:
            p = max(p, (time.monotonic() - self.start) / self.seconds)
        return p

    def on_train_batch_begin(self, batch: int, logs: dict[str, float] | None = None) -> None:
        lr = cosine_lr(self.progress(batch), self.base)
        tf.keras.backend.set_value(self.model.optimizer.learning_rate, lr)

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if logs is not None:
            logs["lr"] = float(tf.keras.backend.get_value(self.model.optimizer.learning_rate))


def _optimizer(cfg: TrainConfig) -> tf.keras.optimizers.Optimizer:
    # weight_averaging ema: the optimizer keeps the average; fit() writes it into the model
    # at the end (finalize_variable_values), the checkpoints keep the raw weights
    ema = {"use_ema": cfg.weight_averaging == "ema", "ema_momentum": cfg.ema_momentum}
    if cfg.weight_decay <= 0:
        return tf.keras.optimizers.Adam(cfg.learning_rate, **ema)
    opt = tf.keras.optimizers.AdamW(
        learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay, **ema
    )
    opt.exclude_from_weight_decay(var_names=["bn", "bias", "beta", "gamma"])
    return opt


def train_datasets(dataset_dir: Path | str, cfg: TrainConfig) -> tuple[Any, Any, int]:
    """(train dataset, val dataset, train windows per epoch) for ``cfg``.

    ``sampler: scenes`` cuts fresh windows from the reassembled train scenes each epoch, as
    many per epoch as the train split has patches; it falls back to the patches when the
    split has no grid patches or its scenes would not fit in ``CACHE_MAX_BYTES``.
    """
    train, val = list_split(dataset_dir, "train"), list_split(dataset_dir, "val")
    mc = dataset_classes(dataset_dir).multiclass
    border = (cfg.border_weight, cfg.border_sigma) if cfg.border_weight > 0 else None
    if mc and border:
        raise DatasetError("train.border_weight applies to binary datasets only (set it to 0)")
    aug = Augment(cfg.color_jitter, cfg.blur_prob) if cfg.augment else Augment()
    repeat = cfg.steps_per_epoch is not None
    val_ds = make_dataset(val, cfg.batch_size, cache=True, multiclass=mc)
    size = (train.height, train.width)
    if cfg.sampler == "scenes" and group_patches(train.images, train.masks):
        if mosaic_bytes(train.images, size) <= CACHE_MAX_BYTES:
            mosaics = load_mosaics(train.images, train.masks, size, multiclass=mc)
            for m in mosaics:
                m.weight = border_weights(m.mask, *border) if border else None
            ds = make_window_dataset(
                mosaics, len(train), cfg.batch_size, window=cfg.window, seed=cfg.seed,
                scale_jitter=cfg.scale_jitter if cfg.augment else 0.0,
                augment=cfg.augment, aug=aug, repeat=repeat,
            )  # fmt: skip
            log.info("sampler scenes: %d scenes, %d windows/epoch", len(mosaics), len(train))
            return ds, val_ds, len(train)
        log.warning("train scenes exceed %d bytes: training on the patches", CACHE_MAX_BYTES)
    ds = make_dataset(
        train, cfg.batch_size, augment=cfg.augment, shuffle=True, seed=cfg.seed,
        repeat=repeat, aug=aug, border=border, cache=True, multiclass=mc,
    )  # fmt: skip
    return ds, val_ds, len(train)


def class_weights(
    cfg: TrainConfig, dataset_dir: Path | str, classes: ModelClasses
) -> list[float] | None:
    """Cross-entropy weight of each class: ``class_weighting`` (balanced: from the train
    split's ``class_pixels``), then ``class_weights`` by name on top; None = unweighted."""
    if not classes.multiclass:
        if cfg.class_weighting != "none" or cfg.class_weights:
            raise ValueError("class_weighting / class_weights apply to multi-class datasets only")
        return None
    if cfg.class_weighting == "none" and not cfg.class_weights:
        return None
    weights = [1.0] * len(classes.names)
    if cfg.class_weighting == "balanced":
        from satseg.training.data import read_manifest

        pixels = (read_manifest(dataset_dir).get("class_pixels") or {}).get("train")
        if not pixels:
            raise DatasetError(
                f"{dataset_dir}: class_weighting balanced needs the manifest's class_pixels "
                "(re-ingest the dataset)"
            )
        weights = balanced_weights(pixels, classes.names)
    unknown = sorted(set(cfg.class_weights or {}) - set(classes.names))
    if unknown:
        raise ValueError(
            f"class_weights name {unknown}, not classes of the dataset ({', '.join(classes.names)})"
        )
    for name, w in (cfg.class_weights or {}).items():
        weights[classes.names.index(name)] = float(w)
    return weights


def objective(
    cfg: TrainConfig, dataset_dir: Path | str, classes: ModelClasses
) -> tuple[Any, list[Any], str]:
    """(loss, metrics, monitored val metric) for ``classes``: binary as always (val_iou),
    multi-class the softmax twin of ``cfg.loss`` and per-class scores (val_miou)."""
    if not classes.multiclass:
        return get_loss(cfg.loss), metrics(), "val_iou"
    weights = class_weights(cfg, dataset_dir, classes)
    loss = multiclass_loss(cfg.loss, len(classes.names), weights)
    return loss, class_metrics(classes.names), "val_miou"


def fit(
    dataset_dir: Path | str,
    cfg: TrainConfig,
    workdir: Path,
    callbacks: Sequence[tf.keras.callbacks.Callback] = (),
    verbose: int = 0,
) -> tuple[tf.keras.Model, dict[str, list[float]]]:
    """Train ``cfg`` on ``dataset_dir``; best weights checkpointed in ``workdir``.

    With ``precision`` bf16 (``auto`` on CPUs with native bfloat16) a mixed-bfloat16 clone is
    trained (float32 weights, bfloat16 convolutions, float32 output); the returned model is
    the float32 original holding the best weights, as with fp32 training.
    """
    tf.keras.backend.clear_session()  # free graphs of earlier runs in this process
    tf.keras.utils.set_random_seed(cfg.seed)
    classes = dataset_classes(dataset_dir)
    resolve_metric(cfg.promotion_metric, classes)  # a bad metric or class name: fail now
    loss, epoch_metrics, monitor = objective(cfg, dataset_dir, classes)
    train_ds, val_ds, n_train = train_datasets(dataset_dir, cfg)
    model = build_model(
        cfg.arch, cfg.backbone, classes=classes.channels, encoder_weights=cfg.encoder_weights
    )
    set_bn_momentum(model, BN_MOMENTUM)
    precision = resolve_precision(cfg.precision)
    trained = to_mixed_bfloat16(model) if precision == "bf16" else model
    trained.compile(optimizer=_optimizer(cfg), loss=loss, metrics=epoch_metrics)
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt = workdir / "best.weights.h5"
    cbs = [
        tf.keras.callbacks.ModelCheckpoint(
            str(ckpt), monitor=monitor, mode="max", save_best_only=True, save_weights_only=True
        ),
        tf.keras.callbacks.EarlyStopping(monitor=monitor, mode="max", patience=cfg.patience),
        _schedule(cfg),
        EpochLog(cfg.epochs),
        *([TimeBudget(cfg.time_budget_min)] if cfg.time_budget_min else []),
        *callbacks,
    ]
    log.info(
        "training %s-%s (%s, sampler %s): %d train windows/epoch",
        *(cfg.arch, cfg.backbone, precision, cfg.sampler, n_train),
    )
    hist = trained.fit(
        train_ds,
        validation_data=val_ds,
        epochs=cfg.epochs,
        steps_per_epoch=cfg.steps_per_epoch,
        callbacks=cbs,
        verbose=verbose,
    )
    history: dict[str, Any] = {k: [float(v) for v in vs] for k, vs in hist.history.items()}
    keep_average = False
    if cfg.weight_averaging == "ema" and history.get(monitor):
        ema = _val_score(trained, val_ds, monitor)  # fit() ended with the average written in
        best = max(history[monitor])
        keep_average = ema > best
        history["ema_" + monitor], history["ema_kept"] = [ema], [float(keep_average)]
        log.info("weight average: %s %.4f, best epoch %.4f: keeping the %s",
                 monitor, ema, best, "average" if keep_average else "best epoch")  # fmt: skip
    if ckpt.exists() and not keep_average:
        trained.load_weights(str(ckpt))
    if trained is not model:
        model.set_weights(trained.get_weights())
    return model, history


def _val_score(model: tf.keras.Model, val_ds: Any, monitor: str) -> float:
    """The monitored val metric (``val_iou`` / ``val_miou``) of the weights ``model`` holds."""
    scores = model.evaluate(val_ds, verbose=0, return_dict=True)
    return float(scores[monitor.removeprefix("val_")])


def _schedule(cfg: TrainConfig) -> tf.keras.callbacks.Callback:
    if cfg.schedule == "cosine":
        return CosineBudget(cfg.learning_rate, cfg.epochs, cfg.time_budget_min)
    return tf.keras.callbacks.ReduceLROnPlateau(
        monitor="val_loss", factor=0.5, patience=max(1, cfg.patience // 2), min_lr=1e-6
    )
