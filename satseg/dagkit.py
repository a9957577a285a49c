"""What every satseg DAG shares: default args, every Asset and AssetAlias, the task boundary.

The library never imports Airflow. It raises ``satseg.errors.BadInput`` (retrying cannot
help) and ``NothingToDo`` (skip); ``boundary`` turns them into Airflow's fail-without-retry
and skip. The library returns Asset extras; the helpers here add them to ``outlet_events``.

Imported by DAG files at parse time, so it must stay light: Airflow SDK only, no
TensorFlow/rasterio (tests/dags check that).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Asset, AssetAlias, Param
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from pydantic import BaseModel

from satseg.errors import BadInput, NothingToDo
from satseg.vocab import APPROVAL_COMMENT, APPROVAL_OPTIONS, REJECT

OWNER = "satseg"
P = ParamSpec("P")
R = TypeVar("R")

DRIFT = Asset(name="satseg_drift", uri="satseg://drift", group="satseg")
PREDICTIONS = Asset(name="satseg_predictions", uri="satseg://predictions", group="satseg")
MODEL = Asset(name="satseg_model", uri="satseg://model", group="satseg")
PROCESSED = Asset(name="satseg_processed", uri="satseg://processed", group="satseg")

# New dataset versions go through an alias: the per-dataset Assets are only known at run
# time, and a statically declared outlet would emit an event on every successful run
# (retraining must not be triggered every five minutes when nothing changed).
VERSIONS_ALIAS = AssetAlias(name="satseg_dataset_versions", group="satseg")
# Promotions are added to this alias only when they happen, so `satseg://model` gets an
# event (and triggers its consumers) for a new champion, never for a rejected challenger.
MODEL_PROMOTIONS = AssetAlias(name="satseg_model_promotions", group="satseg")


def dataset_asset(dataset: str) -> Asset:
    """Per-dataset Asset (``satseg://processed/<dataset>``)."""
    return Asset(
        name=f"satseg_processed_{dataset}", uri=f"satseg://processed/{dataset}", group="satseg"
    )


def boundary(fn: Callable[P, R]) -> Callable[P, R]:
    """Put under ``@task``: ``BadInput`` fails the task without retry, ``NothingToDo`` skips it.

    The wrapper keeps ``fn``'s signature, so Airflow still injects context arguments.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except NothingToDo as e:
            raise AirflowSkipException(str(e)) from e
        except BadInput as e:
            raise AirflowFailException(f"{type(e).__name__}: {e}") from e

    return wrapper


def emit_versions(outlet_events: Any, extras: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One event per new version on ``PROCESSED`` and on its dataset's Asset (via the alias)."""
    accessor = outlet_events[VERSIONS_ALIAS]
    for extra in extras:
        accessor.add(PROCESSED, extra=extra)
        accessor.add(dataset_asset(extra["dataset"]), extra=extra)
    return extras


def emit_promotion(outlet_events: Any, decision: dict[str, Any]) -> dict[str, Any]:
    """An event on ``MODEL`` (via the alias) only when the challenger was promoted."""
    if decision["promoted"]:
        outlet_events[MODEL_PROMOTIONS].add(MODEL, extra=decision)
    return decision


def event_extras(triggering_asset_events: Any) -> list[dict[str, Any]]:
    """Extras of the Asset events that triggered a run, oldest first (empty for cron/manual)."""
    found = []
    for events in (triggering_asset_events or {}).values():
        for e in events:
            found.append((str(getattr(e, "timestamp", "")), dict(getattr(e, "extra", None) or {})))
    return [extra for _, extra in sorted(found, key=lambda t: t[0])]


def default_args(**over: Any) -> dict[str, Any]:
    """Owner, retries and failure alerts (e-mail/Slack when configured) for every task."""
    from satseg.alerting import failure_callbacks

    args: dict[str, Any] = {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "on_failure_callback": failure_callbacks(),
    }
    args.update(over)
    return args


def params_for(section: type[BaseModel], fields: Sequence[str] | None = None) -> dict[str, Param]:
    """Trigger-form ``Param``s for ``section``'s ``fields``: default, type, range, choices and
    description all from the model's JSON schema (no params file is read at parse time).

    The DAG's task merges the worker's params file with the run's conf and validates the
    result through the model again.
    """
    props = section.model_json_schema()["properties"]
    out: dict[str, Param] = {}
    for name in fields or list(props):
        schema = dict(props[name])
        schema.pop("title", None)
        if "anyOf" in schema:  # X | None: one schema whose type also allows null
            options = schema.pop("anyOf")
            merged: dict[str, Any] = {}
            types: list[str] = []
            for option in options:
                types.append(option.pop("type"))
                merged.update(option)
            types.sort(key=lambda t: t != "null")  # null first, as the form expects
            schema = {**merged, **schema, "type": types}
            if "enum" in schema and "null" in types:
                schema["enum"] = [*schema["enum"], None]
        default = schema.pop("default", None)
        out[name] = Param(default, **schema)
    return out


class ApprovalGate(HITLOperator):  # type: ignore[misc]
    """Airflow's human-in-the-loop wait, asked only when a champion would change.

    Reads what ``decision_task`` returned (``satseg.training.approval.challenge_for_run``:
    the rule's verdict and the run's ``promotion`` / ``approval_timeout_h`` / ``on_timeout``;
    task params of a HITL operator are its form fields, so the run's are read there). Nothing to
    approve (``promotion=auto``, or the challenger does not beat the champion): skipped.
    Otherwise it stores the question (subject, markdown body with both models' metrics, the
    default taken on timeout), alerts the approvers and parks the task in ``awaiting_input``
    until someone answers in "Required Actions" or through
    ``PATCH /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/-1/hitlDetails``, or the
    scheduler's timeout sweep applies the default. Its result (XCom) is the answer, with
    ``timedout``. A reject is an answer, not a failure: the next task records it.
    """

    def __init__(self, *, decision_task: str, **kwargs: Any) -> None:
        kwargs.setdefault("subject", "Promote a new satseg champion?")
        kwargs.pop("params", None)  # the DAG's params are not this form's fields
        # optional: "null" in the type, else the UI marks it required and greys out Approve
        comment = Param(
            None, type=["null", "string"], description="Why (optional; kept with the model version)"
        )
        super().__init__(
            options=list(APPROVAL_OPTIONS),
            defaults=[REJECT],
            params={APPROVAL_COMMENT: comment},
            **kwargs,
        )
        self.decision_task = decision_task

    def execute(self, context: Any) -> Any:
        from satseg.alerting import approval_notifier
        from satseg.training.approval import request_for

        challenge = context["ti"].xcom_pull(task_ids=self.decision_task)
        request = request_for(challenge)
        decision = challenge["decision"]
        if request is None:
            raise AirflowSkipException("no approval needed: " + str(decision["reason"]))
        self.subject, self.body = request["subject"], request["body"]
        self.defaults = request["defaults"]
        self.response_timeout = timedelta(hours=request["timeout_h"])
        self.notifiers = [approval_notifier(subject=request["subject"], reason=decision["reason"])]
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        answer: dict[str, Any] = dict(super().execute_complete(context, event))
        when: Any = answer.get("responded_at")
        answer["responded_at"] = when.isoformat() if when is not None else None
        answer["timedout"] = bool(event.get("timedout"))
        return answer
