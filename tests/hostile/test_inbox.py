"""Issue 15, classes 2, 8, 9, 10, 11, 12: the inbox never follows a link, never loses, never wedges.

Each test drops files, runs the real steps (``scan_inbox`` then ``process_pair`` as the DAG's
tasks do, or ``run_once``), interferes where an attacker or a careless sender would (a swap
for a link, a writer that pauses, a FIFO, a read-only folder, a killed pass) and then checks
the outcome and that every dropped byte is in raw/, quarantine/ or the inbox exactly once.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from satseg.inbox.claims import alive
from satseg.ingest import pipeline
from satseg.ingest.inbox import scan_inbox
from satseg.ingest.leftovers import tmp_scene_dir
from satseg.ingest.pipeline import process_pair, run_once
from satseg.ingest.state import ledger_path, provenance_path
from satseg.synthetic import make_scene
from tests.hostile.conftest import assert_accounted, error_records, inventory, sha256


def _drop(settings, name: str = "alpha", seed: int = 1) -> tuple[Path, Path]:
    scene = make_scene(settings.inbox / "demo", name, 256, 256, seed, geojson=False)
    return scene.image, scene.image.with_suffix(".json")


def _links(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_symlink()] if root.exists() else []


def _ledger(settings) -> dict:
    p = ledger_path(settings)
    return json.loads(p.read_text()) if p.exists() else {}


def _processing(settings) -> list[dict]:
    return [e for e in _ledger(settings).values() if e.get("status") == "processing"]


def _user_files(root: Path) -> list[Path]:
    if not root.exists():
        return []
    return [
        p
        for p in root.rglob("*")
        if (p.is_file() or p.is_symlink())
        and not p.name.endswith(".error.json")
        and ".satseg" not in p.parts
    ]


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                          capture_output=True, check=True)  # fmt: skip
    pid = int(proc.stdout)
    assert not alive(pid)
    return pid


# -- class 2: a swap for a symbolic link between the scan and the process task ------------


def test_swap_for_link_between_scan_and_process_follows_nothing(settings, canary) -> None:
    image, ann = _drop(settings)
    (pair,) = scan_inbox(settings)
    image.unlink()
    image.symlink_to(canary.path)  # the attacker's swap, after the scan task
    dropped = inventory(settings.inbox)  # what is left of the drop: the annotation

    result = process_pair(settings, pair)

    assert result["status"] == "refused"
    rec = error_records(settings.quarantine)["demo/alpha.tif"]
    assert rec["check"] == "symlink" and rec["symlink_to"] == str(canary.path)
    assert rec["sha256"] is None and rec["size"] == 0
    assert _links(settings.raw) == [] and _user_files(settings.raw) == []
    canary.assert_absent(settings.home)
    assert_accounted(settings, dropped)
    assert ann.exists()  # its partner waits for a proper image, like a missing one
    assert _processing(settings) == []


def test_swap_for_link_during_processing_moves_only_the_verified_file(
    settings, canary, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    image, ann = _drop(settings)
    (pair,) = scan_inbox(settings)
    real_build = pipeline.build_scene

    def build_then_swap(*args, **kw):
        index = real_build(*args, **kw)
        os.rename(image, tmp_path / "outside" / "alpha.orig")  # taken away, a link put there
        image.symlink_to(canary.path)
        return index

    monkeypatch.setattr(pipeline, "build_scene", build_then_swap)
    dropped = inventory(settings.inbox, (".tif",))

    result = process_pair(settings, pair)

    assert result["status"] == "changed"
    assert _links(settings.raw) == [] and _user_files(settings.raw) == []
    links = [r for r in error_records(settings.quarantine).values() if r["check"] == "symlink"]
    assert [r["symlink_to"] for r in links] == [str(canary.path)]
    assert not image.is_symlink() and ann.exists()
    assert not (settings.processed / ".scenes" / "demo" / "alpha").exists()
    canary.assert_absent(settings.home)
    assert_accounted(settings, dropped)
    assert _processing(settings) == []


def test_folder_swapped_for_a_link_is_not_followed(settings, canary, tmp_path) -> None:
    _, ann = _drop(settings)
    (pair,) = scan_inbox(settings)
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "alpha.tif").write_bytes(canary.path.read_bytes())  # outside bytes, same names
    (evil / "alpha.json").write_bytes(ann.read_bytes())
    os.rename(settings.inbox / "demo", tmp_path / "moved-away")
    (settings.inbox / "demo").symlink_to(evil)  # the dataset folder is now a link

    assert process_pair(settings, pair)["status"] == "gone"
    run_once(settings)  # the next scan refuses the folder link itself

    rec = error_records(settings.quarantine)["demo"]
    assert rec["check"] == "symlink" and rec["symlink_to"] == str(evil)
    assert sorted(p.name for p in evil.iterdir()) == ["alpha.json", "alpha.tif"]  # untouched
    assert _user_files(settings.raw) == []
    canary.assert_absent(settings.home)
    assert _processing(settings) == []


def test_readers_read_the_verified_file_not_the_name(settings, monkeypatch) -> None:
    """What was hashed is what is patched: the readers get the opened file's fd path."""
    image, _ = _drop(settings)
    (pair,) = scan_inbox(settings)
    seen: list[tuple[Path, str]] = []
    real_build = pipeline.build_scene

    def spy(settings_, ds, scene, img, ann, *a, **kw):
        seen.append((img, os.readlink(img)))
        return real_build(settings_, ds, scene, img, ann, *a, **kw)

    monkeypatch.setattr(pipeline, "build_scene", spy)
    original = sha256(image)
    assert process_pair(settings, pair)["status"] == "accepted"
    ((img, target),) = seen
    assert img.name == "alpha.tif" and img != image
    assert target.startswith("/proc/self/fd/")
    assert not img.exists()  # the private view is gone with the descriptor
    sidecar = json.loads((provenance_path(settings, "demo", "alpha")).read_text())
    assert sidecar["sha256"] == original == sha256(settings.raw / "demo" / "alpha.tif")


