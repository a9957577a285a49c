"""The data-drift check: features of current imagery vs a reference, KS, reports, MLflow.

``run_drift`` is what ``satseg drift`` and the monitor's data-drift step call; it keeps no
state (the state file of checked imagery is ``monitoring.state``) and knows no scheduler.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from satseg.config import Settings
from satseg.io.atomic import write_json, write_text
from satseg.io.sniff import PixelLimits
from satseg.monitoring import MonitorError
from satseg.monitoring.features import feature_names

if TYPE_CHECKING:
    import pandas as pd

    from satseg.monitoring.drift import DriftResult


class InsufficientData(MonitorError):
    """Too few feature windows for a meaningful test."""


def monitor_params(settings: Settings) -> dict[str, Any]:
    """params.yaml ``monitor:`` plus the ingest/preprocess values the features depend on."""
    p = settings.params()
    return {
        **p.monitor.model_dump(),
        "patch_size": p.preprocess.patch_size,
        "nodata_max": p.preprocess.nodata_max,
        "bands": p.ingest.bands,
        "scale": p.ingest.scale,
        "max_megapixels": p.ingest.max_megapixels,
        "max_plain_megapixels": p.ingest.max_plain_megapixels,
    }


def day_dir(settings: Settings, when: datetime | None) -> Path:
    """``reports/<date>/``: one folder of reports per UTC day."""
    return settings.reports / (when or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d")


def run_drift(
    settings: Settings,
    reference: str,
    current: Sequence[str | Path],
    *,
    label: str | None = None,
    when: datetime | None = None,
    log_mlflow: bool = True,
    skip_unreadable: bool = False,
) -> dict[str, Any]:
    """KS drift of current imagery against a reference; Evidently HTML + JSON; MLflow copy.

    ``skip_unreadable`` (automatic runs): a scene that cannot be read is listed in the
    result instead of failing the whole check; explicitly named scenes must all be readable.
    """
    from satseg.monitoring import drift, imagery, report
    from satseg.monitoring import reference as ref_mod

    prm = monitor_params(settings)
    files = imagery.expand_paths(current)
    if not files:
        raise MonitorError("no current imagery given")
    ref_df, ref_csv = ref_mod.load_reference(settings, reference)
    skipped: list[str] | None = [] if skip_unreadable else None
    cur_df = _current_features(files, prm, skipped)
    res = drift.ks_drift(
        ref_df,
        cur_df,
        alpha=float(prm["ks_alpha"]),
        drift_share=float(prm["drift_share"]),
        correction=str(prm.get("correction", "bonferroni")),
        features=feature_names(),
    )
    label = report.safe_label(_default_label(reference, files) if label is None else label)
    out = _write_report(settings, prm, ref_df, cur_df, label=label, when=when)
    doc: dict[str, Any] = {
        **res.to_dict(),
        "report": out["report"],
        "summary": out["summary"],
        "current_features": out["current_features"],
        "reference": reference,
        "reference_features": str(ref_csv),
        "current": [str(f) for f in files],
        "skipped": skipped or [],
        "label": label,
        "time": (when or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds"),
        "evidently": out["evidently"],
        "mlflow_run_id": _log_run(settings, res, label, reference, out) if log_mlflow else None,
    }
    summary_json = Path(doc["summary"])
    write_json(summary_json, doc)
    if log_mlflow:
        report.log_to_mlflow(settings, label, metrics={}, tags={}, artifacts=[summary_json])
    report.write_day_index(summary_json.parent)
    return doc


def _current_features(
    files: list[Path], prm: dict[str, Any], skipped: list[str] | None
) -> pd.DataFrame:
    """Features of sampled windows of ``files``; ``InsufficientData`` below ``min_samples``."""
    from satseg.monitoring import imagery

    cur_df = imagery.features_frame(
        files,
        size=prm["patch_size"],
        total=int(prm["sample_patches"]),
        seed=int(prm["seed"]),
        bands=prm["bands"],
        scale=prm["scale"],
        nodata_max=prm["nodata_max"],
        skipped=skipped,
        limits=PixelLimits(prm["max_megapixels"], prm["max_plain_megapixels"]),
    )
    if len(cur_df) < int(prm["min_samples"]):
        raise InsufficientData(
            f"only {len(cur_df)} feature windows from {len(files)} scene(s) of current imagery; "
            f"at least {prm['min_samples']} are needed (monitor.min_samples)"
        )
    return cur_df


def _default_label(reference: str, files: list[Path]) -> str:
    """Same reference and same scenes give the same label (an idempotent CLI re-run)."""
    from satseg.monitoring import imagery

    h = hashlib.sha256(reference.encode())
    for f in files:
        h.update(imagery.fingerprint(f).encode())
    return f"cli-{h.hexdigest()[:10]}"


def _write_report(
    settings: Settings,
    prm: dict[str, Any],
    ref_df: pd.DataFrame,
    cur_df: pd.DataFrame,
    *,
    label: str,
    when: datetime | None,
) -> dict[str, Any]:
    """The current features as CSV and the Evidently HTML in the day's folder."""
    from satseg.monitoring import report

    names = feature_names()
    day = day_dir(settings, when)
    html, summary_json = day / f"drift-{label}.html", day / f"drift-{label}.json"
    cur_csv = day / f"drift-{label}-current.csv"
    day.mkdir(parents=True, exist_ok=True)
    write_text(cur_csv, cur_df.to_csv(index=False))
    ev = report.evidently_html(
        ref_df,
        cur_df,
        names,
        html,
        threshold=float(prm["ks_alpha"]) / len(names),
        drift_share=float(prm["drift_share"]),
    )
    return {
        "report": str(html),
        "summary": str(summary_json),
        "current_features": str(cur_csv),
        "evidently": ev,
    }


def _log_run(
    settings: Settings, res: DriftResult, label: str, reference: str, out: dict[str, Any]
) -> str:
    """Metrics, tags, report and current features of this check in its MLflow run."""
    from satseg.monitoring import report

    metrics: dict[str, float] = {
        "share_drifted": res.share_drifted,
        "n_drifted": res.n_drifted,
        "drift_detected": float(res.drift_detected),
        "n_current": res.n_current,
        "n_reference": res.n_reference,
    }
    metrics.update({f"ks_{n}": t.statistic for n, t in res.features.items()})
    return report.log_to_mlflow(
        settings,
        label,
        metrics=metrics,
        tags={"satseg.kind": "monitoring", "reference": reference},
        artifacts=[Path(out["report"]), Path(out["current_features"])],
    )
