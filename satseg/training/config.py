"""Training hyperparameters: ``params.yaml`` defaults, overridden per run (CLI, DAG params).

Kept free of TensorFlow so the DAG and CLI can validate a configuration (and expand a sweep
grid) without paying the TensorFlow import.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, fields
from typing import Any

from satseg.config import Settings
from satseg.models import ARCHS

LOSSES = ("bce_dice", "bce_jaccard", "focal", "bce")
MAX_SWEEP = 8  # mapped training tasks; each one is a full training run on 2 cores


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run (logged as MLflow params)."""

    arch: str = "linknet"
    backbone: str = "resnet18"
    epochs: int = 20
    batch_size: int = 8
    learning_rate: float = 1e-3
    loss: str = "bce_dice"
    patience: int = 5
    seed: int = 42
    augment: bool = True
    steps_per_epoch: int | None = None  # None: one pass over the train split
    time_budget_min: float | None = None  # stop after the epoch that crosses it (None: off)
    encoder_weights: str | None = None

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch {self.arch!r}: choose one of {', '.join(ARCHS)}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss {self.loss!r}: choose one of {', '.join(LOSSES)}")
        for name in ("epochs", "batch_size", "patience"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.time_budget_min is not None and not self.time_budget_min > 0:
            raise ValueError(f"time_budget_min must be > 0, got {self.time_budget_min}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> TrainConfig:
        """params.yaml ``train:`` section, then non-None ``overrides`` on top."""
        known = {f.name for f in fields(cls)}
        base = {k: v for k, v in (settings.params().get("train") or {}).items() if k in known}
        if settings.encoder_weights is not None:
            base["encoder_weights"] = str(settings.encoder_weights)
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)


def expand_sweep(base: dict[str, Any], sweep: dict[str, list[Any]] | None) -> list[dict[str, Any]]:
    """Cartesian product of ``sweep`` values over ``base`` (one dict per training task).

    ``{"arch": ["linknet", "unet"], "learning_rate": [1e-3, 3e-4]}`` gives four configs.
    """
    if not sweep:
        return [dict(base)]
    known = {f.name for f in fields(TrainConfig)}
    bad = [k for k in sweep if k not in known]
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
    return [TrainConfig(**c).to_dict() for c in expand_sweep(base, sweep)]
