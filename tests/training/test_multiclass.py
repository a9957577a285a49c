"""Multi-class training on a generated land-cover dataset ingested with a class table:
class-index targets (255 = ignore) through both pipelines, the softmax losses and the
per-class epoch metrics, n-channel models, argmax evaluation and the promotion metric names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from satseg.classes import ModelClasses
from satseg.metrics import ClassScorer
from satseg.synthetic import LANDCOVER_CLASSES
from satseg.training.config import TrainConfig
from satseg.training.data import dataset_classes, list_split, make_dataset, read_manifest

N = len(LANDCOVER_CLASSES)
ALLOWED = {*range(N), 255}


def _masks_on_disk(split: Any) -> set[int]:
    import cv2

    return {int(v) for p in split.masks for v in np.unique(cv2.imread(str(p), -1))}


def test_class_index_targets_survive_both_pipelines_and_augmentation(landcover) -> None:
    from satseg.training.windows import cut, load_mosaics, sample_windows

    _, ddir = landcover
    doc = read_manifest(ddir)  # no longer refused
    classes = dataset_classes(ddir)
    assert classes.multiclass and classes.names == LANDCOVER_CLASSES and classes.channels == N
    train = list_split(ddir, "train")
    on_disk = _masks_on_disk(train)
    assert on_disk <= ALLOWED and len(on_disk - {255}) >= 4

    plain = make_dataset(train, 4, multiclass=True)
    aug = make_dataset(train, 4, augment=True, shuffle=True, seed=3, multiclass=True)
    for ds in (plain, aug):
        seen: set[int] = set()
        for x, y in ds:
            assert y.shape[-1] == 1 and x.shape[1:] == (64, 64, 3)
            seen |= {int(v) for v in np.unique(np.asarray(y))}
        assert seen <= ALLOWED and seen - {255} == on_disk - {255}, seen  # exact indices
    # the plain pipeline holds the masks as stored (no 0/255 binarisation)
    import cv2

    first = cv2.imread(str(train.masks[0]), -1)
    y0 = np.asarray(next(iter(plain))[1])[0, ..., 0]
    np.testing.assert_array_equal(y0, first)

    # scene windows: uncovered area is ignore, zoomed windows keep exact indices
    mosaics = load_mosaics(train.images, train.masks, (train.height, train.width), multiclass=True)
    assert {int(v) for m in mosaics for v in np.unique(m.mask)} <= ALLOWED
    rng = np.random.default_rng(0)
    for win in sample_windows(mosaics, 8, 64, rng, scale_jitter=0.5):
        _, mask, _ = cut(mosaics[win.scene], win, 64)
        assert {int(v) for v in np.unique(mask)} <= ALLOWED
    assert doc["class_pixels"]["train"]["land"] > 0


def test_padding_is_ignore_not_class_zero(landcover, tmp_path: Path) -> None:
    import cv2

    _, ddir = landcover
    train = list_split(ddir, "train")
    out = tmp_path / "odd" / "train"
    for sub in ("images", "masks"):
        (out / sub).mkdir(parents=True)
    for img, msk in zip(train.images[:2], train.masks[:2], strict=True):  # 64 -> 50 px: padded
        cv2.imwrite(str(out / "images" / img.name), cv2.imread(str(img))[:50, :50])
        cv2.imwrite(str(out / "masks" / msk.name), cv2.imread(str(msk), -1)[:50, :50])
    sp = list_split(out.parent, "train")
    _, y = next(iter(make_dataset(sp, 2, multiclass=True)))
    y = np.asarray(y)[..., 0]
    assert y.shape == (2, 64, 64)
    assert (y[:, 50:, :] == 255).all() and (y[:, :, 50:] == 255).all()


def test_softmax_losses_ignore_255_and_reward_the_truth() -> None:
    import tensorflow as tf

    from satseg.training.losses import ClassScores, multiclass_loss

    rng = np.random.default_rng(0)
    idx = rng.integers(0, N, (2, 16, 16)).astype(np.float32)
    idx[:, :4] = 255  # ignore rows
    y = tf.constant(idx[..., None])
    truth = np.eye(N, dtype=np.float32)[np.where(idx == 255, 0, idx).astype(int)]
    good = tf.constant(0.9 * truth + 0.1 / N)
    bad = tf.constant(np.roll(good.numpy(), 1, axis=-1))
    for name in ("bce_dice", "bce_jaccard", "focal", "bce"):
        loss = multiclass_loss(name, N)
        assert float(tf.reduce_mean(loss(y, good))) < float(tf.reduce_mean(loss(y, bad))), name
        # what is predicted on ignore pixels does not count
        changed = good.numpy().copy()
        changed[:, :4] = np.roll(changed[:, :4], 2, axis=-1)
        np.testing.assert_allclose(loss(y, tf.constant(changed)), loss(y, good), rtol=1e-6)
        # bfloat16 probabilities (mixed precision) give a float32 loss
        assert loss(y, tf.cast(good, tf.bfloat16)).dtype == tf.float32
    weighted = multiclass_loss("bce", N, [1.0, 1.0, 1.0, 1.0, 5.0])
    water_wrong = good.numpy().copy()
    water = idx == 4
    water_wrong[water] = np.roll(water_wrong[water], 1, axis=-1)
    plain = float(tf.reduce_mean(multiclass_loss("bce", N)(y, tf.constant(water_wrong))))
    assert float(tf.reduce_mean(weighted(y, tf.constant(water_wrong)))) > plain
    with pytest.raises(ValueError, match="3 class weights for 5 classes"):
        multiclass_loss("bce_dice", N, [1.0, 1.0, 1.0])

    # the epoch metric is ClassScorer's definition
    pred = rng.random((2, 16, 16, N)).astype(np.float32)
    m = ClassScores(LANDCOVER_CLASSES)
    m.update_state(y, tf.constant(pred))
    got = {k: float(v) for k, v in m.result().items()}
    s = ClassScorer(LANDCOVER_CLASSES)
    s.update(idx.astype(np.uint8), pred.argmax(-1).astype(np.uint8))
    want = s.result()
    assert set(got) == {k for k in want if not k.startswith(("precision_", "recall_"))}
    for k, v in got.items():
        assert v == pytest.approx(want[k], abs=1e-6), k


def test_promotion_metric_names_follow_the_class_table() -> None:
    from satseg.training.evaluate import resolve_metric

    mc = ModelClasses.from_json(
        {"classes": [{"index": i, "name": n} for i, n in enumerate(LANDCOVER_CLASSES)],
         "ignore_index": 255}
    )  # fmt: skip
    binary = ModelClasses.from_json(None)
    assert resolve_metric("iou", mc) == "miou" and resolve_metric("dice", mc) == "mdice"
    assert resolve_metric("iou_water", mc) == "iou_water"
    assert resolve_metric("iou", binary) == "iou"
    with pytest.raises(ValueError, match=r"no class 'helipad' in the class table \(building"):
        resolve_metric("iou_helipad", mc)
    with pytest.raises(ValueError, match="object_f1 is binary only"):
        resolve_metric("object_f1", mc)
    with pytest.raises(ValueError, match="miou needs a multi-class dataset"):
        resolve_metric("miou", binary)
    with pytest.raises(ValueError, match="promotion_metric"):
        TrainConfig(promotion_metric="f2")
    assert TrainConfig(promotion_metric="iou_water").promotion_metric == "iou_water"


@pytest.mark.slow
def test_fit_and_evaluate_a_multiclass_dataset(landcover, tmp_path: Path) -> None:
    from satseg.training.evaluate import evaluate, evaluate_classes, tune_classes
    from satseg.training.fit import class_weights, fit

    _, ddir = landcover
    cfg = TrainConfig(
        epochs=2, batch_size=4, window=64, time_budget_min=None, class_weighting="balanced",
        class_weights={"water": 2.0}, promotion_metric="iou_road",
    )  # fmt: skip
    classes = dataset_classes(ddir)
    w = class_weights(cfg, ddir, classes)
    assert w is not None and len(w) == N and w[4] == 2.0
    assert w[1] == min(w) and w[0] > w[1]  # land is common, buildings rare
    model, hist = fit(ddir, cfg, tmp_path / "work")
    assert model.output_shape[-1] == N and model.dtype == "float32"
    for k in ("val_miou", "val_mdice", *(f"val_iou_{n}" for n in LANDCOVER_CLASSES)):
        assert len(hist[k]) == 2 and all(0 <= v <= 1 for v in hist[k]), k
    scores = evaluate_classes(model, ddir, "val", overlay_dir=tmp_path / "ov", n_overlays=2)
    assert evaluate(model, ddir, "val") == scores  # evaluate picks the multi-class path
    assert {"miou", "pixel_accuracy", *(f"iou_{n}" for n in LANDCOVER_CLASSES)} <= set(scores)
    assert len(list((tmp_path / "ov").glob("*.png"))) == 2
    tuned = tune_classes(model, ddir, "val", metric=cfg.promotion_metric)
    assert tuned["decision"] == "argmax" and tuned["metric"] == "iou_road"
    assert tuned["metrics"] == scores

    with pytest.raises(ValueError, match="no class 'helipad'"):
        fit(ddir, TrainConfig(epochs=1, promotion_metric="iou_helipad"), tmp_path / "w2")
    with pytest.raises(ValueError, match=r"class_weights name \['lava'\]"):
        fit(ddir, TrainConfig(epochs=1, class_weights={"lava": 1.0}), tmp_path / "w3")


def constant_class(k: int, n: int = N) -> Any:
    """An n-channel softmax model that says class ``k`` everywhere."""
    import tensorflow as tf

    inp = tf.keras.Input((None, None, 3))
    conv = tf.keras.layers.Conv2D(n, 1, activation="softmax")
    model = tf.keras.Model(inp, conv(inp))
    conv.set_weights([np.zeros((1, 1, 3, n), np.float32), 10.0 * np.eye(n, dtype=np.float32)[k]])
    return model


def test_argmax_scores_and_mismatched_models_and_datasets(landcover, tiny_dataset: Path) -> None:
    import tensorflow as tf

    from satseg.training.data import DatasetError
    from satseg.training.evaluate import evaluate, evaluate_classes
    from satseg.training.fit import class_weights

    _, ddir = landcover
    land = evaluate(constant_class(1), ddir, "val")
    px = read_manifest(ddir)["class_pixels"]["val"]
    share = px["land"] / sum(v for k, v in px.items() if k != "ignore")
    assert land["iou_land"] == pytest.approx(share) and land["pixel_accuracy"] == land["iou_land"]
    assert land["iou_water"] == 0.0 and land["miou"] == pytest.approx(share / N)

    inp = tf.keras.Input((None, None, 3))
    binary = tf.keras.Model(inp, tf.keras.layers.Conv2D(1, 1, activation="sigmoid")(inp))
    with pytest.raises(DatasetError, match="cannot score a binary"):
        evaluate(binary, ddir, "val")
    with pytest.raises(DatasetError, match="cannot score a 3-class model"):
        evaluate_classes(constant_class(0, 3), ddir, "val")
    with pytest.raises(DatasetError, match="binary dataset"):
        evaluate(constant_class(0), tiny_dataset, "val")
    with pytest.raises(ValueError, match="multi-class datasets only"):
        class_weights(
            TrainConfig(class_weighting="balanced"), tiny_dataset, ModelClasses.from_json(None)
        )
