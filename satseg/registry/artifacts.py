"""Inference artifacts of a registered model version: ONNX fp32 and int8, made once.

At registration (``satseg.training.retrain.register_best``) the logged Keras model is
converted with tf2onnx (opset 17, NHWC float32 input ``input``, any batch and tile size),
quantised to int8 with ONNX Runtime's static quantisation calibrated on training
patches, and **verified** against the Keras model on validation patches: the fp32 graph
must agree within ``FP32_ATOL`` per pixel, the int8 graph's mask must agree with the Keras
mask to an IoU of at least ``INT8_MIN_IOU`` (a multi-class model, n softmax channels: every
channel within ``FP32_ATOL``, and the int8 argmax equal to the Keras argmax on at least
``INT8_MIN_AGREEMENT`` of the pixels). Both files, a few sample tiles with the Keras
model's answer (``samples.npz``) and ``inference.json`` (class table, tile size,
normalisation, file hashes, the verification result) are logged under the run's
``inference/`` artifacts, beside the Keras ``model``. Nothing is converted when a task
starts: a worker downloads the files once per version (``fetch``), checks their hashes
and the sample tiles, and uses only what was verified (``satseg.inference.runtime``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from satseg.config import Settings

log = logging.getLogger(__name__)

ARTIFACT_PATH = "inference"  # run artifact folder, beside MODEL_ARTIFACT ("model")
META = "inference.json"
SAMPLES = "samples.npz"
FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
INPUT = "input"
OPSET = 17
FP32_ATOL = 1e-3  # max |p_onnx - p_keras| on sample tiles (measured: ~4e-5)
INT8_MIN_IOU = 0.995  # mask IoU int8 vs Keras on sample tiles (goal: within 0.005)
INT8_MIN_AGREEMENT = 0.995  # multi-class: share of pixels whose int8 argmax is Keras'
THRESHOLD = 0.5  # mask threshold of the verification (predict.threshold's default)
CALIB_PATCHES = 32
VERIFY_PATCHES = 16
CHECK_TILES = 2  # tiles kept in samples.npz for the worker's check


@dataclass
class InferenceArtifacts:
    """A version's downloaded ``inference/`` folder and its ``inference.json``."""

    dir: Path
    meta: dict[str, Any]

    def variant(self, precision: str) -> dict[str, Any]:
        return dict(self.meta.get("variants", {}).get(precision) or {})

    def path(self, precision: str) -> Path:
        return self.dir / FILES[precision]

    def usable(self, precision: str) -> tuple[bool, str]:
        """(True, why) when ``precision``'s file was verified and is the one verified."""
        v = self.variant(precision)
        if not v:
            return False, f"no ONNX {precision} artifact"
        if not v.get("verified"):
            return False, f"ONNX {precision} failed verification at registration: {v.get('reason')}"
        f = self.path(precision)
        if not f.is_file():
            return False, f"ONNX {precision} file {f.name} missing"
        if sha256(f) != v.get("sha256"):
            return False, f"ONNX {precision} file {f.name} differs from the one verified (sha256)"
        return True, f"ONNX {precision} verified at registration ({_figures(v)})"

    def samples(self) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 tiles, Keras probabilities) kept for the worker's check: the last channel
        (the foreground of a binary model; ``samples_all`` has every channel)."""
        with np.load(self.dir / SAMPLES) as z:
            return z["tiles"], z["keras"].astype(np.float32)

    def samples_all(self) -> tuple[np.ndarray, np.ndarray]:
        """(uint8 tiles, Keras probabilities of every channel (n, t, t, c))."""
        with np.load(self.dir / SAMPLES) as z:
            keras = z["keras_all"] if "keras_all" in z.files else z["keras"][..., None]
            return z["tiles"], keras.astype(np.float32)


def _figures(v: dict[str, Any]) -> str:
    diff = f"max |diff| {v.get('max_abs_diff', float('nan')):.2g}"
    if "agreement" in v:
        return f"{diff}, argmax agreement {v['agreement']:.4f}"
    return f"{diff}, IoU {v.get('iou', 0):.4f}"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ort_session(path: Path | str, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session: ``threads`` intra-op threads (default: the CPUs this
    process may use), one inter-op thread (the graph is a chain), full graph optimisation.
    """
    import onnxruntime as ort

    from satseg.cpus import onnx_session_options

    opts = onnx_session_options()
    if threads:
        opts.intra_op_num_threads = threads
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # tf2onnx's Resize attribute warns once per node
    # Idle workers sleep instead of spinning: on a CPU shared with the reader/writer threads
    # and other tasks, spinning cost 1.6x the CPU per tile and halved the throughput
    # (measured, docs/benchmarks.md); on an idle CPU it gained 10 %.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_session(session: Any, x: np.ndarray) -> np.ndarray:
    """float32 (n, t, t, 3) in [0, 1] -> float32 foreground probability (n, t, t)."""
    y = session.run(None, {INPUT: np.ascontiguousarray(x, np.float32)})[0]
    n, h, w = x.shape[:3]  # channels last; any leading unit axes of the graph dropped
    return np.asarray(y.reshape(n, h, w, -1)[..., -1], np.float32)


