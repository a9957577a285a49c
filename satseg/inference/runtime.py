"""Which runtime runs the model: TensorFlow or ONNX Runtime, at which precision, and why.

``predict.runtime`` / ``predict.precision`` say what is wanted; ``resolve`` turns them into a
``Choice`` from what this host offers (a GPU, native bf16, an importable onnxruntime) and
what was verified for this model version at registration (``satseg.registry.artifacts``).
``select`` builds the predictor and re-checks an ONNX file on the version's own sample tiles
before the first scene; anything missing, tampered or off falls back to TensorFlow, and the
reason goes into the prediction's tags, STAC item and summary.

``auto`` follows what ``bench/predict.py`` measured (docs/benchmarks.md, "ONNX Runtime"): ONNX
Runtime's int8 graph where it was verified for this version (the fastest per tile); else, on
CPUs with native bf16 (AVX512_BF16 / AMX), TensorFlow bf16 (faster there than ONNX Runtime
fp32); else ONNX Runtime fp32 where verified (1.38x TensorFlow on AVX2, issue 18); else
TensorFlow fp32. A visible GPU always means TensorFlow.
"""

from __future__ import annotations

import copy
import functools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from satseg.inference.engine import as_predictor, cpu_has_bf16, resolve_precision
from satseg.params import PRECISIONS, RUNTIMES

log = logging.getLogger(__name__)

ORT_ORDER = ("int8", "fp32")  # fastest first, where verified


@dataclass(frozen=True)
class Choice:
    """The runtime and precision a prediction runs with, and why (for tags and summary)."""

    runtime: str  # "tensorflow" | "onnxruntime"
    precision: str  # "fp32" | "bf16" | "int8"
    reason: str

    def tags(self) -> dict[str, str]:
        return {"runtime": self.runtime, "runtime_reason": self.reason}


@dataclass(frozen=True)
class Host:
    """What this process can run: a GPU, native bf16, onnxruntime (None = importable)."""

    gpu: bool
    bf16: bool
    ort_error: str | None


