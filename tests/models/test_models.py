"""Every arch builds on segmentation-models encoders, trains, and saves/loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from satseg.models import ARCHS, build_model
from satseg.models.manet import ChannelAttention, PositionAttention
from satseg.training.fit import load_saved, save_model
from satseg.training.losses import bce_dice


@pytest.mark.parametrize("arch", ARCHS)
def test_arch_builds_and_trains_one_step(arch: str) -> None:
    tf.keras.utils.set_random_seed(0)
    model = build_model(arch, "resnet18")
    x = np.random.default_rng(0).random((2, 64, 96, 3), dtype=np.float32)
    y = (x.mean(-1, keepdims=True) > 0.5).astype(np.float32)
    out = model(x, training=False)
    assert out.shape == (2, 64, 96, 1)
    assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 1.0
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss=bce_dice)
    before = [w.numpy().copy() for w in model.trainable_weights]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    changed = sum(
        not np.array_equal(b, w.numpy())
        for b, w in zip(before, model.trainable_weights, strict=True)
    )
    assert changed > 0.9 * len(before)


@pytest.mark.parametrize("arch", ARCHS)
def test_arch_runs_under_mixed_bfloat16(arch: str) -> None:
    """Every arch cloned for mixed bf16 (training's and inference's ``precision: bf16``):
    custom layers' sub-layers follow the policy, the output stays float32 and close."""
    from satseg.inference.engine import to_mixed_bfloat16

    tf.keras.utils.set_random_seed(0)
    model = build_model(arch, "resnet18")
    bf = to_mixed_bfloat16(model)
    x = np.random.default_rng(1).random((1, 64, 64, 3), dtype=np.float32)
    out = bf(x, training=False)
    assert out.dtype == tf.float32 and out.shape == (1, 64, 64, 1)
    assert float(np.abs(out.numpy() - model(x, training=False).numpy()).max()) < 0.1


@pytest.mark.parametrize("backbone", ["mobilenetv2", "vgg16", "efficientnetb0"])
def test_manet_works_on_other_backbones(backbone: str) -> None:
    model = build_model("manet", backbone)
    assert model(np.zeros((1, 64, 64, 3), np.float32)).shape == (1, 64, 64, 1)


def test_manet_has_its_attention_blocks_and_multiclass_head() -> None:
    model = build_model("manet", "resnet18", classes=3)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("PositionAttention") == 1
    assert kinds.count("ChannelAttention") == 8  # high- and low-level in 4 skip stages
    out = model(np.zeros((1, 64, 64, 3), np.float32)).numpy()
    assert out.shape == (1, 64, 64, 3)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)  # softmax over classes


def test_custom_layers_round_trip_their_config() -> None:
    pab = PositionAttention(key_channels=8, name="p")
    ca = ChannelAttention(reduction=4, name="c")
    assert PositionAttention.from_config(pab.get_config()).key_channels == 8
    assert ChannelAttention.from_config(ca.get_config()).reduction == 4
    assert tf.keras.utils.get_registered_object("satseg>PositionAttention") is PositionAttention


def test_saved_manet_loads_back_with_identical_predictions(tmp_path: Path) -> None:
    model = build_model("manet", "resnet18")
    model.compile(optimizer="adam", loss=bce_dice)  # a compiled model must still save cleanly
    x = np.random.default_rng(1).random((1, 64, 64, 3), dtype=np.float32)
    path = save_model(model, tmp_path / "m.h5")
    loaded = load_saved(path)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-6)


def test_attention_layers_survive_the_keras_v3_format(tmp_path: Path) -> None:
    inp = tf.keras.Input((None, None, 3))
    f = tf.keras.layers.Conv2D(16, 3, padding="same")(inp)
    f = PositionAttention(key_channels=4, name="pab")(f)
    out = tf.keras.layers.Multiply()([f, ChannelAttention(reduction=4, name="se")(f)])
    model = tf.keras.Model(inp, out)
    x = np.random.default_rng(2).random((1, 32, 32, 3), dtype=np.float32)
    model.save(tmp_path / "small.keras")
    loaded = tf.keras.models.load_model(tmp_path / "small.keras", compile=False)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), atol=1e-5)


def test_local_h5_encoder_weights_are_loaded(tmp_path: Path) -> None:
    import segmentation_models as sm

    encoder = sm.Backbones.get_backbone(
        "resnet18",
        input_shape=(None, None, 3),
        weights=None,
        include_top=False,
        backend=tf.keras.backend,
        layers=tf.keras.layers,
        models=tf.keras.models,
        utils=tf.keras.utils,
    )
    w = tmp_path / "encoder.h5"
    encoder.save_weights(w)
    model = build_model("unet", "resnet18", encoder_weights=w)
    conv = "conv0"
    np.testing.assert_array_equal(
        model.get_layer(conv).get_weights()[0], encoder.get_layer(conv).get_weights()[0]
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"arch": "pspnet"}, ValueError, "unknown arch 'pspnet'"),
        ({"arch": "unet", "backbone": "resnet9000"}, ValueError, "unknown backbone"),
        ({"arch": "unet", "encoder_weights": "imagenet"}, ValueError, "downloaded at run time"),
        ({"arch": "unet", "encoder_weights": "/nonexistent/w.h5"}, FileNotFoundError, "not found"),
    ],
)
def test_bad_model_requests_fail_clearly(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        build_model(**kwargs)


@pytest.mark.parametrize("arch", ARCHS)
def test_arch_has_n_softmax_outputs_for_a_class_table(arch: str) -> None:
    """Multi-class: one softmax channel per class (channel i = class index i), float32
    under mixed bf16 too, and a step of the multi-class loss trains it."""
    from satseg.inference.engine import to_mixed_bfloat16
    from satseg.training.losses import multiclass_loss

    tf.keras.utils.set_random_seed(0)
    model = build_model(arch, "resnet18", classes=5)
    x = np.random.default_rng(2).random((2, 64, 64, 3), dtype=np.float32)
    out = model(x, training=False).numpy()
    assert out.shape == (2, 64, 64, 5)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)
    bf = to_mixed_bfloat16(model)
    out_bf = bf(x, training=False)
    assert out_bf.dtype == tf.float32 and out_bf.shape == (2, 64, 64, 5)
    y = np.random.default_rng(3).integers(0, 5, (2, 64, 64, 1)).astype(np.float32)
    y[:, :8] = 255  # ignore
    bf.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss=multiclass_loss("bce_dice", 5))
    assert np.isfinite(bf.train_on_batch(x, y))
