"""``satseg train`` and ``satseg model list|promote|rollback`` against a real MLflow store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from satseg.classes import binary_json
from satseg.cli import app
from satseg.synthetic import SceneStyle
from satseg.training.sample import write_sample_dataset

runner = CliRunner()
REPO = Path(__file__).resolve().parents[2]


def _json(r: Any) -> Any:
    """The command's JSON document: the last block starting at column 0 with { or [."""
    lines = r.stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line[:1] in "{[" and line.strip() in "{[")
    return json.loads("\n".join(lines[start:]))


def _satseg(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command in its own process (training imports Airflow, TF, MLflow)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "satseg", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_model_commands_on_an_empty_registry_fail_clearly(settings: Any) -> None:
    r = runner.invoke(app, ["model", "list"])
    assert r.exit_code == 0 and "no registered model versions yet" in r.output
    r = runner.invoke(app, ["model", "rollback"])
    assert r.exit_code == 2 and "nothing to roll back to" in r.output
    r = runner.invoke(app, ["model", "promote", "3"])
    assert r.exit_code == 2 and "no version or alias '3'" in r.output


def test_train_without_data_fails_clearly(settings: Any) -> None:
    r = runner.invoke(app, ["train"])
    assert r.exit_code == 2 and "no processed dataset" in r.output
    r = runner.invoke(app, ["train", "--dataset", "nope"])
    assert r.exit_code == 2 and "no processed dataset 'nope'" in r.output


@pytest.mark.slow
def test_train_promote_rollback(settings: Any) -> None:
    write_sample_dataset(
        settings.processed / "tiny",
        dataset="tiny",
        tag="tiny-v1",
        style=SceneStyle(building_density=2.0),
    )
    args = ["train", "--dataset", "tiny", "--epochs", "1", "--batch-size", "4"]
    r = _satseg(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    first = _json(r)
    assert first["trained"] and first["promoted"] and first["version"] == "1"
    assert "epoch 1/1" in r.stderr  # progress is logged, stdout carries the result

    r = _satseg(*args)  # same data, no --force: nothing to do
    assert r.returncode == 0, r.stderr[-3000:]
    assert _json(r)["trained"] is False

    r = _satseg(*args, "--force", "--arch", "unet", "--learning-rate", "1e-9")
    assert r.returncode == 0, r.stderr[-3000:]
    second = _json(r)
    assert second["version"] == "2" and second["champion_version"] == "1"
    f1_ok = second["challenger_object_f1"] >= second["champion_object_f1"] - 0.02
    better = second["challenger_iou"] > second["champion_iou"]
    assert second["promoted"] is (better and f1_ok) and second["metric"] == "iou"

    r = runner.invoke(app, ["model", "promote", "2"])  # a person overrides the metric rule
    assert r.exit_code == 0, r.output
    assert _json(r)["aliases"] == ["champion"]
    r = runner.invoke(app, ["model", "list", "--json"])
    listed = {m["version"]: m for m in _json(r)}
    assert listed["2"]["aliases"] == ["champion"] and listed["1"]["aliases"] == []
    assert listed["1"]["dataset_tag"] == "tiny-v1" and "val_iou" in listed["1"]["metrics"]
    assert {"val_object_f1", "val_boundary_iou"} <= set(listed["1"]["metrics"])
    assert 0.3 <= listed["1"]["postprocess"]["threshold"] <= 0.8  # tuned on val, stored
    assert listed["1"]["classes"] == binary_json()  # every run carries its class table

    r = runner.invoke(app, ["model", "rollback"])
    assert r.exit_code == 0, r.output
    assert _json(r)["version"] == "1"
    r = runner.invoke(app, ["model", "list"])
    assert "v1    champion" in r.output
