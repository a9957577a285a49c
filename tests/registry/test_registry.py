"""Challenger/champion in a real MLflow file store: promote only when better, roll back."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from registry_models import constant_model

from satseg.registry import champion, list_models, load_model, promote, rollback
from satseg.registry.store import RegistryError, history
from satseg.training.data import list_split
from satseg.training.promotion import compare_and_promote, decide


def _foreground_share(dataset: Path) -> float:
    import cv2

    masks = [
        cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 127 for p in list_split(dataset, "val").masks
    ]
    return float(np.mean(masks))


def test_promote_only_when_better_then_roll_back(
    settings: Any, tiny_dataset: Path, log_version: Callable[..., Any]
) -> None:
    share = _foreground_share(tiny_dataset)
    assert 0.05 < share < 0.9
    v1 = log_version(constant_model(-10.0))  # all background: IoU 0
    assert v1.version == "1" and v1.aliases == ["challenger"] and v1.metrics["val_iou"] == 0.0
    d1 = compare_and_promote(settings, "1", tiny_dataset)
    assert d1["promoted"] and d1["reason"] == "first model: no champion yet"
    assert champion(settings).version == "1"

    v2 = log_version(constant_model(10.0))  # all foreground: IoU = foreground share
    assert v2.metrics["val_iou"] == pytest.approx(share, abs=1e-6)
    d2 = compare_and_promote(settings, "2", tiny_dataset)
    assert d2["promoted"] and d2["champion_version"] == "1"
    assert d2["champion_iou"] == 0.0  # re-evaluated on this val split, not read from its run
    assert {r.version: r.aliases for r in list_models(settings)} == {"2": ["champion"], "1": []}

    v3 = log_version(constant_model(-10.0))  # worse again
    d3 = compare_and_promote(settings, "3", tiny_dataset)
    assert d3["promoted"] is False
    assert d3["champion_iou"] == pytest.approx(share, abs=1e-6)
    assert "does not beat champion" in d3["reason"]
    refs = {r.version: r for r in list_models(settings)}
    assert refs["3"].aliases == ["challenger"] and refs["2"].aliases == ["champion"]
    assert [r.version for r in list_models(settings)] == ["3", "2", "1"]
    from satseg.registry.tracking import setup

    tags = setup(settings).get_model_version(settings.registered_model, "3").tags
    assert tags["promotion"] == d3["reason"] and tags["dataset_tag"] == "tiny-v1"
    assert setup(settings).get_run(v3.run_id).data.tags["promotion"] == d3["reason"]
    assert v3.dataset_tag == "tiny-v1"

    assert history(settings) == ["1", "2"]
    back = rollback(settings)
    assert back.version == "1" and back.aliases == ["champion"]
    assert history(settings) == ["1"]
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        rollback(settings)
    assert champion(settings).version == "1"  # a refused rollback changes nothing


def test_compare_is_idempotent_and_margin_applies(
    settings: Any, tiny_dataset: Path, log_version: Callable[..., Any], monkeypatch: Any
) -> None:
    from satseg.config import get_settings, reset_settings_cache

    log_version(constant_model(-10.0))
    compare_and_promote(settings, "1", tiny_dataset)
    again = compare_and_promote(settings, "1", tiny_dataset)
    assert again["promoted"] and again["reason"] == "already champion"
    assert history(settings) == ["1"]
    log_version(constant_model(10.0))
    monkeypatch.setenv("SATSEG_PROMOTION_MARGIN", "0.99")
    reset_settings_cache()
    strict = get_settings()
    d = compare_and_promote(strict, "2", tiny_dataset)
    assert d["promoted"] is False and d["margin"] == 0.99
    assert champion(strict).version == "1"


@pytest.mark.parametrize(
    ("challenger", "champ", "margin", "promoted"),
    [
        (0.5, None, 0.0, True),
        (0.51, 0.5, 0.0, True),
        (0.5, 0.5, 0.0, False),  # a tie keeps the champion
        (0.52, 0.5, 0.05, False),
        (0.56, 0.5, 0.05, True),
    ],
)
def test_decision_rule(
    challenger: float, champ: float | None, margin: float, promoted: bool
) -> None:
    ok, reason = decide(challenger, champ, margin)
    assert ok is promoted and reason


def test_register_is_idempotent_per_run(settings: Any, log_version: Callable[..., Any]) -> None:
    from satseg.registry import store

    ref = log_version(constant_model(0.0))
    import mlflow

    uri = mlflow.MlflowClient().get_model_version(settings.registered_model, ref.version).source
    again = store.register(settings, uri, ref.run_id, {})
    assert again.version == ref.version and len(list_models(settings)) == 1


def test_unknown_versions_and_empty_registry_fail_clearly(settings: Any) -> None:
    assert champion(settings) is None and list_models(settings) == []
    with pytest.raises(RegistryError, match="no version or alias '7'"):
        promote(settings, "7")
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        rollback(settings)
    with pytest.raises(RegistryError, match="no version or alias 'champion'"):
        load_model(settings)


def test_logged_manet_loads_back_through_keras_and_pyfunc(
    settings: Any, log_version: Callable[..., Any]
) -> None:
    import mlflow.pyfunc

    from satseg.models import build_model

    model = build_model("manet", "resnet18")
    ref = log_version(model)
    promote(settings, ref.version)
    x = np.random.default_rng(0).random((1, 64, 64, 3), dtype=np.float32)
    loaded, mref = load_model(settings, "champion")
    assert mref.version == ref.version and mref.aliases == ["champion"]
    assert not loaded._is_compiled  # the uncompiled copy was logged
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-5)
    by_number, _ = load_model(settings, ref.version)
    np.testing.assert_allclose(by_number(x).numpy(), model(x).numpy(), atol=1e-5)
    py = mlflow.pyfunc.load_model(mref.uri)
    np.testing.assert_allclose(np.asarray(py.predict(x)), model(x).numpy(), atol=1e-5)
    meta = py.metadata
    assert meta.signature is not None and meta.saved_input_example_info is not None
    json.dumps(mref.to_dict())
