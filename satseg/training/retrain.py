"""The steps of a retraining run, as plain functions (testable without Airflow).

resolve_data -> (config.plan_configs) -> train_candidate (one per config) ->
evaluate_candidates -> register_best -> promotion.compare_and_promote -> announce.
What passes between steps is a small JSON-able record (paths, tags, run ids; never arrays),
typed below, because Airflow carries it through XCom. How the steps are run lives apart:
``training.runner`` runs them in one process, ``dags/satseg_retrain.py`` as DAG tasks.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, TypedDict

from satseg import versioning
from satseg.config import Settings
from satseg.training.data import DatasetError, list_split, read_manifest

log = logging.getLogger(__name__)


class DataVersion(TypedDict):
    """The dataset version a run trains on, and whether it should train at all."""

    dataset: str
    tag: str
    md5: str
    dir: str
    counts: dict[str, int]
    new_data: bool
    train: bool
    reason: str


class Candidate(TypedDict):
    """One trained config: its MLflow run and best checkpoint (``best_epoch_val_iou``: the
    best epoch's val IoU, val mIoU on a multi-class dataset)."""

    run_id: str
    checkpoint: str
    best_epoch_val_iou: float
    config: dict[str, Any]


class ScoredCandidate(Candidate):
    """A candidate evaluated on the val split, with its logged model."""

    metrics: dict[str, float]
    model_uri: str


class CandidateScore(TypedDict):
    run_id: str
    val_iou: float  # mean IoU (miou) of a multi-class candidate


def headline_iou(metrics: dict[str, float]) -> float:
    """IoU of a binary model's scores, mean IoU of a multi-class model's."""
    return float(metrics["iou"] if "iou" in metrics else metrics["miou"])


class Evaluated(TypedDict):
    """The best candidate and every candidate's score."""

    best: ScoredCandidate
    candidates: list[CandidateScore]


def _latest_local(settings: Settings) -> str:
    manifests = sorted(settings.processed.glob("*/manifest.json"), key=lambda p: p.stat().st_mtime)
    if not manifests:
        raise DatasetError(f"no processed dataset under {settings.processed} (run satseg_ingest)")
    return manifests[-1].parent.name


def _manifest_md5(dataset_dir: Path, manifest: dict[str, Any]) -> str:
    if manifest.get("md5"):
        return str(manifest["md5"])
    return hashlib.md5((dataset_dir / "manifest.json").read_bytes()).hexdigest()


def _requested(
    dataset: str | None, version: str | None, events: list[dict[str, Any]]
) -> tuple[str | None, str | None, str | None]:
    """(dataset, tag, md5) asked for: an explicit tag, else the newest triggering event."""
    events = [e for e in events if e.get("dataset") and e.get("tag")]
    if dataset:
        events = [e for e in events if e["dataset"] == dataset]
    if version:
        return dataset or version.rsplit("-v", 1)[0], version, None
    if events:
        return events[-1]["dataset"], events[-1]["tag"], events[-1].get("md5")
    return dataset, None, None


def _locate(
    settings: Settings, dataset: str, tag: str | None, md5: str | None
) -> tuple[Path, str, str]:
    """(directory, tag, md5) of the version to train on, materialised when not the live one."""
    known = {v.tag: v for v in versioning.list_versions(settings, dataset)}
    if tag is None and known:
        tag = list(known)[-1]  # list_versions is oldest first
    if tag is not None and known:
        if tag not in known:
            raise DatasetError(f"no version {tag!r} of {dataset!r} (known: {', '.join(known)})")
        md5 = md5 or known[tag].md5
    ddir = Path(versioning.dataset_dir(settings, dataset))
    if not (ddir / "manifest.json").is_file() and not known:
        raise DatasetError(f"no processed dataset {dataset!r} at {ddir} (run satseg_ingest)")
    manifest = read_manifest(ddir) if (ddir / "manifest.json").is_file() else {"tag": None}
    if tag is not None and manifest["tag"] != tag:
        if not known:
            raise DatasetError(f"{ddir} holds {manifest['tag']}, not {tag} (no DVC version of it)")
        ddir = Path(versioning.materialize(settings, tag))
        manifest = read_manifest(ddir)
    tag = tag or str(manifest["tag"])
    return ddir, tag, md5 or _manifest_md5(ddir, manifest)


def resolve_data(
    settings: Settings,
    dataset: str | None = None,
    version: str | None = None,
    events: list[dict[str, Any]] | None = None,
    force: bool = False,
) -> DataVersion:
    """Which dataset version to train on, and whether there is anything new to learn from.

    Order: an explicit ``version`` tag; else the newest triggering Asset event (extras
    dataset/tag/md5); else the latest DVC version of ``dataset`` (or of the most recently
    processed dataset); without DVC versions, what ``processed/<dataset>`` holds. A version
    other than the one in ``processed/`` is materialised read-only (the live dir is not
    swapped under other stages). ``train`` is False when the champion was trained on this
    very version and ``force`` is not set.
    """
    dataset, tag, md5 = _requested(dataset, version, events or [])
    dataset = dataset or _latest_local(settings)
    ddir, tag, md5 = _locate(settings, dataset, tag, md5)
    train, val = list_split(ddir, "train"), list_split(ddir, "val")  # fail before training
    new, reason = _is_new(settings, tag, md5)
    data = DataVersion(
        dataset=dataset,
        tag=tag,
        md5=md5,
        dir=str(ddir),
        counts={"train": len(train), "val": len(val)},
        new_data=new,
        train=new or force,
        reason=reason if (new or not force) else f"{reason}; training anyway (force)",
    )
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
    settings: Settings, data: DataVersion, config: dict[str, Any], key: str | None = None
) -> Candidate:
    """One MLflow run: params, lineage tags, the dataset's class table (``CLASSES_TAG``),
    per-epoch metrics, best checkpoint on disk.

    ``key`` (e.g. Airflow run id + map index) makes a retried task reuse a finished run
    instead of training again.
    """
    import mlflow

    from satseg.registry import tracking
    from satseg.registry.ref import CLASSES_TAG
    from satseg.training.config import TrainConfig
    from satseg.training.data import class_table
    from satseg.training.fit import fit, save_model

    cfg = TrainConfig(**config)
    table = class_table(read_manifest(data["dir"]))
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
                **tracking.lineage_tags(dict(data)),
                "satseg_key": key or run_id,
                "satseg_config": json.dumps(cfg.to_dict(), sort_keys=True),
                CLASSES_TAG: json.dumps(table, sort_keys=True),
            }
        )
        mlflow.log_params({**cfg.to_dict(), **{f"n_{k}": v for k, v in data["counts"].items()}})
        if settings.params_file.is_file():
            mlflow.log_artifact(str(settings.params_file))
        workdir = settings.models / run_id
        model, history = fit(data["dir"], cfg, workdir, callbacks=[tracking.epoch_logger()])
        ckpt = save_model(model, workdir / "model.h5")
        val = "val_miou" if "val_miou" in history else "val_iou"  # multi-class | binary
        # the kept weights' val score: the best epoch's, or the weight average's when it won
        best = max([*history.get(val, [0.0]), *history.get(f"ema_{val}", [])])
        mlflow.log_metric(f"best_epoch_{val}", best)
        if f"ema_{val}" in history:
            mlflow.log_metrics({f"ema_{val}": history[f"ema_{val}"][0],
                                "ema_kept": history["ema_kept"][0]})  # fmt: skip
        mlflow.set_tag("checkpoint", str(ckpt))
    return Candidate(
        run_id=run_id, checkpoint=str(ckpt), best_epoch_val_iou=best, config=cfg.to_dict()
    )


