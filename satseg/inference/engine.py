"""Running a Keras segmentation model fast on batches of tiles.

The model is called through one ``tf.function`` with a fixed tile shape (no retracing, no
``model.predict`` per-call overhead). On CPUs with native bfloat16 (AVX512_BF16 / AMX) the
model is cloned under Keras' ``mixed_bfloat16`` policy with the same weights: convolutions
run in bfloat16, the output layer stays float32. ``precision="fp32"`` turns this off.
``precision="int8"`` converts the model to TFLite with dynamic-range quantisation (int8
weights, activations quantised per call; converted in the process, so only on request:
``runtime: tensorflow``). Which runtime and precision a prediction uses, including ONNX
Runtime's verified graphs, is decided in ``satseg.inference.runtime``; ``bench/predict.py``
compares all of them.
"""

from __future__ import annotations

import functools
import logging
import os
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from satseg.cpus import available_cpus
from satseg.params import PRECISIONS

log = logging.getLogger(__name__)


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
    """Callable: float32 batch (n, t, t, 3) -> float32 foreground probability (n, t, t).

    ``multiclass=True``: every softmax channel, (n, t, t, classes), channel i = class i.
    """

    runtime = "tensorflow"
    choice: Any = None  # satseg.inference.runtime.Choice, set by runtime.select

    def __new__(
        cls, model: Any, tile: int, precision: str = "auto", multiclass: bool = False
    ) -> Predictor:
        if cls is Predictor and resolve_precision(precision) == "int8":
            return super().__new__(Int8Predictor)
        return super().__new__(cls)

    def __init__(
        self, model: Any, tile: int, precision: str = "auto", multiclass: bool = False
    ) -> None:
        import tensorflow as tf

        self.precision = resolve_precision(precision)
        self.tile = tile
        self.multiclass = multiclass
        self.source = model  # the model as given (fp32), to rebuild for another tile size
        run_model = to_mixed_bfloat16(model) if self.precision == "bf16" else model
        self.model = run_model

        @tf.function(
            input_signature=[tf.TensorSpec([None, tile, tile, 3], tf.float32)],
            reduce_retracing=True,
        )
        def call(x: Any) -> Any:
            y = tf.cast(run_model(x, training=False), tf.float32)
            if multiclass:  # every class's softmax channel
                return y
            # one sigmoid channel, or the last (foreground) channel of a softmax
            return y[..., -1]

        self._call = call

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._call(batch))


class Int8Predictor(Predictor):
    """The model as a dynamic-range quantised TFLite graph (int8 weights and matmuls).

    The graph has a fixed batch (``INT8_BATCH`` tiles): smaller batches are zero-padded,
    larger ones run in chunks. The interpreter is not thread-safe, so calls are serialised.
    Converting takes a few seconds, paid once per model and tile size in a process.
    """

    def __init__(
        self, model: Any, tile: int, precision: str = "int8", multiclass: bool = False
    ) -> None:
        import threading

        import tensorflow as tf

        self.precision, self.tile, self.source, self.model = "int8", tile, model, model
        self.multiclass = multiclass
        spec = tf.TensorSpec([INT8_BATCH, tile, tile, 3], tf.float32)
        fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
        conv = tf.lite.TFLiteConverter.from_concrete_functions([fn], model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        flat = conv.convert()
        self._interp = tf.lite.Interpreter(model_content=flat, num_threads=available_cpus())
        self._interp.allocate_tensors()
        self._in = self._interp.get_input_details()[0]["index"]
        self._out = self._interp.get_output_details()[0]["index"]
        self._lock = threading.Lock()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, np.float32)
        out = []
        for i in range(0, len(batch), INT8_BATCH):
            chunk = batch[i : i + INT8_BATCH]
            n = len(chunk)
            if n < INT8_BATCH:
                pad = np.zeros((INT8_BATCH - n, *chunk.shape[1:]), np.float32)
                chunk = np.concatenate([chunk, pad])
            with self._lock:
                self._interp.set_tensor(self._in, chunk)
                self._interp.invoke()
                y = self._interp.get_tensor(self._out)
            out.append(np.asarray(y[:n] if self.multiclass else y[:n, ..., -1], np.float32))
        if out:
            return np.concatenate(out)
        return np.zeros((0, self.tile, self.tile), np.float32)


INT8_BATCH = 8

_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple[int, str, bool], Predictor]] = (
    weakref.WeakKeyDictionary()
)


def as_predictor(
    model: Any, tile: int, precision: str = "auto", multiclass: bool = False
) -> Predictor:
    """A Predictor for ``model`` (a Keras model or a Predictor), traced once per tile size.

    ``multiclass``: the predictor returns every softmax channel (a Predictor keeps its own).
    """
    if isinstance(model, Predictor):
        if model.tile == tile:
            return model
        model, precision, multiclass = model.source, model.precision, model.multiclass
    key = (tile, resolve_precision(precision), multiclass)
    per_model = _CACHE.setdefault(model, {})
    if key not in per_model:
        per_model[key] = Predictor(model, tile, key[1], multiclass)
    return per_model[key]


def configure_tf() -> None:
    """Quiet TF and make segmentation-models use tf.keras (before any TF import)."""
    from satseg.models import use_tf_keras

    use_tf_keras()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
