"""Asset events for new dataset versions (called by the DAG's ``publish`` task).

Each new version emits one event on ``PROCESSED`` (``satseg://processed``) and one on its
dataset's Asset (``satseg://processed/<dataset>``), both with extra {dataset, tag, md5,
counts}. They go through an ``AssetAlias`` because the per-dataset Assets are only known at
run time, and because a statically declared outlet would emit an event on every successful
run — retraining must not be triggered every five minutes when nothing changed.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import AssetAlias

from satseg.dagkit import PROCESSED, dataset_asset

VERSIONS_ALIAS = AssetAlias(name="satseg_dataset_versions", group="satseg")


def version_extra(version: dict[str, Any]) -> dict[str, Any]:
    return {
        "dataset": version["dataset"],
        "tag": version["tag"],
        "md5": version["md5"],
        "counts": dict(version.get("counts", {})),
    }


def publish_versions(versions: list[dict[str, Any]], outlet_events: Any) -> list[dict[str, Any]]:
    """Add the events of every new version; skip the task (no events) when there is none."""
    from airflow.sdk.exceptions import AirflowSkipException

    new = [version_extra(v) for v in versions or [] if v.get("new")]
    if not new:
        raise AirflowSkipException("no new dataset version: nothing to publish")
    accessor = outlet_events[VERSIONS_ALIAS]
    for extra in new:
        accessor.add(PROCESSED, extra=extra)
        accessor.add(dataset_asset(extra["dataset"]), extra=extra)
    return new
