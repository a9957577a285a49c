"""Inbox contract: completeness, markers, pairing, dataset names, waiting, idempotent re-runs."""

from __future__ import annotations

import json
import threading
import time

from satseg.ingest.inbox import scan_inbox
from satseg.ingest.pipeline import process_pair, run_once
from satseg.synthetic import make_png_pair, make_scene

from .conftest import error_records, inventory


def test_file_still_growing_is_left_alone(settings) -> None:
    d = settings.inbox / "demo"
    s = make_png_pair(d, "grow", 200, 200, 1)
    data = s.image.read_bytes()
    s.image.write_bytes(data[:1000])

    def writer() -> None:
        time.sleep(0.05)
        with open(s.image, "ab") as fh:
            fh.write(data[1000:])

    t = threading.Thread(target=writer)
    t.start()
    assert scan_inbox(settings, poll_interval=0.3) == []  # size changed between the two looks
    t.join()
    assert s.image.exists() and inventory(settings.quarantine) == {}
    (pair,) = scan_inbox(settings, poll_interval=0.05)  # now stable
    assert pair["image"] == "demo/grow.png" and pair["annotation"] == "demo/grow.json"


def test_new_files_wait_for_a_second_poll_unless_marked(settings) -> None:
    d = settings.inbox / "demo"
    make_png_pair(d, "a", 200, 200, 1)
    make_png_pair(d, "b", 200, 200, 2)
    (d / "b.done").write_text("")
    pairs = scan_inbox(settings, poll_interval=0)  # no second look: only the marked pair
    assert [p["scene"] for p in pairs] == ["b"] and pairs[0]["markers"] == ["demo/b.done"]
    assert {p["scene"] for p in scan_inbox(settings, poll_interval=0)} == {"a", "b"}  # seen twice
    state = json.loads((settings.state / "inbox_scan.json").read_text())
    assert set(state) == {"demo/a.png", "demo/a.json", "demo/b.png", "demo/b.json", "demo/b.done"}


def test_dataset_names_hidden_and_predict_files(settings) -> None:
    make_png_pair(settings.inbox / "roofs", "x", 200, 200, 1)
    make_png_pair(settings.inbox, "farms__y", 200, 200, 2)
    make_png_pair(settings.inbox, "z", 200, 200, 3)
    make_png_pair(settings.inbox / "predict", "p", 200, 200, 4)  # satseg_predict's inbox
    (settings.inbox / "roofs" / ".upload.tif").write_bytes(b"partial")
    (settings.inbox / "roofs" / "big.tif.part").write_bytes(b"partial")
    pairs = scan_inbox(settings, poll_interval=0.05)
    assert {(p["dataset"], p["scene"]) for p in pairs} == {
        ("roofs", "x"),
        ("farms", "y"),
        ("default", "z"),
    }
    assert inventory(settings.quarantine) == {}


def test_annotation_waits_until_timeout(settings) -> None:
    d = settings.inbox / "demo"
    img = make_scene(d, "later", 256, 256, 1, labelme=False, geojson=False).image
    assert scan_inbox(settings, poll_interval=0.05) == []
    assert img.exists()  # waiting, not quarantined
    make_scene(settings.inbox / "tmp", "later", 256, 256, 1, geojson=False).labelme.rename(
        d / "later.json"
    )
    (pair,) = scan_inbox(settings, poll_interval=0.05)
    assert pair["annotation_kind"] == "labelme"
    # an orphan past the timeout goes to quarantine
    lone = make_scene(d, "lone", 256, 256, 2, labelme=False, geojson=False).image
    scan_inbox(settings, poll_interval=0.05)
    assert lone.exists()
    scan_inbox(settings, poll_interval=0.05, now=time.time() + settings.annotation_timeout_s + 1)
    assert not lone.exists()
    (rec,) = [
        r for r in error_records(settings.quarantine).values() if r["original"] == "demo/lone.tif"
    ]
    assert rec["check"] == "missing_annotation" and "timeout" in rec["reason"]


def test_labelme_preferred_and_extra_annotation_kept(settings) -> None:
    s = make_scene(settings.inbox / "demo", "both", 256, 256, 3)  # .tif + .json + .geojson
    out = run_once(settings, poll_interval=0.05)
    (res,) = out["results"]
    assert res["status"] == "accepted"
    sidecar = json.loads((settings.raw / ".satseg" / "demo" / "both.ingest.json").read_text())
    assert sidecar["annotation"]["kind"] == "labelme" and sidecar["labels"]["kind"] == "labelme"
    assert {f["original"] for f in sidecar["files"]} == {
        "demo/both.tif",
        "demo/both.json",
        "demo/both.geojson",
    }
    assert all((settings.home / f["raw"]).is_file() for f in sidecar["files"])
    assert sidecar["sha256"] == sidecar["files"][0]["sha256"] and not s.image.exists()


def test_process_pair_rerun_returns_the_same_result(settings) -> None:
    make_png_pair(settings.inbox / "demo", "again", 256, 256, 5)
    (pair,) = scan_inbox(settings, poll_interval=0.05)
    first = process_pair(settings, pair)
    snapshot = (inventory(settings.raw), inventory(settings.processed))
    again = process_pair(settings, pair)
    assert again == first and first["status"] == "accepted"
    assert (inventory(settings.raw), inventory(settings.processed)) == snapshot


def test_accepted_originals_keep_their_bytes(settings) -> None:
    s = make_scene(settings.inbox / "demo", "keep", 256, 256, 9, geojson=False)
    before = {s.image.name: s.image.read_bytes(), s.labelme.name: s.labelme.read_bytes()}
    run_once(settings, poll_interval=0.05)
    for name, data in before.items():
        assert (settings.raw / "demo" / name).read_bytes() == data
