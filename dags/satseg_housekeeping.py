"""satseg_housekeeping: old task logs and old metadata rows go, daily."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import CronTriggerTimetable, Param, dag, task

from satseg.config import get_settings
from satseg.dagkit import default_args

DOC = """
### satseg_housekeeping
Keeps a long-running deployment from filling its disks (`SATSEG_HOUSEKEEPING_CRON`, default
03:30 UTC, outside the nightly retraining's start).

1. **prune** - deletes task and component log files older than `SATSEG_LOG_RETENTION_DAYS`
   (default 30) and the folders left empty under Airflow's log folder, then runs
   `airflow db clean --skip-archive` for metadata rows (DAG runs, task instances, XComs, the
   event log, ...) older than `SATSEG_DB_RETENTION_DAYS` (default 90). `dry_run` only reports.

The same from a shell: `satseg ops prune [--dry-run]`. Dataset versions (DVC), MLflow runs
and models, predictions and reports are never touched here.
"""


@dag(
    dag_id="satseg_housekeeping",
    schedule=CronTriggerTimetable(get_settings().housekeeping_cron, timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    params={
        "dry_run": Param(False, type="boolean", description="Only report what would be deleted")
    },
    tags=["satseg", "ops"],
    doc_md=DOC,
)
def satseg_housekeeping() -> None:
    @task
    def prune(params: Any = None) -> dict[str, Any]:
        from satseg.ops.housekeeping import housekeep

        return housekeep(get_settings(), dry_run=bool((params or {}).get("dry_run")))

    prune()


satseg_housekeeping()
