"""Small JSON state under ``SATSEG_HOME/state``, guarded by file locks.

Mapped ingest tasks run in parallel processes; the hash ledger and the versioning steps are
serialised with ``fcntl.flock`` so two tasks never claim the same content or tag.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from satseg.config import Settings
from satseg.io.atomic import write_json
from satseg.io.locks import file_lock


def locked(settings: Settings, name: str) -> contextlib.AbstractContextManager[None]:
    return file_lock(settings.state / f"{name}.lock")


def read_state(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


def write_state(path: Path, data: Any) -> None:
    write_json(path, data)


def ledger_path(settings: Settings) -> Path:
    """sha256 of every accepted image -> where it went (duplicate detection)."""
    return settings.state / "ingest_ledger.json"


def scan_state_path(settings: Settings) -> Path:
    """Size/mtime/first-seen of inbox files between polls (completeness, timeouts)."""
    return settings.state / "inbox_scan.json"


def results_dir(settings: Settings) -> Path:
    """One result per processed pair: re-running a task returns it instead of redoing work."""
    return settings.state / "ingest_results"


def pending_dir(settings: Settings) -> Path:
    """A marker per dataset with accepted scenes not yet versioned."""
    return settings.state / "ingest_pending"
