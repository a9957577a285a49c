"""Multi-class models through the real MLflow store: the run's class table, per-class epoch
and final metrics, ONNX artifacts verified by argmax agreement, and promotion on mIoU or a
named class's IoU (champion re-evaluated on the same val split)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from registry_models import constant_model

from satseg.classes import ModelClasses
from satseg.registry import store, tracking
from satseg.registry.ref import CLASSES_TAG
from satseg.synthetic import LANDCOVER_CLASSES
from satseg.training.data import read_manifest
from satseg.training.promotion import compare_and_promote, rule_of
from satseg.training.retrain import (
    Candidate,
    evaluate_candidates,
    register_best,
    resolve_data,
    train_candidate,
)

N = len(LANDCOVER_CLASSES)
WATER, LAND = LANDCOVER_CLASSES.index("water"), LANDCOVER_CLASSES.index("land")


def constant_class(k: int) -> Any:
    """An n-channel softmax model that says class ``k`` everywhere."""
    import tensorflow as tf

    inp = tf.keras.Input((None, None, 3))
    conv = tf.keras.layers.Conv2D(N, 1, activation="softmax")
    model = tf.keras.Model(inp, conv(inp))
    conv.set_weights([np.zeros((1, 1, 3, N), np.float32), 10.0 * np.eye(N, dtype=np.float32)[k]])
    return model


def _register(settings: Any, data: Any, model: Any, metric: str = "iou") -> str:
    """A run holding ``model`` as train_candidate leaves it (config, class table tag,
    checkpoint), then the real evaluate and register steps; the new version."""
    import mlflow

    from satseg.training.config import TrainConfig
    from satseg.training.data import class_table
    from satseg.training.fit import save_model

    cfg = TrainConfig(promotion_metric=metric).to_dict()
    tracking.setup(settings)
    with mlflow.start_run() as run:
        mlflow.set_tag(CLASSES_TAG, json.dumps(class_table(read_manifest(data["dir"]))))
        mlflow.log_params(cfg)
    ckpt = save_model(model, settings.models / run.info.run_id / "model.h5")
    cand = Candidate(
        run_id=run.info.run_id, checkpoint=str(ckpt), best_epoch_val_iou=0.0, config=cfg
    )
    return str(
        register_best(settings, data, evaluate_candidates(settings, data, [cand]))["version"]
    )


@pytest.mark.slow
def test_multiclass_run_logs_per_class_metrics_and_carries_its_class_table(
    landcover: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from satseg.config import get_settings
    from satseg.registry import artifacts as A

    settings, ddir = landcover
    data = resolve_data(settings, dataset="lc")
    train = {"epochs": 2, "batch_size": 4, "window": 64, "time_budget_min": None}
    cand = train_candidate(settings, data, {**train, "weight_averaging": "ema"})
    client = tracking.setup(settings)
    run = client.get_run(cand["run_id"])
    table = read_manifest(ddir)["classes"]
    assert json.loads(run.data.tags[CLASSES_TAG]) == table
    for key in ("val_miou", "val_iou_water", "val_iou_building", "miou"):
        assert len(client.get_metric_history(cand["run_id"], key)) == 2, key
    # the kept weights' score: the best epoch's, or the weight average's where it won on val
    epochs = [m.value for m in client.get_metric_history(cand["run_id"], "val_miou")]
    ema, kept = run.data.metrics["ema_val_miou"], run.data.metrics["ema_kept"]
    assert kept == float(ema > max(epochs))
    assert cand["best_epoch_val_iou"] == pytest.approx(max(*epochs, ema))

    monkeypatch.setenv("SATSEG_ONNX_ARTIFACTS", "true")
    onnx_settings = get_settings(onnx_artifacts=True)
    evaluated = evaluate_candidates(onnx_settings, data, [cand])
    assert evaluated["candidates"][0]["val_iou"] == evaluated["best"]["metrics"]["miou"]
    ref = register_best(onnx_settings, data, evaluated)

    # the registry round trip: ModelRef.classes -> ModelClasses, per-class final metrics
    mref = store.get_ref(settings, ref["version"])
    classes = ModelClasses.from_json(mref.classes)
    assert classes.multiclass and classes.names == LANDCOVER_CLASSES and classes.channels == N
    assert {"val_miou", "val_mdice", *(f"val_iou_{n}" for n in LANDCOVER_CLASSES)} <= set(
        mref.metrics
    )
    assert mref.postprocess["decision"] == "argmax" and mref.postprocess["metric"] == "miou"
    model, _ = store.load_model(settings, ref["version"])
    assert model.output_shape[-1] == N

    # ONNX: fp32 verified on every channel, int8 judged by argmax agreement, class table kept
    meta = json.loads(
        Path(client.download_artifacts(cand["run_id"], f"{A.ARTIFACT_PATH}/{A.META}")).read_text()
    )
    assert meta["class_table"] == table
    assert meta["classes"] == {str(i): n for i, n in enumerate(LANDCOVER_CLASSES)}
    assert meta["output"] == f"softmax ({N} channels)"
    fp32, int8 = meta["variants"]["fp32"], meta["variants"]["int8"]
    assert fp32["verified"] and fp32["max_abs_diff"] <= A.FP32_ATOL, fp32
    assert 0 <= int8["agreement"] <= 1 and int8["verified"] == (
        int8["agreement"] >= A.INT8_MIN_AGREEMENT
    )
    art, _ = A.fetch(settings, cand["run_id"])
    assert art is not None and art.usable("fp32")[0]
    tiles, keras_all = art.samples_all()
    assert keras_all.shape == (len(tiles), 64, 64, N)
    x = tiles.astype(np.float32) / 255.0
    np.testing.assert_allclose(
        A.run_session_all(A.ort_session(art.path("fp32")), x), keras_all, atol=A.FP32_ATOL
    )

    decision = compare_and_promote(settings, ref["version"], ddir)
    assert decision["promoted"] and decision["metric"] == "miou"
    assert decision["challenger_iou"] == mref.metrics["val_miou"]


def test_promotion_on_miou_then_on_a_named_class(landcover: Any) -> None:
    settings, ddir = landcover
    data = resolve_data(settings, dataset="lc")
    water = _register(settings, data, constant_class(WATER))
    first = compare_and_promote(settings, water, ddir)
    assert first["promoted"] and first["reason"] == "first model: no champion yet"

    land = _register(settings, data, constant_class(LAND))  # land covers most pixels
    second = compare_and_promote(settings, land, ddir)
    assert second["promoted"] and second["metric"] == "miou", second["reason"]
    assert second["champion_score"] < second["challenger_score"]
    assert "mIoU" in second["reason"]
    assert set(second["challenger_metrics"]) == {
        "miou", "mdice", "pixel_accuracy", *(f"iou_{n}" for n in LANDCOVER_CLASSES)
    }  # fmt: skip
    # the champion (water everywhere) re-evaluated on this val split
    assert second["champion_metrics"]["iou_land"] == 0.0

    # ranked on water alone, the all-water model beats the all-land champion
    water2 = _register(settings, data, constant_class(WATER), metric="iou_water")
    third = compare_and_promote(settings, water2, ddir)
    assert third["metric"] == "iou_water" and third["promoted"], third["reason"]
    assert third["champion_score"] == 0.0 and third["challenger_score"] > 0.0
    assert store.champion(settings).version == water2

    classes = ModelClasses.from_json(store.get_ref(settings, water2).classes)
    with pytest.raises(ValueError, match=r"no class 'helipad' in the class table \(building"):
        rule_of(settings, {"promotion_metric": "iou_helipad"}, classes)


def test_a_binary_champion_is_not_compared_with_a_multiclass_challenger(landcover: Any) -> None:
    from satseg.training.promotion import metrics_table

    settings, ddir = landcover
    data = resolve_data(settings, dataset="lc")
    tracking.setup(settings)
    import mlflow

    with mlflow.start_run() as run:  # a binary version registered before class tables
        mlflow.log_metrics({"final_val_iou": 0.9})
        uri = tracking.log_keras_model(constant_model(2.0))
    binary = store.register(settings, uri, run.info.run_id, {})
    store.promote(settings, binary.version)
    assert ModelClasses.from_json(binary.classes).multiclass is False  # no tag: binary

    mc = _register(settings, data, constant_class(LAND))
    d = compare_and_promote(settings, mc, ddir)
    assert not d["promoted"] and d["reason"].startswith("not comparable"), d["reason"]
    assert "binary (building)" in d["reason"] and "5 classes (building, land" in d["reason"]
    assert f"satseg model promote {mc}" in d["reason"]
    assert store.champion(settings).version == binary.version
    assert "| miou |" in metrics_table(d)
    assert store.get_ref(settings, mc).aliases == ["challenger"]
