"""What every satseg DAG shares: default args, Assets, alert callbacks.

Imported by DAG files at parse time, so it must stay light: Airflow SDK only, no
TensorFlow/rasterio (tests/dags check that).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk import Asset, Param
from pydantic import BaseModel

OWNER = "satseg"

DRIFT = Asset(name="satseg_drift", uri="satseg://drift", group="satseg")
PREDICTIONS = Asset(name="satseg_predictions", uri="satseg://predictions", group="satseg")
MODEL = Asset(name="satseg_model", uri="satseg://model", group="satseg")
PROCESSED = Asset(name="satseg_processed", uri="satseg://processed", group="satseg")


def dataset_asset(dataset: str) -> Asset:
    """Per-dataset Asset (``satseg://processed/<dataset>``)."""
    return Asset(
        name=f"satseg_processed_{dataset}", uri=f"satseg://processed/{dataset}", group="satseg"
    )


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
