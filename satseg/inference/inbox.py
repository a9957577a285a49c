"""Which scenes in the predict inbox are complete, and where they go afterwards.

A file is ready when a ``<name>.done`` marker sits beside it, or when its size and mtime are
unchanged across two looks ``stable_polls_s`` apart (the ingest rule): a scene still being
copied is left for the next poll. Predicted inputs move to ``raw/predict-done/<date>/``,
bad ones to ``quarantine/<date>/predict/`` with their error; nothing is deleted.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from satseg.config import Settings
from satseg.inference.source import SCENE_EXTS
from satseg.io.atomic import move, sha256_file, write_json

DONE_SUFFIX = ".done"


def _candidates(inbox: Path) -> list[Path]:
    if not inbox.is_dir():
        return []
    return sorted(
        p
        for p in inbox.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SCENE_EXTS
    )


def ready_scenes(settings: Settings, wait_s: float | None = None) -> list[Path]:
    """Complete scene files in ``settings.predict_inbox`` (marker, or stable across two looks)."""
    files = _candidates(settings.predict_inbox)
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
    move(path, dst)
    marker = _marker(path)
    if marker.exists():
        move(marker, _marker(dst))
    return dst


def _today() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
