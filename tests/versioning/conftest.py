"""Small patches so datasets build in well under a second."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture(autouse=True)
def _small_params(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump({"preprocess": {"patch_size": 128, "stride": 128, "workers": 1}}))
    monkeypatch.setenv("SATSEG_PARAMS_FILE", str(p))
    monkeypatch.setenv("SATSEG_STABLE_POLLS_S", "0.05")
