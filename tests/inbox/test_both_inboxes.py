"""The training and the predict inbox share the rule and the record, end to end."""

from __future__ import annotations

from satseg.inbox.quarantine import read_record
from satseg.inference import inbox as predict_inbox
from satseg.ingest.inbox import scan_inbox
from satseg.synthetic import make_scene


def test_both_inboxes_write_the_same_record(settings, tmp_path) -> None:
    d = settings.inbox / "demo"
    d.mkdir(parents=True)
    (d / "notes.txt").write_text("hello")
    scan_inbox(settings, poll_interval=0)  # first sighting: waits
    assert (d / "notes.txt").exists()
    scan_inbox(settings, poll_interval=0)  # unchanged since: complete, and refused
    box = settings.predict_inbox
    elsewhere = make_scene(tmp_path / "o", "t", 64, 64, labelme=False, geojson=False).image
    (box / "link.tif").symlink_to(elsewhere)
    assert predict_inbox.ready_scenes(settings, wait_s=0) == []
    records = {
        p.name: read_record(p)
        for p in settings.quarantine.rglob("*")
        if (p.is_file() or p.is_symlink()) and not p.name.endswith(".error.json")
    }
    assert {n: r.source for n, r in records.items()} == {
        "notes.txt": "ingest",
        "link.tif": "predict",
    }
    assert records["notes.txt"].check == "unsupported_type"
    assert records["notes.txt"].dataset == "demo" and records["link.tif"].check == "symlink"
    assert records["link.tif"].symlink_to == str(elsewhere) and elsewhere.is_file()


def test_predict_inbox_remembers_sizes_across_polls(settings) -> None:
    """No second look (wait 0): a new scene waits one poll, then is ready if unchanged."""
    box = settings.predict_inbox
    scene = make_scene(box, "s", 64, 64, labelme=False, geojson=False).image
    grows = box / "g.tif"
    grows.write_bytes(b"x")
    assert predict_inbox.ready_scenes(settings, wait_s=0) == []
    with grows.open("ab") as fh:
        fh.write(b"more")
    assert predict_inbox.ready_scenes(settings, wait_s=0) == [scene]
    assert predict_inbox.ready_scenes(settings, wait_s=0) == [grows, scene]
