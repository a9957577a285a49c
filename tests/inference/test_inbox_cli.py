"""Predict inbox completeness, filing of inputs, and the ``satseg predict`` command."""

from __future__ import annotations

import json
import threading
import time

import pytest
from typer.testing import CliRunner

from satseg.cli import app
from satseg.inference import inbox
from satseg.inference.jobs import collect_scenes, predict_params
from satseg.synthetic import make_scene


def test_ready_needs_marker_or_stable_size(settings) -> None:
    box = settings.predict_inbox
    done = make_scene(box, "marked", 64, 64, labelme=False, geojson=False).image
    (box / "marked.tif.done").touch()
    by_stem = make_scene(box, "stem", 64, 64, labelme=False, geojson=False).image
    (box / "stem.done").touch()
    stable = make_scene(box, "stable", 64, 64, labelme=False, geojson=False).image
    growing = box / "growing.tif"
    growing.write_bytes(b"x" * 10)
    (box / "notes.txt").write_text("not a scene")
    (box / ".partial.tif").write_bytes(b"hidden temp file")
    (box / "upload.tif.part").write_bytes(b"still uploading")
    elsewhere = make_scene(settings.home / "other", "target", 64, 64, labelme=False).image
    (box / "link.tif").symlink_to(elsewhere)

    def grow() -> None:  # a copy still in progress
        for _ in range(6):
            time.sleep(0.05)
            with growing.open("ab") as fh:
                fh.write(b"y" * 10)

    t = threading.Thread(target=grow)
    t.start()
    ready = inbox.ready_scenes(settings, wait_s=0.2)
    t.join()
    assert ready == [done, stable, by_stem]
    # a symbolic link is never followed: quarantined (the link itself), its target untouched
    assert not (box / "link.tif").is_symlink() and elsewhere.is_file()
    (q,) = settings.quarantine.rglob("link.tif")
    assert q.is_symlink() and q.with_name("link.tif.error.json").is_file()


def test_nothing_ready_is_an_empty_list(settings) -> None:
    assert collect_scenes(settings) == []


def test_explicit_paths_and_glob(settings, tmp_path) -> None:
    a = make_scene(tmp_path / "x", "a", 64, 64, labelme=False, geojson=False).image
    b = make_scene(tmp_path / "y", "b", 64, 64, labelme=False, geojson=False).image
    assert collect_scenes(settings, [str(a)]) == [str(a)]
    assert collect_scenes(settings, [], str(tmp_path / "**" / "*.tif")) == sorted([str(a), str(b)])


def test_archive_and_quarantine_keep_every_file(settings) -> None:
    box = settings.predict_inbox
    first = make_scene(box, "s", 64, 64, seed=1, labelme=False, geojson=False).image
    (box / "s.tif.done").touch()
    kept = inbox.archive_done(settings, first)
    assert kept.is_file() and kept.with_name("s.tif.done").exists() and not first.exists()
    # a different scene with the same name does not overwrite the archived one
    second = make_scene(box, "s", 64, 64, seed=2, labelme=False, geojson=False).image
    kept2 = inbox.archive_done(settings, second)
    assert kept2 != kept and kept.is_file() and kept2.is_file()
    bad = box / "bad.tif"
    bad.write_bytes(b"junk")
    q = inbox.quarantine(settings, bad, "corrupt", "decode")
    assert q.read_bytes() == b"junk" and settings.quarantine in q.parents
    assert json.loads(q.with_name("bad.tif.error.json").read_text())["check"] == "decode"


def test_params_default_to_params_yaml_and_ingest_scaling(settings) -> None:
    p = predict_params(settings, threshold=0.7, tile=None)
    section = settings.params().predict
    assert p.threshold == 0.7 and p.tile == section.tile and p.overlap == section.overlap
    assert p.scale == settings.params().ingest.scale


def test_cli_predict_with_model_file(settings, tmp_path, roof_model) -> None:
    model_file = tmp_path / "roof.keras"
    roof_model.save(model_file)
    good = make_scene(tmp_path / "in", "ok", 200, 160, seed=3, labelme=False, geojson=False).image
    bad = tmp_path / "in" / "broken.tif"
    bad.write_bytes(b"junk")
    out = tmp_path / "preds"
    r = CliRunner().invoke(
        app,
        [
            "predict",
            str(good),
            str(bad),
            "--out",
            str(out),
            "--model-file",
            str(model_file),
            "--tile",
            "128",
            "--overlap",
            "32",
            "--threshold",
            "0.5",
            "--precision",
            "fp32",
            "--tta",
            "flips",
            "--regularize",
            "--runtime",
            "onnxruntime",
        ],
    )
    assert r.exit_code == 1, r.output  # one scene failed ...
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert [x["status"] for x in lines] == ["ok", "error"]
    assert (out / "ok" / "mask.geojson").is_file()  # ... the other was still predicted
    assert (out / "broken" / "broken.error.json").is_file()
    with_tags = json.loads((out / "ok" / "summary.json").read_text())
    assert with_tags["model"]["version"] == "file:roof.keras" and with_tags["params"]["tile"] == 128
    assert with_tags["tta"] == "flips" and with_tags["params"]["regularize"] is True
    assert with_tags["postprocess_from"]["min_area_px"] == "fallback"  # a file has no tuning
    assert with_tags["runtime"] == "tensorflow"  # a model file has no ONNX artifacts
    assert "local model file" in with_tags["runtime_reason"] and lines[0]["runtime"] == "tensorflow"


def test_cli_rejects_unknown_runtime(settings, tmp_path) -> None:
    r = CliRunner().invoke(app, ["predict", str(tmp_path / "x.tif"), "--runtime", "tflite"])
    assert r.exit_code != 0 and "runtime" in r.output


def test_cli_rejects_bad_overlap(settings, tmp_path) -> None:
    r = CliRunner().invoke(
        app, ["predict", str(tmp_path / "x.tif"), "--tile", "64", "--overlap", "60"]
    )
    assert r.exit_code != 0 and "overlap" in r.output


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--tta", "d8"], "tta"),
        (["--simplify-px", "-1"], "simplify_px"),
        (["--min-area-px", "-2"], "min_area_px"),
    ],
)
def test_cli_rejects_bad_quality_options(settings, tmp_path, args, words) -> None:
    r = CliRunner().invoke(app, ["predict", str(tmp_path / "x.tif"), *args])
    assert r.exit_code != 0 and words in r.output
