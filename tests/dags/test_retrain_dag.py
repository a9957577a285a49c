"""satseg_retrain under real Airflow (dag.test) with a real MLflow file store.

One module-scoped story, each step checked by its own test:
1. sweep over the three archs (1 epoch each) -> three runs, best registered, first champion,
   satseg://model event;
2. the same data again without ``force`` -> short-circuit, nothing trained;
3. ``force`` with a margin no challenger can reach -> version 2 stays challenger, no event.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from satseg.synthetic import SceneStyle
from satseg.training.sample import write_sample_dataset
from tests.airflow_helpers import events_of, load_dag, task_states, xcom

pytestmark = pytest.mark.slow  # three dag.test() runs, five trainings: about 90 s on 2 cores


@pytest.fixture(scope="module")
def retrain_dag() -> Any:
    return load_dag("satseg_retrain")


@pytest.fixture(scope="module")
def story(retrain_dag: Any, airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Run the three DAG runs once in a fresh SATSEG_HOME; tests inspect the results."""
    from satseg.config import get_settings, reset_settings_cache

    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("retrain") / "home"
    mp.setenv("SATSEG_HOME", str(home))
    reset_settings_cache()
    s = get_settings()
    s.ensure_dirs()
    write_sample_dataset(
        s.processed / "tiny",
        dataset="tiny",
        tag="tiny-v1",
        n_train=8,
        n_val=4,
        style=SceneStyle(building_density=2.0),
    )
    # Every conf names all it changes: dag.test() keeps the previous run's conf in dag.params.
    conf = {"epochs": 1, "batch_size": 4, "force": False, "sweep": None}
    sweep = {"arch": ["linknet", "unet", "manet"]}
    first = retrain_dag.test(run_conf={**conf, "sweep": sweep})
    again = retrain_dag.test(run_conf=conf)
    mp.setenv("SATSEG_PROMOTION_MARGIN", "1.0")  # IoU can never beat champion + 1.0
    reset_settings_cache()
    forced = retrain_dag.test(run_conf={**conf, "force": True})
    yield type(
        "Story", (), {"settings": get_settings(), "first": first, "again": again, "forced": forced}
    )
    mp.undo()
    reset_settings_cache()


def test_dag_shape_schedule_and_params(retrain_dag: Any) -> None:
    assert set(retrain_dag.task_ids) == {
        "resolve",
        "plan",
        "train",
        "evaluate",
        "register",
        "compare",
        "approve",
        "promote",
        "notify",
    }
    schedule = retrain_dag.timetable  # nightly cron OR new data OR drift
    assert schedule.timetable.expression == "0 2 * * *"
    assert str(schedule.timetable.timezone) == "UTC"
    assert sorted(a.name for a in schedule.asset_condition.objects) == [
        "satseg_drift",
        "satseg_processed",
    ]
    assert retrain_dag.params["arch"] in ("linknet", "unet", "manet")
    assert retrain_dag.get_task("train").max_active_tis_per_dag == 1


def test_first_run_trains_each_arch_and_promotes_the_best(story: Any) -> None:
    import mlflow

    from satseg.registry import champion, list_models
    from satseg.registry.tracking import setup

    dr = story.first
    states = task_states(dr)
    assert states.pop("approve") == "skipped"  # promotion: auto asks nobody
    assert all(v == "success" for v in states.values()), states
    assert {"train[0]", "train[1]", "train[2]"} <= set(states)
    setup(story.settings)
    runs = [
        r
        for r in mlflow.search_runs(output_format="list")
        if r.data.tags["satseg_key"].startswith(dr.run_id)
    ]
    assert sorted(r.data.params["arch"] for r in runs) == ["linknet", "manet", "unet"]
    client = mlflow.MlflowClient()
    for r in runs:
        assert r.data.tags["dataset_tag"] == "tiny-v1"
        assert len(r.data.tags["dataset_md5"]) == 32 and r.data.tags["code_version"]
        # one epoch -> step 0 only (MLflow 3 lists it again for the logged model)
        assert {m.step for m in client.get_metric_history(r.info.run_id, "val_iou")} == {0}
        assert {"final_val_iou", "final_val_dice", "final_val_precision"} <= set(r.data.metrics)
        arts = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert "overlays" in arts and "params.yaml" in arts
        assert len(client.list_artifacts(r.info.run_id, "overlays")) == 4
    best = max(runs, key=lambda r: r.data.metrics["final_val_iou"])
    champ = champion(story.settings)
    assert champ is not None and champ.version == "1" and champ.run_id == best.info.run_id
    assert champ.dataset_tag == "tiny-v1"
    assert champ.metrics["val_iou"] == pytest.approx(best.data.metrics["final_val_iou"])
    decision = xcom(dr, "promote")
    assert decision["promoted"] is True and decision["reason"] == "first model: no champion yet"
    assert "promoted to champion" in xcom(dr, "notify")
    events = events_of("satseg_model", dr.run_id)
    assert len(events) == 1 and events[0]["version"] == "1"
    v1 = next(r for r in list_models(story.settings) if r.version == "1")
    assert v1.run_id == best.info.run_id  # the best of the sweep was registered


def test_same_data_short_circuits(story: Any) -> None:
    import mlflow

    states = task_states(story.again)
    assert states["resolve"] == "success"
    assert all(v == "skipped" for k, v in states.items() if k != "resolve"), states
    assert events_of("satseg_model", story.again.run_id) == []
    mlflow.set_tracking_uri(story.settings.tracking_uri)
    assert len(mlflow.search_runs(output_format="list")) == 4  # 3 first + 1 forced, none here


def test_forced_run_not_better_by_margin_stays_challenger(story: Any) -> None:
    from satseg.registry import champion, list_models

    dr = story.forced
    states = task_states(dr)
    assert states.pop("approve") == "skipped"  # not better: nothing to approve
    assert all(v == "success" for v in states.values()), states
    decision = xcom(dr, "promote")
    assert decision["promoted"] is False
    assert decision["version"] == "2" and decision["champion_version"] == "1"
    assert decision["margin"] == 1.0 and "does not beat champion" in decision["reason"]
    assert decision["champion_iou"] is not None  # champion re-evaluated on this val split
    refs = {r.version: r for r in list_models(story.settings)}
    assert refs["2"].aliases == ["challenger"] and refs["1"].aliases == ["champion"]
    assert champion(story.settings).version == "1"
    assert events_of("satseg_model", dr.run_id) == []
    assert "kept as challenger" in xcom(dr, "notify")
    json.dumps(decision)  # a notifier can send it as it is
