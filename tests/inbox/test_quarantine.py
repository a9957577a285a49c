"""One quarantine: the same record for both inboxes, unique names, nothing lost or overwritten."""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields
from datetime import UTC, datetime
from threading import Barrier

import pytest

from satseg.inbox.quarantine import QuarantineRecord, free_target, quarantine, read_record
from satseg.inference import inbox as predict_inbox

SCHEMA = {
    "file",
    "original",
    "source",
    "reason",
    "check",
    "sha256",
    "size",
    "time",
    "dataset",
    "symlink_to",
    "related",
}
NOON = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


def test_the_record_schema() -> None:
    assert {f.name for f in fields(QuarantineRecord)} == SCHEMA


@pytest.mark.parametrize("source", ["ingest", "predict"])
def test_record_beside_the_moved_file(settings, source) -> None:
    f = settings.inbox / "demo" / "a.tif"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"not really a tiff")
    target = quarantine(
        settings,
        f,
        "a.tif is not a readable GeoTIFF",
        "decode",
        source=source,
        dataset="demo",
        related=["demo/a.tif", "demo/a.json"],
        now=NOON,
    )
    folder = settings.quarantine / "2026-05-04"
    assert target == (folder / "predict" if source == "predict" else folder) / "a.tif"
    assert not f.exists() and target.read_bytes() == b"not really a tiff"
    raw = json.loads(target.with_name("a.tif.error.json").read_text())
    assert set(raw) == SCHEMA
    assert raw == {
        "file": "a.tif",
        "original": "demo/a.tif",
        "source": source,
        "reason": "a.tif is not a readable GeoTIFF",
        "check": "decode",
        "sha256": hashlib.sha256(b"not really a tiff").hexdigest(),
        "size": 17,
        "time": NOON.isoformat(),
        "dataset": "demo",
        "symlink_to": None,
        "related": ["demo/a.tif", "demo/a.json"],
    }
    assert read_record(target) == QuarantineRecord.from_dict(raw)


def test_same_name_twice_gets_a_new_name_and_nothing_is_lost(settings) -> None:
    for i in range(3):
        f = settings.inbox / "a.tar.gz"
        f.write_bytes(f"version {i}".encode())
        quarantine(settings, f, "bad", "decode", now=NOON)
    folder = settings.quarantine / "2026-05-04"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "a.1.tar.gz",
        "a.1.tar.gz.error.json",
        "a.2.tar.gz",
        "a.2.tar.gz.error.json",
        "a.tar.gz",
        "a.tar.gz.error.json",
    ]
    contents = {(folder / n).read_text() for n in names if not n.endswith(".error.json")}
    assert contents == {"version 0", "version 1", "version 2"}
    assert {read_record(folder / n).file for n in names if not n.endswith("json")} == {
        n for n in names if not n.endswith("json")
    }


def test_unsafe_names_are_sanitised_and_the_original_kept(settings) -> None:
    f = settings.inbox / "demo" / "un safe;rm -rf.tif"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"x")
    target = quarantine(settings, f, "unsafe name", "unsafe_name", dataset="demo")
    rec = read_record(target)
    assert target.name == "un_safe_rm_-rf.tif" and rec.original == "demo/un safe;rm -rf.tif"


def test_symlink_moved_as_a_link_target_untouched(settings, tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("keep")
    link = settings.inbox / "s.tif"
    settings.inbox.mkdir(parents=True, exist_ok=True)
    link.symlink_to(secret)
    target = quarantine(settings, link, "a link", "symlink")
    rec = read_record(target)
    assert target.is_symlink() and os.readlink(target) == str(secret)
    assert secret.read_text() == "keep" and not link.is_symlink()
    assert rec.symlink_to == str(secret) and rec.sha256 is None and rec.size == 0


def test_parallel_quarantines_of_one_name_never_share_a_target(settings) -> None:
    folder = settings.quarantine / "x"
    barrier = Barrier(6)

    def reserve(_: int):
        barrier.wait()
        return free_target(folder, "a.tif")

    with ThreadPoolExecutor(6) as ex:
        targets = list(ex.map(reserve, range(6)))
    assert len(set(targets)) == 6


def test_predict_inbox_quarantine_uses_the_one_record_and_takes_markers(settings) -> None:
    box = settings.predict_inbox
    box.mkdir(parents=True, exist_ok=True)
    bad = box / "bad.tif"
    bad.write_bytes(b"junk")
    (box / "bad.tif.done").touch()
    target = predict_inbox.quarantine(settings, bad, "bad.tif is corrupt", "decode")
    assert target.parent.name == "predict" and not any(box.iterdir())
    rec = read_record(target)
    assert rec.source == "predict" and rec.check == "decode" and rec.reason == "bad.tif is corrupt"
    assert rec.original == "predict/bad.tif" and rec.size == 4
    assert rec.related == ["predict/bad.tif", "predict/bad.tif.done"]
    marker = read_record(target.with_name("bad.tif.done"))
    assert marker.check == "partner_rejected" and "bad.tif" in marker.reason


def test_predict_archive_never_overwrites(settings) -> None:
    box = settings.predict_inbox
    box.mkdir(parents=True, exist_ok=True)
    kept = []
    for i in range(2):
        s = box / "s.tif"
        s.write_bytes(f"scene {i}".encode())
        (box / "s.done").touch()
        kept.append(predict_inbox.archive_done(settings, s))
    assert [p.name for p in kept] == ["s.tif", "s.1.tif"]
    assert [p.read_text() for p in kept] == ["scene 0", "scene 1"]
    assert kept[0].with_name("s.done").exists() and kept[1].with_name("s.1.done").exists()
    assert not any(box.iterdir())