def _finished_run(key: str) -> Candidate | None:
    import mlflow

    runs = mlflow.search_runs(
        filter_string=f"tags.satseg_key = '{key.replace(chr(39), '')}' and attributes.status = 'FINISHED'",
        output_format="list",
    )
    for r in runs:
        ckpt = r.data.tags.get("checkpoint")
        if ckpt and Path(ckpt).is_file():
            return Candidate(
                run_id=r.info.run_id,
                checkpoint=ckpt,
                best_epoch_val_iou=r.data.metrics.get(
                    "best_epoch_val_iou", r.data.metrics.get("best_epoch_val_miou", 0.0)
                ),
                config=json.loads(r.data.tags["satseg_config"]),
            )
    return None


def evaluate_candidates(settings: Settings, data: DataVersion, candidates: Any) -> Evaluated:
    """Evaluate each run's checkpoint on the val split, log final metrics, overlays and the
    model; return the best one (highest val ``promotion_metric``, for a multi-class dataset
    as ``evaluate.resolve_metric`` reads it) with every candidate's score.

    ``candidates`` is a sequence of ``Candidate`` (Airflow passes a lazy XCom sequence).
    """
    from satseg.registry import tracking

    client = tracking.setup(settings)
    scored = []
    for i in range(len(candidates)):  # indexing: Airflow's lazy XCom sequences log on iter()
        c: Candidate = candidates[i]
        run = client.get_run(c["run_id"])
        if "model_uri" in run.data.tags:  # already evaluated (task retry)
            metrics = {
                k.removeprefix("final_val_"): v
                for k, v in run.data.metrics.items()
                if k.startswith("final_val_")
            }
            scored.append(
                ScoredCandidate(**c, metrics=metrics, model_uri=run.data.tags["model_uri"])
            )
        else:
            scored.append(_evaluate_one(settings, data, c))
    metric = _metric(scored[0]["config"], data["dir"]) if scored else "iou"
    best = max(scored, key=lambda s: s["metrics"].get(metric, headline_iou(s["metrics"])))
    score = best["metrics"].get(metric, headline_iou(best["metrics"]))
    log.info("best candidate %s: val %s %.4f", best["run_id"], metric, score)
    return Evaluated(
        best=best,
        candidates=[
            CandidateScore(run_id=s["run_id"], val_iou=headline_iou(s["metrics"])) for s in scored
        ],
    )


