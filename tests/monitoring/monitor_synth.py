"""Test inputs for monitoring, built the way the contracts describe (shared with tests/dags)."""

from __future__ import annotations

from pathlib import Path

import yaml

from satseg.monitoring.imagery import features_frame
from satseg.synthetic import SceneStyle, make_scene

PATCH = 128  # small patches: more windows per tiny scene, so the KS tests have power


def make_scenes(
    out: Path, n: int, seed0: int, style: SceneStyle = SceneStyle(), size: int = 512
) -> list[Path]:
    return [
        make_scene(
            out,
            f"s{seed0 + i}",
            size,
            size,
            seed=seed0 + i,
            style=style,
            labelme=False,
            geojson=False,
        ).image
        for i in range(n)
    ]


def write_reference(dataset_dir: Path, scenes_dir: Path, n: int = 4) -> Path:
    """A processed dataset's features.csv: ``split`` + feature columns, one row per patch."""
    scenes = make_scenes(scenes_dir, n, seed0=0)
    df = features_frame(scenes, size=PATCH, total=10_000).drop(columns="scene")
    df.insert(0, "split", ["val" if i % 5 == 0 else "train" for i in range(len(df))])
    dataset_dir.mkdir(parents=True, exist_ok=True)
    df.to_csv(dataset_dir / "features.csv", index=False)
    return dataset_dir


def write_params(path: Path, **monitor: object) -> Path:
    """params.yaml overriding patch size and sampling for tiny test scenes."""
    doc = {
        "preprocess": {"patch_size": PATCH},
        "monitor": {"sample_patches": 32, "min_samples": 8, **monitor},
    }
    path.write_text(yaml.safe_dump(doc))
    return path
