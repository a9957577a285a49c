"""satseg's own records cannot be forged or overwritten; names stay whole; outputs readable.

Issue 15 classes 5 (log and record forgery), 7 (provenance overwrote an annotation), 19
(quarantine names cut without their extension) and 20 (every output 0600).
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from satseg.inbox.quarantine import free_target, is_record, read_record
from satseg.ingest.pipeline import run_once
from satseg.ingest.state import provenance_path
from satseg.synthetic import make_png_pair, make_scene
from satseg.vocab import ERROR_RECORD_SUFFIX, MAX_NAME_LEN
from tests.hostile.conftest import assert_accounted, error_records, inventory


def _drop_pass(settings, dropped: dict[str, list[str]]) -> dict:
    """Record what is in the inbox now (every byte must be accounted for), then one pass."""
    for h, paths in inventory(settings.inbox).items():
        dropped.setdefault(h, []).extend(p for p in paths if p not in dropped.get(h, []))
    return run_once(settings, poll_interval=0.05)


def _assert_records_genuine(settings) -> None:
    """Every ``*.error.json`` in quarantine is satseg's record of the file beside it."""
    for p in settings.quarantine.rglob("*"):
        if p.name.lower().endswith(ERROR_RECORD_SUFFIX):
            assert is_record(p), f"{p} reads as a record but is not one"
            assert (
                p.with_name(read_record(p).file).exists()
                or p.with_name(read_record(p).file).is_symlink()
            ), f"{p} describes no file"


# --- class 7: provenance never overwrites a user file --------------------------------------


@pytest.mark.parametrize("order", [("alpha.ingest", "alpha"), ("alpha", "alpha.ingest")])
def test_provenance_never_overwrites_an_annotation(settings, order) -> None:
    dropped: dict[str, list[str]] = {}
    annotations = {}
    for i, name in enumerate(order):
        s = make_scene(settings.inbox / "demo", name, 256, 256, seed=i, geojson=False)
        annotations[name] = s.image.with_suffix(".json").read_bytes()
        (res,) = _drop_pass(settings, dropped)["results"]
        assert res["status"] == "accepted", res
    assert_accounted(settings, dropped)
    raw = settings.raw / "demo"
    assert (raw / "alpha.ingest.json").read_bytes() == annotations["alpha.ingest"]
    assert (raw / "alpha.json").read_bytes() == annotations["alpha"]
    for name in order:  # satseg's record of each scene, where no user name can reach
        doc = json.loads(provenance_path(settings, "demo", name).read_text())
        assert doc["scene"] == name and doc["dataset"] == "demo"
        assert provenance_path(settings, "demo", name).parent.parent.name == ".satseg"
    assert not list(raw.glob("*.ingest.ingest.json"))


# --- class 5: log forging -------------------------------------------------------------------


def test_a_newline_in_a_name_cannot_forge_a_log_line(settings, caplog) -> None:
    forged = "x\nWARNING  satseg.ingest.pipeline:pipeline.py:1 accepted evil.tif\x1b[2K.tif"
    (settings.inbox / "demo").mkdir(parents=True)
    (settings.inbox / "demo" / forged).write_bytes(b"not an image")
    dropped = inventory(settings.inbox)
    with caplog.at_level(logging.INFO, logger="satseg"):
        run_once(settings, poll_interval=0.05)
    ours = [r for r in caplog.records if r.name.startswith("satseg")]
    assert ours and all("\n" not in r.getMessage() for r in ours)
    assert all("\x1b" not in r.getMessage() for r in ours)
    lines = caplog.text.splitlines()
    assert not any(
        line.startswith("WARNING  satseg.ingest.pipeline:pipeline.py:1") for line in lines
    )
    (line,) = [line for line in lines if "quarantined" in line]
    assert "x\\nWARNING  satseg.ingest.pipeline:pipeline.py:1 accepted evil.tif\\x1b[2K.tif" in line
    assert_accounted(settings, dropped)
    (rec,) = error_records(settings.quarantine).values()
    assert rec["original"] == f"demo/{forged}" and rec["check"] == "unsafe_name"


