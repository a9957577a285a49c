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
    """Evaluate the champion on each dataset's newest version it has not been evaluated on.

    A multi-class champion (its class table, ``ModelClasses``) is scored per class
    (``training.evaluate.evaluate_classes``: argmax, ``ClassScorer``) on datasets with the same
    classes; a dataset whose class table does not fit the model is skipped with the reason
    (``skipped``).
    """
    from satseg import registry
    from satseg.classes import ModelClasses
    from satseg.monitoring import performance as perf
    from satseg.monitoring import reference as ref_mod

    champ = registry.champion(settings)
    if champ is None:
        return {"status": "no_champion", "concept_drift": False}
    hist_path = settings.state / "performance.csv"
    history = perf.load_history(hist_path)
    classes = ModelClasses.from_json(champ.classes)
    todo, skipped = [], []
    for t in ref_mod.latest_tags(settings).values():
        if perf.evaluated(history, champ.version, t):
            continue
        from satseg.training.data import dataset_classes

        d = ref_mod.tag_dir(settings, t)
        why = _mismatch(classes, dataset_classes(d))
        if why:
            log.warning("champion v%s not evaluated on %s: %s", champ.version, t, why)
            skipped.append({"dataset_tag": t, "reason": why})
        else:
            todo.append((t, d))
    results: list[dict[str, Any]] = []
    if todo:
        model, ref = registry.load_model(settings, champ.version)
        baseline = _baseline_iou(ref.metrics, classes)
        per_class = _baseline_classes(ref.metrics, classes)
        from satseg.training.evaluate import as_deployed, evaluate, evaluate_classes

        for tag, d in todo:
            if classes.multiclass:
                metrics = evaluate_classes(model, d, split="val")
            else:
                deployed = as_deployed(settings, ref.postprocess)  # masks as it predicts
                metrics = evaluate(model, d, split="val", **deployed)
            row = perf.record_evaluation(
                hist_path,
                metrics,
                model_name=ref.name,
                model_version=ref.version,
                dataset_tag=tag,
                model_run_id=ref.run_id,
                when=when,
                classes=classes.names if classes.multiclass else None,
            )
            history = perf.load_history(hist_path)
            results.append(
                perf.concept_drift(
                    history,
                    row,
                    iou_drop=_iou_drop(settings),
                    baseline_iou=baseline,
                    baseline_classes=per_class,
                )
            )
    out = summarize_performance(settings, results, when, colors=_colors(classes))
    if skipped:
        out["skipped"] = skipped
    return out


def _mismatch(model: Any, data: Any) -> str | None:
    """Why a model of classes ``model`` cannot be scored on a dataset of classes ``data``
    (both ``ModelClasses``); None when it can."""
    if model.multiclass != data.multiclass:
        kinds = {True: "multi-class", False: "binary"}
        return (
            f"{kinds[model.multiclass]} model {list(model.names)} vs "
            f"{kinds[data.multiclass]} dataset {list(data.names)}"
        )
    if model.multiclass and model.names != data.names:
        return f"model classes {list(model.names)} differ from the dataset's {list(data.names)}"
    return None


def _baseline_iou(metrics: dict[str, Any], classes: Any = None) -> float | None:
    """What the champion scored at training: IoU (binary) or mean IoU (multi-class)."""
    multi = classes is not None and classes.multiclass
    for k in ("val_miou", "miou") if multi else ("val_iou", "iou", "best_val_iou"):
        if metrics.get(k) is not None:
            return float(metrics[k])
    return None


def _baseline_classes(metrics: dict[str, Any], classes: Any) -> dict[str, float]:
    """Per-class IoU at training (``iou_<class>``, or ``val_iou_<class>``) of a multi-class
    model; {} for a binary one (its one IoU is the baseline)."""
    if not classes.multiclass:
        return {}
    out = {}
    for name in classes.names:
        for k in (f"val_iou_{name}", f"iou_{name}"):
            if metrics.get(k) is not None:
                out[name] = float(metrics[k])
                break
    return out


def _colors(classes: Any) -> dict[str, str] | None:
    return dict(zip(classes.names, classes.colors, strict=True)) if classes.multiclass else None


def _iou_drop(settings: Settings) -> float:
    return float(monitor_params(settings)["iou_drop"])


def summarize_performance(
    settings: Settings,
    results: list[dict[str, Any]],
    when: datetime | None = None,
    *,
    colors: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Plot the whole history and say whether any new evaluation showed concept drift
    (``drifted_classes``: the classes of multi-class champions whose IoU fell too far)."""
    from satseg.monitoring import performance as perf
    from satseg.monitoring import report

    history = perf.load_history(settings.state / "performance.csv")
    plot = None
    if history:
        day = day_dir(settings, when)
        plot = str(perf.plot_history(history, day / "performance.png", colors=colors))
        report.write_day_index(day)
    drifted = [r for r in results if r["concept_drift"]]
    return {
        "status": "evaluated" if results else "up_to_date",
        "evaluations": results,
        "concept_drift": bool(drifted),
        "drifted_classes": list(
            dict.fromkeys(c for r in drifted for c in r.get("drifted_classes") or [])
        ),
        "plot": plot,
        "reason": "; ".join(perf.drift_reason(r) for r in drifted),
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
        "drifted_classes": perf.get("drifted_classes") or None,
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