# -- class 11: a writer that pauses longer than the quiet period --------------------------


def test_writer_appending_after_the_scan_leaves_the_pair_for_the_next_pass(settings) -> None:
    image, _ = _drop(settings)
    (pair,) = scan_inbox(settings)
    with image.open("ab") as fh:  # the writer resumes after the scan
        fh.write(b"\0" * 4096)
    dropped = inventory(settings.inbox)

    assert process_pair(settings, pair)["status"] == "changed"
    assert _user_files(settings.raw) == [] and _user_files(settings.quarantine) == []
    assert_accounted(settings, dropped)
    assert _processing(settings) == []

    out = run_once(settings)  # the next pass sees the finished file
    assert [r["status"] for r in out["results"]] == ["accepted"]
    sidecar = json.loads((provenance_path(settings, "demo", "alpha")).read_text())
    assert sidecar["sha256"] == sha256(settings.raw / "demo" / "alpha.tif")
    assert_accounted(settings, dropped)


def test_writer_appending_before_the_move_is_not_moved(settings, monkeypatch) -> None:
    image, ann = _drop(settings)
    (pair,) = scan_inbox(settings)
    real_build = pipeline.build_scene

    def build_then_append(*args, **kw):
        index = real_build(*args, **kw)
        with image.open("ab") as fh:
            fh.write(b"\0" * 4096)
        return index

    monkeypatch.setattr(pipeline, "build_scene", build_then_append)
    result = process_pair(settings, pair)
    dropped = inventory(settings.inbox)

    assert result["status"] == "changed"
    assert image.exists() and ann.exists()
    assert _user_files(settings.raw) == [] and _user_files(settings.quarantine) == []
    assert not (settings.processed / ".scenes" / "demo" / "alpha").exists()
    assert _processing(settings) == []
    monkeypatch.undo()
    assert [r["status"] for r in run_once(settings)["results"]] == ["accepted"]
    assert_accounted(settings, dropped)


def test_quiet_period_reaches_both_inboxes(settings, monkeypatch) -> None:
    from satseg.config import get_settings, reset_settings_cache
    from satseg.inference import inbox as predict_inbox
    from satseg.ingest import inbox as ingest_inbox

    monkeypatch.setenv("SATSEG_STABLE_POLLS_S", "0.07")
    reset_settings_cache()
    s = get_settings()
    waits: list[float] = []

    def spy(files, previous, wait_s):
        waits.append(wait_s)
        return set()

    monkeypatch.setattr(ingest_inbox, "complete", spy)
    monkeypatch.setattr(predict_inbox, "complete", spy)
    ingest_inbox.scan_inbox(s)
    predict_inbox.ready_scenes(s)
    assert waits == [0.07, 0.07]


# -- class 12: FIFOs and devices; a partner removed mid-accept -----------------------------


