"""One monitoring pass, in the steps the ``satseg_monitor`` DAG runs (each works without Airflow).

plan -> data drift (``checks.run_drift``: KS + Evidently + MLflow) and champion performance
-> decide -> announce drift -> commit (``monitoring.state``). Imagery counts as "current"
until a run that checked it commits, so a failed or inconclusive run never makes the monitor
forget new scenes. Bad input raises ``MonitorError`` (a ``satseg.errors.BadInput``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from satseg.config import Settings
from satseg.monitoring import MonitorError, state
from satseg.monitoring.checks import InsufficientData, day_dir, monitor_params, run_drift
from satseg.monitoring.features import feature_names

log = logging.getLogger(__name__)


# --- plan -------------------------------------------------------------------------------


def plan(
    settings: Settings,
    reference: str | None = None,
    current: Sequence[str] | None = None,
    label: str = "manual",
) -> dict[str, Any]:
    """What to compare: explicit reference/paths, else champion's dataset vs unseen imagery."""
    from satseg.monitoring import imagery, report
    from satseg.monitoring import reference as ref_mod

    label = report.safe_label(label)
    explicit = bool(current)
    if reference:
        ref_mod.features_path(settings, reference)  # fail now on an unknown tag
    ref = reference or ref_mod.default_reference(settings)
    if explicit:
        files = imagery.expand_paths(current or [])
        if not files:
            raise MonitorError(f"no imagery found in {', '.join(current or [])}")
    else:
        seen = state.seen_fingerprints(settings, except_label=label)
        files = [
            p for p in imagery.available_imagery(settings) if imagery.fingerprint(p) not in seen
        ]
    skip = None
    if ref is None:
        skip = "no_reference"
    elif not files:
        skip = "no_new_imagery"
    return {
        "label": label,
        "reference": ref,
        "current": [str(p) for p in files],
        "fingerprints": [imagery.fingerprint(p) for p in files],
        "explicit": explicit,
        "skip": skip,
    }


# --- data drift ---------------------------------------------------------------------------


def check_data_drift(
    settings: Settings, planned: dict[str, Any], when: datetime | None = None
) -> dict[str, Any]:
    """The DAG's data-drift step: skip politely when there is nothing to compare."""
    if planned["skip"]:
        log.info("data drift not checked: %s", planned["skip"])
        return {"status": planned["skip"], "drift_detected": False}
    try:
        doc = run_drift(
            settings,
            planned["reference"],
            planned["current"],
            label=planned["label"],
            when=when,
            skip_unreadable=not planned["explicit"],
        )
    except InsufficientData as e:
        if planned["explicit"]:
            raise
        log.warning("%s; waiting for more imagery", e)
        return {"status": "insufficient", "drift_detected": False, "reason": str(e)}
    keep = (
        "drift_detected",
        "share_drifted",
        "n_drifted",
        "report",
        "summary",
        "mlflow_run_id",
        "skipped",
    )
    return {"status": "checked", **{k: doc[k] for k in keep}, "reference": planned["reference"]}


# --- model performance ----------------------------------------------------------------------


def evaluate_champion(settings: Settings, when: datetime | None = None) -> dict[str, Any]:
    """Evaluate the champion on each dataset's newest version it has not been evaluated on."""
    from satseg import registry
    from satseg.monitoring import performance as perf
    from satseg.monitoring import reference as ref_mod

    champ = registry.champion(settings)
    if champ is None:
        return {"status": "no_champion", "concept_drift": False}
    hist_path = settings.state / "performance.csv"
    history = perf.load_history(hist_path)
    todo = [
        t
        for t in ref_mod.latest_tags(settings).values()
        if not perf.evaluated(history, champ.version, t)
    ]
    results: list[dict[str, Any]] = []
    if todo:
        from satseg.training.evaluate import as_deployed, evaluate

        model, ref = registry.load_model(settings, champ.version)
        baseline = _baseline_iou(ref.metrics)
        deployed = as_deployed(settings, ref.postprocess)  # masks as the champion predicts
        for tag in todo:
            metrics = evaluate(model, ref_mod.tag_dir(settings, tag), split="val", **deployed)
            row = perf.record_evaluation(
                hist_path,
                metrics,
                model_name=ref.name,
                model_version=ref.version,
                dataset_tag=tag,
                model_run_id=ref.run_id,
                when=when,
            )
            history = perf.load_history(hist_path)
            results.append(
                perf.concept_drift(
                    history, row, iou_drop=_iou_drop(settings), baseline_iou=baseline
                )
            )
    return summarize_performance(settings, results, when)