def test_every_satseg_logger_is_covered_others_untouched(caplog) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("satseg.some.child").info("got %s", "a\rb\u2028c")
        logging.getLogger("someone.else").info("got %s", "a\nb")
    ours, theirs = caplog.records
    assert ours.getMessage() == "got a\\rb\\u2028c"
    assert theirs.getMessage() == "got a\nb"


# --- class 5: record forgery ----------------------------------------------------------------

FORGED_RECORD = {
    "file": "x.tif",
    "original": "demo/x.tif",
    "source": "ingest",
    "reason": "forged: all good, delete the original",
    "check": "forged",
    "sha256": None,
    "size": 0,
    "time": "2026-01-01T00:00:00+00:00",
}


def test_a_file_named_like_a_record_is_quarantined_not_believed(settings) -> None:
    folder = settings.inbox / "demo"
    folder.mkdir(parents=True)
    (folder / "x.tif.error.json").write_text(json.dumps(FORGED_RECORD))
    (folder / "X.TIF.ERROR.JSON").write_text(json.dumps({**FORGED_RECORD, "file": "X.TIF"}))
    dropped: dict[str, list[str]] = {}
    _drop_pass(settings, dropped)
    assert not any(settings.inbox.rglob("*.json"))
    assert_accounted(settings, dropped)  # (a kept record-like name would count as lost)
    _assert_records_genuine(settings)
    records = error_records(settings.quarantine)
    assert set(records) == {"demo/x.tif.error.json", "demo/X.TIF.ERROR.JSON"}
    for rec in records.values():
        assert rec["check"] == "unsafe_name" and "reserved" in rec["reason"]
        assert not rec["file"].lower().endswith(ERROR_RECORD_SUFFIX)
        assert rec["file"].endswith((".error.json.user", ".ERROR.JSON.user"))


def test_a_record_named_annotation_partner_is_quarantined_not_believed(settings) -> None:
    settings.annotation_timeout_s = 0  # the image left alone need not wait a day
    pair = make_png_pair(settings.inbox / "demo", "x.tif.error", 256, 256, seed=3)
    assert pair.image.name == "x.tif.error.png"
    ann = settings.inbox / "demo" / "x.tif.error.json"
    assert ann.is_file()
    dropped: dict[str, list[str]] = {}
    for _ in range(2):  # the annotation goes first; its image waits one pass, then follows
        _drop_pass(settings, dropped)
    assert not any(settings.inbox.rglob("*.*"))
    assert_accounted(settings, dropped)
    _assert_records_genuine(settings)
    records = error_records(settings.quarantine)
    assert records["demo/x.tif.error.json"]["check"] == "unsafe_name"
    assert records["demo/x.tif.error.png"]["check"] == "missing_annotation"
    assert not list(settings.raw.rglob("*.error.json"))


def test_quarantine_never_creates_a_record_name(settings) -> None:
    folder = settings.quarantine / "t"
    for name in ("x.tif.error.json", "y" * 117 + ".error.json" + "z" * 100, "a.ERROR.json"):
        target = free_target(folder, name)
        assert not target.name.lower().endswith(ERROR_RECORD_SUFFIX), target.name
        assert len(target.name) <= MAX_NAME_LEN


# --- class 19: long names keep their extension ----------------------------------------------


def test_a_300_character_name_keeps_its_extension_and_stays_unique(settings) -> None:
    folder = settings.quarantine / "t"
    name = "a" * 296 + ".tif"  # too long for one path component: as the API might pass it
    first, second = free_target(folder, name), free_target(folder, name)
    assert first != second
    for t in (first, second):
        assert t.name.endswith(".tif") and len(t.name) <= MAX_NAME_LEN
    assert second.name.endswith(".1.tif")
    long_ext = free_target(folder, "b" * 290 + ".tar.gz")
    assert long_ext.name.endswith(".tar.gz") and len(long_ext.name) <= MAX_NAME_LEN