def test_fifo_beside_a_valid_partner_is_quarantined_once_and_never_opened(settings) -> None:
    image, ann = _drop(settings)
    ann.unlink()
    os.mkfifo(ann)  # nobody ever writes it: opening it for reading would hang the pass
    dropped = inventory(settings.inbox)

    first = run_once(settings)

    rec = error_records(settings.quarantine)["demo/alpha.json"]
    assert rec["check"] == "not_regular" and "FIFO" in rec["reason"]
    (fifo,) = [p for p in settings.quarantine.rglob("alpha.json")]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert first["results"] == [] and image.exists()  # the image waits for its annotation
    second = run_once(settings)
    assert second["results"] == []  # no "gone" every pass
    assert len(error_records(settings.quarantine)) == 1
    assert_accounted(settings, dropped)

    make_scene(settings.inbox / "demo", "alpha", 256, 256, 1, geojson=False)  # a real one
    assert [r["status"] for r in run_once(settings)["results"]] == ["accepted"]


def test_device_node_is_quarantined_without_being_opened(settings) -> None:
    image, ann = _drop(settings)
    ann.unlink()
    try:
        os.mknod(ann, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # like /dev/null
    except (PermissionError, OSError) as e:
        pytest.skip(f"cannot create a device node here: {e}")
    dropped = inventory(settings.inbox)
    run_once(settings)
    rec = error_records(settings.quarantine)["demo/alpha.json"]
    assert rec["check"] == "not_regular" and "character device" in rec["reason"]
    assert image.exists()
    assert_accounted(settings, dropped)


def test_fifo_swapped_in_before_processing_does_not_hang(settings) -> None:
    image, ann = _drop(settings)
    (pair,) = scan_inbox(settings)
    ann.unlink()
    os.mkfifo(ann)
    t0 = time.monotonic()
    result = process_pair(settings, pair)
    assert time.monotonic() - t0 < 30
    assert result["status"] == "refused"
    assert error_records(settings.quarantine)["demo/alpha.json"]["check"] == "not_regular"
    assert image.exists() and _user_files(settings.raw) == []
    assert _processing(settings) == []


def test_annotation_removed_mid_accept_rolls_the_image_back(settings, monkeypatch) -> None:
    image, ann = _drop(settings)
    (pair,) = scan_inbox(settings)
    kept = ann.read_bytes()
    real_move = pipeline.move

    def move_and_lose_annotation(src, dst):
        if Path(src) == ann:
            ann.unlink()  # the sender deletes it just as the image has gone to raw/
        return real_move(src, dst)

    monkeypatch.setattr(pipeline, "move", move_and_lose_annotation)
    dropped = inventory(settings.inbox, (".json",))

    result = process_pair(settings, pair)

    assert result["status"] == "changed"
    assert _user_files(settings.raw) == []  # no orphan image in raw/
    assert image.exists()  # back in the inbox, waiting for its annotation
    assert _processing(settings) == [] and _ledger(settings) == {}
    assert not (settings.processed / ".scenes" / "demo" / "alpha").exists()
    assert_accounted(settings, dropped)
    monkeypatch.undo()
    ann.write_bytes(kept)
    assert [r["status"] for r in run_once(settings)["results"]] == ["accepted"]


# -- class 8 (pass side): a pass that dies mid-pair blocks nothing -------------------------


@pytest.mark.parametrize("error", [RecursionError, MemoryError, RuntimeError])
def test_pass_dying_mid_pair_releases_its_claim(settings, monkeypatch, error) -> None:
    image, ann = _drop(settings)
    dropped = inventory(settings.inbox)

    def explode(*args, **kw):
        raise error("parser blew up")

    monkeypatch.setattr(pipeline, "build_scene", explode)
    with pytest.raises(error):
        run_once(settings)
    assert image.exists() and ann.exists()
    assert _ledger(settings) == {}
    assert list((settings.processed / ".scenes").glob("*/*")) == []
    assert_accounted(settings, dropped)

    monkeypatch.undo()
    doc = json.loads(ann.read_text())
    doc["imagePath"] = "alpha.tif"
    ann.write_text(json.dumps(doc))  # "the corrected re-drop": another pair of the same image
    out = run_once(settings)
    assert [r["status"] for r in out["results"]] == ["accepted"]


def test_claim_of_a_killed_process_does_not_block_a_different_drop(settings) -> None:
    image, _ = _drop(settings)
    sha = sha256(image)
    ledger_path(settings).parent.mkdir(parents=True, exist_ok=True)
    ledger_path(settings).write_text(
        json.dumps(
            {
                sha: {
                    "pair_id": "a-pass-that-was-killed",
                    "status": "processing",
                    "claimed": time.time(),
                    "pid": _dead_pid(),
                    "host": os.uname().nodename,
                    "dataset": "demo",
                    "scene": "alpha",
                    "files": {},
                }
            }
        )
    )
    out = run_once(settings)
    assert [r["status"] for r in out["results"]] == ["accepted"]


# -- class 9: a read-only inbox folder ----------------------------------------------------


def _read_only(folder: Path, monkeypatch: pytest.MonkeyPatch, exdev: bool = False) -> str:
    """Make ``folder`` read-only: chmod 0555, and (as root, who ignores permission bits)
    emulate it by making renames and unlinks out of it fail with EACCES (or EXDEV first,
    to take the cross-device copy path). Returns the method used."""
    folder.chmod(0o555)
    if os.geteuid() != 0 and not exdev:
        return "chmod"
    real_replace, real_unlink = os.replace, os.unlink

    def inside(p) -> bool:
        return Path(p).parent == folder

    def replace(src, dst, **kw):
        if inside(src):
            code = errno.EXDEV if exdev else errno.EACCES
            raise OSError(code, os.strerror(code), str(src))
        return real_replace(src, dst, **kw)

    def unlink(p, **kw):
        if inside(p):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(p))
        return real_unlink(p, **kw)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "unlink", unlink)
    return "monkeypatched os.replace/os.unlink"


