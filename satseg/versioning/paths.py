"""Where a processed dataset lives (light: no DVC import, used by every stage)."""

from __future__ import annotations

from pathlib import Path

from satseg.config import Settings
from satseg.vocab import check_dataset_name


def dataset_dir(settings: Settings, dataset: str) -> Path:
    """``processed/<dataset>/``: ``{train,val}/{images,masks}/``, ``manifest.json``, ``features.csv``."""
    return settings.processed / check_dataset_name(dataset)