def run_session_all(session: Any, x: np.ndarray) -> np.ndarray:
    """float32 (n, t, t, 3) in [0, 1] -> float32 probabilities of every channel (n, t, t, c)."""
    y = session.run(None, {INPUT: np.ascontiguousarray(x, np.float32)})[0]
    n, h, w = x.shape[:3]
    return np.asarray(y.reshape(n, h, w, -1), np.float32)


def mask_iou(a: np.ndarray, b: np.ndarray, threshold: float = THRESHOLD) -> float:
    ma, mb = a >= threshold, b >= threshold
    union = int((ma | mb).sum())
    return 1.0 if union == 0 else float((ma & mb).sum() / union)


def compare(probs: np.ndarray, keras: np.ndarray, precision: str) -> dict[str, Any]:
    """Verification figures of one graph's probabilities against the Keras model's."""
    diff = float(np.abs(probs - keras).max()) if probs.size else 0.0
    iou = mask_iou(probs, keras)
    if precision == "fp32":
        ok, need = diff <= FP32_ATOL, f"max |diff| <= {FP32_ATOL}"
    else:
        ok, need = iou >= INT8_MIN_IOU, f"mask IoU >= {INT8_MIN_IOU}"
    return {
        "verified": bool(ok),
        "max_abs_diff": diff,
        "iou": iou,
        "tiles": len(probs),
        "reason": f"{'passed' if ok else 'failed'}: {_figures({'max_abs_diff': diff, 'iou': iou})}"
        f" vs Keras on {len(probs)} sample tiles (needs {need})",
    }


def compare_classes(probs: np.ndarray, keras: np.ndarray, precision: str) -> dict[str, Any]:
    """``compare`` for n-channel softmax outputs (n, t, t, c): every channel's largest
    difference, and the share of pixels whose argmax is the Keras model's."""
    diff = float(np.abs(probs - keras).max()) if probs.size else 0.0
    agree = float((probs.argmax(-1) == keras.argmax(-1)).mean()) if probs.size else 1.0
    if precision == "fp32":
        ok, need = diff <= FP32_ATOL, f"max |diff| <= {FP32_ATOL}"
    else:
        ok, need = agree >= INT8_MIN_AGREEMENT, f"argmax agreement >= {INT8_MIN_AGREEMENT}"
    figures = _figures({"max_abs_diff": diff, "agreement": agree})
    return {
        "verified": bool(ok),
        "max_abs_diff": diff,
        "agreement": agree,
        "tiles": len(probs),
        "reason": f"{'passed' if ok else 'failed'}: {figures} vs Keras on {len(probs)} sample "
        f"tiles (needs {need})",
    }


def convert(model: Any, path: Path) -> Path:
    """Keras model -> ONNX (opset 17, input ``input`` NHWC float32 of any batch and size)."""
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, None, None, 3), tf.float32, name=INPUT),)
    with contextlib.redirect_stdout(sys.stderr):
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET)
    for dim, name in zip(
        proto.graph.input[0].type.tensor_type.shape.dim, ("n", "h", "w"), strict=False
    ):
        dim.dim_param = name
    path.write_bytes(proto.SerializeToString())
    return path


