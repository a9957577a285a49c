"""Scene caches -> one training-ready dataset directory, rebuilt whole and swapped in.

``processed/<dataset>/{train,val}/{images,masks}/<patch>.png`` are hard links into the scene
caches (no copies), plus augmented copies of positive training patches, ``features.csv`` (the
drift reference: one row per original train/val patch) and ``manifest.json``. The directory
is assembled beside the old one and swapped in by rename; when the scenes and parameters
are unchanged nothing is rewritten, so the dataset's DVC hash (and version) stays the same.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from satseg import __version__
from satseg.config import Settings
from satseg.io.atomic import replace_dir, write_bytes, write_json
from satseg.manifest import ManifestError, read_manifest
from satseg.preprocess import augment
from satseg.preprocess.patches import hist_stats
from satseg.preprocess.png import encode_png
from satseg.preprocess.split import SceneCounts, split_patches, split_scenes
from satseg.versioning.paths import dataset_dir

log = logging.getLogger(__name__)
SPLITS = ("train", "val")


def scenes_root(settings: Settings, dataset: str) -> Path:
    return settings.processed / ".scenes" / dataset


def scene_dir(settings: Settings, dataset: str, scene: str) -> Path:
    return scenes_root(settings, dataset) / scene


def load_scenes(settings: Settings, dataset: str) -> list[dict[str, Any]]:
    """Every complete scene cache of a dataset (``scene.json`` present), sorted by scene."""
    root = scenes_root(settings, dataset)
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir()):
        index = d / "scene.json"
        if not d.name.startswith(".") and index.is_file():
            out.append(json.loads(index.read_text()))
    return out


def _software() -> dict[str, str]:
    out = {"satseg": __version__}
    for pkg in ("numpy", "opencv-python-headless", "isal", "rasterio", "shapely", "pyproj", "dvc"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _augmented(cache: Path, patch_id: str, name: str) -> tuple[Path, Path]:
    """The cached (image, mask) copy of ``patch_id`` under transform ``name``; made on demand."""
    import cv2

    out = (
        cache / "aug" / "images" / f"{patch_id}_{name}.png",
        cache / "aug" / "masks" / f"{patch_id}_{name}.png",
    )
    for src_dir, dst in zip(("images", "masks"), out, strict=True):
        if dst.exists():
            continue
        arr = cv2.imread(str(cache / src_dir / f"{patch_id}.png"), cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise OSError(f"scene cache patch {patch_id} ({src_dir}) is unreadable")
        aug = np.ascontiguousarray(augment.apply(name, arr))
        write_bytes(dst, encode_png(aug, bgr=aug.ndim == 3))
    return out


def assign_splits(
    scenes: list[dict[str, Any]], val_fraction: float, seed: int
) -> tuple[str, dict[str, str], dict[str, dict[str, str]]]:
    """(method, scene -> split label, scene -> {patch id -> split})."""
    with_patches = [s for s in scenes if s["patches"]]
    if len(with_patches) >= 2:
        counts = [
            SceneCounts(
                s["scene"],
                s["sha256"],
                len(s["patches"]),
                s["summary"]["positive"],
                frozenset(i for i, n in enumerate(s["summary"].get("class_pixels", [])[:-1]) if n),
            )
            for s in scenes
        ]
        by_scene = split_scenes(counts, val_fraction, seed)
        per_patch = {
            s["scene"]: {p["id"]: by_scene[s["scene"]] for p in s["patches"]} for s in scenes
        }
        return "scene", by_scene, per_patch
    by_scene, per_patch = {}, {}
    for s in scenes:
        per_patch[s["scene"]] = split_patches(
            [(p["id"], _stratum(p, s["summary"])) for p in s["patches"]], val_fraction, seed
        )
        by_scene[s["scene"]] = "train+val"
    return "patch", by_scene, per_patch


def _stratum(patch: dict[str, Any], summary: dict[str, Any]) -> bool | int:
    """A patch's split stratum: positive or not; multi-class: its rarest class in the scene
    (1 + index; 0 for a patch without labelled pixels)."""
    if "px" not in patch:
        return bool(patch["positive"])
    totals = summary.get("class_pixels") or patch["px"]
    held = [i for i, n in enumerate(patch["px"][:-1]) if n]
    return 1 + min(held, key=lambda i: (totals[i], i)) if held else 0


def rare_classes(scenes: list[dict[str, Any]], per_patch: dict[str, dict[str, str]]) -> list[int]:
    """Multi-class: classes with less than an even share (1/n) of the train pixels."""
    totals: np.ndarray | None = None
    for s in scenes:
        for p in s["patches"]:
            if "px" in p and per_patch[s["scene"]][p["id"]] == "train":
                px = np.asarray(p["px"][:-1], np.int64)
                totals = px if totals is None else totals + px
    if totals is None or totals.sum() == 0:
        return []
    share = totals / totals.sum()
    return [int(i) for i in np.flatnonzero(share < 1.0 / len(share))]


def oversampled(patch: dict[str, Any], rare: list[int], threshold: float) -> bool:
    """Does a train patch get augmented copies? Binary: a positive patch; multi-class: one
    with more than ``threshold`` of its pixels in a rare class."""
    if "px" not in patch:
        return bool(patch["positive"])
    size = sum(patch["px"])
    return size > 0 and any(patch["px"][i] / size > threshold for i in rare)


def build_dataset(settings: Settings, dataset: str, tag: str) -> tuple[Path, dict[str, Any], bool]:
    """(dataset dir, manifest, rebuilt?) for all cached scenes of ``dataset``."""
    from satseg.monitoring.features import feature_names

    scenes = load_scenes(settings, dataset)
    if not scenes:
        raise FileNotFoundError(f"dataset {dataset!r} has no processed scenes")
    params = settings.params()
    pre = params.preprocess
    val_fraction, seed = pre.val_fraction, pre.seed
    copies = pre.oversample
    method, by_scene, per_patch = assign_splits(scenes, val_fraction, seed)
    entries = [
        {
            "scene": s["scene"],
            "sha256": s["sha256"],
            "split": by_scene[s["scene"]],
            "source": s.get("original"),
            "raw": s.get("raw"),
            "annotation": s.get("annotation"),
            "labels": s.get("labels"),
            "patches": len(s["patches"]),
            "positive": s["summary"]["positive"],
            "dropped_nodata": s["summary"]["dropped_nodata"],
        }
        for s in scenes
    ]
    used_params = {"ingest": params.ingest.model_dump(), "preprocess": pre.model_dump()}
    out = dataset_dir(settings, dataset)
    old = _read_manifest(out)
    if old and old.get("scenes") == entries and old.get("params") == used_params:
        return out, old, False

    tmp = settings.processed / ".work" / f"build-{dataset}-{uuid.uuid4().hex[:8]}"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        rare = rare_classes(scenes, per_patch)
        manifest = _assemble(
            settings, dataset, scenes, per_patch, tmp, copies, feature_names(),
            lambda p: oversampled(p, rare, pre.positive_threshold),
        )  # fmt: skip
        manifest.update(_class_record(params.ingest, scenes, per_patch))
        if "class_pixels" in manifest:
            manifest["oversampled_classes"] = [manifest["classes"]["classes"][i]["name"]
                                               for i in rare]  # fmt: skip
        manifest.update(
            dataset=dataset,
            tag=tag,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            scenes=entries,
            split={"method": method, "val_fraction": val_fraction, "seed": seed},
            params=used_params,
            software=_software(),
        )
        write_json(tmp / "manifest.json", manifest)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("dataset %s rebuilt: %s", dataset, manifest["counts"])
    return out, manifest, True


def _class_record(
    ing: Any, scenes: list[dict[str, Any]], per_patch: dict[str, dict[str, str]]
) -> dict[str, Any]:
    """The manifest's class table and, for a class table, pixels per class and split
    (original patches; ``ignore`` counts nodata, padding and unlabeled pixels)."""
    from satseg.classes import ClassTable, binary_json

    table = ClassTable.from_params(ing)
    if table is None:
        return {"classes": binary_json()}
    keys = [*table.names, "ignore"]
    px = {split: np.zeros(len(keys), np.int64) for split in SPLITS}
    for s in scenes:
        for p in s["patches"]:
            if "px" in p:
                px[per_patch[s["scene"]][p["id"]]] += np.asarray(p["px"], np.int64)
    return {
        "classes": table.to_json(),
        "class_pixels": {
            split: dict(zip(keys, v.tolist(), strict=True)) for split, v in px.items()
        },
    }


def _assemble(
    settings: Settings,
    dataset: str,
    scenes: list[dict[str, Any]],
    per_patch: dict[str, dict[str, str]],
    tmp: Path,
    copies: int,
    columns: list[str],
    oversample: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    for split in SPLITS:
        for sub in ("images", "masks"):
            (tmp / split / sub).mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(SPLITS, 0)
    originals = dict.fromkeys(SPLITS, 0)
    positives = dict.fromkeys(SPLITS, 0)
    fg_sum = dict.fromkeys(SPLITS, 0.0)
    hist = np.zeros((3, 256), np.int64)
    rows: list[dict[str, Any]] = []
    for s in scenes:
        cache = scene_dir(settings, dataset, s["scene"])
        hist += np.asarray(s["hist"], np.int64)
        feats = s.get("features") or []
        for i, p in enumerate(s["patches"]):
            split = per_patch[s["scene"]][p["id"]]
            name = f"{p['id']}.png"
            _link(cache / "images" / name, tmp / split / "images" / name)
            _link(cache / "masks" / name, tmp / split / "masks" / name)
            counts[split] += 1
            originals[split] += 1
            positives[split] += int(p["positive"])
            fg_sum[split] += p["fg"]
            if i < len(feats):
                rows.append({"split": split, **{c: feats[i].get(c) for c in columns}})
            if split == "train" and copies > 0 and oversample(p):
                for t in augment.transforms_for(p["id"], copies):
                    img, msk = _augmented(cache, p["id"], t)
                    _link(img, tmp / split / "images" / img.name)
                    _link(msk, tmp / split / "masks" / msk.name)
                    counts[split] += 1
                    fg_sum[split] += p["fg"]
    _write_features(tmp / "features.csv", rows, columns)
    return {
        "counts": counts,
        "originals": originals,
        "augmented": counts["train"] - originals["train"],
        "positive_patches": positives,
        "foreground_ratio": {
            k: round(fg_sum[k] / counts[k], 6) if counts[k] else 0.0 for k in SPLITS
        },
        "band_stats": hist_stats(hist),
        "features": {"file": "features.csv", "rows": len(rows), "per": "original patch"},
    }


def _write_features(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["split", *columns])
        w.writeheader()
        w.writerows(rows)


def _read_manifest(out: Path) -> dict[str, Any] | None:
    """The previous build's manifest, or None when there is no usable one (then rebuild)."""
    try:
        return read_manifest(out).doc
    except ManifestError:
        return None
