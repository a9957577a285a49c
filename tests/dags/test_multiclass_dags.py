"""Land cover end to end under real Airflow: generated multi-class scenes through
satseg_ingest -> satseg_retrain -> satseg_predict (dag.test), a real DVC repo and MLflow store.

The scenes (``satseg.synthetic.make_landcover_scene``: land, a lake with an island as a hole,
roads, vegetation, buildings) carry their painted truth; the registered model carries the class
table; the prediction is a class raster with the table's colours and names, per-class polygons
and a STAC Item with the classification extension.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from satseg.synthetic import LANDCOVER_CLASSES, make_landcover_scene
from tests.airflow_helpers import load_dag, run_dag, task_states

pytestmark = pytest.mark.slow  # three dag.test() runs, one tiny training: ~2 min

COLORS = ("#ff0000", "#c8a064", "#505050", "#2e8b57", "#1e50aa")
TABLE = [{"name": n, "color": c} for n, c in zip(LANDCOVER_CLASSES, COLORS, strict=True)]
PARAMS = {
    "ingest": {"classes": TABLE},
    "preprocess": {"patch_size": 128, "stride": 128, "oversample": 1, "val_fraction": 0.25,
                   "workers": 1},
}  # fmt: skip
CONF = {"epochs": 1, "batch_size": 4, "force": False, "sweep": None}


@pytest.fixture(scope="module")
def story(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from satseg.config import get_settings, reset_settings_cache

    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("landcover")
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(PARAMS))
    mp.setenv("SATSEG_HOME", str(root / "home"))
    mp.setenv("SATSEG_PARAMS_FILE", str(params))
    mp.setenv("SATSEG_STABLE_POLLS_S", "0.05")
    reset_settings_cache()
    s = get_settings()
    s.ensure_dirs()
    for i in range(4):
        make_landcover_scene(s.inbox / "lc", f"lc{i}", 256, 256, seed=i)
    ingest = run_dag(load_dag("satseg_ingest"), expect="success")
    retrain = load_dag("satseg_retrain").test(run_conf=CONF)
    unseen = make_landcover_scene(root / "unseen", "lc_unseen", 256, 256, seed=11)
    predict = run_dag(load_dag("satseg_predict"), {"paths": [str(unseen.image)]}, expect="success")
    yield type(
        "Story",
        (),
        {"settings": s, "ingest": ingest, "retrain": retrain, "predict": predict,
         "unseen": unseen},
    )  # fmt: skip
    mp.undo()
    reset_settings_cache()


def test_the_dataset_version_holds_class_indices_and_counts(story: Any) -> None:
    from satseg.versioning import list_versions

    assert task_states(story.ingest)["publish"].endswith("success")
    manifest = json.loads((story.settings.processed / "lc" / "manifest.json").read_text())
    assert [c["name"] for c in manifest["classes"]["classes"]] == list(LANDCOVER_CLASSES)
    assert all(manifest["class_pixels"]["train"][n] > 0 for n in ("land", "water", "road"))
    assert [v.tag for v in list_versions(story.settings)] == ["lc-v1"]


def test_the_registered_model_carries_its_class_table(story: Any) -> None:
    from satseg.classes import ModelClasses
    from satseg.registry import champion

    states = task_states(story.retrain)
    assert all(v in ("success", "skipped") for v in states.values()), states
    assert states["promote"] == "success" and states["approve"] == "skipped"  # promotion: auto
    ref = champion(story.settings)
    assert ref is not None
    classes = ModelClasses.from_json(ref.classes)
    assert classes.multiclass and classes.names == LANDCOVER_CLASSES
    assert classes.colors == COLORS
    assert {"val_miou", *(f"val_iou_{n}" for n in LANDCOVER_CLASSES)} <= set(ref.metrics)
    assert 0.0 <= ref.metrics["val_miou"] <= 1.0


def test_the_prediction_is_a_class_raster_qgis_can_read(story: Any) -> None:
    import rasterio

    out = story.settings.predictions / "lc_unseen"
    with rasterio.open(out / "classes.tif") as c:
        assert c.dtypes[0] == "uint8" and c.nodata == 255
        cmap = c.colormap(1)
        for i, hexcolor in enumerate(COLORS):
            rgb = tuple(int(hexcolor[k : k + 2], 16) for k in (1, 3, 5))
            assert cmap[i][:3] == rgb
        cls = c.read(1)
    assert set(np.unique(cls)) <= set(range(len(LANDCOVER_CLASSES)))
    with rasterio.open(out / "prob.tif") as p:
        assert p.count == len(LANDCOVER_CLASSES)
        assert tuple(p.descriptions) == LANDCOVER_CLASSES
        # the class raster is the argmax of the probabilities (where uint8 rounding made no tie)
        prob = p.read()
    top = np.sort(prob, axis=0)
    clear = top[-1] > top[-2]
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(np.argmax(prob, axis=0)[clear], cls[clear])
    fc = json.loads((out / "mask.geojson").read_text())
    assert {f["properties"]["class"] for f in fc["features"]} <= set(LANDCOVER_CLASSES)
    item = json.loads((out / "item.json").read_text())
    asset = item["assets"]["classes"]
    entries = asset["classification:classes"]
    assert [c["name"] for c in entries] == [*LANDCOVER_CLASSES, "nodata"]
    assert [c["value"] for c in entries] == [0, 1, 2, 3, 4, 255]
    summary = json.loads((out / "summary.json").read_text())
    areas = summary["class_areas"]
    assert [a["name"] for a in areas] == list(LANDCOVER_CLASSES)
    px = (0.5 * 0.5) * cls.size
    assert sum(a["area_m2"] for a in areas) == pytest.approx(px, rel=0.01)
