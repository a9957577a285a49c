"""satseg.monitoring: drift features, KS tests, Evidently reports, performance history."""

from __future__ import annotations

from satseg.errors import BadInput


class MonitorError(BadInput):
    """Input the monitor cannot use (unknown tag, unreadable imagery); says what and why."""