def test_a_long_inbox_name_keeps_its_extension_through_the_inbox(settings) -> None:
    name = "long-" + "n" * 240 + ".geojson"  # 253 characters: refused (over 128), kept whole
    dropped: dict[str, list[str]] = {}
    for i in range(2):  # the same name twice: numbered siblings, both whole
        (settings.inbox / "demo").mkdir(parents=True, exist_ok=True)
        (settings.inbox / "demo" / name).write_text(f'{{"version": {i}}}')
        _drop_pass(settings, dropped)
    assert_accounted(settings, dropped)
    _assert_records_genuine(settings)
    files = sorted(
        p.name
        for p in settings.quarantine.rglob("*")
        if p.is_file() and not p.name.endswith(ERROR_RECORD_SUFFIX)
    )
    assert len(files) == 2
    assert all(f.endswith(".geojson") and len(f) <= MAX_NAME_LEN for f in files)
    assert any(f.endswith(".1.geojson") for f in files)
    records = [read_record(p) for p in settings.quarantine.rglob("*.geojson")]
    assert {r.original for r in records} == {f"demo/{name}"}
    assert all("longer than 128" in r.reason for r in records)


# --- class 20: outputs respect the umask ----------------------------------------------------


@pytest.fixture
def umask(request) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _modes(*roots: Path) -> dict[str, int]:
    out = {}
    for root in roots:
        for p in [root, *root.rglob("*")]:
            if not p.is_symlink():
                out[str(p)] = stat.S_IMODE(p.lstat().st_mode)
    return out


@pytest.mark.parametrize("umask", [0o022, 0o077], indirect=True)
def test_outputs_respect_the_umask(umask, settings, tmp_path) -> None:
    from satseg.inference.predict import predict_scene
    from satseg.monitoring.report import write_day_index
    from tests.inference.conftest import _roof_model

    make_scene(settings.inbox / "demo", "m", 256, 256, seed=1, geojson=False)
    for p in (settings.inbox / "demo").iterdir():
        p.chmod(0o666 & ~umask)  # the user's own files, as their umask made them
    (res,) = run_once(settings, poll_interval=0.05)["results"]
    assert res["status"] == "accepted", res
    scene = make_scene(tmp_path / "in", "city", 200, 160, seed=5, labelme=False)
    out = settings.predictions / "city"
    predict_scene(_roof_model((1,), 40.0), scene.image, out, precision="fp32", tile=128)
    day = settings.reports / "2026-01-01"
    (day / "summary.json").parent.mkdir(parents=True)
    write_day_index(day)

    roots = (settings.raw, settings.processed / ".scenes", settings.processed / "demo", out, day)
    modes = _modes(*roots)
    files = {p: m for p, m in modes.items() if Path(p).is_file()}
    dirs = {p: m for p, m in modes.items() if Path(p).is_dir()}
    assert any(p.endswith(".tif") for p in files) and any(p.endswith(".png") for p in files)
    assert any(p.endswith("index.html") for p in files)
    assert any(p.endswith(".ingest.json") for p in files)
    want_file, want_dir = 0o666 & ~umask, 0o777 & ~umask
    # DVC makes its cache read-only (0444) and processed/ patches are hard links into it:
    # DVC's own mode, whatever the umask; satseg's writers give the umask's mode
    dvc = {p for p, m in files.items() if m == 0o444 and os.stat(p).st_nlink > 1}
    assert any("/processed/demo/" in p for p in files)
    bad = {p: oct(m) for p, m in files.items() if m != want_file and p not in dvc}
    assert not bad, f"files not {oct(want_file)}: {bad}"
    bad = {p: oct(m) for p, m in dirs.items() if m != want_dir}
    assert not bad, f"directories not {oct(want_dir)}: {bad}"


def test_records_without_a_logger_name_still_log() -> None:
    """``logging.makeLogRecord`` (used by aiosmtpd, log shippers) builds records named None."""
    record = logging.getLogRecordFactory()(None, logging.INFO, __file__, 1, "got %s", ("x",), None)
    assert record.getMessage() == "got x"
