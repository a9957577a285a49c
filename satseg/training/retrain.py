"""The steps of the ``satseg_retrain`` DAG, as plain functions (testable without Airflow).

resolve_data -> plan_configs -> train_candidate (one per config) -> evaluate_candidates ->
register_best -> registry.promotion.compare_and_promote -> summary. Everything passed
between steps is a small JSON-able dict (paths, tags, run ids), never arrays.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from satseg.config import Settings
from satseg.training.data import DatasetError, list_split, read_manifest

log = logging.getLogger(__name__)


def _versioning() -> Any:
    """The ingest side's DVC versioning module, when this checkout has it (complete)."""
    try:
        from satseg import versioning
    except ImportError:
        return None
    needed = ("dataset_dir", "list_versions", "materialize")
    return versioning if all(hasattr(versioning, n) for n in needed) else None


def _latest_local(settings: Settings) -> str:
    manifests = sorted(settings.processed.glob("*/manifest.json"), key=lambda p: p.stat().st_mtime)
    if not manifests:
        raise DatasetError(f"no processed dataset under {settings.processed} (run satseg_ingest)")
    return manifests[-1].parent.name


def _manifest_md5(dataset_dir: Path, manifest: dict[str, Any]) -> str:
    if manifest.get("md5"):
        return str(manifest["md5"])
    return hashlib.md5((dataset_dir / "manifest.json").read_bytes()).hexdigest()


