"""satseg_monitor: data drift and champion performance -> drift Asset (retraining) + alerts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from airflow.sdk import (
    AssetOrTimeSchedule,
    CronTriggerTimetable,
    Metadata,
    Param,
    dag,
    task,
)

from satseg.config import get_settings
from satseg.dagkit import DRIFT, PREDICTIONS, PROCESSED, boundary, default_args

DOC = """
### satseg_monitor
Watches whether production still looks like training. Runs daily (`SATSEG_MONITOR_CRON`),
after every prediction batch / processed dataset (Assets), and on demand.

1. **plan** - reference = the champion's training dataset tag (or the `reference` param);
   current = imagery ingested or predicted since the last checked run (or the `current` param).
2. **data_drift** - image features of sampled windows, per-feature KS tests (Bonferroni),
   drift when more than `monitor.drift_share` of features drifted; Evidently HTML + JSON in
   `reports/<date>/`, logged to MLflow (experiment `<experiment>-monitoring`).
3. **performance** - champion evaluated on newly labelled data; IoU/Dice history + plot;
   an IoU drop above `monitor.iou_drop` is concept drift.
4. **drift_found -> emit_drift** - on drift: alert (e-mail/Slack) and emit `satseg://drift`
   (extra: reason, report), which triggers `satseg_retrain`.
5. **commit** - remember the imagery that was checked.
"""


@dag(
    dag_id="satseg_monitor",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(get_settings().monitor_cron, timezone="UTC"),
        assets=(PREDICTIONS | PROCESSED),
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args=default_args(),
    params={
        "reference": Param(
            None,
            type=["null", "string"],
            description="Dataset tag (e.g. demo-v3) or dataset dir; empty = champion's dataset",
        ),
        "current": Param(
            [],
            type="array",
            items={"type": "string"},
            description="Scene files/folders to check; empty = imagery new since the last run",
        ),
    },
    tags=["satseg", "monitoring"],
    doc_md=DOC,
)
def satseg_monitor() -> None:
    @task
    @boundary
    def plan(params: Any = None, run_id: str | None = None) -> dict[str, Any]:
        from satseg.monitoring import monitor

        return monitor.plan(get_settings(), params["reference"], params["current"], run_id)

    @task
    @boundary
    def data_drift(planned: dict[str, Any], dag_run: Any = None) -> dict[str, Any]:
        from satseg.monitoring import monitor

        return monitor.check_data_drift(get_settings(), planned, when=dag_run.run_after)

    @task
    def performance(dag_run: Any = None) -> dict[str, Any]:
        from satseg.monitoring import monitor

        return monitor.evaluate_champion(get_settings(), when=dag_run.run_after)

    @task.short_circuit
    def drift_found(data: dict[str, Any], perf: dict[str, Any]) -> bool:
        from satseg.monitoring import monitor

        return monitor.drift_event(data, perf) is not None

    @task(outlets=[DRIFT])
    def emit_drift(data: dict[str, Any], perf: dict[str, Any]) -> Iterator[Metadata]:
        from satseg.monitoring import monitor

        yield Metadata(DRIFT, extra=monitor.announce_drift(get_settings(), data, perf))

    @task
    def commit(planned: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        from satseg.monitoring import monitor

        return monitor.commit(get_settings(), planned, data)

    planned = plan()
    data = data_drift(planned)
    perf = performance()
    drift_found(data, perf) >> emit_drift(data, perf)
    commit(planned, data)


satseg_monitor()