def quantize(src: Path, dst: Path, calib: np.ndarray) -> Path:
    """Static int8 (QLinearConv operators, per-channel int8 weights, uint8 activations, MinMax
    calibration on ``calib`` uint8 tiles)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it = iter(calib[i : i + 1].astype(np.float32) / 255.0 for i in range(len(calib)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {INPUT: x}

    root = logging.getLogger()  # the quantiser warns on the root logger for every BN axis
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_static(
            str(src),
            str(dst),
            Reader(),
            quant_format=QuantFormat.QOperator,  # QLinearConv: 1.3x QDQ's speed (measured)
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
        )
    finally:
        root.setLevel(level)
    return dst


def _keras_probs(model: Any, x: np.ndarray) -> np.ndarray:
    """Every output channel, (n, t, t, c)."""
    out = [np.asarray(model(x[i : i + 4], training=False)) for i in range(0, len(x), 4)]
    return np.concatenate(out).astype(np.float32)


def export(
    model: Any, out: Path, calib: np.ndarray, sample: np.ndarray, extra: dict[str, Any]
) -> dict[str, Any]:
    """Write the ONNX files, ``samples.npz`` and ``inference.json`` into ``out``; return the
    metadata. ``calib``/``sample`` are uint8 (n, t, t, 3) train / val patches. A step that
    fails is recorded as not verified (its reason in the metadata), never raised.
    """
    out.mkdir(parents=True, exist_ok=True)
    x = sample.astype(np.float32) / 255.0
    keras_all = _keras_probs(model, x)
    multiclass = keras_all.shape[-1] > 1
    keras = keras_all if multiclass else keras_all[..., -1]
    kept = {"tiles": sample[:CHECK_TILES], "keras": keras_all[:CHECK_TILES, ..., -1]}
    if multiclass:
        kept["keras_all"] = keras_all[:CHECK_TILES]
    np.savez_compressed(out / SAMPLES, **kept)  # type: ignore[arg-type]
    variants: dict[str, Any] = {}
    t0 = time.perf_counter()
    try:
        convert(model, out / FILES["fp32"])
        variants["fp32"] = _verified(out / FILES["fp32"], x, keras, "fp32")
        variants["fp32"]["seconds"] = round(time.perf_counter() - t0, 1)
    except Exception as err:  # an architecture tf2onnx cannot convert: TensorFlow serves it
        log.warning("ONNX export failed: %s", err)
        variants["fp32"] = {"verified": False, "reason": f"conversion failed: {err}"}
    if variants["fp32"].get("verified"):
        t0 = time.perf_counter()
        try:
            quantize(out / FILES["fp32"], out / FILES["int8"], calib)
            variants["int8"] = _verified(out / FILES["int8"], x, keras, "int8")
            variants["int8"]["calibration_tiles"] = len(calib)
            variants["int8"]["seconds"] = round(time.perf_counter() - t0, 1)
        except Exception as err:
            log.warning("int8 quantisation failed: %s", err)
            variants["int8"] = {"verified": False, "reason": f"quantisation failed: {err}"}
    meta = {**extra, "variants": variants, "created_with": _versions()}
    (out / META).write_text(json.dumps(meta, indent=2, sort_keys=True))
    for k, v in variants.items():
        log.info("inference artifact %s: %s", k, v.get("reason"))
    return meta


def _verified(path: Path, x: np.ndarray, keras: np.ndarray, precision: str) -> dict[str, Any]:
    """``keras`` (n, t, t) foreground of a binary model, or (n, t, t, c) of a multi-class one."""
    if keras.ndim == 4:
        probs = run_session_all(ort_session(path), x)
        figures = compare_classes(probs, keras, precision)
    else:
        figures = compare(run_session(ort_session(path), x), keras, precision)
    return {"file": path.name, "sha256": sha256(path), **figures}


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("tensorflow", "tf2onnx", "onnx", "onnxruntime"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    return out


def _patches(dataset_dir: Path, split: str, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` uint8 image patches of ``split`` (seeded choice), as training reads them."""
    from satseg.io.raster import read_plain_image

    files = sorted((dataset_dir / split / "images").glob("*.png"))
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(files), size=min(n, len(files)), replace=False)) if files else []
    return np.stack([read_plain_image(files[i]) for i in pick]) if pick else np.zeros((0,))


