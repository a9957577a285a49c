"""Alert callbacks for DAGs (failure, drift, promotion). Filled in by the monitoring issue."""

from __future__ import annotations

from typing import Any


def failure_callbacks() -> list[Any]:
    """Notifiers attached to every task's ``on_failure_callback``."""
    return []
