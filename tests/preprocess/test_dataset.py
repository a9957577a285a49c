"""Scene caches -> dataset dir: no scene leakage, balancing, features.csv, manifest, no-op rebuild."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from satseg.ingest.scene import build_scene
from satseg.monitoring.features import feature_names, image_features
from satseg.preprocess import augment
from satseg.preprocess.dataset import build_dataset
from satseg.synthetic import SceneStyle, make_scene


@pytest.fixture
def scenes(settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Five small scenes (two without buildings) in the scene cache of dataset "ds"."""
    params = tmp_path / "p.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "preprocess": {
                    "patch_size": 128,
                    "stride": 128,
                    "oversample": 2,
                    "val_fraction": 0.3,
                    "workers": 1,
                }
            }
        )
    )
    settings.params_file = params
    src = tmp_path / "src"
    for i in range(5):
        style = SceneStyle(building_density=0.0 if i < 2 else 1.5)
        s = make_scene(src, f"sc{i}", 256, 256, seed=i, style=style, geojson=False)
        record = {"sha256": f"{i:064d}", "original": f"ds/sc{i}.tif", "annotation": {}, "raw": {}}
        build_scene(settings, "ds", f"sc{i}", s.image, s.labelme, "labelme", record=record)
    return settings


def _split_of_files(d: Path) -> dict[str, set[str]]:
    return {split: {p.name for p in (d / split / "images").iterdir()} for split in ("train", "val")}


def test_dataset_layout_balance_and_no_leakage(scenes) -> None:
    out, manifest, rebuilt = build_dataset(scenes, "ds", "ds-v1")
    assert rebuilt and manifest["tag"] == "ds-v1"
    files = _split_of_files(out)
    for split in ("train", "val"):
        assert files[split] == {p.name for p in (out / split / "masks").iterdir()}
        assert manifest["counts"][split] == len(files[split])
    scene_of = {split: {n.split("_r")[0] for n in names} for split, names in files.items()}
    assert not scene_of["train"] & scene_of["val"], "a scene in both splits"
    by_scene = {s["scene"]: s["split"] for s in manifest["scenes"]}
    assert {s for s, sp in by_scene.items() if sp == "val"} == scene_of["val"]
    # stratified: val holds a scene with buildings and one without
    assert {"sc0", "sc1"} & scene_of["val"] and {"sc2", "sc3", "sc4"} & scene_of["val"]
    # balancing: positive train patches got 2 augmented copies each, val none
    aug = [n for n in files["train"] if "_r" in n and n.count("_") > 2]
    assert len(aug) == manifest["augmented"] == 2 * manifest["positive_patches"]["train"] > 0
    assert not any(n.count("_") > 2 for n in files["val"])
    name = sorted(aug)[0]
    orig_id, transform = name[:-4].rsplit("_", 1)
    orig = cv2.imread(str(out / "train" / "masks" / f"{orig_id}.png"), cv2.IMREAD_UNCHANGED)
    copy = cv2.imread(str(out / "train" / "masks" / name), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(copy, augment.apply(transform, orig))
    # features.csv: split + the monitoring features, one row per original patch
    with open(out / "features.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["split", *feature_names()]
    assert len(rows) == sum(manifest["originals"].values())
    first = sorted(files["train"] - set(aug))[0]
    rgb = cv2.cvtColor(cv2.imread(str(out / "train" / "images" / first)), cv2.COLOR_BGR2RGB)
    want = image_features(rgb)
    assert any(
        all(abs(float(r[k]) - want[k]) < 1e-3 for k in feature_names() if k != "nodata_frac")
        for r in rows
    )
    # manifest
    m = json.loads((out / "manifest.json").read_text())
    assert set(m) >= {
        "dataset",
        "tag",
        "created",
        "counts",
        "foreground_ratio",
        "band_stats",
        "scenes",
        "params",
        "software",
    }
    assert set(m["scenes"][0]) >= {"scene", "sha256", "split", "source"}
    assert (
        0 < m["foreground_ratio"]["train"] < 1
        and m["band_stats"]["r"]["p98"] >= m["band_stats"]["r"]["p02"]
    )
    assert m["params"]["preprocess"]["patch_size"] == 128 and "numpy" in m["software"]
    assert "isal" in m["software"]  # the PNG encoder: its version decides the bytes written


def test_unchanged_rebuild_is_a_no_op(scenes) -> None:
    out, m1, _ = build_dataset(scenes, "ds", "ds-v1")
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    _, m2, rebuilt = build_dataset(scenes, "ds", "ds-v2")
    assert not rebuilt and m2 == m1
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_single_scene_splits_patches_stratified(scenes) -> None:
    import shutil

    root = scenes.processed / ".scenes" / "ds"
    for d in root.iterdir():
        if d.name != "sc3":
            shutil.rmtree(d)
    _, manifest, _ = build_dataset(scenes, "ds", "ds-v1")
    assert manifest["split"]["method"] == "patch" and manifest["scenes"][0]["split"] == "train+val"
    assert manifest["originals"]["val"] >= 1 and manifest["originals"]["train"] >= 1