def _metric(config: dict[str, Any], dataset_dir: str | Path | None = None) -> str:
    """The run's ``promotion_metric``; on a multi-class dataset as ``resolve_metric`` reads
    it (``iou`` = ``miou``)."""
    metric = str(config.get("promotion_metric") or "iou")
    if dataset_dir is None:
        return metric
    from satseg.training.data import dataset_classes
    from satseg.training.evaluate import resolve_metric

    return resolve_metric(metric, dataset_classes(dataset_dir))


def _evaluate_one(settings: Settings, data: DataVersion, c: Candidate) -> ScoredCandidate:
    """Final val metrics at the threshold / min area tuned on val (stored on the run as the
    ``postprocess`` tag and ``postprocess.json``), overlays and the logged model.

    Multi-class: the argmax's per-class scores and mIoU (``tune_classes``: nothing tuned,
    the tag says ``decision: argmax``)."""
    import mlflow

    from satseg.registry import tracking
    from satseg.registry.ref import POSTPROCESS_TAG
    from satseg.training.data import dataset_classes
    from satseg.training.evaluate import tune, tune_classes
    from satseg.training.fit import load_saved

    model = load_saved(c["checkpoint"])
    overlays = settings.models / c["run_id"] / "overlays"
    tuned: Any
    if dataset_classes(data["dir"]).multiclass:
        tuned = tune_classes(
            model, data["dir"], "val", metric=_metric(c["config"]), overlay_dir=overlays
        )
    else:
        tuned = tune(
            model,
            data["dir"],
            "val",
            metric=_metric(c["config"]),
            opening_px=settings.params().predict.opening_px,
            overlay_dir=overlays,
        )
    metrics = tuned["metrics"]
    chosen = {k: v for k, v in tuned.items() if k not in ("metrics", "grid")}
    with mlflow.start_run(run_id=c["run_id"]):
        mlflow.log_metrics({f"final_val_{k}": v for k, v in metrics.items()})
        mlflow.set_tag(POSTPROCESS_TAG, json.dumps(chosen, sort_keys=True))
        mlflow.log_dict(dict(tuned), "postprocess.json")
        if overlays.is_dir():
            mlflow.log_artifacts(str(overlays), "overlays")
        uri = tracking.log_keras_model(model)
        mlflow.set_tag("model_uri", uri)
    return ScoredCandidate(**c, metrics=metrics, model_uri=uri)


def register_best(settings: Settings, data: DataVersion, evaluated: Evaluated) -> dict[str, Any]:
    """Register the best candidate as a new version aliased ``challenger`` (its ModelRef dict)."""
    from satseg.registry import artifacts, store, tracking

    best = evaluated["best"]
    tags = {**tracking.lineage_tags(dict(data)), "val_iou": f"{headline_iou(best['metrics']):.6f}"}
    artifacts.log_for_run(settings, best["run_id"], best["model_uri"], data["dir"])  # ONNX, once
    return store.register(settings, best["model_uri"], best["run_id"], tags).to_dict()


def summary(decision: dict[str, Any]) -> str:
    """One line for logs and notifiers."""
    verb = "promoted to champion" if decision["promoted"] else "kept as challenger"
    return f"model version {decision['version']} {verb}: {decision['reason']}"


def announce(decision: dict[str, Any]) -> str:
    """Log the promotion decision and send it to the configured alert channels."""
    from satseg import alerting

    text = summary(decision)
    log.info(text)
    event = "model_promoted" if decision["promoted"] else "retrain_not_better"
    alerting.notify(event, **decision)
    return text
