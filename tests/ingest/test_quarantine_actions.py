"""What people do with quarantined files: release (the next ingest takes it), discard (an audit
record stays), download; every action logged, bad refs refused, nothing overwritten."""

from __future__ import annotations

import json
import os

import pytest

from satseg.inbox import quarantine as q
from satseg.ingest.pipeline import run_once
from satseg.synthetic import make_scene

from .conftest import inventory


def _bad_label_pair(settings) -> tuple[bytes, bytes]:
    """A good GeoTIFF whose LabelMe file is not JSON: both quarantined. Their bytes."""
    scene = make_scene(settings.inbox / "demo", "roof", 256, 256, 5, geojson=False)
    good_label = scene.labelme.read_bytes()
    scene.labelme.write_text("{not json")
    image = scene.image.read_bytes()
    run_once(settings, poll_interval=0.05)
    assert not scene.image.exists() and not scene.labelme.exists()
    return image, good_label


def _by_original(settings) -> dict[str, q.Quarantined]:
    return {item.record.original: item for item in q.list_quarantined(settings)}


def test_release_goes_back_to_the_inbox_and_the_next_ingest_takes_it(settings) -> None:
    image, good_label = _bad_label_pair(settings)
    items = _by_original(settings)
    assert set(items) == {"demo/roof.tif", "demo/roof.json"}
    img = items["demo/roof.tif"]
    assert img.record.check == "partner_rejected" and img.ref.endswith("/roof.tif")

    dest = q.release(settings, img.ref, "alice")
    assert dest == settings.inbox / "demo" / "roof.tif" and dest.read_bytes() == image
    assert not img.path.exists() and not q.record_path(img.path).exists()
    assert set(_by_original(settings)) == {"demo/roof.json"}
    # the fixed label arrives, the next pass ingests the pair into a new dataset version
    (settings.inbox / "demo" / "roof.json").write_bytes(good_label)
    out = run_once(settings, poll_interval=0.05)
    assert [r["status"] for r in out["results"]] == ["accepted"], out
    assert [v["tag"] for v in out["versions"]] == ["demo-v1"]
    assert (settings.raw / "demo" / "roof.tif").read_bytes() == image
    (entry,) = q.actions(settings)
    assert entry["action"] == "release" and entry["user"] == "alice"
    assert entry["to"] == "demo/roof.tif" and entry["record"]["check"] == "partner_rejected"


def test_discard_deletes_the_file_and_keeps_its_record_in_the_log(settings) -> None:
    _bad_label_pair(settings)
    label = _by_original(settings)["demo/roof.json"]
    q.discard(settings, label.ref, "bob")
    assert not label.path.exists() and not q.record_path(label.path).exists()
    assert set(_by_original(settings)) == {"demo/roof.tif"}
    (entry,) = q.actions(settings)
    assert entry["action"] == "discard" and entry["user"] == "bob"
    assert entry["record"]["check"] == "json_parse" and entry["record"]["sha256"]
    raw = (settings.quarantine / q.ACTIONS_LOG).read_text().splitlines()
    assert json.loads(raw[0]) == entry


def test_download_is_logged_and_returns_the_file(settings) -> None:
    image, _ = _bad_label_pair(settings)
    img = _by_original(settings)["demo/roof.tif"]
    got = q.download(settings, img.ref, "carol")
    assert got.path.read_bytes() == image and img.path.exists()
    assert [(e["action"], e["user"]) for e in q.actions(settings)] == [("download", "carol")]


def test_release_never_overwrites_an_inbox_file(settings) -> None:
    image, _ = _bad_label_pair(settings)
    img = _by_original(settings)["demo/roof.tif"]
    newer = settings.inbox / "demo" / "roof.tif"
    newer.write_bytes(b"a newer upload")
    with pytest.raises(q.QuarantineActionError) as e:
        q.release(settings, img.ref, "alice")
    assert e.value.check == "exists"
    assert newer.read_bytes() == b"a newer upload" and img.path.read_bytes() == image
    assert q.actions(settings) == []


@pytest.mark.parametrize(
    "ref",
    [
        "../etc/passwd",
        "2026-05-04/../../x",
        "2026-05-04/nope.tif",
        "2026-05-04/a/b.tif",
        "actions.jsonl",
        "2026-05-04/predict/../a.tif",
        "",
    ],
)
def test_refs_that_name_no_quarantined_file_are_refused(settings, ref) -> None:
    _bad_label_pair(settings)
    before = inventory(settings.home)
    for act in (q.release, q.discard, q.download):
        with pytest.raises(q.QuarantineActionError) as e:
            act(settings, ref, "mallory")
        assert e.value.check == "not_found"
    assert inventory(settings.home) == before


def test_a_record_file_itself_cannot_be_released_or_discarded(settings) -> None:
    _bad_label_pair(settings)
    img = _by_original(settings)["demo/roof.tif"]
    with pytest.raises(q.QuarantineActionError):
        q.discard(settings, img.ref + ".error.json", "mallory")
    assert q.record_path(img.path).is_file()


def test_a_quarantined_link_can_only_be_discarded(settings, tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("keep")
    (settings.inbox / "demo").mkdir(parents=True)
    (settings.inbox / "demo" / "s.tif").symlink_to(secret)
    run_once(settings, poll_interval=0.05)
    (item,) = q.list_quarantined(settings)
    assert item.path.is_symlink() and item.record.check == "symlink"
    for act in (q.release, q.download):
        with pytest.raises(q.QuarantineActionError) as e:
            act(settings, item.ref, "alice")
        assert e.value.check == "not_regular"
    q.discard(settings, item.ref, "alice")
    assert not os.path.lexists(item.path) and secret.read_text() == "keep"


def test_unsafe_original_names_come_back_under_the_sanitised_name(settings) -> None:
    f = settings.inbox / "demo" / "un safe.tif"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"x")
    target = q.quarantine(settings, f, "unsafe name", "unsafe_name", dataset="demo")
    (item,) = q.list_quarantined(settings)
    assert item.path == target
    dest = q.release(settings, item.ref, "alice")
    assert dest == settings.inbox / "demo" / "un_safe.tif" and dest.read_bytes() == b"x"
