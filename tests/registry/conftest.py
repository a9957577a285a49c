"""Registry fixtures: a tiny dataset and a helper that logs + registers real Keras models
through satseg's own functions (see registry_models.constant_model)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from satseg.synthetic import SceneStyle
from satseg.training.sample import write_sample_dataset


@pytest.fixture
def tiny_dataset(settings: Any) -> Path:
    return write_sample_dataset(
        settings.processed / "tiny",
        dataset="tiny",
        tag="tiny-v1",
        n_train=4,
        n_val=4,
        style=SceneStyle(building_density=2.0),
    )


@pytest.fixture
def log_version(settings: Any, tiny_dataset: Path) -> Callable[..., Any]:
    """Evaluate ``model`` on the tiny val split, log it as an MLflow run, register it."""
    import mlflow

    from satseg.registry import store, tracking
    from satseg.training.evaluate import evaluate

    def _log(model: Any, tag: str = "tiny-v1") -> Any:
        data = {"dataset": "tiny", "tag": tag, "md5": "0" * 32}
        tracking.setup(settings)
        with mlflow.start_run() as run:
            mlflow.set_tags(tracking.lineage_tags(data))
            metrics = evaluate(model, tiny_dataset, "val")
            mlflow.log_metrics({f"final_val_{k}": v for k, v in metrics.items()})
            uri = tracking.log_keras_model(model)
        return store.register(settings, uri, run.info.run_id, tracking.lineage_tags(data))

    return _log


@pytest.fixture
def landcover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> tuple[Any, Path]:
    """(settings, dataset dir) of generated land-cover scenes ingested with the five-class
    table (tests/training/landcover.py). Request it before ``settings``-using fixtures."""
    from tests.training.landcover import ingest_landcover, use_landcover_params

    use_landcover_params(tmp_path, monkeypatch)
    settings = request.getfixturevalue("settings")
    return settings, ingest_landcover(settings)