def _baseline_iou(metrics: dict[str, Any]) -> float | None:
    for k in ("val_iou", "iou", "best_val_iou"):
        if metrics.get(k) is not None:
            return float(metrics[k])
    return None


def _iou_drop(settings: Settings) -> float:
    return float(monitor_params(settings)["iou_drop"])


def summarize_performance(
    settings: Settings, results: list[dict[str, Any]], when: datetime | None = None
) -> dict[str, Any]:
    """Plot the whole history and say whether any new evaluation showed concept drift."""
    from satseg.monitoring import performance as perf
    from satseg.monitoring import report

    history = perf.load_history(settings.state / "performance.csv")
    plot = None
    if history:
        day = day_dir(settings, when)
        plot = str(perf.plot_history(history, day / "performance.png"))
        report.write_day_index(day)
    drifted = [r for r in results if r["concept_drift"]]
    return {
        "status": "evaluated" if results else "up_to_date",
        "evaluations": results,
        "concept_drift": bool(drifted),
        "plot": plot,
        "reason": "; ".join(
            f"champion v{r['model_version']} IoU {r['iou']:.3f} on {r['dataset_tag']} vs "
            f"{r['baseline_iou']:.3f} ({r['baseline']}): drop {r['drop']:.3f} > {r['iou_drop']}"
            for r in drifted
        ),
    }


# --- decision and actions -------------------------------------------------------------------


def drift_event(data: dict[str, Any], perf: dict[str, Any]) -> dict[str, Any] | None:
    """Extra of the ``satseg://drift`` Asset event, or None when neither kind of drift."""
    reasons, kinds = [], []
    if data.get("drift_detected"):
        kinds.append("data")
        reasons.append(
            f"data drift: {data['n_drifted']} of {len(feature_names())} image features drifted "
            f"(share {data['share_drifted']:.2f}) against {data.get('reference')}"
        )
    if perf.get("concept_drift"):
        kinds.append("concept")
        reasons.append(f"concept drift: {perf['reason']}")
    if not kinds:
        return None
    return {
        "reason": "; ".join(reasons),
        "kind": kinds,
        # the report that shows the drift: the KS/Evidently one, or the IoU-over-time plot
        "report": data["report"] if "data" in kinds else perf.get("plot"),
        "data_report": data.get("report"),
        "plot": perf.get("plot"),
        "share_drifted": data.get("share_drifted"),
        "mlflow_run_id": data.get("mlflow_run_id"),
    }


def announce_drift(
    settings: Settings, data: dict[str, Any], perf: dict[str, Any], context: Any = None
) -> dict[str, Any]:
    """Alert people about drift and return the Asset extra (raises if there is no drift)."""
    from satseg import alerting

    extra = drift_event(data, perf)
    if extra is None:
        raise MonitorError("announce_drift called without drift")
    alerting.notify(alerting.DRIFT_DETECTED, context, settings=settings, **extra)
    return extra


def commit(settings: Settings, planned: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Remember which imagery this run checked (only when it was actually checked)."""
    if data.get("status") != "checked" or planned["explicit"]:
        return {"committed": 0}
    state.record_run(
        settings,
        planned["label"],
        planned["fingerprints"],
        drift_detected=bool(data.get("drift_detected")),
        report=data.get("report"),
    )
    return {"committed": len(planned["fingerprints"])}
