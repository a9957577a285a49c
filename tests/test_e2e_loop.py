"""The whole loop through the real DAGs (dag.test): ingest -> retrain -> predict on shifted
imagery -> monitor -> drift -> satseg_retrain queued by the drift Asset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from satseg.synthetic import SceneStyle, make_png_pair, make_scene

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _dag(dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / f"{dag_id}.py"))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


def _states(dr: Any) -> dict[str, str]:
    return {f"{t.task_id}[{t.map_index}]": str(t.state) for t in dr.get_task_instances()}


def _events(asset_name: str, run_id: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == asset_name, AssetEvent.source_run_id == run_id)
        ).all()
        return [dict(e.extra) for e in rows]


def _xcom(dr: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        q = XComModel.get_many(
            run_id=dr.run_id, key="return_value", dag_ids=dr.dag_id, task_ids=task_id
        )
        row = session.scalars(q).first()
        return None if row is None else XComModel.deserialize_value(row)


def _unpause(dag_id: str) -> None:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=False))


def _queued_for(dag_id: str) -> int:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(AssetDagRunQueue)
                .where(AssetDagRunQueue.target_dag_id == dag_id)
            )
            or 0
        )


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

    ingest = _dag("satseg_ingest")
    retrain = _dag("satseg_retrain")
    predict = _dag("satseg_predict")
    monitor = _dag("satseg_monitor")

    dr = ingest.test()
    assert str(dr.state) == "success", _states(dr)
    from satseg.versioning import latest_version

    version = latest_version(s, "city")
    assert version is not None and version.tag == "city-v1"
    assert not list(s.quarantine.rglob("*.error.json"))

    # 2. first model: trained, registered, champion
    dr = retrain.test(run_conf={"dataset": "city", "arch": "linknet", "epochs": 2})
    assert str(dr.state) == "success", _states(dr)
    from satseg.registry import champion

    champ = champion(s)
    assert champ is not None and champ.dataset_tag == "city-v1"

    # 3. a monitor run right after training: the new labelled imagery looks like the
    #    training data, so no drift; it also marks that imagery as seen
    dr = monitor.test()
    assert str(dr.state) == "success", _states(dr)
    assert not _events("satseg_drift", dr.run_id)
    monitor = _dag("satseg_monitor")  # fresh parse: dag.test() keeps state in the object

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
    dr = predict.test()
    assert str(dr.state) == "success", _states(dr)
    for i in range(2):
        out = s.predictions / f"desert{i}"
        assert (out / "mask.tif").is_file() and (out / "mask.geojson").is_file()

    # 5. the monitor sees the drift and emits satseg://drift, which schedules retraining
    _unpause("satseg_retrain")
    before = _queued_for("satseg_retrain")
    dr = monitor.test()
    assert str(dr.state) == "success", _states(dr)
    events = _events("satseg_drift", dr.run_id)
    assert events, f"no satseg://drift event: {_xcom(dr, 'data_drift')} {_xcom(dr, 'plan')}"
    assert events[0].get("reason") and Path(events[0]["report"]).exists()
    assert list(s.reports.rglob("*.html"))
    assert _queued_for("satseg_retrain") > before, "drift did not queue satseg_retrain"
