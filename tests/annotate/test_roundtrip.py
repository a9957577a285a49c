"""The annotation queue end to end, with real parts: a champion in a real MLflow registry
predicts a scene; its least certain windows become tasks; one task is corrected (a polygon
changed), dropped into the inbox and ingested into a new DVC dataset version credited to
its source scene.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.airflow_helpers import load_module

TESTS = Path(__file__).resolve().parents[1]
PARAMS = {
    "preprocess": {"patch_size": 128, "stride": 128, "val_fraction": 0.0, "workers": 1},
    "predict": {"tile": 128, "overlap": 32},
    "annotate": {"budget": 3, "window_px": 128, "min_uncertainty": 0.0},
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any) -> Any:
    from satseg.config import get_settings, reset_settings_cache

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(PARAMS))
    monkeypatch.setenv("SATSEG_PARAMS_FILE", str(params))
    monkeypatch.setenv("SATSEG_STABLE_POLLS_S", "0.05")
    reset_settings_cache()
    return get_settings()


@pytest.fixture
def predicted(home: Any, tmp_path: Path) -> Any:
    """A 384x256 georeferenced scene predicted by a registered champion."""
    from satseg.inference.jobs import run_scene
    from satseg.synthetic import make_scene

    mod = load_module("predict_dag_tests", TESTS / "dags" / "test_predict_dag.py")
    version = mod._register_champion(home)
    scene = make_scene(tmp_path / "in", "city7", 384, 256, seed=5, geojson=False)
    run_scene(home, str(scene.image), version)
    return type("P", (), {"scene": scene, "version": version, "out": home.predictions / "city7"})


def _window_entropy(prob: np.ndarray, r: int, c: int, size: int) -> float:
    p = prob[r : r + size, c : c + size].astype(np.float64) / 255.0
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return float(np.nan_to_num(h).mean())


def test_export_ranks_the_least_certain_windows(home: Any, predicted: Any) -> None:
    import rasterio

    from satseg.annotate.export import export_tasks, read_index

    out = export_tasks(home, ["city7"], dataset="city")
    assert out["windows"] == 6 and len(out["exported"]) == 3  # 3x2 windows, budget 3
    with rasterio.open(predicted.out / "uncertainty.tif") as src:  # entropy, 0-255 = 0-1 bit
        unc = src.read(1).astype(np.float64) / 255.0
    every = sorted(
        (float(unc[r : r + 128, c : c + 128].mean()), r, c) for r in (0, 128) for c in (0, 128, 256)
    )
    expected = [round(s, 4) for s, _, _ in every[::-1][:3]]
    assert [round(t["score"], 4) for t in out["exported"]] == expected  # the top 3, in order
    # a prediction made before the uncertainty COG existed: the probability's entropy
    from satseg.annotate.uncertainty import score_windows

    with rasterio.open(predicted.out / "prob.tif") as src:
        prob = src.read(1)
    (predicted.out / "uncertainty.tif").unlink()
    old = {(w.row, w.col): w.score for w in score_windows(predicted.out, 128)}
    assert old == pytest.approx(
        {(r, c): _window_entropy(prob, r, c, 128) for r in (0, 128) for c in (0, 128, 256)},
        abs=1e-5,
    )
    index = read_index(home, "city")["tasks"]
    assert sorted(t["rank"] for t in index.values()) == [1, 2, 3]
    root = home.home / "annotate" / "city"
    with rasterio.open(predicted.scene.image) as scene:
        for t in index.values():
            w = t["window"]
            with rasterio.open(root / t["image"]) as crop:  # georeference kept
                assert crop.crs == scene.crs and (crop.width, crop.height) == (128, 128)
                assert crop.transform.c == pytest.approx(scene.xy(w["row"], w["col"], "ul")[0])
                assert crop.transform.f == pytest.approx(scene.xy(w["row"], w["col"], "ul")[1])
            doc = json.loads((root / t["labels"]).read_text())
            assert doc["imagePath"] == t["image"] and doc["imageWidth"] == 128
            assert doc["satseg_task"]["source_scene"] == "city7"
            assert doc["satseg_task"]["model_version"] == predicted.version
            pts = np.array([p for s in doc["shapes"] for p in s["points"]])
            assert len(doc["shapes"]) == t["polygons"]
            if len(pts):
                assert pts.min() >= 0 and pts.max() <= 128  # crop pixel coordinates
    again = export_tasks(home, ["city7"], dataset="city")  # the rest, never the same twice
    assert len(again["exported"]) == 3
    assert not {t["task"] for t in again["exported"]} & set(index)
    assert export_tasks(home, ["city7"], dataset="city")["exported"] == []


def test_corrected_task_is_ingested_and_credited_to_its_scene(home: Any, predicted: Any) -> None:
    import rasterio

    from satseg.annotate.export import export_tasks
    from satseg.annotate.tasks import list_tasks
    from satseg.ingest.pipeline import run_once
    from satseg.ingest.state import provenance_path

    export_tasks(home, ["city7"], dataset="city")
    first, *rest = list_tasks(home, "city")
    assert first["rank"] == 1 and first["status"] == "open"
    # the annotator's correction: every predicted shape replaced by one square
    doc = json.loads(Path(first["labels_path"]).read_text())
    doc["shapes"] = [
        {
            "label": "building",
            "points": [[10, 10], [60, 10], [60, 60], [10, 60]],
            "shape_type": "polygon",
            "flags": {},
        }
    ]
    inbox = home.inbox / "city"
    inbox.mkdir(parents=True)
    shutil.copy(first["image_path"], inbox / first["image"])
    (inbox / first["labels"]).write_text(json.dumps(doc))
    (inbox / f"{first['task']}.done").write_text("")

    result = run_once(home, dataset="city")
    assert [r["status"] for r in result["results"]] == ["accepted"], result["results"]
    (version,) = result["versions"]
    assert version["tag"] == "city-v1" and version["new"]
    record = json.loads(provenance_path(home, "city", first["task"]).read_text())
    assert record["source_scene"] == "city7" and record["annotation_task"] == first["task"]
    assert record["labels"]["polygons"] == 1
    masks = sorted((home.processed / "city").rglob("masks/*.png"))
    assert masks
    import cv2

    mask = cv2.imread(str(masks[0]), cv2.IMREAD_GRAYSCALE)
    assert mask[35, 35] > 0 and mask[100, 100] == 0  # the corrected square, nothing else
    with rasterio.open(home.raw / "city" / first["image"]) as raw:  # the crop, unchanged
        assert raw.crs is not None
    statuses = {t["task"]: t["status"] for t in list_tasks(home, "city")}
    assert statuses[first["task"]] == "ingested"
    assert {statuses[t["task"]] for t in rest} == {"open"}


def test_a_plain_png_scene_gives_png_tasks(home: Any, tmp_path: Path) -> None:
    from satseg.annotate.export import export_tasks
    from satseg.inference.jobs import run_scene
    from satseg.synthetic import make_png_pair

    mod = load_module("predict_dag_tests", TESTS / "dags" / "test_predict_dag.py")
    version = mod._register_champion(home)
    pair = make_png_pair(tmp_path / "in", "street", 256, 256, 2)
    run_scene(home, str(pair.image), version)
    out = export_tasks(home, ["street"], budget=1)  # dataset: the model's (demo-v1 -> demo)
    (task,) = out["exported"]
    assert task["dataset"] == "demo"
    assert (home.home / "annotate" / "demo" / f"{task['task']}.png").is_file()


def test_hostile_task_keys_are_ignored_not_trusted() -> None:
    from satseg.ingest.labels import annotation_task

    good = {"task": "a-r0-c0", "source_scene": "a", "window": {"row": 0, "col": 0}}
    assert annotation_task({"satseg_task": good}) == {"task": "a-r0-c0", "source_scene": "a"}
    for bad in (
        "x",
        {"task": "../../etc", "source_scene": "a"},
        {"task": "a", "source_scene": "a" * 500},
        {"task": 3, "source_scene": "a"},
        {"task": "a", "source_scene": None},
    ):
        assert annotation_task({"satseg_task": bad}) is None
    odd = annotation_task({"satseg_task": {**good, "model_version": "$(x)", "window": [1]}})
    assert odd == {"task": "a-r0-c0", "source_scene": "a"}


def test_cli_lists_the_queue(home: Any, predicted: Any) -> None:
    from typer.testing import CliRunner

    from satseg.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["annotate", "export", "city7", "--dataset", "city", "--budget", "2"])
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.output)["exported"]) == 2
    r = runner.invoke(app, ["annotate", "list", "city", "--json"])
    assert r.exit_code == 0, r.output
    listed = json.loads(r.output)
    assert [t["rank"] for t in listed] == [1, 2] and {t["status"] for t in listed} == {"open"}
