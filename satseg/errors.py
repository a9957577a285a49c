"""satseg's own exceptions for the task boundary: what a scheduler should do with a failure.

The library raises these; it never imports the scheduler. ``satseg.dagkit`` maps them to
Airflow's (``BadInput`` -> fail without retry, ``NothingToDo`` -> skip), the CLI to exit
codes. Any other exception is satseg's or the machine's trouble and keeps its retries.
"""

from __future__ import annotations


class SatsegError(Exception):
    """Base of the boundary exceptions."""


class BadInput(SatsegError, ValueError):
    """Input that retrying cannot fix (an unknown tag, unreadable imagery): fail at once.

    Domain errors that mean the same subclass it (``MonitorError``), or are wrapped in it
    where a task gives up on an input (a scene that is not a raster).
    """


class NothingToDo(SatsegError):
    """Nothing for this task to do (no new version, outputs up to date): skip it."""
