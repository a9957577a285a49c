"""Move rejected input to ``quarantine/<date>/<name>`` with ``<name>.error.json`` beside it.

Nothing is deleted: the file is moved atomically and the record says why (reason, the check
that failed, sha256, time, where it came from), so a person can fix and re-drop it.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from satseg.config import Settings
from satseg.io.atomic import move, sha256_file, write_json
from satseg.vocab import sanitize

log = logging.getLogger(__name__)


def _free_target(folder: Path, name: str) -> Path:
    target = folder / name
    n = 1
    while target.exists() or target.is_symlink() or _error_path(target).exists():
        stem, dot, ext = name.partition(".")
        target = folder / f"{stem}.{n}{dot}{ext}"
        n += 1
    return target


def _error_path(target: Path) -> Path:
    return target.with_name(target.name + ".error.json")


def quarantine(
    settings: Settings,
    path: Path,
    reason: str,
    check: str,
    *,
    dataset: str | None = None,
    sha256: str | None = None,
    related: list[str] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Quarantine one file (or symlink, moved as a link); returns the error record."""
    now = now or datetime.now(UTC)
    folder = settings.quarantine / now.strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    is_link = path.is_symlink()
    if sha256 is None and not is_link and path.is_file():
        sha256 = sha256_file(path)
    try:
        original = str(path.relative_to(settings.inbox))
    except ValueError:
        original = str(path)
    target = _free_target(folder, sanitize(path.name))
    record: dict[str, Any] = {
        "file": target.name,
        "original": original,
        "dataset": dataset,
        "reason": reason,
        "check": check,
        "sha256": sha256,
        "size": 0 if is_link else path.stat().st_size,
        "symlink_to": os.readlink(path) if is_link else None,
        "time": now.isoformat(),
        "related": related or [],
    }
    write_json(_error_path(target), record)
    move(path, target)
    log.warning("quarantined %s -> %s: [%s] %s", original, target, check, reason)
    return {**record, "path": str(target)}