@pytest.mark.parametrize("exdev", [False, True], ids=["same-device", "cross-device"])
def test_read_only_folder_is_never_copied_and_reported_once(
    settings, monkeypatch, caplog, exdev
) -> None:
    folder = settings.inbox / "demo"
    _drop(settings)  # a valid pair: its accept cannot move it
    (folder / "notes.txt").write_text("not an image")  # refused at scan: cannot be moved
    dropped = inventory(settings.inbox)
    _read_only(folder, monkeypatch, exdev)
    try:
        with caplog.at_level(logging.ERROR):
            outs = [run_once(settings) for _ in range(3)]
    finally:
        monkeypatch.undo()
        folder.chmod(0o755)

    assert _user_files(settings.quarantine) == [] and _user_files(settings.raw) == []
    assert list(settings.quarantine.rglob("*.error.json")) == []  # no record without its file
    assert_accounted(settings, dropped)
    assert [r["status"] for r in outs[0]["results"]] == ["stuck"]
    assert set(outs[-1]["stuck"]) == {"demo/notes.txt", "demo/alpha.tif"}
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert sum("demo/notes.txt" in m for m in errors) == 1  # reported once, not every pass
    assert sum("demo/alpha.tif" in m for m in errors) == 1
    assert _processing(settings) == []

    out = run_once(settings)  # the folder is fixed: everything is handled
    assert [r["status"] for r in out["results"]] == ["accepted"]
    assert error_records(settings.quarantine)["demo/notes.txt"]["check"] == "unsupported_type"
    assert out["stuck"] == []
    assert_accounted(settings, dropped)


def test_cross_device_inbox_is_moved_once_and_verified(settings, monkeypatch) -> None:
    """raw/ on another filesystem: copy + unlink, checked by content, one copy in the end."""
    folder = settings.inbox / "demo"
    _drop(settings)
    (folder / "notes.txt").write_text("not an image")
    dropped = inventory(settings.inbox)
    real_replace = os.replace

    def replace(src, dst, **kw):
        if Path(src).parent == folder:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), str(src))
        return real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "replace", replace)
    out = run_once(settings)
    monkeypatch.undo()

    assert [r["status"] for r in out["results"]] == ["accepted"]
    where = assert_accounted(settings, dropped)
    assert sorted(where.values()) == ["quarantine", "raw", "raw"]
    assert list(folder.iterdir()) == []


# -- class 10: temp folders of a killed pass ----------------------------------------------


def test_stale_scene_temp_folders_are_removed_at_the_next_pass(settings) -> None:
    root = settings.processed / ".scenes" / "demo"
    root.mkdir(parents=True)
    code = (
        "import sys; from pathlib import Path; from satseg.ingest.leftovers import tmp_scene_dir;"
        "d = tmp_scene_dir(Path(sys.argv[1]), 'alpha'); (d / 'patches').mkdir(parents=True);"
        "(d / 'patches' / 'p0.png').write_bytes(b'x' * 1000); print(d)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(root)], capture_output=True, text=True, check=True
    )
    killed = Path(proc.stdout.strip())  # its process is gone, as after a SIGKILL
    old = time.time() - 120
    for p in (killed, killed / "patches"):
        os.utime(p, (old, old))
    legacy = root / ".tmp-beta-0123abcd"  # the older name, no owner: removed once very old
    legacy.mkdir()
    os.utime(legacy, (time.time() - 7 * 3600,) * 2)
    live = tmp_scene_dir(root, "gamma")  # this (live) process: kept
    live.mkdir()
    os.utime(live, (old, old))
    fresh_legacy = root / ".tmp-delta-89abcdef"
    fresh_legacy.mkdir()

    scan_inbox(settings)

    assert not killed.exists() and not legacy.exists()
    assert live.exists() and fresh_legacy.exists()


