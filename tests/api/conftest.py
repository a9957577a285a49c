"""A tiny real prediction (once per session) for the page tests: a georeferenced GeoTIFF scene
and a PNG scene in pixel space, segmented by the fixed-weight roof model of the inference tests
(``tests.inference.conftest``) through ``satseg.inference.predict.predict_scene``."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

SCENES = {"city": "tif", "plain": "png"}


@pytest.fixture(scope="session")
def predicted(tmp_path_factory) -> Path:
    from satseg.inference.predict import predict_scene
    from satseg.synthetic import make_png_pair, make_scene
    from tests.inference.conftest import MODEL_INFO, _roof_model

    root = tmp_path_factory.mktemp("predicted")
    model = _roof_model((1,), 40.0)
    city = make_scene(root / "sources", "city", 512, 384, 3, labelme=False, geojson=False)
    plain = make_png_pair(root / "sources", "plain", 300, 200, 4)
    for name, src in (("city", city.image), ("plain", plain.image)):
        predict_scene(model, src, root / "predictions" / name, model_info=MODEL_INFO, tile=256)
    return root


@pytest.fixture
def with_predictions(settings, predicted) -> Callable[[], dict[str, Path]]:
    """Copy the session's predictions and sources into this test's SATSEG_HOME."""
    from satseg.inference.predict import relocate_source

    def _copy() -> dict[str, Path]:
        shutil.copytree(predicted / "predictions", settings.predictions, dirs_exist_ok=True)
        sources = settings.raw / "predict-done"
        shutil.copytree(predicted / "sources", sources, dirs_exist_ok=True)
        out = {}
        for name, ext in SCENES.items():
            relocate_source(settings.predictions / name, sources / f"{name}.{ext}")
            out[name] = settings.predictions / name
        return out

    return _copy


def register_version(settings, val_iou: float, tag: str = "city-v1") -> str:
    """Log the roof model as a training run with satseg's lineage tags, register it."""
    import mlflow

    from satseg.registry import store, tracking
    from tests.inference.conftest import _roof_model

    data = {"dataset": tag.rsplit("-v", 1)[0], "tag": tag, "md5": "ab" * 16}
    tracking.setup(settings)
    with mlflow.start_run() as run:
        mlflow.set_tags(tracking.lineage_tags(data))
        mlflow.log_metrics({"final_val_iou": val_iou, "final_val_iou_building": val_iou - 0.1})
        uri = tracking.log_keras_model(_roof_model((1,), 40.0))
    return store.register(settings, uri, run.info.run_id, tracking.lineage_tags(data)).version


def quarantine_bad_pair(settings, name: str = "roof") -> bytes:
    """A good GeoTIFF whose LabelMe file is broken, through a real ingest pass: both end up
    in quarantine (the image as ``partner_rejected``). The image's bytes."""
    from satseg.ingest.pipeline import run_once
    from satseg.synthetic import make_scene

    scene = make_scene(settings.inbox / "demo", name, 256, 256, 5, geojson=False)
    scene.labelme.write_text("{not json")
    image = scene.image.read_bytes()
    run_once(settings, poll_interval=0.05)
    assert not scene.image.exists()
    return image
