"""A generated land-cover scene through the real inbox: class-index patches equal the truth."""

from __future__ import annotations

import json

import cv2
import numpy as np
import yaml

from satseg.ingest.pipeline import run_once
from satseg.preprocess.dataset import load_scenes, scene_dir
from satseg.synthetic import LANDCOVER_CLASSES, make_landcover_scene
from tests.ingest.conftest import TEST_PARAMS, error_records

CLASSES = [{"name": n} for n in LANDCOVER_CLASSES]


def _use_classes(settings, **ingest) -> None:
    params = {**TEST_PARAMS, "ingest": {"classes": CLASSES, **ingest}}
    settings.params_file.write_text(yaml.safe_dump(params))


def test_generated_landcover_patches_equal_the_painted_truth(settings) -> None:
    _use_classes(settings)
    scenes = [make_landcover_scene(settings.inbox / "lc", f"lc{i}", 256, 256, i) for i in (1, 2)]
    out = run_once(settings, poll_interval=0.05)
    assert [r["status"] for r in out["results"]] == ["accepted", "accepted"]
    for sc in scenes:
        (index,) = [s for s in load_scenes(settings, "lc") if s["scene"] == sc.image.stem]
        assert index["labels"]["holes"] == 1
        for p in index["patches"]:
            m = cv2.imread(
                str(scene_dir(settings, "lc", sc.image.stem) / "masks" / f"{p['id']}.png"),
                cv2.IMREAD_UNCHANGED,
            )
            r, c = p["row"], p["col"]
            np.testing.assert_array_equal(m, sc.truth[r : r + 128, c : c + 128])
            assert p["px"] == [
                *np.bincount(m.ravel(), minlength=256)[: len(CLASSES)].tolist(),
                int((m == 255).sum()),
            ]
    manifest = json.loads((settings.processed / "lc" / "manifest.json").read_text())
    assert [c["name"] for c in manifest["classes"]["classes"]] == list(LANDCOVER_CLASSES)
    for k, name in enumerate([*LANDCOVER_CLASSES, "ignore"]):  # 256 px: every pixel is cut
        got = sum(split[name] for split in manifest["class_pixels"].values())
        value = 255 if name == "ignore" else k
        assert got == sum(int((sc.truth == value).sum()) for sc in scenes), name


def test_an_unknown_label_quarantines_the_pair_with_the_label_named(settings) -> None:
    _use_classes(settings)
    sc = make_landcover_scene(settings.inbox / "lc", "odd", 256, 256, 4)
    doc = json.loads(sc.labelme.read_text())
    doc["shapes"][-1]["label"] = "helipad"
    sc.labelme.write_text(json.dumps(doc))
    out = run_once(settings, poll_interval=0.05)
    assert [r["status"] for r in out["results"]] == ["quarantined"]
    records = error_records(settings.quarantine)
    rec = next(r for orig, r in records.items() if orig.endswith("odd.json"))
    assert rec["check"] == "unknown_label" and "'helipad'" in rec["reason"], rec
    assert not any(settings.inbox.rglob("odd.*")), "the pair left the inbox"
    assert {p.name for p in settings.quarantine.rglob("odd.*")} >= {"odd.tif", "odd.json"}
