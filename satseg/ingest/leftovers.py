"""Temp folders of scene caches that a killed pass left behind, removed at the next pass.

A scene cache is written into ``processed/.scenes/<dataset>/.tmp-<scene>-<pid>-<hex>/`` and
appears by one rename; a pass killed mid-scene (SIGKILL, OOM, a lost worker) leaves the temp
folder, which nothing else would ever remove. Each pass starts by removing those that are
stale: made by a process of this host that no longer runs and quiet for ``QUIET_S``, or
quiet for longer than ``STALE_CLAIM_S`` whoever made them (another host's worker, the older
``.tmp-<scene>-<hex>`` names). "Quiet": neither the folder nor its direct subfolders changed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import time
import uuid
from pathlib import Path

from satseg.config import Settings
from satseg.inbox.claims import STALE_CLAIM_S, alive

log = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
QUIET_S = 60.0  # a temp folder of a dead process unchanged this long is removed


def tmp_scene_dir(root: Path, scene: str) -> Path:
    """A fresh temp folder name for ``scene``'s cache, naming this process and host."""
    return root / f"{TMP_PREFIX}{scene}-{os.getpid()}.{_host_tag()}-{uuid.uuid4().hex[:8]}"


def _host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def _owner(name: str) -> tuple[int, str] | None:
    """(pid, host tag) from a temp folder's name, None for the older names without them."""
    parts = name.rsplit("-", 2)
    if len(parts) != 3 or "." not in parts[1]:
        return None
    pid, _, host = parts[1].partition(".")
    return (int(pid), host) if pid.isdigit() else None


def _last_change(folder: Path) -> float:
    newest = folder.stat().st_mtime
    for child in os.scandir(folder):
        if child.is_dir(follow_symlinks=False):
            newest = max(newest, child.stat(follow_symlinks=False).st_mtime)
    return newest


def is_stale(folder: Path, now: float) -> bool:
    quiet = now - _last_change(folder)
    owner = _owner(folder.name)
    if owner is not None and owner[1] == _host_tag() and not alive(owner[0]):
        return quiet > QUIET_S
    return quiet > STALE_CLAIM_S


def clean_stale_tmp(settings: Settings, now: float | None = None) -> list[Path]:
    """Remove the stale temp folders under ``processed/.scenes/*/``; the ones removed."""
    now = time.time() if now is None else now
    root = settings.processed / ".scenes"
    removed = []
    for folder in sorted(root.glob(f"*/{TMP_PREFIX}*")) if root.is_dir() else []:
        try:
            if folder.is_symlink() or not folder.is_dir() or not is_stale(folder, now):
                continue
        except FileNotFoundError:
            continue
        shutil.rmtree(folder, ignore_errors=True)
        log.warning("removed %s: temp folder of a pass that did not finish", folder)
        removed.append(folder)
    return removed
