"""Real imagery (../shared/data/real, skipped when absent): ingests cleanly, masks match references."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio

from satseg.ingest.pipeline import run_once
from satseg.preprocess.dataset import load_scenes, scene_dir

pytestmark = pytest.mark.realdata


def _scene_mask(settings, dataset: str, scene: str) -> tuple[np.ndarray, np.ndarray]:
    """(mask, covered) of a scene re-assembled from its cached mask patches."""
    (index,) = [s for s in load_scenes(settings, dataset) if s["scene"] == scene]
    w, h = index["source"]["width"], index["source"]["height"]
    mask, covered = np.zeros((h, w), bool), np.zeros((h, w), bool)
    for p in index["patches"]:
        m = cv2.imread(
            str(scene_dir(settings, dataset, scene) / "masks" / f"{p['id']}.png"),
            cv2.IMREAD_UNCHANGED,
        )
        r, c = p["row"], p["col"]
        sub = m[: h - r, : w - c] > 127
        mask[r : r + sub.shape[0], c : c + sub.shape[1]] |= sub
        covered[r : r + sub.shape[0], c : c + sub.shape[1]] = True
    return mask, covered


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def _assert_clean(out: dict, settings, n: int) -> None:
    statuses = [r["status"] for r in out["results"]]
    assert statuses == ["accepted"] * n, [r for r in out["results"] if r["status"] != "accepted"]
    assert not any(settings.quarantine.rglob("*")), "nothing may be quarantined"
    assert [v["new"] for v in out["versions"]] == [True]


def test_spacenet_geotiff_geojson_matches_reference(settings, real_data: Path) -> None:
    src = real_data / "spacenet_atlanta"
    d = settings.inbox / "spacenet"
    d.mkdir(parents=True)
    shutil.copy(src / "sample_geotiff.tif", d / "atlanta.tif")  # 1-band uint16, EPSG:32616
    shutil.copy(src / "geotiff_labels.geojson", d / "atlanta.geojson")
    out = run_once(settings, poll_interval=0.05)
    _assert_clean(out, settings, 1)
    mask, covered = _scene_mask(settings, "spacenet", "atlanta")
    with rasterio.open(src / "sample_fp_mask_from_geojson.tif") as ref_src:
        ref = ref_src.read(1) > 127
    assert covered.mean() > 0.9
    iou = _iou(mask & covered, ref & covered)
    assert iou >= 0.9, iou
    sidecar = json.loads(
        (settings.raw / ".satseg" / "spacenet" / "atlanta.ingest.json").read_text()
    )
    assert sidecar["source"]["scaler"]["dtype"] == "uint16" and sidecar["labels"]["polygons"] == 43


def test_seed_format_atlanta_ingests_cleanly(settings, real_data: Path) -> None:
    src = real_data / "seed_format_atlanta"
    shutil.copytree(src, settings.inbox / "seed")
    out = run_once(settings, poll_interval=0.05)
    _assert_clean(out, settings, 1)
    mask, covered = _scene_mask(settings, "seed", "atlanta_sample")
    with rasterio.open(real_data / "spacenet_atlanta" / "sample_fp_mask_from_geojson.tif") as r:
        ref = r.read(1) > 127
    assert _iou(mask & covered, ref & covered) >= 0.85  # same chip, independently drawn polygons


@pytest.mark.slow
def test_all_dubai_buildings_ingest_without_quarantine(settings, real_data: Path) -> None:
    src = real_data / "dubai_buildings"
    shutil.copytree(src / "labelme", settings.inbox / "dubai")
    out = run_once(settings, poll_interval=0.05)
    _assert_clean(out, settings, 54)
    ious = []
    for r in out["results"]:
        truth = (
            cv2.imread(str(src / "truth" / f"{r['scene']}_buildings.png"), cv2.IMREAD_GRAYSCALE)
            > 127
        )
        if not truth.any():
            continue
        mask, covered = _scene_mask(settings, "dubai", r["scene"])
        ious.append(_iou(mask & covered, truth & covered))
    assert np.median(ious) >= 0.95, sorted(ious)[:5]
    manifest = json.loads((settings.processed / "dubai" / "manifest.json").read_text())
    assert manifest["split"]["method"] == "scene" and len(manifest["scenes"]) == 54
    splits = {s["split"] for s in manifest["scenes"]}
    assert splits == {"train", "val"}


NOT_CUT = 254


def _class_map(settings, dataset: str, scene: str) -> np.ndarray:
    """A multi-class scene's label map re-assembled from its cached class-index patches."""
    (index,) = [s for s in load_scenes(settings, dataset) if s["scene"] == scene]
    w, h = index["source"]["width"], index["source"]["height"]
    out = np.full((h, w), NOT_CUT, np.uint8)  # edge strips of mostly-padding patches
    for p in index["patches"]:
        m = cv2.imread(
            str(scene_dir(settings, dataset, scene) / "masks" / f"{p['id']}.png"),
            cv2.IMREAD_UNCHANGED,
        )
        r, c = p["row"], p["col"]
        sub = m[: h - r, : w - c]
        out[r : r + sub.shape[0], c : c + sub.shape[1]] = sub
    return out


@pytest.mark.slow
def test_dubai_multiclass_ingests_and_matches_the_class_masks(
    settings, real_data: Path, tmp_path: Path
) -> None:
    """The land-cover sample with include/params.multiclass.yaml: no quarantine, and the
    re-rasterised masks (painter's order, holes) match ``_classes.png`` per class."""
    import yaml

    from tests.ingest.conftest import TEST_PARAMS

    repo = Path(__file__).resolve().parents[2]
    multi = yaml.safe_load((repo / "include" / "params.multiclass.yaml").read_text())
    settings.params_file.write_text(yaml.safe_dump({**TEST_PARAMS, **multi}))
    src = real_data / "dubai_multiclass"
    d = settings.inbox / "landcover"
    d.mkdir(parents=True)
    for img in sorted(src.glob("*.jpg")):
        shutil.copy(img, d / img.name)
        shutil.copy(img.with_suffix(".json"), d / f"{img.stem}.json")
    out = run_once(settings, poll_interval=0.05)
    _assert_clean(out, settings, 54)
    inter, union = np.zeros(5), np.zeros(5)
    for r in out["results"]:
        truth = cv2.imread(str(src / f"{r['scene']}_classes.png"), cv2.IMREAD_UNCHANGED)
        got = _class_map(settings, "landcover", r["scene"])
        cut = got != NOT_CUT
        for k in range(5):  # stored index k = class k + 1 in _classes.png
            t, g = (truth == k + 1) & cut, got == k
            inter[k] += (t & g).sum()
            union[k] += (t | g).sum()
    ious = inter / union
    names = [c["name"] for c in multi["ingest"]["classes"]]
    assert (ious >= 0.95).all(), dict(zip(names, ious.round(4).tolist(), strict=True))
    manifest = json.loads((settings.processed / "landcover" / "manifest.json").read_text())
    assert [c["name"] for c in manifest["classes"]["classes"]] == [
        "building",
        "land",
        "road",
        "vegetation",
        "water",
    ]
    px = manifest["class_pixels"]
    assert px["train"]["land"] > 0 and px["val"]["water"] > 0
    labelled = sum(sum(v for k, v in split.items() if k != "ignore") for split in px.values())
    assert labelled > 0.85 * 36_717_657  # the sample's pixels, less the edge strips not cut
