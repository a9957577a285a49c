"""Asset extras for new dataset versions (called by the DAG's ``publish`` task).

Each new version gets one extra {dataset, tag, md5, counts}; ``satseg.dagkit.emit_versions``
turns each into an event on ``satseg://processed`` and one on ``satseg://processed/<dataset>``.
No new version means nothing to publish: the task is skipped and emits no event.
"""

from __future__ import annotations

from typing import Any

from satseg.errors import NothingToDo


def version_extra(version: dict[str, Any]) -> dict[str, Any]:
    return {
        "dataset": version["dataset"],
        "tag": version["tag"],
        "md5": version["md5"],
        "counts": dict(version.get("counts", {})),
    }


def publish_versions(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Asset extras of every new version; ``NothingToDo`` when there is none."""
    new = [version_extra(v) for v in versions or [] if v.get("new")]
    if not new:
        raise NothingToDo("no new dataset version: nothing to publish")
    return new
