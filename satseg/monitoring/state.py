"""The monitor's state file (``state/monitor.json``): which imagery each run checked.

Imagery counts as "current" until a run that checked it is recorded here, so a failed or
inconclusive run never makes the monitor forget new scenes. A run re-recorded under the
same label replaces its old entry (re-runs are idempotent).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from satseg.config import Settings
from satseg.io.atomic import write_json


def state_path(settings: Settings) -> Path:
    return settings.state / "monitor.json"


def load_state(settings: Settings) -> dict[str, Any]:
    """``{"runs": {label: {time, files, drift_detected, report}}}`` (empty before any run)."""
    p = state_path(settings)
    return json.loads(p.read_text()) if p.is_file() else {"runs": {}}


def seen_fingerprints(settings: Settings, except_label: str | None = None) -> set[str]:
    """Fingerprints of the imagery every other run checked (a re-run sees its own again)."""
    runs = load_state(settings)["runs"]
    return {f for label, run in runs.items() if label != except_label for f in run["files"]}


def record_run(
    settings: Settings,
    label: str,
    fingerprints: list[str],
    *,
    drift_detected: bool,
    report: str | None,
) -> None:
    """Remember that run ``label`` checked the imagery with these ``fingerprints``."""
    state = load_state(settings)
    state["runs"][label] = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": fingerprints,
        "drift_detected": drift_detected,
        "report": report,
    }
    write_json(state_path(settings), state)
