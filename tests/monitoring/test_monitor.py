"""The monitor's steps: what counts as new imagery, when it is remembered, the drift decision."""

from __future__ import annotations

from pathlib import Path

import pytest
from monitor_synth import make_scenes

from satseg.monitoring import MonitorError, monitor
from satseg.synthetic import SceneStyle


def test_new_imagery_is_checked_once_and_failed_runs_forget_nothing(
    msettings, reference_dir: Path
) -> None:
    ref = str(reference_dir)
    first = make_scenes(msettings.raw / "demo", 2, 40)
    p1 = monitor.plan(msettings, ref, label="run 1")
    assert p1["label"] == "run_1" and not p1["explicit"] and p1["skip"] is None
    assert p1["current"] == [str(p.resolve()) for p in first]
    # A run that did not check (insufficient / skipped) commits nothing.
    assert monitor.commit(msettings, p1, {"status": "insufficient"}) == {"committed": 0}
    assert monitor.plan(msettings, ref, label="run 2")["current"] == p1["current"]
    assert monitor.commit(msettings, p1, {"status": "checked"}) == {"committed": 2}
    # Re-running run 1 sees the same imagery (idempotent); a later run sees only new scenes.
    assert monitor.plan(msettings, ref, label="run_1")["current"] == p1["current"]
    p2 = monitor.plan(msettings, ref, label="run 2")
    assert p2["skip"] == "no_new_imagery" and p2["current"] == []
    later = make_scenes(msettings.raw / "predict-done" / "2026-01-02", 1, 60)
    assert monitor.plan(msettings, ref, label="run 2")["current"] == [str(later[0].resolve())]
    # A rewritten scene is new imagery again.
    first[0].write_bytes(first[0].read_bytes() + b"\0")
    assert str(first[0].resolve()) in monitor.plan(msettings, ref, label="run 3")["current"]


def test_skips_and_errors(msettings, reference_dir: Path, tmp_path: Path) -> None:
    make_scenes(msettings.raw / "demo", 1, 1)
    p = monitor.plan(msettings, None, label="r")
    assert p["reference"] is None and p["skip"] == "no_reference"
    assert monitor.check_data_drift(msettings, p) == {
        "status": "no_reference",
        "drift_detected": False,
    }
    with pytest.raises(MonitorError, match="unknown dataset tag 'demo-v7'"):
        monitor.plan(msettings, "demo-v7", label="r")
    with pytest.raises(MonitorError, match="no such file or directory"):
        monitor.plan(msettings, str(reference_dir), [str(tmp_path / "missing")], label="r")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MonitorError, match="no imagery found"):
        monitor.plan(msettings, str(reference_dir), [str(empty)], label="r")


def test_insufficient_imagery_waits_unless_explicit(msettings, reference_dir: Path) -> None:
    tiny = make_scenes(msettings.raw / "demo", 1, 5, size=128)  # a single window
    auto = monitor.plan(msettings, str(reference_dir), label="a")
    res = monitor.check_data_drift(msettings, auto)
    assert res["status"] == "insufficient" and "only 1 feature windows" in res["reason"]
    explicit = monitor.plan(msettings, str(reference_dir), [str(tiny[0])], label="b")
    with pytest.raises(monitor.InsufficientData):
        monitor.check_data_drift(msettings, explicit)


def test_drift_event_reasons() -> None:
    assert monitor.drift_event({"drift_detected": False}, {"concept_drift": False}) is None
    data = {
        "drift_detected": True,
        "n_drifted": 5,
        "share_drifted": 5 / 22,
        "reference": "demo-v1",
        "report": "/r/drift.html",
    }
    perf = {"concept_drift": True, "reason": "champion v2 IoU 0.4", "plot": "/r/performance.png"}
    ev = monitor.drift_event(data, perf)
    assert ev is not None and ev["kind"] == ["data", "concept"]
    assert ev["reason"].startswith("data drift: 5 of 22 image features drifted (share 0.23)")
    assert "concept drift: champion v2 IoU 0.4" in ev["reason"]
    assert ev["report"] == "/r/drift.html" and ev["plot"] == "/r/performance.png"
    only_concept = monitor.drift_event({**data, "drift_detected": False}, perf)
    assert only_concept is not None and only_concept["report"] == "/r/performance.png"
    assert only_concept["data_report"] == "/r/drift.html" and only_concept["kind"] == ["concept"]


def test_no_champion_means_no_evaluation(msettings) -> None:
    assert monitor.evaluate_champion(msettings) == {"status": "no_champion", "concept_drift": False}


def test_drift_rule_uses_params(msettings, reference_dir: Path, tmp_path: Path) -> None:
    """A shift of brightness 12 drifts a few features: the share threshold decides."""
    scenes = make_scenes(tmp_path / "c", 2, 70, SceneStyle(brightness=12))
    doc = monitor.run_drift(msettings, str(reference_dir), scenes, label="t", log_mlflow=False)
    assert doc["drift_share"] == 0.05 and doc["correction"] == "bonferroni"
    assert doc["drift_detected"] == (doc["share_drifted"] > 0.05)
    assert doc["n_current"] == 32  # monitor.sample_patches of the test params


def test_automatic_runs_skip_an_unreadable_scene(msettings, reference_dir: Path) -> None:
    make_scenes(msettings.raw / "demo", 2, 80)
    bad = msettings.raw / "demo" / "zz_truncated.tif"
    bad.write_bytes(b"II*\x00" + b"\x00" * 32)
    planned = monitor.plan(msettings, str(reference_dir), label="auto")
    assert len(planned["current"]) == 3
    res = monitor.check_data_drift(msettings, planned)
    assert res["status"] == "checked" and res["drift_detected"] is False
    (why,) = res["skipped"]
    assert "zz_truncated.tif: not a readable image" in why
    explicit = monitor.plan(msettings, str(reference_dir), [str(bad)], label="explicit")
    with pytest.raises(MonitorError, match=r"zz_truncated\.tif: not a readable image"):
        monitor.check_data_drift(msettings, explicit)
