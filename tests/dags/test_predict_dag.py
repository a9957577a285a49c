"""satseg_predict under real Airflow (dag.test) with a champion in a real MLflow registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_helpers import events_of, load_dag, load_module, run_dag, task_states, xcom

TESTS = Path(__file__).resolve().parents[1]


def _roof_model() -> Any:
    """The deterministic roof model of tests/inference (loaded by path: not a package)."""
    mod = load_module("inference_models", TESTS / "inference" / "conftest.py")
    return mod._roof_model((1,), 40.0)


def _register_champion(settings: Any) -> str:
    """Log the roof model the way satseg_retrain logs models, register it, make it champion.

    A deterministic model (not a few-step training) so that the outputs can be checked.
    """
    import mlflow

    from satseg.registry import store, tracking

    data = {"dataset": "demo", "tag": "demo-v1", "md5": "0" * 32}
    tracking.setup(settings)
    with mlflow.start_run() as run:
        mlflow.set_tags(tracking.lineage_tags(data))
        uri = tracking.log_keras_model(_roof_model())
    ref = store.register(settings, uri, run.info.run_id, tracking.lineage_tags(data))
    store.promote(settings, ref.version)
    return ref.version


@pytest.fixture(scope="module")
def predict_dag() -> Any:
    return load_dag("satseg_predict")


def _events(run_id: str) -> list[dict[str, Any]]:
    return sorted(events_of("satseg_predictions", run_id), key=lambda e: e["scene"])


def test_dag_shape(predict_dag: Any) -> None:
    assert set(predict_dag.task_ids) == {"find_scenes", "resolve_model", "predict", "annotate"}
    assert predict_dag.max_active_runs == 1
    assert set(predict_dag.params) == {
        "paths",
        "glob",
        "model_version",
        "threshold",
        "tile",
        "overlap",
    }
    assert [o.name for o in predict_dag.get_task("predict").outlets] == ["satseg_predictions"]


def test_nothing_ready_skips_cleanly(settings, airflow_db, predict_dag: Any) -> None:
    dr = predict_dag.test()  # empty inbox, no model registered: nothing to do, nothing fails
    states = task_states(dr)
    assert str(dr.state) == "success", states
    assert states["predict"] == "skipped" and _events(dr.run_id) == []


def test_inbox_scenes_end_to_end(
    settings, airflow_db, predict_dag: Any, monkeypatch, tmp_path
) -> None:
    import rasterio

    from satseg.config import get_settings, reset_settings_cache
    from satseg.synthetic import make_scene

    monkeypatch.setenv("SATSEG_STABLE_POLLS_S", "0.2")
    reset_settings_cache()
    s = get_settings()
    version = _register_champion(s)
    box = s.predict_inbox
    a = make_scene(box, "a_city", 300, 260, seed=1, labelme=False, geojson=False).image
    (box / "a_city.tif.done").touch()
    make_scene(
        box, "b_town", 260, 200, seed=2, nodata=0, nodata_border=30, labelme=False, geojson=False
    )
    (box / "c_broken.tif").write_bytes(b"corrupt" * 100)

    dr = predict_dag.test()
    states = task_states(dr)
    # the corrupt scene fails its own task (at once, no retries); the others complete
    assert states["predict[0]"] == "success" and states["predict[1]"] == "success", states
    assert states["predict[2]"] == "failed" and str(dr.state) == "failed"
    # the annotation export still runs, over the scenes that were predicted
    assert states["annotate"] == "success", states
    exported = xcom(dr, "annotate")
    assert exported["scenes"] == ["a_city", "b_town"] and exported["budget"] == 20

    for name in ("a_city", "b_town"):
        out = s.predictions / name
        with rasterio.open(out / "mask.tif") as m:
            assert m.tags()["model_version"] == version and m.tags()["dataset_tag"] == "demo-v1"
        assert (out / "mask.geojson").is_file() and (out / "quicklook.png").is_file()
        item = json.loads((out / "item.json").read_text())
        src = Path(item["assets"]["source"]["href"].removeprefix("file://"))
        assert src.is_file() and s.raw / "predict-done" in src.parents  # archived, still found
    err = json.loads((s.predictions / "c_broken" / "c_broken.error.json").read_text())
    assert err["check"] == "decode"
    assert not any(box.iterdir()), "inbox should be empty: every input filed"
    assert len(list((s.raw / "predict-done").rglob("*.tif"))) == 2
    quarantined = sorted(p.name for p in s.quarantine.rglob("c_broken*"))
    assert quarantined == ["c_broken.tif", "c_broken.tif.error.json"]

    events = _events(dr.run_id)
    assert [e["scene"] for e in events] == ["a_city", "b_town"]
    assert all(e["model_version"] == version and Path(e["outputs"]).is_dir() for e in events)

    # On demand, same scene + same model version: skipped (no new outputs, no event).
    archived = next((s.raw / "predict-done").rglob("a_city.tif"))
    stamp = (s.predictions / "a_city" / "mask.tif").stat().st_mtime_ns
    dr2 = predict_dag.test(run_conf={"paths": [str(archived)], "model_version": version})
    states = task_states(dr2)
    assert str(dr2.state) == "success" and states["predict[0]"] == "skipped", states
    assert (s.predictions / "a_city" / "mask.tif").stat().st_mtime_ns == stamp
    assert _events(dr2.run_id) == [] and archived.is_file() and not a.exists()

    # On demand by glob with a threshold override: a scene outside the inbox stays put.
    other = make_scene(
        tmp_path / "elsewhere", "d_village", 200, 200, seed=4, labelme=False, geojson=False
    ).image
    glob = str(tmp_path / "elsewhere" / "*.tif")
    dr3 = run_dag(predict_dag, {"paths": [], "glob": glob, "threshold": 0.6}, expect="success")
    assert other.is_file()
    with rasterio.open(s.predictions / "d_village" / "prob.tif") as p:
        assert p.tags()["threshold"] == "0.6" and p.tags()["model_version"] == version
    assert [e["scene"] for e in _events(dr3.run_id)] == ["d_village"]
