"""``satseg drift``: one JSON object, exit 0 with or without drift, non-zero only for errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from monitor_synth import make_scenes
from typer.testing import CliRunner

from satseg.cli import app
from satseg.monitoring.features import feature_names
from satseg.synthetic import SceneStyle

SATSEG = str(Path(sys.executable).parent / "satseg")


def test_drift_json_from_a_real_process(msettings, reference_dir: Path, tmp_path: Path) -> None:
    a, b = make_scenes(tmp_path / "cur", 2, 800, SceneStyle(blur=2))
    r = subprocess.run(
        [SATSEG, "drift", "--reference", str(reference_dir), "--current", str(a), str(b), "--json"],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)  # stdout is exactly one JSON object
    assert doc["drift_detected"] is True
    assert set(doc["features"]) == set(feature_names())
    assert doc["features"]["gradient_mean"]["drifted"] is True
    assert {"statistic", "p_value", "drifted"} == set(doc["features"]["gradient_mean"])
    assert 0 < doc["share_drifted"] < 0.5 and Path(doc["report"]).is_file()
    assert doc["mlflow_run_id"]


def test_no_drift_still_exits_zero(msettings, reference_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "same"
    make_scenes(folder, 2, 900)
    r = CliRunner().invoke(
        app, ["drift", "-r", str(reference_dir), "-c", str(folder), "--json", "--no-mlflow"]
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["drift_detected"] is False and doc["share_drifted"] <= 0.05
    assert doc["mlflow_run_id"] is None
    human = CliRunner().invoke(
        app, ["drift", "-r", str(reference_dir), "-c", str(folder), "--no-mlflow"]
    )
    assert human.exit_code == 0 and "no drift" in human.stdout


def test_errors_exit_non_zero_with_a_clear_message(
    msettings, reference_dir: Path, tmp_path: Path
) -> None:
    good = make_scenes(tmp_path, 1, 1)[0]
    run = CliRunner().invoke
    r = run(app, ["drift", "-r", "demo-v99", "-c", str(good), "--json", "--no-mlflow"])
    assert r.exit_code == 2
    assert "unknown dataset tag 'demo-v99'" in r.stderr
    assert "unknown dataset tag" in json.loads(r.stdout)["error"]

    corrupt = tmp_path / "broken.tif"
    corrupt.write_bytes(b"II*\x00" + b"\x00" * 64)
    r = run(app, ["drift", "-r", str(reference_dir), "-c", str(good), str(corrupt), "--no-mlflow"])
    assert r.exit_code == 2 and "broken.tif: not a readable image" in r.stderr
    assert corrupt.read_bytes() == b"II*\x00" + b"\x00" * 64  # input left as it was

    r = run(app, ["drift", "-r", str(reference_dir), "-c", str(tmp_path / "nope.tif")])
    assert r.exit_code == 2 and "nope.tif: no such file or directory" in r.stderr

    tiny = make_scenes(tmp_path / "tiny", 1, 2, size=128)[0]  # one window < min_samples
    r = run(app, ["drift", "-r", str(reference_dir), "-c", str(tiny), "--no-mlflow"])
    assert r.exit_code == 2 and "only 1 feature windows" in r.stderr

    bad_ref = tmp_path / "features.csv"
    bad_ref.write_text("split,brightness\ntrain,1\n")
    r = run(app, ["drift", "-r", str(bad_ref), "-c", str(good), "--no-mlflow"])
    assert r.exit_code == 2 and "lacks columns r_mean" in r.stderr
    assert not any(msettings.reports.rglob("*.html"))  # nothing written for failed checks
