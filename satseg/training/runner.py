"""Running the retraining steps (``training.retrain``) in this process: ``satseg train``.

The same step functions the ``satseg_retrain`` DAG runs as tasks, called one after the
other without a scheduler; ``resolve_for_run`` and ``plan_for_run`` read a run's
parameters (a DAG run's ``params`` or any mapping with the same keys) for those tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from satseg.config import Settings
from satseg.params import TrainParams, default_of
from satseg.training.config import plan_configs
from satseg.training.promotion import compare_and_promote
from satseg.training.retrain import (
    DataVersion,
    announce,
    evaluate_candidates,
    register_best,
    resolve_data,
    train_candidate,
)

log = logging.getLogger(__name__)


def resolve_for_run(
    settings: Settings, params: Mapping[str, Any], events: list[dict[str, Any]] | None = None
) -> DataVersion | None:
    """``resolve_data`` for a run: the data record, or None to short-circuit (nothing new).

    ``events`` are the extras of the Asset events that triggered the run, oldest first.
    """
    data = resolve_data(
        settings,
        dataset=params.get("dataset") or None,
        version=params.get("dataset_version") or None,
        events=events,
        force=bool(params.get("force")),
    )
    return data if data["train"] else None


def plan_for_run(
    settings: Settings, params: Mapping[str, Any], conf: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Training configs of a DAG run: the worker's params.yaml + the training options the
    run's ``conf`` changes (validated by ``TrainParams``), or the sweep grid over them.

    The trigger form submits every field, pre-filled with the model's defaults; a value equal
    to that default is the form left untouched, not a choice, so the worker's params.yaml
    keeps it (a file with ``epochs: 4`` is not overridden by the form's 40).
    """
    overrides = {
        k: v
        for k, v in (conf or {}).items()
        if k in TrainParams.model_fields and v != default_of(TrainParams, k)
    }
    return plan_configs(settings, overrides, params.get("sweep") or None)


def run_pipeline(
    settings: Settings,
    *,
    dataset: str | None = None,
    version: str | None = None,
    force: bool = False,
    overrides: dict[str, Any] | None = None,
    sweep: dict[str, list[Any]] | None = None,
) -> dict[str, Any]:
    """All retraining steps in this process (``satseg train``): the same functions, no scheduler."""
    data = resolve_data(settings, dataset=dataset, version=version, force=force)
    if not data["train"]:
        return {"trained": False, "reason": data["reason"], "data": data}
    configs = plan_configs(settings, overrides or {}, sweep)
    runs = [train_candidate(settings, data, c) for c in configs]
    evaluated = evaluate_candidates(settings, data, runs)
    ref = register_best(settings, data, evaluated)
    decision = compare_and_promote(settings, ref["version"], data["dir"])
    announce(dict(decision))
    return {"trained": True, "data": data, "candidates": evaluated["candidates"], **decision}