def _describe(model: Any, dataset_dir: Path, tile: int) -> dict[str, Any]:
    """The contract a runtime must honour: input, normalisation, classes, tile size.

    ``class_table`` is the dataset's (``ClassTable.to_json`` / ``binary_json``), as on the
    run's ``classes`` tag; ``classes`` maps channel (multi-class) or mask value (binary) to
    its name."""
    from satseg.classes import binary_json
    from satseg.manifest import ManifestError, read_manifest

    try:
        doc = read_manifest(dataset_dir).doc
    except ManifestError:
        doc = {}
    ingest = (doc.get("params") or {}).get("ingest") or {}
    classes = int(model.output_shape[-1])
    table = doc.get("classes") or binary_json()
    if classes == 1:
        names = {"0": "background", "1": "foreground"}
    else:
        names = {str(c["index"]): str(c["name"]) for c in table.get("classes", [])}
    return {
        "format": 1,
        "opset": OPSET,
        "input": {"name": INPUT, "layout": "NHWC", "dtype": "float32", "channels": 3},
        "normalisation": "uint8 RGB / 255 (satseg.io.raster.to_model_input)",
        "scale": ingest.get("scale"),
        "bands": ingest.get("bands"),
        "tile": tile,
        "output": "sigmoid (1 channel)" if classes == 1 else f"softmax ({classes} channels)",
        "classes": names,
        "class_table": table,
        "foreground_labels": ingest.get("labels"),  # null = every label of the annotations
        "dataset_tag": doc.get("tag"),
    }


def log_for_run(settings: Settings, run_id: str, model_uri: str, dataset_dir: str | Path) -> None:
    """Make, verify and log the ``inference/`` artifacts of ``run_id`` (once: a retried
    registration finds them). Failures are logged and recorded, never raised: a version
    without usable artifacts is served by TensorFlow.
    """
    import mlflow
    import mlflow.tensorflow

    from satseg.registry.tracking import setup

    if not settings.onnx_artifacts:
        log.info("no ONNX artifacts for run %s: SATSEG_ONNX_ARTIFACTS is off", run_id)
        return
    client = setup(settings)
    if any(
        f.path == f"{ARTIFACT_PATH}/{META}" for f in client.list_artifacts(run_id, ARTIFACT_PATH)
    ):
        log.info("run %s already has its inference artifacts", run_id)
        return
    try:
        import tf2onnx  # noqa: F401
    except ImportError as err:
        log.warning("no ONNX artifacts for run %s: %s", run_id, err)
        return
    import satseg.models.manet  # noqa: F401  (registers MA-Net's layers)

    model = mlflow.tensorflow.load_model(model_uri, keras_model_kwargs={"compile": False})
    ddir = Path(dataset_dir)
    sample = _patches(ddir, "val", VERIFY_PATCHES, seed=0)
    calib = _patches(ddir, "train", CALIB_PATCHES, seed=1)
    if len(sample) == 0 or len(calib) == 0:
        log.warning("no patches in %s to calibrate/verify ONNX artifacts", ddir)
        return
    with tempfile.TemporaryDirectory(prefix="satseg-onnx-") as tmp:
        export(model, Path(tmp), calib, sample, _describe(model, ddir, int(sample.shape[1])))
        client.log_artifacts(run_id, tmp, ARTIFACT_PATH)


def fetch(settings: Settings, run_id: str) -> tuple[InferenceArtifacts | None, str]:
    """(artifacts, why) of a registered run: downloaded once into ``models/<run>/inference``.

    ``None`` with the reason when the run has none (registered before ONNX export existed).
    """
    local = settings.models / run_id / ARTIFACT_PATH
    if not (local / META).is_file():
        from satseg.registry.tracking import setup

        client = setup(settings)
        names = {f.path for f in client.list_artifacts(run_id, ARTIFACT_PATH)}
        if f"{ARTIFACT_PATH}/{META}" not in names:
            return None, "model version has no ONNX artifacts (registered before they existed)"
        tmp = Path(tempfile.mkdtemp(prefix=".inference-", dir=_mkdir(local.parent)))
        try:
            client.download_artifacts(run_id, ARTIFACT_PATH, str(tmp))
            shutil.rmtree(local, ignore_errors=True)
            (tmp / ARTIFACT_PATH).rename(local)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return InferenceArtifacts(local, json.loads((local / META).read_text())), "downloaded"


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def load_dir(path: Path | str) -> InferenceArtifacts | None:
    """Artifacts from a local folder holding ``inference.json`` (tests, ``bench/``)."""
    p = Path(path)
    if not (p / META).is_file():
        return None
    return InferenceArtifacts(p, json.loads((p / META).read_text()))
