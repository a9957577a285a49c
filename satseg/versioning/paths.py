"""Where a processed dataset lives (light: no DVC import, used by every stage)."""

from __future__ import annotations

from pathlib import Path

from satseg.config import Settings

_SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"


def check_dataset_name(dataset: str) -> str:
    if not dataset or not dataset[0].isalnum() or any(c not in _SAFE for c in dataset):
        raise ValueError(f"invalid dataset name {dataset!r}: use letters, digits, '_' and '-'")
    return dataset


def dataset_dir(settings: Settings, dataset: str) -> Path:
    """``processed/<dataset>/``: ``{train,val}/{images,masks}/``, ``manifest.json``, ``features.csv``."""
    return settings.processed / check_dataset_name(dataset)
