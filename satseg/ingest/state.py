"""Where ingest keeps its small JSON state under ``SATSEG_HOME/state``.

Mapped ingest tasks run in parallel processes; the hash ledger is a ``satseg.inbox.claims``
ledger (locked, so two tasks never claim the same content) and the versioning steps hold
their own locks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from satseg.config import Settings
from satseg.vocab import RECORDS_DIR


def read_state(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


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


def provenance_path(settings: Settings, dataset: str, scene: str) -> Path:
    """``raw/.satseg/<dataset>/<scene>.ingest.json``: where an accepted scene came from.

    Kept apart from the originals in ``raw/<dataset>/``: a dot-name is never accepted from the
    inbox, so no user file (``alpha.ingest.json``) can collide with satseg's own record.
    """
    return settings.raw / RECORDS_DIR / dataset / f"{scene}.ingest.json"


def stuck_path(settings: Settings) -> Path:
    """Inbox files that could not be moved out (read-only folder), reported once."""
    return settings.state / "inbox_stuck.json"
