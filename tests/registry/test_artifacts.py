"""ONNX artifacts made at registration, in a real MLflow file store, and what a worker does
with a version registered before they existed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from registry_models import constant_model

from satseg.registry import artifacts as A
from satseg.registry import tracking


@pytest.fixture(autouse=True)
def _onnx_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite turns registration's ONNX export off (tests/conftest.py); these test it."""
    monkeypatch.setenv("SATSEG_ONNX_ARTIFACTS", "true")


def _logged_run(settings: Any, model: Any) -> tuple[str, str]:
    """(run id, model URI) of a finished run holding ``model``, as evaluate_candidates logs it."""
    tracking.setup(settings)
    with mlflow.start_run() as run:
        uri = tracking.log_keras_model(model)
    return run.info.run_id, uri


def test_registration_logs_verified_onnx_beside_the_keras_model(
    settings: Any, tiny_dataset: Path
) -> None:
    from satseg.inference.jobs import load_registered_model
    from satseg.training.retrain import register_best

    run_id, uri = _logged_run(settings, constant_model(2.0))
    data = {"dataset": "tiny", "tag": "tiny-v1", "md5": "0" * 32, "dir": str(tiny_dataset)}
    best = {"run_id": run_id, "model_uri": uri, "metrics": {"iou": 0.5}}
    ref = register_best(settings, data, {"best": best, "candidates": []})  # type: ignore[arg-type]

    client = tracking.setup(settings)
    names = {Path(f.path).name for f in client.list_artifacts(run_id, A.ARTIFACT_PATH)}
    assert names == {"inference.json", "model.onnx", "model.int8.onnx", "samples.npz"}
    assert ref["run_id"] == run_id  # the same run as the registered Keras model
    meta = json.loads(
        Path(client.download_artifacts(run_id, f"{A.ARTIFACT_PATH}/{A.META}")).read_text()
    )
    assert meta["variants"]["fp32"]["verified"] and meta["variants"]["int8"]["verified"]
    assert meta["variants"]["fp32"]["tiles"] == 4  # the tiny dataset's val patches
    assert meta["tile"] == 64 and meta["dataset_tag"] == "tiny-v1"
    assert meta["normalisation"].startswith("uint8 RGB / 255")
    assert meta["classes"] == {"0": "background", "1": "foreground"}

    # a retried registration neither converts again nor logs a second copy
    before = sorted((f.path, f.file_size) for f in client.list_artifacts(run_id, A.ARTIFACT_PATH))
    register_best(settings, data, {"best": best, "candidates": []})  # type: ignore[arg-type]
    after = sorted((f.path, f.file_size) for f in client.list_artifacts(run_id, A.ARTIFACT_PATH))
    assert before == after

    # the worker downloads them once and may use both
    model, info = load_registered_model(settings, ref["version"])
    art = info["artifacts"]
    assert art is not None and art.usable("fp32")[0] and art.usable("int8")[0]
    assert art.dir == settings.models / run_id / A.ARTIFACT_PATH
    x = np.full((2, 64, 64, 3), 0.5, np.float32)
    probs = A.run_session(A.ort_session(art.path("fp32")), x)
    np.testing.assert_allclose(probs, np.asarray(model(x))[..., -1], atol=1e-5)


def test_version_registered_the_old_way_predicts_with_tensorflow(
    settings: Any, tiny_dataset: Path, log_version: Callable[..., Any], tmp_path: Path
) -> None:
    from satseg.inference import jobs
    from satseg.inference.params import PredictParams
    from satseg.synthetic import make_scene

    ref = log_version(constant_model(2.0))  # logged and registered without inference/
    model, info = jobs.load_registered_model(settings, ref.version)
    assert info["artifacts"] is None and "registered before" in info["artifacts_reason"]
    sc = make_scene(tmp_path / "in", "s", 160, 160, seed=1)
    params = PredictParams(tile=64, overlap=16, runtime="onnxruntime", precision="fp32")
    (r,) = jobs.predict_many(model, info, [sc.image], tmp_path / "out", params)
    assert r["status"] == "ok" and r["runtime"] == "tensorflow"
    assert "registered before" in r["runtime_reason"]