def resolve_data(
    settings: Settings,
    dataset: str | None = None,
    version: str | None = None,
    events: list[dict[str, Any]] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Which dataset version to train on, and whether there is anything new to learn from.

    Order: an explicit ``version`` tag; else the newest triggering Asset event (extras
    dataset/tag/md5); else the latest DVC version of ``dataset`` (or of the most recently
    processed dataset); without DVC versions, what ``processed/<dataset>`` holds. A version
    other than the one in ``processed/`` is materialised read-only (the live dir is not
    swapped under other stages). ``train`` is False when the champion was trained on this
    very version and ``force`` is not set.
    """
    events = [e for e in (events or []) if e.get("dataset") and e.get("tag")]
    if dataset:
        events = [e for e in events if e["dataset"] == dataset]
    tag: str | None = None
    md5: str | None = None
    if version:
        dataset, tag = dataset or version.rsplit("-v", 1)[0], version
    elif events:
        dataset, tag, md5 = events[-1]["dataset"], events[-1]["tag"], events[-1].get("md5")
    dataset = dataset or _latest_local(settings)
    vmod = _versioning()
    known = {v.tag: v for v in vmod.list_versions(settings, dataset)} if vmod else {}
    if tag is None and known:
        tag = list(known)[-1]  # list_versions is oldest first
    if tag is not None and known:
        if tag not in known:
            raise DatasetError(f"no version {tag!r} of {dataset!r} (known: {', '.join(known)})")
        md5 = md5 or known[tag].md5
    ddir = settings.processed / dataset
    if vmod is not None:
        ddir = Path(vmod.dataset_dir(settings, dataset))
    if not (ddir / "manifest.json").is_file() and not known:
        raise DatasetError(f"no processed dataset {dataset!r} at {ddir} (run satseg_ingest)")
    manifest = read_manifest(ddir) if (ddir / "manifest.json").is_file() else {"tag": None}
    if tag is not None and manifest["tag"] != tag:
        if vmod is None or not known:
            raise DatasetError(f"{ddir} holds {manifest['tag']}, not {tag} (no DVC version of it)")
        ddir = Path(vmod.materialize(settings, tag))
        manifest = read_manifest(ddir)
    tag = tag or str(manifest["tag"])
    md5 = md5 or _manifest_md5(ddir, manifest)
    train, val = list_split(ddir, "train"), list_split(ddir, "val")  # fail before training
    new, reason = _is_new(settings, tag, md5)
    data = {
        "dataset": dataset,
        "tag": tag,
        "md5": md5,
        "dir": str(ddir),
        "counts": {"train": len(train), "val": len(val)},
        "new_data": new,
        "train": new or force,
        "reason": reason if (new or not force) else f"{reason}; training anyway (force)",
    }
    log.info("data %s (%s): %s", tag, ddir, data["reason"])
    return data


def _is_new(settings: Settings, tag: str, md5: str) -> tuple[bool, str]:
    from satseg.registry import champion

    champ = champion(settings)
    if champ is None:
        return True, "no champion yet"
    if champ.dataset_tag == tag:
        return False, f"no new data: champion v{champ.version} was trained on {tag}"
    return True, f"new data {tag} (champion v{champ.version} trained on {champ.dataset_tag})"


def train_candidate(
    settings: Settings, data: dict[str, Any], config: dict[str, Any], key: str | None = None
) -> dict[str, Any]:
    """One MLflow run: params, lineage tags, per-epoch metrics, best checkpoint on disk.

    ``key`` (e.g. Airflow run id + map index) makes a retried task reuse a finished run
    instead of training again.
    """
    import mlflow

    from satseg.registry import tracking
    from satseg.training.config import TrainConfig
    from satseg.training.fit import fit, save_model

    cfg = TrainConfig(**config)
    tracking.setup(settings)
    if key:
        done = _finished_run(key)
        if done is not None:
            log.info("reusing finished run %s for %s", done["run_id"], key)
            return done
    name = f"{cfg.arch}-{cfg.backbone}-{data['tag']}"
    with mlflow.start_run(run_name=name) as run:
        run_id = run.info.run_id
        mlflow.set_tags(
            {
                **tracking.lineage_tags(data),
                "satseg_key": key or run_id,
                "satseg_config": json.dumps(cfg.to_dict(), sort_keys=True),
            }
        )
        mlflow.log_params({**cfg.to_dict(), **{f"n_{k}": v for k, v in data["counts"].items()}})
        if settings.params_file.is_file():
            mlflow.log_artifact(str(settings.params_file))
        workdir = settings.models / run_id
        model, history = fit(data["dir"], cfg, workdir, callbacks=[tracking.epoch_logger()])
        ckpt = save_model(model, workdir / "model.h5")
        best = max(history.get("val_iou", [0.0]))
        mlflow.log_metric("best_epoch_val_iou", best)
        mlflow.set_tag("checkpoint", str(ckpt))
    return {
        "run_id": run_id,
        "checkpoint": str(ckpt),
        "best_epoch_val_iou": best,
        "config": cfg.to_dict(),
    }


def _finished_run(key: str) -> dict[str, Any] | None:
    import mlflow

    runs = mlflow.search_runs(
        filter_string=f"tags.satseg_key = '{key.replace(chr(39), '')}' and attributes.status = 'FINISHED'",
        output_format="list",
    )
    for r in runs:
        ckpt = r.data.tags.get("checkpoint")
        if ckpt and Path(ckpt).is_file():
            return {
                "run_id": r.info.run_id,
                "checkpoint": ckpt,
                "best_epoch_val_iou": r.data.metrics.get("best_epoch_val_iou", 0.0),
                "config": json.loads(r.data.tags["satseg_config"]),
            }
    return None


def evaluate_candidates(
    settings: Settings, data: dict[str, Any], candidates: list[dict[str, Any]]
) -> dict[str, Any]:
    """Evaluate each run's checkpoint on the val split, log final metrics, overlays and the
    model; return the best one (highest val IoU) with every candidate's score."""
    import mlflow

    from satseg.registry import tracking
    from satseg.training.evaluate import evaluate
    from satseg.training.fit import load_saved

    client = tracking.setup(settings)
    scored = []
    for i in range(len(candidates)):  # indexing: Airflow's lazy XCom sequences log on iter()
        c = candidates[i]
        run = client.get_run(c["run_id"])
        if "model_uri" in run.data.tags:  # already evaluated (task retry)
            metrics = {
                k.removeprefix("final_val_"): v
                for k, v in run.data.metrics.items()
                if k.startswith("final_val_")
            }
            scored.append({**c, "metrics": metrics, "model_uri": run.data.tags["model_uri"]})
            continue
        model = load_saved(c["checkpoint"])
        overlays = settings.models / c["run_id"] / "overlays"
        metrics = evaluate(model, data["dir"], "val", overlay_dir=overlays)
        with mlflow.start_run(run_id=c["run_id"]):
            mlflow.log_metrics({f"final_val_{k}": v for k, v in metrics.items()})
            if overlays.is_dir():
                mlflow.log_artifacts(str(overlays), "overlays")
            uri = tracking.log_keras_model(model)
            mlflow.set_tag("model_uri", uri)
        scored.append({**c, "metrics": metrics, "model_uri": uri})
    best = max(scored, key=lambda s: s["metrics"]["iou"])
    log.info("best candidate %s: val IoU %.4f", best["run_id"], best["metrics"]["iou"])
    return {
        "best": best,
        "candidates": [{"run_id": s["run_id"], "val_iou": s["metrics"]["iou"]} for s in scored],
    }


def register_best(
    settings: Settings, data: dict[str, Any], evaluated: dict[str, Any]
) -> dict[str, Any]:
    """Register the best candidate as a new version aliased ``challenger``."""
    from satseg.registry import store, tracking

    best = evaluated["best"]
    tags = {**tracking.lineage_tags(data), "val_iou": f"{best['metrics']['iou']:.6f}"}
    return store.register(settings, best["model_uri"], best["run_id"], tags).to_dict()


def summary(decision: dict[str, Any]) -> str:
    """One line for logs and notifiers."""
    verb = "promoted to champion" if decision["promoted"] else "kept as challenger"
    return f"model version {decision['version']} {verb}: {decision['reason']}"


def event_extras(triggering_asset_events: Any) -> list[dict[str, Any]]:
    """Extras of the Asset events that triggered a run, oldest first (empty for cron/manual)."""
    found = []
    for events in (triggering_asset_events or {}).values():
        for e in events:
            found.append((str(getattr(e, "timestamp", "")), dict(getattr(e, "extra", None) or {})))
    return [extra for _, extra in sorted(found, key=lambda t: t[0])]


def resolve_for_run(
    settings: Settings, params: Any, triggering_asset_events: Any = None
) -> dict[str, Any] | None:
    """``resolve_data`` for a DAG run: the data dict, or None to short-circuit (nothing new)."""
    data = resolve_data(
        settings,
        dataset=params.get("dataset") or None,
        version=params.get("dataset_version") or None,
        events=event_extras(triggering_asset_events),
        force=bool(params.get("force")),
    )
    return data if data["train"] else None


def plan_for_run(
    settings: Settings, params: Any, conf: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Training configs of a DAG run: the worker's params.yaml + the training options the
    run's ``conf`` names (validated by ``TrainParams``), or the sweep grid over them.

    Only what the conf names overrides the file: the form's defaults are the model's, so
    taking every ``params`` value would silently replace the worker's params.yaml.
    """
    from satseg.training.config import TrainConfig, plan_configs

    overrides = {k: v for k, v in (conf or {}).items() if k in TrainConfig.model_fields}
    return plan_configs(settings, overrides, params.get("sweep") or None)


def announce(decision: dict[str, Any]) -> str:
    """Log the promotion decision and send it to the configured alert channels."""
    from satseg import alerting

    text = summary(decision)
    log.info(text)
    notify = getattr(alerting, "notify", None)
    if notify is not None:
        event = "model_promoted" if decision["promoted"] else "retrain_not_better"
        notify(event, **decision)
    return text


def run_pipeline(
    settings: Settings,
    *,
    dataset: str | None = None,
    version: str | None = None,
    force: bool = False,
    overrides: dict[str, Any] | None = None,
    sweep: dict[str, list[Any]] | None = None,
) -> dict[str, Any]:
    """All DAG steps in this process (``satseg train``): the same functions, no scheduler."""
    from satseg.registry.promotion import compare_and_promote
    from satseg.training.config import plan_configs

    data = resolve_data(settings, dataset=dataset, version=version, force=force)
    if not data["train"]:
        return {"trained": False, "reason": data["reason"], "data": data}
    configs = plan_configs(settings, overrides or {}, sweep)
    runs = [train_candidate(settings, data, c) for c in configs]
    evaluated = evaluate_candidates(settings, data, runs)
    ref = register_best(settings, data, evaluated)
    decision = compare_and_promote(settings, ref["version"], data["dir"])
    announce(decision)
    return {"trained": True, "data": data, "candidates": evaluated["candidates"], **decision}
