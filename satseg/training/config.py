"""Training hyperparameters: params.yaml ``train:``, overridden per run (CLI, DAG params).

``TrainConfig`` is :class:`satseg.params.TrainParams` plus the encoder weights file: the
same fields, defaults, ranges and descriptions. Kept free of TensorFlow so the DAG and CLI
can validate a configuration (and expand a sweep grid) without paying the TensorFlow import.
"""

from __future__ import annotations

import itertools
from typing import Any

from pydantic import Field

from satseg.config import Settings
from satseg.params import LOSSES, MAX_SWEEP, TrainParams, build

__all__ = ["LOSSES", "MAX_SWEEP", "TrainConfig", "expand_sweep", "plan_configs"]


class TrainConfig(TrainParams):
    """Everything that decides a training run (logged as MLflow params)."""

    encoder_weights: str | None = Field(
        default=None, description="Local .h5 encoder weights (SATSEG_ENCODER_WEIGHTS); null = none"
    )

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> TrainConfig:
        """params.yaml ``train:`` section, then non-None ``overrides`` on top."""
        unknown = set(overrides) - set(cls.model_fields)
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        base = settings.params().train.model_dump()
        if settings.encoder_weights is not None:
            base["encoder_weights"] = str(settings.encoder_weights)
        base.update({k: v for k, v in overrides.items() if v is not None})
        return build(cls, base, "training options")


def expand_sweep(base: dict[str, Any], sweep: dict[str, list[Any]] | None) -> list[dict[str, Any]]:
    """Cartesian product of ``sweep`` values over ``base`` (one dict per training task).

    ``{"arch": ["linknet", "unet"], "learning_rate": [1e-3, 3e-4]}`` gives four configs.
    """
    if not sweep:
        return [dict(base)]
    bad = [k for k in sweep if k not in TrainConfig.model_fields]
    if bad:
        raise ValueError(f"sweep over unknown option(s): {', '.join(bad)}")
    keys = sorted(sweep)
    values = []
    for k in keys:
        v = sweep[k]
        v = v if isinstance(v, list) else [v]
        if not v:
            raise ValueError(f"sweep option {k!r} has no values")
        values.append(v)
    combos = [dict(base, **dict(zip(keys, vs, strict=True))) for vs in itertools.product(*values)]
    if len(combos) > MAX_SWEEP:
        raise ValueError(f"sweep gives {len(combos)} runs; at most {MAX_SWEEP} are allowed")
    return combos


def plan_configs(
    settings: Settings, overrides: dict[str, Any], sweep: dict[str, list[Any]] | None = None
) -> list[dict[str, Any]]:
    """Validated configs for one retraining run: one, or the sweep grid (fails before training)."""
    base = TrainConfig.from_settings(settings, **overrides).to_dict()
    return [build(TrainConfig, c, "sweep config").to_dict() for c in expand_sweep(base, sweep)]
