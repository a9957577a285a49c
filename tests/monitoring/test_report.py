"""One drift check end to end: Evidently HTML with the features, JSON summary, MLflow artifacts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from monitor_synth import make_scenes

from satseg.monitoring.checks import run_drift
from satseg.monitoring.features import feature_names
from satseg.synthetic import SceneStyle

WHEN = datetime(2026, 4, 2, 6, 0, tzinfo=UTC)


def test_report_summary_and_mlflow(msettings, reference_dir: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    scenes = make_scenes(tmp_path / "cur", 2, 700, SceneStyle(brightness=35))
    doc = run_drift(msettings, str(reference_dir), scenes, label="manual__x", when=WHEN)
    assert doc["drift_detected"] and doc["n_current"] == 32 and doc["n_reference"] == 64

    day = msettings.reports / "2026-04-02"
    html = Path(doc["report"])
    assert html == day / "drift-manual__x.html"
    text = html.read_text()
    assert all(f'"{n}"' in text for n in feature_names())  # every feature is in the report
    summary = json.loads(Path(doc["summary"]).read_text())
    assert summary["drift_detected"] is True
    assert summary["features"]["brightness"]["drifted"] is True
    assert summary["evidently"]["share"] > 0.05  # Evidently agrees with the KS decision
    assert summary["current"] == [str(p) for p in scenes]
    index = (day / "index.html").read_text()
    assert "drift-manual__x.html" in index

    client = MlflowClient(msettings.tracking_uri)
    run = client.get_run(doc["mlflow_run_id"])
    assert run.data.metrics["share_drifted"] == doc["share_drifted"]
    assert run.data.tags["reference"] == str(reference_dir)
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "monitoring")}
    assert logged == {
        "monitoring/drift-manual__x.html",
        "monitoring/drift-manual__x.json",
        "monitoring/drift-manual__x-current.csv",
    }
    local = client.download_artifacts(run.info.run_id, "monitoring/drift-manual__x.html", tmp_path)
    assert Path(local).read_text() == text

    # Re-running the same check is idempotent: same files, same MLflow run, same verdict.
    again = run_drift(msettings, str(reference_dir), scenes, label="manual__x", when=WHEN)
    assert again["mlflow_run_id"] == doc["mlflow_run_id"]
    assert again["features"] == doc["features"]
    assert sorted(p.name for p in day.iterdir()) == [
        "drift-manual__x-current.csv",
        "drift-manual__x.html",
        "drift-manual__x.json",
        "index.html",
    ]
