"""Running a Keras segmentation model fast on batches of tiles.

The model is called through one ``tf.function`` with a fixed tile shape (no retracing, no
``model.predict`` per-call overhead). On CPUs with native bfloat16 (AVX512_BF16 / AMX) the
model is cloned under Keras' ``mixed_bfloat16`` policy with the same weights: convolutions
run in bfloat16, the output layer stays float32. ``precision="fp32"`` turns this off.
"""

from __future__ import annotations

import functools
import logging
import os
import weakref
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")


@functools.cache
def cpu_has_bf16() -> bool:
    """True when the CPU executes bfloat16 natively (AVX512_BF16 or AMX-BF16)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def _has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def resolve_precision(precision: str = "auto") -> str:
    """'auto' -> 'bf16' on a CPU-only host with native bfloat16, else 'fp32'."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    return "bf16" if cpu_has_bf16() and not _has_gpu() else "fp32"


def to_mixed_bfloat16(model: Any) -> Any:
    """Same architecture and weights under ``mixed_bfloat16``; output layers stay float32."""
    import tensorflow as tf

    keep_f32 = {t.node.layer.name for t in model.outputs} if hasattr(model, "outputs") else set()
    keep_f32 |= {n.split("/")[0] for n in getattr(model, "output_names", [])}

    def clone(layer: Any) -> Any:
        if isinstance(layer, tf.keras.Model):
            return to_mixed_bfloat16(layer)
        cfg = layer.get_config()
        if "dtype" in cfg and layer.name not in keep_f32:
            cfg["dtype"] = "mixed_bfloat16"
        return layer.__class__.from_config(cfg)

    bf = tf.keras.models.clone_model(model, clone_function=clone)
    bf.set_weights(model.get_weights())
    return bf


class Predictor:
    """Callable: float32 batch (n, t, t, 3) -> float32 foreground probability (n, t, t)."""

    def __init__(self, model: Any, tile: int, precision: str = "auto") -> None:
        import tensorflow as tf

        self.precision = resolve_precision(precision)
        self.tile = tile
        self.source = model  # the model as given (fp32), to rebuild for another tile size
        run_model = to_mixed_bfloat16(model) if self.precision == "bf16" else model
        self.model = run_model

        @tf.function(
            input_signature=[tf.TensorSpec([None, tile, tile, 3], tf.float32)],
            reduce_retracing=True,
        )
        def call(x: Any) -> Any:
            y = tf.cast(run_model(x, training=False), tf.float32)
            # one sigmoid channel, or the last (foreground) channel of a softmax
            return y[..., -1]

        self._call = call

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._call(batch))


_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple[int, str], Predictor]] = (
    weakref.WeakKeyDictionary()
)


def as_predictor(model: Any, tile: int, precision: str = "auto") -> Predictor:
    """A Predictor for ``model`` (a Keras model or a Predictor), traced once per tile size."""
    if isinstance(model, Predictor):
        if model.tile == tile:
            return model
        model, precision = model.source, model.precision
    key = (tile, resolve_precision(precision))
    per_model = _CACHE.setdefault(model, {})
    if key not in per_model:
        per_model[key] = Predictor(model, tile, key[1])
    return per_model[key]


def configure_tf() -> None:
    """Quiet TF and make segmentation-models use tf.keras (before any TF import)."""
    os.environ.setdefault("SM_FRAMEWORK", "tf.keras")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
