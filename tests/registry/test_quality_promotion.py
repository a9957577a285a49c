"""Tuned post-processing stored with the model, object metrics in the registry, CLI and API,
and promotion on a configurable metric with an object F1 tolerance (real MLflow store)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from registry_models import constant_model
from typer.testing import CliRunner

from satseg.training.evaluate import clean, drop_small, evaluate, tune
from satseg.training.promotion import compare_and_promote, decide, rule_of

P45 = float(np.log(0.45 / 0.55))  # bias of a model that says 0.45 everywhere


def roof_model() -> Any:
    """Roof-bright red (as the inference tests' model): finds most synthetic buildings."""
    import tensorflow as tf

    inp = tf.keras.Input((None, None, 3))
    conv = tf.keras.layers.Conv2D(1, 1, activation="sigmoid")
    model = tf.keras.Model(inp, conv(inp))
    k = np.zeros((1, 1, 3, 1), np.float32)
    k[0, 0, 0, 0] = 40.0
    conv.set_weights([k, np.array([-40.0 * 158 / 255], np.float32)])
    return model


def test_tune_picks_the_threshold_that_scores_best(tiny_dataset: Path) -> None:
    # 0.45 everywhere: thresholds <= 0.45 give everything (IoU = share), above give nothing
    t = tune(constant_model(P45), tiny_dataset, "val", metric="iou")
    assert (t["threshold"], t["min_area_px"]) == (0.45, 0)  # ties: nearest 0.5, smallest area
    assert t["metrics"]["iou"] > 0.05 and len(t["grid"]) == 11 * 5
    # object F1 is 0 everywhere (one blob or nothing): the tie goes to 0.5
    f1 = tune(constant_model(P45), tiny_dataset, "val", metric="object_f1")
    assert (f1["threshold"], f1["min_area_px"], f1["metrics"]["object_f1"]) == (0.5, 0, 0.0)
    roof = tune(roof_model(), tiny_dataset, "val", metric="object_f1", opening_px=3)
    at = evaluate(
        roof_model(),
        tiny_dataset,
        threshold=roof["threshold"],
        min_area_px=roof["min_area_px"],
        opening_px=3,
    )
    assert at == roof["metrics"] and at["object_f1"] > 0.3
    assert max(g["object_f1"] for g in roof["grid"]) == at["object_f1"]
    with pytest.raises(ValueError, match="at least one threshold"):
        tune(roof_model(), tiny_dataset, thresholds=())
    with pytest.raises(ValueError, match="metric 'f2'"):
        tune(roof_model(), tiny_dataset, metric="f2")


def test_clean_is_the_inference_mask() -> None:
    from satseg.inference.postprocess import MaskStream, to_u8

    rng = np.random.default_rng(1)
    prob = rng.random((40, 50)).astype(np.float32)
    ms = MaskStream(50, 40, 0.6, 3, 5, chunk=16)
    rows = list(ms.push(0, to_u8(prob), np.zeros((40, 50), bool))) + list(ms.finish())
    want = np.concatenate([m for _, m in rows]) == 1
    np.testing.assert_array_equal(clean(prob, 0.6, 3, 5), want)
    for area in (0, 1, 5, 40):  # tuning's shortcut: open once, then filter each area
        np.testing.assert_array_equal(
            drop_small(clean(prob, 0.6, 3, 0), area), clean(prob, 0.6, 3, area)
        )


def _evaluated_version(settings: Any, data_dir: Path, model: Any, config: dict) -> Any:
    """A run trained with ``config`` (as retraining logs it), evaluated and registered by the
    real retraining steps."""
    import mlflow

    from satseg.registry import tracking
    from satseg.training.fit import save_model
    from satseg.training.retrain import Candidate, evaluate_candidates, register_best

    data = {"dataset": "tiny", "tag": "tiny-v1", "md5": "0" * 32, "dir": str(data_dir)}
    tracking.setup(settings)
    with mlflow.start_run() as run:
        mlflow.log_params(config)
    ckpt = save_model(model, settings.models / run.info.run_id / "model.h5")
    cand = Candidate(
        run_id=run.info.run_id, checkpoint=str(ckpt), best_epoch_val_iou=0.0, config=config
    )
    evaluated = evaluate_candidates(settings, data, [cand])
    return register_best(settings, data, evaluated)  # type: ignore[arg-type]


def test_tuned_values_travel_with_the_model_to_inference_cli_and_api(
    settings: Any, tiny_dataset: Path
) -> None:
    from satseg.api import catalog
    from satseg.cli import app
    from satseg.inference.jobs import load_registered_model
    from satseg.registry.store import get_ref

    ref = _evaluated_version(settings, tiny_dataset, constant_model(P45), {})
    pp = get_ref(settings, ref["version"]).postprocess
    assert (pp["threshold"], pp["min_area_px"], pp["metric"], pp["split"]) == (
        0.45,
        0,
        "iou",
        "val",
    )
    assert pp["opening_px"] == settings.params().predict.opening_px
    _, info = load_registered_model(settings, ref["version"])
    assert info["postprocess"] == pp
    assert {"val_object_f1", "val_boundary_iou", "val_iou"} <= set(ref["metrics"])
    shown = CliRunner().invoke(app, ["model", "list"])
    assert shown.exit_code == 0, shown.output
    assert "val_object_f1=0.0000" in shown.output and "threshold=0.45" in shown.output
    assert "val_boundary_iou=" in shown.output
    api = json.loads(json.dumps([r.__dict__ for r in catalog.models(settings)], default=str))
    assert api[0]["metrics"]["val_object_f1"] == 0.0 and api[0]["postprocess"]["threshold"] == 0.45
    from satseg.registry.tracking import setup

    art = setup(settings).download_artifacts(ref["run_id"], "postprocess.json")
    assert len(json.loads(Path(art).read_text())["grid"]) == 55


def test_promotion_metric_comes_from_the_run_and_is_recorded(
    settings: Any, tiny_dataset: Path, log_version: Callable[..., Any]
) -> None:
    log_version(constant_model(-10.0))  # all background: every score 0
    compare_and_promote(settings, "1", tiny_dataset)
    cfg = {"promotion_metric": "object_f1", "object_f1_tolerance": 0.1}
    v2 = _evaluated_version(settings, tiny_dataset, roof_model(), cfg)
    assert v2["postprocess"]["metric"] == "object_f1"
    d = compare_and_promote(settings, v2["version"], tiny_dataset)
    assert d["promoted"] and d["metric"] == "object_f1" and d["object_f1_tolerance"] == 0.1
    assert d["champion_score"] == 0.0 and d["challenger_score"] == d["challenger_object_f1"] > 0
    assert "val object_f1" in d["reason"]


def test_rule_reads_run_params_then_params_yaml(settings: Any) -> None:
    assert rule_of(settings, {}) == {"metric": "iou", "margin": 0.0, "object_f1_tolerance": 0.02}
    r = rule_of(settings, {"promotion_metric": "boundary_iou", "object_f1_tolerance": "0.5"})
    assert (r["metric"], r["object_f1_tolerance"]) == ("boundary_iou", 0.5)
    with pytest.raises(ValueError, match="promotion_metric 'f2'"):
        rule_of(settings, {"promotion_metric": "f2"})


@pytest.mark.parametrize(
    ("chall_f1", "champ_f1", "tol", "promoted", "words"),
    [
        (0.60, 0.70, 0.02, False, "object F1 0.6000 is more than 0.0200 below"),
        (0.69, 0.70, 0.02, True, "beats champion"),
        (0.60, 0.70, 0.20, True, "beats champion"),
        (None, 0.70, 0.02, True, "beats champion"),  # a challenger without object F1
    ],
)
def test_object_f1_tolerance(
    chall_f1: float | None, champ_f1: float, tol: float, promoted: bool, words: str
) -> None:
    ok, reason = decide(
        0.8,
        0.7,
        0.0,
        metric="iou",
        challenger_f1=chall_f1,
        champion_f1=champ_f1,
        f1_tolerance=tol,
    )
    assert ok is promoted and words in reason
    lost, why = decide(0.6, 0.7, 0.0, metric="dice", challenger_f1=0.9, champion_f1=0.1)
    assert lost is False and "val dice 0.6000 does not beat" in why