def ort_import_error() -> str | None:
    """None when onnxruntime imports, else why not (the worker then uses TensorFlow)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as err:
        return f"onnxruntime not importable ({err})"
    return None


def host() -> Host:
    from satseg.inference.engine import _has_gpu

    return Host(gpu=_has_gpu(), bf16=cpu_has_bf16(), ort_error=ort_import_error())


def resolve(runtime: str, precision: str, artifacts: Any, facts: Host) -> Choice:
    """The rules (tested one by one): an explicit runtime is honoured when it can be, an
    explicit precision is kept, ``auto`` picks the measured fastest safe option."""
    if runtime not in RUNTIMES or precision not in PRECISIONS:
        raise ValueError(
            f"runtime {runtime!r} / precision {precision!r}: choose {RUNTIMES} / {PRECISIONS}"
        )
    usable = _usable(artifacts, facts)
    if runtime == "tensorflow":
        return _tf(precision, facts, "runtime tensorflow requested")
    if runtime == "auto" and facts.gpu:
        return _tf(precision, facts, "auto: a GPU is visible, TensorFlow")
    if runtime == "auto" and precision == "fp32" and facts.bf16:
        return _tf(
            precision,
            facts,
            "auto: TensorFlow fp32 measured faster than ONNX Runtime fp32 on bf16 (AVX-512) CPUs",
        )
    if runtime == "onnxruntime" or precision in ORT_ORDER:
        wanted = ORT_ORDER if precision == "auto" else (precision,)
        for p in wanted:
            if usable.get(p, (False, ""))[0]:
                return Choice("onnxruntime", p, f"{_asked(runtime, precision)}: {usable[p][1]}")
        why = usable.get(wanted[-1], (False, "bf16 runs on TensorFlow only"))[1]
        return _tf(precision, facts, f"{_asked(runtime, precision)}, TensorFlow: {why}")
    if precision == "bf16":
        return _tf(precision, facts, "bf16 runs on TensorFlow")
    if usable["int8"][0]:
        return Choice("onnxruntime", "int8", f"auto: {usable['int8'][1]}")
    if facts.bf16:
        return _tf(
            precision,
            facts,
            "auto: bf16 CPU (AVX512_BF16/AMX), where TensorFlow bf16 measured faster than "
            f"ONNX Runtime fp32; int8 not usable: {usable['int8'][1]}",
        )
    if usable["fp32"][0]:
        return Choice("onnxruntime", "fp32", f"auto: {usable['fp32'][1]}")
    return _tf("fp32", facts, f"auto, TensorFlow: {usable['fp32'][1]}")


def _asked(runtime: str, precision: str) -> str:
    return f"runtime {runtime}, precision {precision} requested"


def _usable(artifacts: Any, facts: Host) -> dict[str, tuple[bool, str]]:
    if facts.ort_error:
        return {p: (False, facts.ort_error) for p in ORT_ORDER}
    if artifacts is None:
        return {p: (False, "model version has no ONNX artifacts") for p in ORT_ORDER}
    if isinstance(artifacts, str):  # the reason why there are none
        return {p: (False, artifacts) for p in ORT_ORDER}
    return {p: artifacts.usable(p) for p in ORT_ORDER}


def _tf(precision: str, facts: Host, reason: str) -> Choice:
    if precision == "auto":
        p = "fp32" if facts.gpu else ("bf16" if facts.bf16 else "fp32")
    else:
        p = precision
    return Choice("tensorflow", p, reason)


class OrtPredictor:
    """Callable: float32 batch (n, t, t, 3) -> float32 foreground probability (n, t, t), on
    an ONNX Runtime session (any batch and tile size; one session per file per process).

    ``multiclass=True``: every softmax channel, (n, t, t, classes).
    """

    runtime = "onnxruntime"

    def __init__(
        self,
        path: Any,
        tile: int,
        precision: str,
        source: Any = None,
        multiclass: bool = False,
    ) -> None:
        self.path, self.tile, self.precision, self.source = str(path), tile, precision, source
        self.multiclass = multiclass
        self.session = _session(self.path)
        self.choice: Choice | None = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        from satseg.registry.artifacts import INPUT, run_session

        if not self.multiclass:
            return run_session(self.session, batch)
        y = self.session.run(None, {INPUT: np.ascontiguousarray(batch, np.float32)})[0]
        n, h, w = batch.shape[:3]  # channels last; any leading unit axes of the graph dropped
        return np.asarray(y.reshape(n, h, w, -1), np.float32)

    def with_tile(self, tile: int) -> OrtPredictor:
        other = copy.copy(self)  # same session
        other.tile = tile
        return other


@functools.cache
def _session(path: str) -> Any:
    from satseg.registry.artifacts import ort_session

    return ort_session(path)


def select(
    model: Any,
    tile: int,
    runtime: str,
    precision: str,
    artifacts: Any,
    facts: Host | None = None,
    multiclass: bool = False,
) -> Any:
    """A predictor for ``model`` with its ``choice``; an ONNX file that fails the check on
    its version's sample tiles is not used (TensorFlow instead, saying why).
    ``multiclass``: the predictor returns every softmax channel."""
    facts = facts or host()
    choice = resolve(runtime, precision, artifacts, facts)
    if choice.runtime == "onnxruntime":
        try:
            path = artifacts.path(choice.precision)
            ort = OrtPredictor(path, tile, choice.precision, model, multiclass)
            problem = _sample_check(ort, artifacts)
        except Exception as err:  # a file ONNX Runtime cannot load
            problem = f"ONNX {choice.precision} could not be loaded: {err}"
        if problem is None:
            ort.choice = choice
            log.info("runtime %s %s: %s", choice.runtime, choice.precision, choice.reason)
            return ort
        log.warning("%s: TensorFlow instead", problem)
        tf_prec = "auto" if precision == "auto" else choice.precision
        choice = _tf(tf_prec, facts, f"{problem}: TensorFlow instead")
    if model is None:
        raise ValueError(f"no Keras model to fall back on ({choice.reason})")
    pred = as_predictor(model, tile, resolve_precision(choice.precision), multiclass)
    pred.choice = choice
    log.info("runtime %s %s: %s", choice.runtime, pred.precision, choice.reason)
    return pred


def _sample_check(pred: OrtPredictor, artifacts: Any) -> str | None:
    """None when the loaded graph reproduces the Keras answers stored at registration."""
    from satseg.io.raster import to_model_input
    from satseg.registry.artifacts import compare

    tiles, keras = artifacts.samples()
    probs = pred(to_model_input(tiles))
    if probs.ndim == 4:  # multi-class: the samples hold the last channel, as registration ran
        probs = probs[..., -1]
    got = compare(probs, keras, pred.precision)
    if got["verified"]:
        return None
    return f"ONNX {pred.precision} sample check {got['reason']}"


def predictor_for(model: Any, tile: int, runtime: str, precision: str, info: dict[str, Any]) -> Any:
    """The predictor a scene runs with: ``model`` itself when it is already one for this
    tile size (one session across the scenes of a task), else ``select`` from ``info``'s
    ``artifacts`` (set by ``satseg.inference.jobs.load_registered_model``). A multi-class
    model (``info["classes"]``, :class:`satseg.classes.ModelClasses`) gets a predictor of
    every softmax channel."""
    from satseg.classes import ModelClasses

    multiclass = ModelClasses.from_json(info.get("classes")).multiclass
    if callable(model) and hasattr(model, "precision") and hasattr(model, "tile"):
        if getattr(model, "multiclass", False) != multiclass:
            kinds = ("binary", "multi-class")
            raise ValueError(
                f"the predictor given is {kinds[not multiclass]} but the model's class table"
                f" is {kinds[multiclass]}"
            )
        pred = (
            model
            if model.tile == tile or not hasattr(model, "with_tile")
            else model.with_tile(tile)
        )
        if pred.tile != tile:
            pred = as_predictor(pred, tile)
        if getattr(pred, "choice", None) is None:
            rt = getattr(pred, "runtime", "tensorflow")
            pred.choice = Choice(rt, pred.precision, "predictor given by the caller")
        return pred
    artifacts = info.get("artifacts") or info.get("artifacts_reason")
    return select(model, tile, runtime, precision, artifacts, multiclass=multiclass)
