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


# --- multi-class ----------------------------------------------------------------------------

CLASS_TABLE = {  # ClassTable.to_json() of a three-class table, as ingest records it
    "classes": [
        {"index": 0, "name": "building", "color": "#ff0000"},
        {"index": 1, "name": "vegetation", "color": "#00ff00"},
        {"index": 2, "name": "water", "color": "#0000ff"},
    ],
    "ignore_index": 255,
    "unlabeled": "ignore",
}
CLASS_COLOURS = {"building": (220, 40, 30), "vegetation": (30, 200, 40), "water": (20, 40, 210)}


def colour_model() -> Any:
    """A fixed 3-class 'segmenter': softmax of 20 x (r, g, b), i.e. class = strongest band.
    Right on ``write_class_dataset`` scenes; murky water (green-blue) fools it."""
    import numpy as np
    import tensorflow as tf

    inp = tf.keras.Input((None, None, 3))
    out = tf.keras.layers.Conv2D(3, 1, activation="softmax", name="prob")(inp)
    model = tf.keras.Model(inp, out, name="colour_model")
    w = (20.0 * np.eye(3, dtype=np.float32)).reshape(1, 1, 3, 3)
    model.get_layer("prob").set_weights([w, np.zeros(3, np.float32)])
    return model


def write_class_dataset(
    out: Path, *, dataset: str, tag: str, water: tuple[int, int, int] | None = None
) -> Path:
    """A processed multi-class dataset (class-index masks, 255 = ignore, manifest class table):
    64 px patches of three vertical bands building | vegetation | water, the top 8 rows
    unlabeled (grey, ignored). ``water`` paints the water band another colour."""
    import shutil

    import numpy as np

    from satseg.io.atomic import write_json
    from satseg.training.sample import _png

    colours = {**CLASS_COLOURS, **({"water": water} if water else {})}
    for split in ("train", "val"):
        shutil.rmtree(out / split, ignore_errors=True)
    counts = {"train": 2, "val": 3}
    for split, n in counts.items():
        for k in range(n):
            rgb = np.zeros((64, 64, 3), np.uint8)
            mask = np.zeros((64, 64), np.uint8)
            edges = (0, 20 + k, 44 - k, 64)  # a little different per patch
            for i, name in enumerate(("building", "vegetation", "water")):
                rgb[:, edges[i] : edges[i + 1]] = colours[name]
                mask[:, edges[i] : edges[i + 1]] = i
            rgb[:8], mask[:8] = 128, 255
            _png(out / split / "images" / f"{dataset}_{split}_{k}.png", rgb)
            _png(out / split / "masks" / f"{dataset}_{split}_{k}.png", mask)
    doc = {"dataset": dataset, "tag": tag, "counts": counts, "patch_size": 64}
    write_json(out / "manifest.json", {**doc, "classes": CLASS_TABLE})
    return out


def register_class_champion(settings: Any, dataset_tag: str, ious: dict[str, float]) -> str:
    """Log the colour model as a multi-class training run (final_val_miou,
    final_val_iou_<class> as retrain logs them, the class table in the CLASSES_TAG run tag)
    and make it champion."""
    import json

    import mlflow
    import mlflow.tensorflow

    from satseg.registry.ref import CLASSES_TAG
    from satseg.registry.store import promote, register
    from satseg.registry.tracking import setup

    setup(settings)
    with mlflow.start_run() as run:
        mlflow.set_tag(CLASSES_TAG, json.dumps(CLASS_TABLE))
        mlflow.log_metrics({f"final_val_iou_{k}": v for k, v in ious.items()})
        mlflow.log_metric("final_val_miou", sum(ious.values()) / len(ious))
        info = mlflow.tensorflow.log_model(
            colour_model(), name="model", keras_model_kwargs={"save_format": "h5"}
        )
    ref = register(settings, str(info.model_uri), run.info.run_id, {"dataset_tag": dataset_tag})
    promote(settings, ref.version)
    return ref.version
