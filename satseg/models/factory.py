"""One entry point for every model satseg trains or serves.

All three architectures share segmentation-models' encoders and their feature layers, so
any backbone from ``sm.Backbones`` works with any arch. Encoder weights are random unless a
local ``.h5`` file is given: nothing is ever downloaded at run time.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

with contextlib.redirect_stdout(io.StringIO()):  # it prints its framework on import
    import segmentation_models as sm
import tensorflow as tf

from satseg.models import ARCHS
from satseg.models.manet import ChannelAttention, PositionAttention, build_manet


def backbones() -> list[str]:
    """Encoder names every arch accepts."""
    return sorted(sm.Backbones.models_names())


def custom_objects() -> dict[str, Any]:
    """Custom layers of satseg models (also registered; handy for explicit loading)."""
    return {
        "satseg>PositionAttention": PositionAttention,
        "satseg>ChannelAttention": ChannelAttention,
        "PositionAttention": PositionAttention,
        "ChannelAttention": ChannelAttention,
    }


def uncompiled_copy(model: tf.keras.Model) -> tf.keras.Model:
    """Same architecture and weights, no optimizer/loss: what gets saved and logged."""
    clone = tf.keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _check_weights(encoder_weights: str | Path | None) -> Path | None:
    if encoder_weights is None:
        return None
    p = Path(encoder_weights)
    if p.suffix != ".h5":
        raise ValueError(
            f"encoder_weights={encoder_weights!r}: give None or a local .h5 file "
            "(named weights such as 'imagenet' would be downloaded at run time)"
        )
    if not p.is_file():
        raise FileNotFoundError(f"encoder weights file not found: {p}")
    return p


def build_model(
    arch: str,
    backbone: str = "resnet18",
    input_shape: tuple[int | None, int | None, int] = (None, None, 3),
    classes: int = 1,
    encoder_weights: str | Path | None = None,
) -> tf.keras.Model:
    """Uncompiled Keras model ``(b, h, w, 3) float [0, 1] -> (b, h, w, classes)`` probabilities.

    h and w must be multiples of 32 (five stride-2 stages). ``encoder_weights`` is a local
    ``.h5`` of the encoder (e.g. ``backbone.save_weights``), loaded by layer name.
    """
    arch = arch.lower()
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}: choose one of {', '.join(ARCHS)}")
    if backbone not in sm.Backbones.models_names():
        raise ValueError(f"unknown backbone {backbone!r}: see satseg.models.backbones()")
    weights = _check_weights(encoder_weights)
    activation = "sigmoid" if classes == 1 else "softmax"
    if arch == "linknet":
        model = sm.Linknet(
            backbone,
            input_shape=input_shape,
            classes=classes,
            activation=activation,
            encoder_weights=None,
        )
    elif arch == "unet":
        model = sm.Unet(
            backbone,
            input_shape=input_shape,
            classes=classes,
            activation=activation,
            encoder_weights=None,
        )
    else:
        encoder = sm.Backbones.get_backbone(
            backbone,
            input_shape=input_shape,
            weights=None,
            include_top=False,
            backend=tf.keras.backend,
            layers=tf.keras.layers,
            models=tf.keras.models,
            utils=tf.keras.utils,
        )
        model = build_manet(encoder, sm.Backbones.get_feature_layers(backbone, n=4), classes)
    if weights is not None:
        model.load_weights(str(weights), by_name=True)
    return model