# -- the predict inbox: the same rules -----------------------------------------------------


def _predict_spy(monkeypatch: pytest.MonkeyPatch, then=None) -> list[bytes]:
    """``run_scene`` with a stand-in model: records the bytes the predictor was given."""
    from satseg.inference import jobs

    read: list[bytes] = []

    def predict_scene(model, path, out, **kw):
        read.append(Path(path).read_bytes())
        if then is not None:
            then()
        return {"scene": Path(path).stem, "status": "ok", "out_dir": str(out), "polygons": 0,
                "warnings": []}  # fmt: skip

    info = {"name": "m", "version": "1"}
    monkeypatch.setattr(jobs, "load_registered_model", lambda s, v: (None, info))
    monkeypatch.setattr(jobs, "predict_scene", predict_scene)
    monkeypatch.setattr(jobs, "relocate_source", lambda out, moved: None)
    return read


def test_predict_scene_swapped_for_a_link_is_not_followed(settings, canary, monkeypatch) -> None:
    from satseg.errors import BadInput
    from satseg.inference import inbox, jobs

    scene = make_scene(settings.predict_inbox, "s", 64, 64, 1, labelme=False, geojson=False)
    (ready,) = inbox.ready_scenes(settings)
    scene.image.unlink()
    scene.image.symlink_to(canary.path)  # swapped after the poll
    read = _predict_spy(monkeypatch)

    with pytest.raises(BadInput, match="symbolic link"):
        jobs.run_scene(settings, str(ready), "1")

    assert read == []
    (rec,) = error_records(settings.quarantine).values()
    assert rec["check"] == "symlink" and rec["source"] == "predict"
    assert not os.path.lexists(scene.image)
    canary.assert_absent(settings.home)


def test_predict_reads_the_verified_scene_and_archives_only_it(
    settings, canary, monkeypatch, tmp_path
) -> None:
    from satseg.inference import inbox, jobs

    scene = make_scene(settings.predict_inbox, "s", 64, 64, 1, labelme=False, geojson=False)
    original = scene.image.read_bytes()
    (ready,) = inbox.ready_scenes(settings)

    def swap() -> None:  # while the model runs, the name becomes a link
        os.rename(scene.image, tmp_path / "outside" / "s.orig")
        scene.image.symlink_to(canary.path)

    read = _predict_spy(monkeypatch, swap)
    jobs.run_scene(settings, str(ready), "1")

    assert read == [original]  # what was verified, not what the name says now
    assert _links(settings.raw) == [] and _user_files(settings.raw) == []
    assert inbox.ready_scenes(settings) == []  # the next poll quarantines the link
    (rec,) = error_records(settings.quarantine).values()
    assert rec["check"] == "symlink" and rec["symlink_to"] == str(canary.path)
    canary.assert_absent(settings.home)


def test_predict_inbox_fifo_is_quarantined_without_being_opened(settings) -> None:
    from satseg.inference import inbox

    settings.predict_inbox.mkdir(parents=True, exist_ok=True)
    os.mkfifo(settings.predict_inbox / "pipe.tif")
    assert inbox.ready_scenes(settings) == []
    (rec,) = error_records(settings.quarantine).values()
    assert rec["check"] == "not_regular" and rec["original"] == "predict/pipe.tif"
    assert inbox.ready_scenes(settings) == [] and len(error_records(settings.quarantine)) == 1


def test_predict_inbox_read_only_is_reported_once_and_never_copied(
    settings, monkeypatch, caplog
) -> None:
    from satseg.inference import inbox

    box = settings.predict_inbox
    box.mkdir(parents=True, exist_ok=True)
    os.mkfifo(box / "pipe.tif")
    (box / "link.tif").symlink_to("/etc/hostname")
    _read_only(box, monkeypatch)
    try:
        with caplog.at_level(logging.ERROR):
            for _ in range(3):
                assert inbox.ready_scenes(settings) == []
    finally:
        monkeypatch.undo()
        box.chmod(0o755)
    assert _user_files(settings.quarantine) == []
    assert list(settings.quarantine.rglob("*.error.json")) == []
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert sum("predict/pipe.tif" in m for m in errors) == 1
    assert sum("predict/link.tif" in m for m in errors) == 1
    inbox.ready_scenes(settings)  # fixed: both are quarantined as what they are
    checks = sorted(r["check"] for r in error_records(settings.quarantine).values())
    assert checks == ["not_regular", "symlink"]
