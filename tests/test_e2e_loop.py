"""The whole loop through the real DAGs (dag.test): ingest -> retrain -> predict on shifted
imagery -> monitor -> drift -> satseg_retrain queued by the drift Asset."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from satseg.synthetic import SceneStyle, make_png_pair, make_scene
from tests.airflow_helpers import events_of, load_dag, queued_for, run_dag, unpause, xcom

pytestmark = pytest.mark.slow


def test_ingest_retrain_predict_monitor_drift_retrain(
    settings, airflow_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from satseg.config import get_settings, reset_settings_cache

    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "preprocess": {"patch_size": 128, "stride": 128, "oversample": 1},
                "train": {"epochs": 2, "batch_size": 8, "patience": 2},
                "predict": {"tile": 128, "overlap": 32},
                "monitor": {"sample_patches": 32, "min_samples": 8},
            }
        )
    )
    monkeypatch.setenv("SATSEG_PARAMS_FILE", str(params))
    monkeypatch.setenv("SATSEG_ONNX_ARTIFACTS", "true")  # the whole loop, as deployed
    reset_settings_cache()
    s = get_settings()
    s.ensure_dirs()

    # 1. labelled imagery in, in the three accepted formats
    inbox = s.inbox / "city"
    for i in range(3):
        make_scene(inbox, f"scene{i}", 384, 384, seed=i, geojson=False)
    g = make_scene(tmp_path / "gj", "scene_gj", 384, 384, seed=5, labelme=False)
    for p in (g.image, g.geojson):
        assert p is not None
        p.rename(inbox / p.name)
    make_png_pair(inbox, "seedstyle", 384, 384, seed=6)
    for p in list(inbox.iterdir()):
        (p.parent / f"{p.name}.done").touch()

    ingest = load_dag("satseg_ingest")
    retrain = load_dag("satseg_retrain")
    predict = load_dag("satseg_predict")
    monitor = load_dag("satseg_monitor")

    dr = run_dag(ingest, expect="success")
    from satseg.versioning import latest_version

    version = latest_version(s, "city")
    assert version is not None and version.tag == "city-v1"
    assert not list(s.quarantine.rglob("*.error.json"))

    # 2. first model: trained, registered, champion
    dr = run_dag(retrain, {"dataset": "city", "arch": "linknet", "epochs": 2}, expect="success")
    from satseg.registry import champion

    champ = champion(s)
    assert champ is not None and champ.dataset_tag == "city-v1"

    # 3. a monitor run right after training: the new labelled imagery looks like the
    #    training data, so no drift; it also marks that imagery as seen
    dr = run_dag(monitor, expect="success")
    assert not events_of("satseg_drift", dr.run_id)
    monitor = load_dag("satseg_monitor")  # fresh parse: dag.test() keeps state in the object

    # 4. new imagery that looks different (desert, brighter) arrives for prediction
    for i in range(2):
        make_scene(
            s.predict_inbox,
            f"desert{i}",
            512,
            512,
            seed=20 + i,
            style=SceneStyle(land_cover="desert", brightness=40, contrast=1.3),
            labelme=False,
            geojson=False,
        )
        (s.predict_inbox / f"desert{i}.tif.done").touch()
    dr = run_dag(predict, expect="success")
    for i in range(2):
        out = s.predictions / f"desert{i}"
        assert (out / "mask.tif").is_file() and (out / "mask.geojson").is_file()

    # 5. the monitor sees the drift and emits satseg://drift, which schedules retraining
    unpause("satseg_retrain")
    before = queued_for("satseg_retrain")
    dr = run_dag(monitor, expect="success")
    events = events_of("satseg_drift", dr.run_id)
    assert events, f"no satseg://drift event: {xcom(dr, 'data_drift')} {xcom(dr, 'plan')}"
    assert events[0].get("reason") and Path(events[0]["report"]).exists()
    assert list(s.reports.rglob("*.html"))
    assert queued_for("satseg_retrain") > before, "drift did not queue satseg_retrain"
