"""A small multi-class dataset made the way users make one: generated land-cover scenes
(``satseg.synthetic.make_landcover_scene``) ingested through the real inbox with a class table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from satseg.synthetic import LANDCOVER_CLASSES, make_landcover_scene

CLASSES = [{"name": n} for n in LANDCOVER_CLASSES]
PARAMS = {
    "ingest": {"classes": CLASSES},
    "preprocess": {
        "patch_size": 64,
        "stride": 64,
        "oversample": 1,
        "val_fraction": 0.25,
        "workers": 1,
    },
}


def use_landcover_params(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """SATSEG_PARAMS_FILE with the land-cover class table and 64 px patches."""
    p = tmp_path / "params.landcover.yaml"
    p.write_text(yaml.safe_dump(PARAMS))
    monkeypatch.setenv("SATSEG_PARAMS_FILE", str(p))
    monkeypatch.setenv("SATSEG_STABLE_POLLS_S", "0.05")
    return p


def ingest_landcover(settings: Any, n_scenes: int = 3, size: int = 192, name: str = "lc") -> Path:
    """``n_scenes`` generated scenes through the inbox; the processed dataset's directory."""
    from satseg.ingest.pipeline import run_once

    for i in range(n_scenes):
        make_landcover_scene(settings.inbox / name, f"{name}{i}", size, size, i + 1)
    out = run_once(settings, poll_interval=0.05)
    status = [r["status"] for r in out["results"]]
    assert status == ["accepted"] * n_scenes, out
    return Path(settings.processed / name)
