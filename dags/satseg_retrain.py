"""satseg_retrain: processed dataset version -> MLflow runs -> challenger -> (maybe) champion."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from satseg.config import get_settings
from satseg.dagkit import (
    DRIFT,
    MODEL_PROMOTIONS,
    PROCESSED,
    ApprovalGate,
    default_args,
    emit_promotion,
    event_extras,
    params_for,
)
from satseg.params import RetrainRun, TrainParams

_settings = get_settings()
# The trigger form shows the model's defaults; a run uses the worker's params.yaml for every
# option its conf does not name (no params file is read at parse time).
TRAIN_FORM = ("arch", "backbone", "epochs", "batch_size", "learning_rate", "loss", "patience")

DOC = """
### satseg_retrain
Retrains the segmentation model nightly (`SATSEG_RETRAIN_CRON`, default 02:00 UTC), when
`satseg_ingest` publishes a new dataset version (`satseg://processed`) and when
`satseg_monitor` reports drift (`satseg://drift`).

1. **resolve** - dataset version to train on: the `dataset_version` param, else the newest
   triggering event, else the latest version of `dataset`. If the champion was trained on
   that very version the run stops here (skipped) unless `force` is set.
2. **plan** - training configs: the worker's `params.yaml` `train:` + the options this run's
   conf names (the form shows the built-in defaults), or the `sweep` grid, e.g.
   `{"arch": ["linknet", "unet"], "learning_rate": [0.001, 0.0003]}` (max 8).
3. **train** - one mapped task per config, one at a time: an MLflow run with params,
   per-epoch metrics, lineage tags (dataset tag, DVC md5, code version), best checkpoint.
4. **evaluate** - threshold and min object area tuned on val; val IoU/Dice/precision/recall,
   object F1 and boundary IoU at them + overlay PNGs + the model, logged to each run; the
   best run on `promotion_metric` is the candidate.
5. **register** - new version of `satseg-segmenter`, alias `challenger`.
6. **compare** - champion re-evaluated on the same val split; the rule: the challenger
   becomes `champion` only if its `promotion_metric` (default IoU) beats it by
   `SATSEG_PROMOTION_MARGIN` and its object F1 is at most `object_f1_tolerance` below (the
   first model always wins).
7. **approve** - with `promotion: approve` and a champion change ahead, waits for a person
   (Required Actions in the UI, or the REST API) showing both models' metrics; the approvers
   are alerted; after `approval_timeout_h` the `on_timeout` answer applies. Skipped otherwise.
8. **promote** - carries the decision out (rule or answer; a reject keeps the champion and
   records why). A promotion emits `satseg://model`.
9. **notify** - the decision and its reason (logs, e-mail/Slack when configured).
"""


@dag(
    dag_id="satseg_retrain",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(_settings.retrain_cron, timezone="UTC"),
        assets=(PROCESSED | DRIFT),
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    params={
        **params_for(TrainParams, TRAIN_FORM),
        **params_for(RetrainRun),
    },
    tags=["satseg", "training"],
    doc_md=DOC,
)
def satseg_retrain() -> None:
    @task.short_circuit
    def resolve(params: Any = None, triggering_asset_events: Any = None) -> Any:
        from satseg.training.runner import resolve_for_run

        return resolve_for_run(get_settings(), params, event_extras(triggering_asset_events))

    @task
    def plan(data: dict[str, Any], params: Any = None, dag_run: Any = None) -> list[dict[str, Any]]:
        from satseg.training.runner import plan_for_run

        return plan_for_run(get_settings(), params, dag_run.conf if dag_run else None)

    @task(max_active_tis_per_dag=1, execution_timeout=timedelta(hours=12))
    def train(
        config: dict[str, Any], data: dict[str, Any], run_id: Any = None, ti: Any = None
    ) -> dict[str, Any]:
        from satseg.training.retrain import train_candidate

        return train_candidate(get_settings(), data, config, key=f"{run_id}/{ti.map_index}")

    @task
    def evaluate(data: dict[str, Any], candidates: Any) -> dict[str, Any]:
        from satseg.training.retrain import evaluate_candidates

        return evaluate_candidates(get_settings(), data, candidates)

    @task
    def register(data: dict[str, Any], evaluated: dict[str, Any]) -> dict[str, Any]:
        from satseg.training.retrain import register_best

        return register_best(get_settings(), data, evaluated)

    @task
    def compare(data: dict[str, Any], ref: dict[str, Any], params: Any = None) -> Any:
        from satseg.training.approval import challenge_for_run

        return challenge_for_run(get_settings(), ref["version"], data["dir"], params)

    @task(outlets=[MODEL_PROMOTIONS], trigger_rule="none_failed")
    def promote(challenge: dict[str, Any], ti: Any = None, outlet_events: Any = None) -> Any:
        from satseg.training.approval import settle

        answer = ti.xcom_pull(task_ids="approve")  # None when no approval was asked
        return emit_promotion(outlet_events, dict(settle(get_settings(), challenge, answer)))

    @task
    def notify(decision: dict[str, Any]) -> str:
        from satseg.training.retrain import announce

        return announce(decision)

    data = resolve()
    configs = plan(data)
    runs = train.partial(data=data).expand(config=configs)
    evaluated = evaluate(data, runs)
    challenge = compare(data, register(data, evaluated))
    approve = ApprovalGate(task_id="approve", decision_task="compare")
    decided = promote(challenge)
    challenge >> approve >> decided
    notify(decided)


satseg_retrain()
