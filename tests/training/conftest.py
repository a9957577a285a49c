"""Tiny processed datasets in the ingest layout (see satseg.training.sample)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from satseg.synthetic import SceneStyle
from satseg.training.sample import write_sample_dataset

DENSE = SceneStyle(building_density=2.0)  # ~70 % of 64 px cells hold a building


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """8 train / 4 val patches of 64 px: enough to run every code path in seconds."""
    return write_sample_dataset(tmp_path / "tiny", dataset="tiny", n_train=8, n_val=4, style=DENSE)


@pytest.fixture
def landcover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> tuple[Any, Path]:
    """(settings, dataset dir) of three generated land-cover scenes ingested with the
    five-class table (64 px patches; class indices 0..4, 255 = ignore)."""
    from tests.training.landcover import ingest_landcover, use_landcover_params

    use_landcover_params(tmp_path, monkeypatch)
    settings = request.getfixturevalue("settings")
    return settings, ingest_landcover(settings)
