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
