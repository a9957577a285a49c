"""Drift reports people read (Evidently HTML, JSON summary, day index) and their MLflow copy.

The KS decision in ``drift.py`` is what acts; Evidently renders the same features with the
same corrected threshold so the report and the decision agree, and adds distribution plots.
"""

from __future__ import annotations

import contextlib
import html
import logging
import re
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from satseg.io.atomic import atomic_path, write_text

if TYPE_CHECKING:
    import pandas as pd

    from satseg.config import Settings

log = logging.getLogger(__name__)


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Libraries that print must not corrupt ``satseg drift --json`` output on stdout."""
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def evidently_html(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    out: Path,
    *,
    threshold: float,
    drift_share: float,
) -> dict[str, float]:
    """Evidently 0.7 DataDriftPreset (KS, given p-value threshold) saved atomically as HTML."""
    with quiet_stdout():
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        dd = DataDefinition(numerical_columns=features)
        preset = DataDriftPreset(
            columns=features, method="ks", threshold=threshold, drift_share=drift_share
        )
        snap = Report([preset]).run(
            Dataset.from_pandas(current[features].reset_index(drop=True), data_definition=dd),
            Dataset.from_pandas(reference[features].reset_index(drop=True), data_definition=dd),
        )
        with atomic_path(out) as tmp:
            snap.save_html(str(tmp))
    for m in snap.dict().get("metrics", []):
        if "DriftedColumnsCount" in m.get("metric_name", ""):
            return {k: float(v) for k, v in m["value"].items()}
    return {}


def write_day_index(day_dir: Path) -> Path:
    """``reports/<date>/index.html``: links to that day's reports and plots."""
    items = []
    for f in sorted(day_dir.iterdir()):
        if f.name == "index.html" or f.name.startswith("."):
            continue
        name = html.escape(f.name)
        if f.suffix == ".png":
            items.append(f'<li><a href="{name}">{name}</a><br><img src="{name}" width="640"></li>')
        else:
            items.append(f'<li><a href="{name}">{name}</a></li>')
    body = "\n".join(items)
    title = f"satseg monitoring {html.escape(day_dir.name)}"
    return write_text(
        day_dir / "index.html",
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body><h1>{title}</h1><ul>\n{body}\n</ul></body></html>\n",
    )


def safe_label(label: str) -> str:
    """A run id usable in file names and MLflow filters."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label).strip("_")[:120] or "run"


def log_to_mlflow(
    settings: Settings,
    label: str,
    *,
    metrics: dict[str, float],
    tags: dict[str, str],
    artifacts: Sequence[Path],
    artifact_path: str = "monitoring",
) -> str:
    """Log one monitoring run; the same ``label`` re-uses its MLflow run (idempotent re-runs)."""
    with quiet_stdout():
        from mlflow.entities import Metric, RunTag

        from satseg.registry import tracking

        client = tracking.client(settings)
        exp_id = tracking.experiment_id(client, f"{settings.mlflow_experiment}-monitoring")
        label = safe_label(label)
        runs = client.search_runs([exp_id], filter_string=f"tags.`satseg.label` = '{label}'")
        if runs:
            run_id = runs[0].info.run_id
        else:
            run_id = client.create_run(exp_id, run_name=label).info.run_id
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            tags=[RunTag(k, str(v)) for k, v in {**tags, "satseg.label": label}.items()],
        )
        for a in artifacts:
            client.log_artifact(run_id, str(a), artifact_path=artifact_path)
        client.set_terminated(run_id)
    return run_id
