"""Is a dropped file complete? One rule for every inbox.

A file is complete when the sender says so, or when it has stopped changing:

- a ``<file>.done`` or ``<stem>.done`` marker sits in its folder (a ``<stem>.done`` marks
  every file of that stem's group, e.g. an image and its annotation);
- or its size and mtime equal those of the previous poll, remembered in a state file
  (``ScanState``);
- or, for what is new since then, they are unchanged at a second look ``wait_s`` seconds later
  (``wait_s`` 0: no second look, new files wait for the next poll).

Hidden files and ``*.part``-style temporaries (``satseg.vocab.is_in_progress``) are uploads
still being written: callers skip them before asking.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from satseg.io.atomic import write_json
from satseg.vocab import ANNOTATION_SUFFIXES, DONE_SUFFIX, IMAGE_SUFFIXES


@dataclass(frozen=True)
class Observed:
    """One file as a poll found it. ``group``: the files a ``<stem>.done`` marker completes."""

    key: str  # its name in the scan state (the path relative to the inbox)
    path: Path
    size: int
    mtime_ns: int
    group: Hashable


@dataclass(frozen=True)
class Seen:
    """What the previous poll recorded of a file (``first_seen``: for partner timeouts)."""

    size: int
    mtime_ns: int
    first_seen: float


def look(path: Path) -> tuple[int, int] | None:
    """(size, mtime_ns) of ``path``, or None once it is gone."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


def observe(path: Path, key: str, group: Hashable) -> Observed | None:
    st = look(path)
    return None if st is None else Observed(key, path, st[0], st[1], group)


def is_marker(name: str) -> bool:
    return name.lower().endswith(DONE_SUFFIX)


def marker_stem(marker: str) -> str:
    """The group a marker completes: ``x.tif.done`` and ``x.done`` -> ``x``; ``a.txt.done`` -> ``a.txt``."""
    target = marker[: -len(DONE_SUFFIX)]
    base, ext = os.path.splitext(target)
    return base if ext.lower() in IMAGE_SUFFIXES | ANNOTATION_SUFFIXES else target


def markers_of(path: Path) -> list[Path]:
    """The markers that exist for ``path``: ``<file>.done``, ``<stem>.done``."""
    names = dict.fromkeys((path.name + DONE_SUFFIX, path.stem + DONE_SUFFIX))
    return [path.with_name(n) for n in names if path.with_name(n).exists()]


def complete(files: Iterable[Observed], previous: Mapping[str, Seen], wait_s: float) -> set[str]:
    """Keys of the complete ``files`` (markers count as complete themselves)."""
    files = list(files)
    markers = [f for f in files if is_marker(f.path.name)]
    marked_groups = {f.group for f in markers}
    marked_files = {f.path.with_name(f.path.name[: -len(DONE_SUFFIX)]) for f in markers}
    done: set[str] = set()
    unsure: list[Observed] = []
    for f in files:
        prev = previous.get(f.key)
        same = prev is not None and (prev.size, prev.mtime_ns) == (f.size, f.mtime_ns)
        if same or f.group in marked_groups or f.path in marked_files or f in markers:
            done.add(f.key)
        else:
            unsure.append(f)
    if unsure and wait_s > 0:
        time.sleep(wait_s)
        done |= {f.key for f in unsure if look(f.path) == (f.size, f.mtime_ns)}
    return done


@dataclass(frozen=True)
class ScanState:
    """Size, mtime and first sighting of every inbox file between polls (one JSON file)."""

    path: Path

    def load(self) -> dict[str, Seen]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return {k: Seen(v["size"], v["mtime_ns"], v["first_seen"]) for k, v in raw.items()}

    def save(self, seen: Mapping[str, Seen]) -> None:
        write_json(
            self.path,
            {
                k: {"size": s.size, "mtime_ns": s.mtime_ns, "first_seen": s.first_seen}
                for k, s in seen.items()
            },
        )

    @staticmethod
    def remember(
        files: Iterable[Observed], previous: Mapping[str, Seen], now: float
    ) -> dict[str, Seen]:
        """This poll's record: current size/mtime, the first sighting kept from before."""
        out = {}
        for f in files:
            prev = previous.get(f.key)
            out[f.key] = Seen(f.size, f.mtime_ns, prev.first_seen if prev else now)
        return out
