"""satseg_monitor under real Airflow (dag.test): drift -> Asset + alerts; no drift; failure alerts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.airflow_helpers import events_of, load_dag, load_module, run_dag, task_states

TESTS = Path(__file__).resolve().parents[1]
sinks_mod = load_module("alert_sinks", TESTS / "alerting" / "alert_sinks.py")
synth = load_module("monitor_synth", TESTS / "monitoring" / "monitor_synth.py")


@pytest.fixture
def env(settings, airflow_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Tiny-scene params, a reference dataset, alert sinks as Airflow connections."""
    from satseg.config import get_settings, reset_settings_cache

    monkeypatch.setenv("SATSEG_PARAMS_FILE", str(synth.write_params(tmp_path / "params.yaml")))
    reset_settings_cache()
    s = get_settings()
    ref = synth.write_reference(s.processed / "demo", tmp_path / "ref-scenes")
    with sinks_mod.running_sinks() as sinks:
        sinks_mod.configure(monkeypatch, sinks)
        yield type("Env", (), {"settings": get_settings(), "ref": str(ref), "sinks": sinks})


@pytest.fixture
def monitor_dag() -> Any:
    """Parsed afresh for each test: dag.test(run_conf=...) leaves the conf in the DAG's params."""
    return load_dag("satseg_monitor")


def test_dag_shape_and_schedule(monitor_dag: Any) -> None:
    assert set(monitor_dag.task_ids) == {
        "plan",
        "data_drift",
        "performance",
        "drift_found",
        "emit_drift",
        "commit",
    }
    schedule = monitor_dag.timetable  # cron OR any of the Assets
    assert schedule.timetable.expression == "0 6 * * *"
    assert str(schedule.timetable.timezone) == "UTC"
    assert [a.name for a in schedule.asset_condition.objects] == [
        "satseg_predictions",
        "satseg_processed",
    ]
    emit = monitor_dag.get_task("emit_drift")
    assert [o.name for o in emit.outlets] == ["satseg_drift"]
    assert monitor_dag.get_task("plan").on_failure_callback  # alerts on every task


@pytest.mark.slow
def test_shifted_imagery_emits_drift_and_alerts(env: Any, monitor_dag: Any) -> None:
    from satseg.synthetic import SceneStyle

    s = env.settings
    synth.make_scenes(s.raw / "demo", 2, 300, SceneStyle(brightness=40, contrast=0.7))
    dr = run_dag(monitor_dag, {"reference": env.ref}, expect="success")
    assert task_states(dr)["emit_drift"] == "success"
    (extra,) = events_of("satseg_drift", dr.run_id)
    assert extra["reason"].startswith("data drift: ")
    assert extra["kind"] == ["data"]
    report = Path(extra["report"])
    assert report.is_file() and report.parent.parent == s.reports
    assert "brightness" in report.read_text()

    env.sinks.wait(mails=1, posts=1)
    assert len(env.sinks.mails) == 1 and len(env.sinks.posts) == 1
    mail = env.sinks.mails[0]
    assert mail["Subject"].startswith("[satseg] drift detected: satseg_monitor.emit_drift")
    body = env.sinks.bodies()[0]
    assert report.as_uri() in body and f"{sinks_mod.UI}/dags/satseg_monitor/runs/" in body
    assert "data drift: " in env.sinks.posts[0]["json"]["text"]

    # The checked scenes are remembered: the next run has nothing new and emits nothing.
    dr2 = monitor_dag.test(run_conf={"reference": env.ref})
    states = task_states(dr2)
    assert str(dr2.state) == "success" and states["emit_drift"] == "skipped", states
    assert events_of("satseg_drift", dr2.run_id) == []
    assert len(env.sinks.mails) == 1


@pytest.mark.slow
def test_same_distribution_no_drift_and_bad_input_alerts(
    env: Any, monitor_dag: Any, tmp_path: Path
) -> None:
    scenes = tmp_path / "same"
    synth.make_scenes(scenes, 2, 400)
    dr = monitor_dag.test(run_conf={"reference": env.ref, "current": [str(scenes)]})
    states = task_states(dr)
    assert str(dr.state) == "success", states
    assert states["drift_found"] == "success" and states["emit_drift"] == "skipped"
    assert events_of("satseg_drift", dr.run_id) == []
    assert env.sinks.mails == [] and env.sinks.posts == []

    # An unknown dataset tag fails the plan task at once (no retries) and alerts.
    bad = monitor_dag.test(run_conf={"reference": "demo-v404"})
    states = task_states(bad)
    assert str(bad.state) == "failed"
    assert states["plan"] == "failed" and states["data_drift"] == "upstream_failed"
    env.sinks.wait(mails=1, posts=1)
    mail = env.sinks.mails[0]
    assert mail["Subject"] == f"[satseg] task failed: satseg_monitor.plan (run {bad.run_id})"
    body = env.sinks.bodies()[0]
    assert "unknown dataset tag &#x27;demo-v404&#x27;" in body
    assert "/dags/satseg_monitor/runs/" in body and "/tasks/plan" in body
    assert "unknown dataset tag 'demo-v404'" in env.sinks.posts[0]["json"]["text"]


@pytest.mark.slow
def test_champion_worse_on_new_labelled_data_is_concept_drift(
    env: Any, monitor_dag: Any, tmp_path: Path
) -> None:
    """Real DVC versions + MLflow champion: the roof model fails on new desert labels."""
    from satseg.monitoring.performance import load_history
    from satseg.synthetic import SceneStyle

    s = env.settings
    urban = SceneStyle(building_density=2.0)
    desert = SceneStyle(building_density=2.0, land_cover="desert")
    v1 = synth.version_sample_dataset(s, "demo", 1, urban, tmp_path / "u")
    version = synth.register_champion(s, v1, val_iou=1.0)
    v2 = synth.version_sample_dataset(s, "demo", 2, desert, tmp_path / "d")
    synth.make_scenes(s.raw / "demo", 2, 600, urban)  # production imagery still looks like v1

    dr = monitor_dag.test()  # no params: champion's dataset vs new imagery + new labels
    states = task_states(dr)
    assert str(dr.state) == "success" and states["emit_drift"] == "success", states
    (extra,) = events_of("satseg_drift", dr.run_id)
    assert extra["kind"] == ["concept"], extra["reason"]
    assert (
        f"champion v{version} IoU 0.1" in extra["reason"] and f"on {v2} vs 1.000" in extra["reason"]
    )
    assert Path(extra["report"]).name == "performance.png" and Path(extra["report"]).is_file()
    (row,) = load_history(s.state / "performance.csv")
    assert (row["model_version"], row["dataset_tag"]) == (version, v2) and row["iou"] < 0.3
    # The reference was v1 (the champion's data), read from a copy: the live dataset stays v2.
    assert (s.processed / ".versions" / v1 / "features.csv").is_file()
    assert json.loads((s.processed / "demo" / "manifest.json").read_text())["tag"] == v2
    env.sinks.wait(mails=1)
    assert "concept drift" in env.sinks.bodies()[0]

    # Same champion, nothing new: nothing re-evaluated, no drift.
    again = monitor_dag.test()
    assert (
        task_states(again)["emit_drift"] == "skipped"
        and len(load_history(s.state / "performance.csv")) == 1
    )
