"""Which scenes in the predict inbox are complete, and where they go afterwards.

The ingest rule: a file is ready when a ``<file>.done`` or ``<stem>.done`` marker sits beside
it, or when its size and mtime are unchanged across two looks ``stable_polls_s`` apart; a
scene still being copied (or a hidden / ``*.part`` temporary) is left for the next poll.
Symbolic links are never followed: they are quarantined. Predicted inputs move to
``raw/predict-done/<date>/``, bad ones to ``quarantine/<date>/predict/`` with their error;
nothing is deleted.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from pathlib import Path

from satseg.config import Settings
from satseg.io.atomic import move, sha256_file, write_json
from satseg.vocab import IMAGE_SUFFIXES as SCENE_EXTS

DONE_SUFFIX = ".done"
log = logging.getLogger(__name__)


def _candidates(settings: Settings) -> list[Path]:
    inbox = settings.predict_inbox
    if not inbox.is_dir():
        return []
    out = []
    for p in sorted(inbox.iterdir()):
        if p.name.startswith(".") or p.suffix.lower() not in SCENE_EXTS:
            continue
        if p.is_symlink():
            target = os.readlink(p)
            quarantine(settings, p, {"error": f"symbolic link to {target}", "check": "symlink"})
            log.warning("%s is a symbolic link (to %s): quarantined, not followed", p.name, target)
        elif p.is_file():
            out.append(p)
    return out


def ready_scenes(settings: Settings, wait_s: float | None = None) -> list[Path]:
    """Complete scene files in ``settings.predict_inbox`` (marker, or stable across two looks)."""
    files = _candidates(settings)
    marked = [p for p in files if _marker(p).exists()]
    rest = [p for p in files if p not in marked]
    if not rest:
        return marked
    first = {p: _stat(p) for p in rest}
    time.sleep(settings.stable_polls_s if wait_s is None else wait_s)
    stable = [p for p in rest if p.exists() and _stat(p) == first[p]]
    return sorted(marked + stable)


def _stat(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_size, st.st_mtime_ns


def _marker(p: Path) -> Path:
    """The ``<file>.done`` or ``<stem>.done`` marker of ``p`` (the first form if neither)."""
    for m in (p.with_name(p.name + DONE_SUFFIX), p.with_name(p.stem + DONE_SUFFIX)):
        if m.exists():
            return m
    return p.with_name(p.name + DONE_SUFFIX)


def in_inbox(settings: Settings, path: Path) -> bool:
    return path.resolve().parent == settings.predict_inbox.resolve()


def archive_done(settings: Settings, path: Path) -> Path:
    """Move a predicted inbox scene (and its marker) to ``raw/predict-done/<date>/``."""
    return _move_unique(path, settings.raw / "predict-done" / _today())


def quarantine(settings: Settings, path: Path, error: dict[str, object]) -> Path:
    """Move a bad inbox scene to ``quarantine/<date>/predict/`` with ``<name>.error.json``."""
    dst = _move_unique(path, settings.quarantine / _today() / "predict")
    write_json(dst.with_name(dst.name + ".error.json"), error)
    return dst


def _move_unique(path: Path, folder: Path) -> Path:
    """Move keeping the name; a different file already there gets a numbered sibling."""
    dst = folder / path.name
    n = 1
    while dst.exists() and sha256_file(dst) != sha256_file(path):
        dst = folder / f"{path.stem}.{n}{path.suffix}"
        n += 1
    marker = _marker(path)
    move(path, dst)
    if marker.exists():
        move(marker, dst.with_name(dst.name + DONE_SUFFIX))
    return dst


def _today() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
