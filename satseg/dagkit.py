"""What every satseg DAG shares: default args, Assets, alert callbacks.

Imported by DAG files at parse time, so it must stay light: Airflow SDK only, no
TensorFlow/rasterio (tests/dags check that).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Asset

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
