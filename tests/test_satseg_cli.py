from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import rasterio
from typer.testing import CliRunner

from satseg.cli import app

runner = CliRunner()


def test_help_lists_commands() -> None:
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    for cmd in ("info", "synth"):
        assert cmd in r.output


def test_info_json(settings) -> None:
    r = runner.invoke(app, ["info", "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["paths"]["inbox"] == str(settings.inbox)
    assert data["versions"]["apache-airflow"].startswith("3.")
    assert data["versions"]["tensorflow"] == "2.21.0"
    assert data["running"]["airflow_standalone"] == "not running"


def test_synth_geotiff_and_png(tmp_path: Path, settings) -> None:
    r = runner.invoke(
        app,
        ["synth", str(tmp_path), "--name", "x", "--width", "300", "--height", "200", "--seed", "1"],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    with rasterio.open(out["image"]) as d:
        assert (d.width, d.height) == (300, 200)
    assert Path(out["labelme"]).exists() and Path(out["geojson"]).exists()
    r = runner.invoke(app, ["synth", str(tmp_path), "--name", "p", "--format", "png"])
    assert r.exit_code == 0 and (tmp_path / "p.png").exists()


def test_synth_rejects_bad_format(tmp_path: Path, settings) -> None:
    r = runner.invoke(app, ["synth", str(tmp_path), "--format", "bmp"])
    assert r.exit_code != 0
    assert "geotiff or png" in r.output


def test_console_script_installed() -> None:
    exe = Path(sys.executable).parent / "satseg"
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "synth" in r.stdout
