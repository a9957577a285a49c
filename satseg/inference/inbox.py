"""Which scenes in the predict inbox are complete, and where they go afterwards.

The one inbox rule (``satseg.inbox.completeness``): a scene is ready when a ``<file>.done`` or
``<stem>.done`` marker sits beside it, or when its size and mtime are unchanged since the
previous poll (``state/predict_inbox_scan.json``) or across a second look ``stable_polls_s``
later; a scene still being copied (or a hidden / ``*.part`` temporary) is left for the next
poll. Symbolic links are never followed: they are quarantined. Predicted inputs move to
``raw/predict-done/<date>/``, bad ones to ``quarantine/<date>/predict/`` with the one
quarantine record (``satseg.inbox.quarantine``); nothing is deleted.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import stat
import time
from pathlib import Path

from satseg.config import Settings
from satseg.errors import BadInput
from satseg.inbox.completeness import (
    Observed,
    ScanState,
    complete,
    is_marker,
    marker_stem,
    markers_of,
    observe,
)
from satseg.inbox.quarantine import original_name
from satseg.inbox.quarantine import quarantine as quarantine_file
from satseg.inbox.stuck import StuckFiles
from satseg.inbox.verified import (
    Changed,
    Identity,
    NotVerified,
    Verified,
    is_same,
    kind_of,
    open_verified,
)
from satseg.io.atomic import move
from satseg.vocab import DONE_SUFFIX, is_image_name, is_in_progress

log = logging.getLogger(__name__)


def _candidates(settings: Settings) -> list[Observed]:
    """Scene files and markers in the predict inbox; symlinked scenes are quarantined."""
    inbox = settings.predict_inbox
    if not inbox.is_dir():
        return []
    out = []
    for p in sorted(inbox.iterdir()):
        name = p.name
        if is_in_progress(name) or not (is_image_name(name) or is_marker(name)):
            continue
        try:
            mode = p.lstat().st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode):
            if is_image_name(name):
                target = os.readlink(p)
                refuse(settings, p, f"symbolic link to {target}; never followed", "symlink")
            continue
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            if is_image_name(name):  # a FIFO or device: moved as it is, never opened
                what = f"{name} is {kind_of(mode)}, not a regular file; it was never opened"
                refuse(settings, p, what, "not_regular")
            continue
        group = marker_stem(name) if is_marker(name) else p.stem
        seen = observe(p, name, group) if p.is_file() else None
        if seen is not None:
            out.append(seen)
    return out


def ready_scenes(settings: Settings, wait_s: float | None = None) -> list[Path]:
    """Complete scene files in ``settings.predict_inbox`` (marker, or stable across looks)."""
    files = _candidates(settings)
    scans = ScanState(settings.state / "predict_inbox_scan.json")
    previous = scans.load()
    done = complete(files, previous, settings.stable_polls_s if wait_s is None else wait_s)
    scans.save(ScanState.remember(files, previous, time.time()))
    return sorted(f.path for f in files if f.key in done and not is_marker(f.path.name))


def in_inbox(settings: Settings, path: Path) -> bool:
    """Is ``path`` a name in the predict inbox (the name itself, never what a link points to)?"""
    return path.absolute().parent.resolve() == settings.predict_inbox.resolve()


def verify(settings: Settings, path: Path) -> Verified:
    """Open an inbox scene once, without following links (``satseg.inbox.verified``).

    A name that has become a link, a FIFO or a device since the scan is quarantined as what
    it is (never opened) and ``BadInput`` raised.
    """
    try:
        return open_verified(path, settings.predict_inbox)
    except NotVerified as e:
        refuse(settings, path, str(e), e.check)
        raise BadInput(f"{path.name}: {e} [{e.check}]") from e


def archive_done(settings: Settings, path: Path, expect: Identity | None = None) -> Path:
    """Move a predicted inbox scene (and its markers) to ``raw/predict-done/<date>/``.

    A different scene archived under the same name earlier is kept: this one gets a numbered
    sibling (``s.1.tif``). With ``expect`` (what was verified and predicted), a name that no
    longer refers to that unchanged file is not archived: ``Changed`` is raised, and it stays.
    """
    if expect is not None and not is_same(path, expect):
        raise Changed(f"{path.name} changed or was replaced while it was predicted; not archived")
    folder = settings.raw / "predict-done" / _today()
    folder.mkdir(parents=True, exist_ok=True)
    dst, n = folder / path.name, 1
    while dst.exists() or dst.is_symlink():
        dst, n = folder / f"{path.stem}.{n}{path.suffix}", n + 1
    markers = markers_of(path)
    move(path, dst)
    for m in markers:  # each keeps its form: <file>.done or <stem>.done
        own = m.name == path.name + DONE_SUFFIX
        move(m, dst.with_name((dst.name if own else dst.stem) + DONE_SUFFIX))
    return dst


def refuse(settings: Settings, path: Path, reason: str, check: str) -> Path | None:
    """``quarantine``, but a file that cannot be moved (read-only inbox) stays: reported once."""
    try:
        return quarantine(settings, path, reason, check)
    except Changed as e:
        log.warning("%s", e)
    except FileNotFoundError:
        pass
    except OSError as e:
        report_stuck(settings, path, "quarantine", e)
    return None


def report_stuck(settings: Settings, path: Path, action: str, error: OSError) -> None:
    """A predict-inbox file that cannot be moved out: logged once (``satseg.inbox.stuck``)."""
    StuckFiles(settings.state / "predict_inbox_stuck.json").report(
        original_name(settings, path), action, error
    )


def quarantine(settings: Settings, path: Path, reason: str, check: str) -> Path:
    """Quarantine a bad inbox scene (and its markers) to ``quarantine/<date>/predict/``."""
    markers = [] if path.is_symlink() else markers_of(path)
    related = [original_name(settings, p) for p in [path, *markers]]
    dst = quarantine_file(settings, path, reason, check, source="predict", related=related)
    for m in markers:
        quarantine_file(
            settings,
            m,
            f"marker of {path.name}, which was quarantined: {reason}",
            "partner_rejected",
            source="predict",
            related=related,
        )
    log.warning("%s quarantined to %s: [%s] %s", path.name, dst, check, reason)
    return dst


def _today() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
