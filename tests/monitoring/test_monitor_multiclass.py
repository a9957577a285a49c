"""A multi-class champion re-evaluated on new labels: per-class history, class concept drift."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from monitor_synth import (
    CLASS_TABLE,
    register_champion,
    register_class_champion,
    version_sample_dataset,
    write_class_dataset,
)

from satseg.monitoring import monitor
from satseg.monitoring.performance import load_history, row_classes
from satseg.synthetic import SceneStyle

T0 = datetime(2026, 3, 1, 6, tzinfo=UTC)


def _version(settings, dataset: str, n: int, **kw) -> str:
    from satseg.versioning import dataset_dir, version_dataset

    write_class_dataset(
        dataset_dir(settings, dataset), dataset=dataset, tag=f"{dataset}-v{n}", **kw
    )
    v = version_dataset(settings, dataset)
    assert v.tag == f"{dataset}-v{n}"
    return v.tag


@pytest.mark.slow
def test_multiclass_champion_is_scored_per_class_and_a_class_drop_is_drift(msettings) -> None:
    tag1 = _version(msettings, "landcover", 1)
    ious = {"building": 0.97, "vegetation": 0.96, "water": 0.95}
    version = register_class_champion(msettings, tag1, ious)

    first = monitor.evaluate_champion(msettings, when=T0)
    assert first["status"] == "evaluated" and not first["concept_drift"]
    [ev] = first["evaluations"]
    assert ev["baseline"] == "training" and ev["baseline_iou"] == pytest.approx(0.96)
    assert {c["class"]: c["baseline_iou"] for c in ev["classes"]} == ious
    [row] = load_history(msettings.state / "performance.csv")
    assert row["model_version"] == version and row_classes(row) == [
        c["name"] for c in CLASS_TABLE["classes"]
    ]
    # argmax of the colour model is exactly right; the grey unlabeled rows are ignored
    assert row["miou"] == row["iou"] == 1.0 and row["iou_water"] == 1.0

    # New labels: the water turned murky (green-blue) and the model calls it vegetation.
    _version(msettings, "landcover", 2, water=(20, 150, 140))
    later = monitor.evaluate_champion(msettings, when=T0 + timedelta(days=1))
    assert later["concept_drift"]
    assert later["drifted_classes"] == ["vegetation", "water"]  # water lost, vegetation diluted
    rows = load_history(msettings.state / "performance.csv")
    assert [r["dataset_tag"] for r in rows] == [tag1, "landcover-v2"]
    assert rows[1]["iou_water"] == 0.0 and rows[1]["iou_building"] == 1.0
    assert "IoU of class 'water' 0.000 on landcover-v2 vs 0.950 (training)" in later["reason"]
    assert "class 'building'" not in later["reason"]
    assert (msettings.reports / "2026-03-02" / "performance.png").is_file()
    event = monitor.drift_event({"drift_detected": False}, later)
    assert event is not None and event["drifted_classes"] == ["vegetation", "water"]
    # Nothing new: nothing is evaluated again.
    assert monitor.evaluate_champion(msettings, when=T0 + timedelta(days=2))["status"] == (
        "up_to_date"
    )


@pytest.mark.slow
def test_a_dataset_with_other_classes_is_skipped_with_the_reason(msettings, tmp_path) -> None:
    binary_tag = version_sample_dataset(msettings, "city", 1, SceneStyle(), tmp_path / "s")
    register_class_champion(
        msettings, binary_tag, {"building": 0.9, "vegetation": 0.9, "water": 0.9}
    )
    out = monitor.evaluate_champion(msettings, when=T0)
    assert out["status"] == "up_to_date" and not out["concept_drift"]
    [skip] = out["skipped"]
    assert skip["dataset_tag"] == binary_tag and "multi-class model" in skip["reason"]
    assert "binary dataset" in skip["reason"]
    # and a binary champion is not scored on a multi-class dataset either
    _version(msettings, "landcover", 1)
    register_champion(msettings, binary_tag, 0.9)
    out = monitor.evaluate_champion(msettings, when=T0)
    assert [e["dataset_tag"] for e in out["evaluations"]] == [binary_tag]
    assert [s["dataset_tag"] for s in out["skipped"]] == ["landcover-v1"]
    assert "binary model" in out["skipped"][0]["reason"]
