"""Test inputs for monitoring, built the way the contracts describe (shared with tests/dags)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def write_reference(
    dataset_dir: Path, scenes_dir: Path, n: int = 4, style: SceneStyle = SceneStyle()
) -> Path:
    """A processed dataset's features.csv: ``split`` + feature columns, one row per patch."""
    scenes = make_scenes(scenes_dir, n, seed0=0, style=style)
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


def roof_model(threshold: float = 150.0) -> Any:
    """A fixed 'segmenter': roof where red > threshold. Right on urban scenes (IoU 1.0 on
    the sample datasets), fooled by bright desert ground: real concept drift."""
    import numpy as np
    import tensorflow as tf

    inp = tf.keras.Input((None, None, 3))
    out = tf.keras.layers.Conv2D(1, 1, activation="sigmoid", name="prob")(inp)
    model = tf.keras.Model(inp, out, name="roof_model")
    k = 0.2
    w = np.array([255 * k, 0, 0], np.float32).reshape(1, 1, 3, 1)
    model.get_layer("prob").set_weights([w, np.array([-threshold * k], np.float32)])
    return model


def register_champion(settings: Any, dataset_tag: str, val_iou: float) -> str:
    """Log the roof model as a training run (final_val_iou) and make it champion."""
    import mlflow
    import mlflow.tensorflow

    from satseg.registry.store import promote, register
    from satseg.registry.tracking import setup

    setup(settings)
    with mlflow.start_run() as run:
        mlflow.log_metric("final_val_iou", val_iou)
        info = mlflow.tensorflow.log_model(
            roof_model(), name="model", keras_model_kwargs={"save_format": "h5"}
        )
    ref = register(settings, str(info.model_uri), run.info.run_id, {"dataset_tag": dataset_tag})
    promote(settings, ref.version)
    return ref.version


def version_sample_dataset(
    settings: Any, dataset: str, n: int, style: SceneStyle, scenes_dir: Path
) -> str:
    """processed/<dataset> as ingest leaves it (patches, manifest, features.csv) -> DVC tag."""
    import shutil

    from satseg.training.sample import write_sample_dataset
    from satseg.versioning import dataset_dir, version_dataset

    d = dataset_dir(settings, dataset)
    shutil.rmtree(d, ignore_errors=True)
    tag = f"{dataset}-v{n}"
    write_sample_dataset(d, dataset=dataset, tag=tag, n_train=4, n_val=8, style=style)
    write_reference(d, scenes_dir, style=style)
    v = version_dataset(settings, dataset)
    assert v.tag == tag
    return tag
