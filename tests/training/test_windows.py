"""Scene windows, border weights, the budget schedule and the new augmentation (issue 16)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from satseg.training.windows import (
    Mosaic,
    border_weights,
    cut,
    group_patches,
    load_mosaics,
    sample_windows,
)


# --------------------------------------------------------------------------- border weights
def test_border_weights_on_a_hand_made_mask() -> None:
    """Two 6x6 roofs 4 px apart: the gap between them is weighted, open ground is not."""
    mask = np.zeros((20, 30), np.uint8)
    mask[5:11, 4:10] = 1  # columns 4..9
    mask[5:11, 14:20] = 1  # columns 14..19: gap = columns 10..13
    w0, sigma = 10.0, 3.0
    w = border_weights(mask, w0, sigma)
    assert w.dtype == np.float32 and w.shape == mask.shape
    assert np.all(w[mask == 1] == 1.0)  # buildings themselves: weight 1
    for col in (10, 11, 12, 13):  # gap pixel: d1 + d2 = (col - 9) + (14 - col) = 5
        assert w[8, col] == pytest.approx(1 + w0 * math.exp(-25 / (2 * sigma**2)), rel=1e-4)
    assert w[0, 28] == pytest.approx(1.0, abs=1e-3)  # far from both
    assert w[8, 2] < w[8, 11]  # beside one roof only (d2 = 12 + 2) counts far less
    assert w[8, 2] == pytest.approx(1 + w0 * math.exp(-((2 + 12) ** 2) / (2 * sigma**2)), rel=1e-3)


def test_border_weights_need_two_buildings() -> None:
    one = np.zeros((16, 16), np.uint8)
    one[4:8, 4:8] = 1
    assert np.all(border_weights(one, 10, 3) == 1.0)
    assert np.all(border_weights(np.zeros((8, 8), np.uint8), 10, 3) == 1.0)
    two = one.copy()
    two[4:8, 10:14] = 1
    assert np.all(border_weights(two, 0.0, 3) == 1.0)  # w0 = 0: off


# --------------------------------------------------------------------------- mosaics, windows
@pytest.fixture
def grid_dataset(tmp_path: Path) -> Path:
    from satseg.synthetic import SceneStyle
    from satseg.training.sample import write_sample_dataset

    dense = SceneStyle(building_density=2.0)
    return write_sample_dataset(
        tmp_path / "grid", dataset="grid", n_train=6, n_val=3, style=dense, ingest_ids=True
    )


def test_mosaics_put_the_train_grid_back_together(grid_dataset: Path) -> None:
    import cv2

    from satseg.training.data import list_split

    sp = list_split(grid_dataset, "train")  # 6 train patches: rows 0-1 of a 3x3 grid
    extra = sp.images[0].with_name(sp.images[0].stem + "_rot90.png")  # an augmented copy
    images, masks = [*sp.images[:1], *sp.images[2:], extra], [*sp.masks[:1], *sp.masks[2:], extra]
    (mosaic,) = load_mosaics(images, masks, (sp.height, sp.width))  # patch 1 left out
    assert mosaic.image.shape == (2 * 64, 3 * 64, 3)
    assert len(group_patches(images, masks)["grid_0"]) == 5
    for img_path, mask_path in zip(images[:-1], masks[:-1], strict=True):
        r, c = (int(t[1:]) for t in img_path.stem.split("_")[-2:])
        rgb = cv2.cvtColor(cv2.imread(str(img_path)), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(mosaic.image[r : r + 64, c : c + 64], rgb)
        m = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) > 127
        np.testing.assert_array_equal(mosaic.mask[r : r + 64, c : c + 64], m)
    # the missing patch is a hole: nodata for the sampler
    assert sp.images[1].stem.endswith("r00000_c00064")
    assert not mosaic.valid[:64, 64:128].any() and mosaic.valid[64:].mean() > 0.99


def _half_valid(h: int = 64, w: int = 256) -> Mosaic:
    valid = np.zeros((h, w), bool)
    valid[:, : w // 2] = True
    img = np.zeros((h, w, 3), np.uint8)
    img[valid] = 100
    return Mosaic("half", img, np.zeros((h, w), np.uint8), valid)


def test_windows_stay_inside_the_scene_and_respect_nodata() -> None:
    rng = np.random.default_rng(0)
    empty = Mosaic("empty", *(np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64), np.uint8)),
                   np.zeros((64, 64), bool))  # fmt: skip
    scenes = [_half_valid(), empty]
    wins = sample_windows(scenes, 200, 32, rng, max_nodata=0.0)
    assert {w.scene for w in wins} == {0}  # a scene without usable area is never picked
    for w in wins:
        assert w.y >= 0 and w.y + w.size <= 64 and w.x >= 0 and w.x + w.size <= 256
        assert scenes[0].valid_share(w.y, w.x, w.size) == 1.0
    loose = sample_windows(scenes, 200, 32, rng, max_nodata=1.0)
    assert any(w.x + w.size > 128 for w in loose)  # nodata allowed: the right half is used
    with pytest.raises(ValueError, match="no usable scene area"):
        sample_windows([empty], 1, 32, rng)


def test_scale_jitter_sizes_and_cut_resizes() -> None:
    rng = np.random.default_rng(1)
    m = _half_valid(h=100, w=300)
    m.mask[:, 40:60] = 1
    m.weight = np.full((100, 300), 2.0, np.float32)
    wins = sample_windows([m], 300, 64, rng, scale_jitter=0.5, max_nodata=1.0)
    sizes = np.array([w.size for w in wins])
    assert sizes.min() >= round(64 / 1.5) - 1 and sizes.max() <= min(round(64 * 1.5), 100)
    assert sizes.min() < 56 and sizes.max() > 80  # both zoom directions happen
    for w in wins[:20]:
        img, mask, weight = cut(m, w, 64)
        assert img.shape == (64, 64, 3) and mask.shape == (64, 64) and weight is not None
        assert weight.shape == (64, 64) and set(np.unique(mask)) <= {0, 1}


def test_window_dataset_is_seeded_aligned_and_new_each_epoch(grid_dataset: Path) -> None:
    from satseg.training.data import Augment, list_split, make_window_dataset

    sp = list_split(grid_dataset, "train")
    mosaics = load_mosaics(sp.images, sp.masks, (64, 64))
    for m in mosaics:
        m.weight = border_weights(m.mask, 5.0, 3.0)

    def run(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
        ds = make_window_dataset(mosaics, 8, 4, window=64, seed=seed, scale_jitter=0.25,
                                 aug=Augment(0.3, 0.5))  # fmt: skip
        return [(np.asarray(x), np.asarray(y)) for _ in range(2) for x, y in ds]

    a, b = run(3), run(3)
    assert all(np.array_equal(p[0], q[0]) for p, q in zip(a, b, strict=True))
    assert not np.array_equal(a[0][0], a[2][0])  # epoch 2 draws other windows
    for x, y in a:
        assert x.shape == (4, 64, 64, 3) and y.shape == (4, 64, 64, 2)
        assert x.min() >= 0.0 and x.max() <= 1.0 and y[..., 1].min() >= 1.0
    # geometry moves image and mask together: roofs (bright) stay under the mask, per window
    # (brightness/contrast only, so one window's jitter cannot outshine another's roofs)
    plain = make_window_dataset(mosaics, 16, 4, window=64, seed=4, scale_jitter=0.25)
    checked = 0
    for x, y in plain:
        for xi, yi in zip(np.asarray(x), np.asarray(y), strict=True):
            roof, grey = yi[..., 0] > 0.5, xi.mean(-1)
            if 0.05 < roof.mean() < 0.95:
                assert grey[roof].mean() > grey[~roof].mean() + 0.05
                checked += 1
    assert checked >= 4


# --------------------------------------------------------------------------- pipeline pieces
def test_patch_pipeline_with_colour_blur_and_border_weights(tmp_path: Path) -> None:
    from satseg.synthetic import SceneStyle
    from satseg.training.data import Augment, list_split, make_dataset
    from satseg.training.sample import write_sample_dataset

    d = write_sample_dataset(tmp_path / "w", n_train=4, n_val=1, size=128,
                             style=SceneStyle(building_density=2.0))  # fmt: skip
    sp = list_split(d, "train")
    kw = {"augment": True, "shuffle": True, "seed": 5, "aug": Augment(0.3, 1.0)}
    first = [np.asarray(y) for _, y in make_dataset(sp, 2, border=(5.0, 8.0), cache=True, **kw)]
    weighted = 0.0
    for x, y in make_dataset(sp, 2, border=(5.0, 8.0), cache=True, **kw):
        x, y = np.asarray(x), np.asarray(y)
        assert y.shape[-1] == 2 and x.min() >= 0.0 and x.max() <= 1.0
        for mask, w in zip(y[..., 0], y[..., 1], strict=True):  # weights moved with the mask
            np.testing.assert_allclose(w, border_weights(mask, 5.0, 8.0), atol=1e-4)
        weighted = max(weighted, float(y[..., 1].max()))
    assert weighted > 1.01  # some gaps between roofs carry weight
    again = [np.asarray(y) for _, y in make_dataset(sp, 2, border=(5.0, 8.0), cache=True, **kw)]
    assert all(np.array_equal(p, q) for p, q in zip(first, again, strict=True))


def test_cosine_schedule_values() -> None:
    from satseg.training.fit import FLOOR, WARMUP, cosine_lr

    base = 1e-3
    assert cosine_lr(0.0, base) == pytest.approx(0.1 * base)
    assert cosine_lr(WARMUP / 2, base) == pytest.approx(0.55 * base)
    assert cosine_lr(WARMUP, base) == pytest.approx(base)
    mid = WARMUP + (1 - WARMUP) / 2
    assert cosine_lr(mid, base) == pytest.approx(base * (FLOOR + (1 - FLOOR) / 2))
    assert cosine_lr(1.0, base) == pytest.approx(FLOOR * base) == cosine_lr(3.0, base)
    after = [cosine_lr(p, base) for p in np.linspace(WARMUP, 1, 20)]
    assert all(a >= b for a, b in itertools.pairwise(after))


def test_border_weights_raise_the_cost_of_errors_in_gaps() -> None:
    import tensorflow as tf

    from satseg.training.losses import bce, bce_dice

    t = np.zeros((1, 4, 4, 1), np.float32)
    t[0, 0, 0, 0] = 1.0
    pred = np.full((1, 4, 4, 1), 0.1, np.float32)
    pred[0, 3, 3, 0] = 0.9  # one false positive
    ones = np.concatenate([t, np.ones_like(t)], axis=-1)
    heavy = ones.copy()
    heavy[0, 3, 3, 1] = 10.0  # ... in a weighted gap
    assert float(bce(tf.constant(ones), pred)[0]) == pytest.approx(float(bce(tf.constant(t), pred)[0]), rel=1e-5)  # fmt: skip
    assert float(bce_dice(tf.constant(heavy), pred)[0]) > float(
        bce_dice(tf.constant(ones), pred)[0]
    )


def test_fit_on_scene_windows_in_bf16_returns_a_float32_model(
    grid_dataset: Path, tmp_path: Path
) -> None:
    from satseg.training.config import TrainConfig
    from satseg.training.fit import fit

    cfg = TrainConfig(epochs=2, batch_size=4, precision="bf16", border_weight=5, sampler="scenes", schedule="cosine",
                      window=64, time_budget_min=60)  # fmt: skip
    model, history = fit(grid_dataset, cfg, tmp_path / "w")
    assert len(history["loss"]) == 2 and np.isfinite(history["loss"]).all()
    assert history["lr"][-1] < cfg.learning_rate  # cosine decayed
    assert all(layer.dtype == "float32" for layer in model.layers if layer.weights)
    assert model.predict(np.zeros((1, 64, 64, 3), np.float32), verbose=0).dtype == np.float32


def test_window_must_be_a_multiple_of_32() -> None:
    from satseg.training.config import TrainConfig

    with pytest.raises(ValueError, match="window"):
        TrainConfig(window=100)
