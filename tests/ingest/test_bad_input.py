"""Every bad input of the issue: quarantined with a clear reason, nothing lost, others unharmed."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from satseg.ingest.inbox import scan_inbox
from satseg.ingest.pipeline import finalize, process_pair, run_once
from satseg.synthetic import make_scene
from satseg.versioning import list_versions

from .conftest import BAD, drop_good, error_records, inventory, total_bytes

RECORD_KEYS = {"reason", "check", "sha256", "time", "original", "file"}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_quarantined_with_reason(settings, case: str) -> None:
    builder, checks = BAD[case]
    inbox = settings.inbox / "demo"
    inbox.mkdir(parents=True)
    builder(inbox)
    dropped = inventory(settings.inbox)
    dropped_bytes = total_bytes(settings.inbox)
    settings.annotation_timeout_s = 0  # the lone image need not wait a day

    out = run_once(settings, poll_interval=0.05)

    assert out["versions"] == [] and list_versions(settings) == []
    assert inventory(settings.inbox) == {}, "every file must leave the inbox"
    kept = inventory(settings.quarantine, (".error.json",))
    assert {h: len(v) for h, v in kept.items()} == {h: len(v) for h, v in dropped.items()}
    assert total_bytes(settings.quarantine, (".error.json",)) == dropped_bytes
    records = error_records(settings.quarantine)
    assert len(records) == sum(len(v) for v in dropped.values())
    for rec in records.values():
        assert rec.keys() >= RECORD_KEYS
        assert rec["reason"] and len(rec["sha256"]) == 64
        assert rec["check"] in checks | {"partner_rejected"}
        q = next(settings.quarantine.rglob(rec["file"]))
        assert q.parent.name == rec["time"][:10]  # quarantine/<date>/<name>
    assert checks & {r["check"] for r in records.values()}, records


def test_reasons_are_specific(settings) -> None:
    """The error says what is wrong, not just that something is."""
    d = settings.inbox / "demo"
    d.mkdir(parents=True)
    for case in ("size_mismatch", "points_outside", "two_points", "not_json", "band_count"):
        BAD[case][0](d)
    run_once(settings, poll_interval=0.05)
    recs = error_records(settings.quarantine)
    assert "300x256" in recs["demo/sizemm.json"]["reason"]
    assert "outside the 256x256 image" in recs["demo/outside.json"]["reason"]
    assert "at least 3 points, has 2" in recs["demo/twopts.json"]["reason"]
    assert "not valid JSON" in recs["demo/notjson.json"]["reason"]
    assert "5 bands" in recs["demo/fiveband.tif"]["reason"]
    assert recs["demo/sizemm.tif"]["check"] == "partner_rejected"
    assert "sizemm.json" in recs["demo/sizemm.tif"]["reason"]


def test_symlink_is_quarantined_not_followed(settings, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not move me")
    d = settings.inbox / "demo"
    d.mkdir(parents=True)
    os.symlink(secret, d / "scene.tif")
    run_once(settings, poll_interval=0.05)
    assert secret.read_text() == "do not move me"
    (rec,) = error_records(settings.quarantine).values()
    assert rec["check"] == "symlink" and rec["symlink_to"] == str(secret)
    assert not (d / "scene.tif").is_symlink()


def test_duplicate_content_is_recorded_not_reprocessed(settings) -> None:
    drop_good(settings.inbox)
    first = run_once(settings, poll_interval=0.05)
    assert [v["tag"] for v in first["versions"]] == ["demo-v1"]
    # the same image + labels dropped again under another name (and dataset)
    raw = settings.raw / "demo"
    d = settings.inbox / "other"
    d.mkdir(parents=True)
    (d / "copy.tif").write_bytes((raw / "alpha.tif").read_bytes())
    (d / "copy.json").write_bytes((raw / "alpha.json").read_bytes())
    second = run_once(settings, poll_interval=0.05)
    (res,) = second["results"]
    assert res["status"] == "duplicate" and "raw/demo/alpha.tif" in res["reason"]
    assert second["versions"] == []
    assert [v.tag for v in list_versions(settings)] == ["demo-v1"]
    recs = error_records(settings.quarantine)
    assert {r["check"] for r in recs.values()} == {"duplicate"}
    assert not (settings.processed / ".scenes" / "other").exists()


def test_bad_files_do_not_stop_good_ones(settings) -> None:
    d = settings.inbox / "demo"
    d.mkdir(parents=True)
    BAD["not_json"][0](d)
    BAD["zero_byte"][0](d)
    drop_good(settings.inbox)
    out = run_once(settings, poll_interval=0.05)
    status = {r["scene"]: r["status"] for r in out["results"]}
    assert status == {
        "alpha": "accepted",
        "beta": "accepted",
        "gamma": "accepted",
        "delta": "accepted",
        "notjson": "quarantined",
        "zero": "quarantined",
    }
    manifest = json.loads((settings.processed / "demo" / "manifest.json").read_text())
    assert {s["scene"] for s in manifest["scenes"]} == {"alpha", "beta", "gamma", "delta"}


def test_unanticipated_malformed_input_is_quarantined(settings) -> None:
    """Input that breaks in a way no named check covers still ends in quarantine, not a crash loop."""
    d = settings.inbox / "demo"
    d.mkdir(parents=True)
    make_scene(d, "odd", 256, 256, 1, geojson=False)
    doc = json.loads((d / "odd.json").read_text())
    doc["shapes"][0]["points"] = {"not": "a list"}
    (d / "odd.json").write_text(json.dumps(doc))
    out = run_once(settings, poll_interval=0.05)
    (res,) = out["results"]
    assert res["status"] == "quarantined" and res["check"] in {"labelme_points", "unreadable"}
    assert inventory(settings.inbox) == {}


def test_parallel_pairs_with_the_same_file_name_keep_both(settings) -> None:
    """Two different images named x.tif (sub-folders of one dataset): nothing overwritten."""
    make_scene(settings.inbox / "demo" / "a", "x", 256, 256, 1, geojson=False)
    make_scene(settings.inbox / "demo" / "b", "x", 256, 256, 2, geojson=False)
    dropped = inventory(settings.inbox)
    pairs = scan_inbox(settings, poll_interval=0.05)
    with ThreadPoolExecutor(2) as ex:
        results = list(ex.map(lambda p: process_pair(settings, p, workers=1), pairs))
    assert sorted(r["status"] for r in results) == ["accepted", "accepted"]
    assert len({r["scene"] for r in results}) == 2
    kept = inventory(settings.raw, (".ingest.json",))
    assert {h: len(v) for h, v in kept.items()} == {h: len(v) for h, v in dropped.items()}
    (v,) = finalize(settings, results)
    manifest = json.loads((settings.processed / "demo" / "manifest.json").read_text())
    assert len(manifest["scenes"]) == 2 and v["tag"] == "demo-v1"


def test_a_bug_in_processing_fails_the_task_and_quarantines_nothing(settings, monkeypatch) -> None:
    """A TypeError is satseg's fault, not the sender's: raised, the files stay in the inbox."""
    import satseg.preprocess.patches as patches

    make_scene(settings.inbox / "demo", "good", 256, 256, 1, geojson=False)
    dropped = inventory(settings.inbox)
    (pair,) = scan_inbox(settings, poll_interval=0.05)

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'NoneType'")

    monkeypatch.setattr("satseg.ingest.scene.patch_scene", broken)
    with pytest.raises(TypeError, match="NoneType"):
        process_pair(settings, pair, workers=1)
    assert inventory(settings.inbox) == dropped
    assert not settings.quarantine.exists() or not any(settings.quarantine.rglob("*"))
    assert not (settings.processed / ".scenes" / "demo" / "good").exists()

    # once the bug is fixed, the retry (same pair, its claim still held) goes through
    monkeypatch.setattr("satseg.ingest.scene.patch_scene", patches.patch_scene)
    assert process_pair(settings, pair, workers=1)["status"] == "accepted"
    assert inventory(settings.inbox) == {}


@pytest.mark.parametrize(
    ("doc", "check"),
    [
        (
            {"shapes": [{"shape_type": ["polygon"], "points": [[1, 1], [9, 1], [9, 9]]}]},
            "labelme_shapes",
        ),
        ({"type": "FeatureCollection"}, "geojson_schema"),
        ({"type": "FeatureCollection", "crs": "EPSG:4326", "features": []}, "crs"),
        ({"type": "FeatureCollection", "crs": {"properties": [1]}, "features": []}, "crs"),
        (
            {
                "type": "Feature",
                "properties": [1],
                "geometry": {"type": "Point", "coordinates": [0, 0]},
            },
            "geojson_schema",
        ),
        (
            {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}},
            "geojson_schema",
        ),
    ],
)
def test_malformed_documents_raise_the_parsers_own_error(doc, check) -> None:
    """Wrong JSON types are named at the parse site, not left to a bare TypeError/KeyError."""
    from affine import Affine
    from rasterio.crs import CRS

    from satseg.ingest.errors import IngestError
    from satseg.ingest.labels import geojson_labels, is_geojson, labelme_labels

    with pytest.raises(IngestError) as err:
        if is_geojson(doc):
            geojson_labels(doc, CRS.from_epsg(32633), Affine(1, 0, 500000, 0, -1, 10), 64, 64)
        else:
            labelme_labels(doc, 64, 64)
    assert err.value.check == check and err.value.role == "annotation"
