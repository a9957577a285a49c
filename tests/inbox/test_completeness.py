"""One completeness rule: markers, size+mtime stable across polls, a second look, temporaries."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from satseg.inbox.completeness import (
    Observed,
    ScanState,
    Seen,
    complete,
    is_marker,
    marker_stem,
    markers_of,
    observe,
)
from satseg.vocab import is_in_progress


def _obs(path: Path, group: object | None = None) -> Observed:
    o = observe(path, path.name, group if group is not None else path.stem)
    assert o is not None
    return o


def test_new_unmarked_files_wait_for_the_next_poll_without_a_second_look(tmp_path) -> None:
    f = tmp_path / "a.tif"
    f.write_bytes(b"x" * 10)
    state = ScanState(tmp_path / "state" / "scan.json")
    first = [_obs(f)]
    assert complete(first, state.load(), wait_s=0) == set()  # never seen before
    state.save(ScanState.remember(first, state.load(), now=100.0))
    assert complete([_obs(f)], state.load(), wait_s=0) == {"a.tif"}  # unchanged since then
    assert state.load()["a.tif"] == Seen(10, f.stat().st_mtime_ns, 100.0)


def test_a_file_that_changed_between_polls_is_not_complete(tmp_path) -> None:
    f = tmp_path / "a.tif"
    f.write_bytes(b"x" * 10)
    state = ScanState(tmp_path / "scan.json")
    state.save(ScanState.remember([_obs(f)], {}, now=1.0))
    with f.open("ab") as fh:
        fh.write(b"more")
    assert complete([_obs(f)], state.load(), wait_s=0) == set()
    # the first sighting is kept across polls (partner timeouts count from it)
    again = ScanState.remember([_obs(f)], state.load(), now=50.0)
    assert again["a.tif"].first_seen == 1.0 and again["a.tif"].size == 14


def test_second_look_catches_a_growing_file(tmp_path) -> None:
    stable, growing = tmp_path / "stable.tif", tmp_path / "growing.tif"
    stable.write_bytes(b"s" * 10)
    growing.write_bytes(b"g" * 10)
    seen = [_obs(stable), _obs(growing)]

    def grow() -> None:
        for _ in range(5):
            time.sleep(0.03)
            with growing.open("ab") as fh:
                fh.write(b"y")

    t = threading.Thread(target=grow)
    t.start()
    done = complete(seen, {}, wait_s=0.25)
    t.join()
    assert done == {"stable.tif"}


def test_a_file_gone_at_the_second_look_is_not_complete(tmp_path) -> None:
    f = tmp_path / "a.tif"
    f.write_bytes(b"x")
    seen = [_obs(f)]
    f.unlink()
    assert complete(seen, {}, wait_s=0.01) == set()


def test_markers_complete_their_file_or_their_whole_group(tmp_path) -> None:
    names = ["a.tif", "a.json", "a.tif.done", "b.tif", "b.geojson", "b.done", "c.tif", "n.txt"]
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    (tmp_path / "n.txt.done").touch()
    files = [
        _obs(p, marker_stem(p.name) if is_marker(p.name) else p.stem.split(".")[0])
        for p in sorted(tmp_path.iterdir())
    ]
    # n.txt has group "n", its marker "n.txt": completed by name, not by group
    done = complete(files, {}, wait_s=0)
    assert done == {*names, "n.txt.done"} - {"c.tif"}
    assert marker_stem("x.tif.done") == "x" and marker_stem("x.done") == "x"
    assert marker_stem("x.TIF.DONE") == "x" and marker_stem("notes.txt.done") == "notes.txt"


def test_markers_of_lists_both_forms(tmp_path) -> None:
    f = tmp_path / "s.tif"
    f.write_bytes(b"x")
    assert markers_of(f) == []
    (tmp_path / "s.tif.done").touch()
    (tmp_path / "s.done").touch()
    assert [m.name for m in markers_of(f)] == ["s.tif.done", "s.done"]


def test_in_progress_temporaries_are_recognised() -> None:
    for name in (".hidden.tif", "up.tif.part", "x.tif.partial", "a.TMP", "b.crdownload"):
        assert is_in_progress(name), name
    for name in ("a.tif", "a.json", "a.done", "part.tif"):
        assert not is_in_progress(name), name


def test_scan_state_is_written_atomically_as_json(tmp_path) -> None:
    state = ScanState(tmp_path / "s" / "scan.json")
    assert state.load() == {}
    state.save({"x/a.tif": Seen(3, 4, 5.0)})
    assert state.load() == {"x/a.tif": Seen(3, 4, 5.0)}
    assert os.listdir(tmp_path / "s") == ["scan.json"]  # no temp left behind
