"""Fixtures for monitoring tests: tiny params, one reference dataset per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from monitor_synth import write_params, write_reference


@pytest.fixture(scope="session")
def reference_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """features.csv of 4 training-style scenes (64 patches of 128 px)."""
    root = tmp_path_factory.mktemp("reference")
    return write_reference(root / "processed" / "demo", root / "scenes")


@pytest.fixture
def msettings(settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``settings`` with monitoring params for tiny scenes."""
    from satseg.config import get_settings, reset_settings_cache

    monkeypatch.setenv("SATSEG_PARAMS_FILE", str(write_params(tmp_path / "params.yaml")))
    reset_settings_cache()
    s = get_settings()
    s.ensure_dirs()
    return s
