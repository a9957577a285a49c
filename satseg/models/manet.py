"""MA-Net decoder (Fan et al., 2020) on segmentation-models backbones.

segmentation-models has no MA-Net, so the decoder is written here on the same encoder
feature layers (``sm.Backbones.get_feature_layers``) the library's UNet/LinkNet use; that is
what makes every backbone work with every arch. Two attention blocks:

- PAB (position-wise attention) on the deepest features: a non-local block where every
  position attends to every other one (global context for large roofs and shadows).
- MFAB (multi-scale fusion attention) at each decoder stage: squeeze-excitation channel
  attention of the upsampled high-level features plus that of the skip features re-weights
  the high-level path before it is fused with the skip.

The custom layers implement ``get_config`` and are registered, so a saved model loads back
(MLflow, ``tf.keras.models.load_model``) without ``custom_objects``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

keras = tf.keras
layers = tf.keras.layers


def _build(sub: tf.keras.layers.Layer, shape: tuple[int | None, ...]) -> None:
    """Build a sub-layer under its own name scope, so its weights get unique names."""
    with tf.name_scope(sub.name):
        sub.build(shape)


@tf.keras.utils.register_keras_serializable(package="satseg")
class PositionAttention(tf.keras.layers.Layer):  # type: ignore[misc]
    """PAB: ``x + conv(softmax(Q K^T) V)`` over all h*w positions of a feature map."""

    def __init__(self, key_channels: int = 64, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.key_channels = key_channels

    def build(self, input_shape: Any) -> None:
        c = int(input_shape[-1])
        # Sub-layer names carry the parent's: HDF5 saving needs unique weight names; they
        # share the parent's dtype policy (mixed bfloat16 training clones this layer).
        self.query = layers.Conv2D(
            self.key_channels, 1, name=f"{self.name}_query", dtype=self.dtype_policy
        )
        self.key = layers.Conv2D(
            self.key_channels, 1, name=f"{self.name}_key", dtype=self.dtype_policy
        )
        self.value = layers.Conv2D(
            c, 3, padding="same", name=f"{self.name}_value", dtype=self.dtype_policy
        )
        self.out = layers.Conv2D(
            c, 3, padding="same", name=f"{self.name}_out", dtype=self.dtype_policy
        )
        for conv in (self.query, self.key, self.value, self.out):
            _build(conv, (None, None, None, c))
        super().build(input_shape)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(x)
        b, h, w = shape[0], shape[1], shape[2]
        c = x.shape[-1]
        q = tf.reshape(self.query(x), (b, h * w, self.key_channels))
        k = tf.reshape(self.key(x), (b, h * w, self.key_channels))
        v = tf.reshape(self.value(x), (b, h * w, c))
        scale = tf.math.rsqrt(tf.cast(self.key_channels, q.dtype))
        attn = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) * scale, axis=-1)
        ctx = tf.reshape(tf.matmul(attn, v), (b, h, w, c))
        return x + self.out(ctx)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "key_channels": self.key_channels}


@tf.keras.utils.register_keras_serializable(package="satseg")
class ChannelAttention(tf.keras.layers.Layer):  # type: ignore[misc]
    """Squeeze-excitation weights (b, 1, 1, c) in [0, 1]: the attention half of an MFAB."""

    def __init__(self, reduction: int = 16, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reduction = reduction

    def build(self, input_shape: Any) -> None:
        c = int(input_shape[-1])
        r = max(1, c // self.reduction)
        self.squeeze = layers.Conv2D(
            r, 1, activation="relu", name=f"{self.name}_squeeze", dtype=self.dtype_policy
        )
        self.excite = layers.Conv2D(
            c, 1, activation="sigmoid", name=f"{self.name}_excite", dtype=self.dtype_policy
        )
        _build(self.squeeze, (None, 1, 1, c))
        _build(self.excite, (None, 1, 1, r))
        super().build(input_shape)

    def call(self, x: tf.Tensor) -> tf.Tensor:
        pooled = tf.reduce_mean(x, axis=(1, 2), keepdims=True)
        return self.excite(self.squeeze(pooled))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "reduction": self.reduction}


def _conv_bn_relu(x: tf.Tensor, filters: int, kernel: int, name: str) -> tf.Tensor:
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def mfab(x: tf.Tensor, skip: tf.Tensor | None, filters: int, stage: int) -> tf.Tensor:
    """Multi-scale fusion attention block: upsample, attend (high + low level), fuse."""
    name = f"mfab{stage}"
    skip_c = int(skip.shape[-1]) if skip is not None else filters
    x = _conv_bn_relu(x, int(x.shape[-1]), 3, f"{name}_hl1")
    x = _conv_bn_relu(x, skip_c, 1, f"{name}_hl2")
    x = layers.UpSampling2D(2, name=f"{name}_up")(x)
    if skip is not None:
        att = layers.Add(name=f"{name}_att")(
            [
                ChannelAttention(name=f"{name}_se_hl")(x),
                ChannelAttention(name=f"{name}_se_ll")(skip),
            ]
        )
        x = layers.Multiply(name=f"{name}_reweight")([x, att])
        x = layers.Concatenate(name=f"{name}_concat")([x, skip])
    x = _conv_bn_relu(x, filters, 3, f"{name}_c1")
    return _conv_bn_relu(x, filters, 3, f"{name}_c2")


def build_manet(
    backbone: tf.keras.Model,
    skip_layers: Sequence[str | int],
    classes: int = 1,
    decoder_filters: Sequence[int] = (256, 128, 64, 32, 16),
    pab_channels: int = 64,
) -> tf.keras.Model:
    """MA-Net on an encoder; ``skip_layers`` are sm's (x16, x8, x4, x2) feature layers."""
    skips = [
        backbone.get_layer(name=s).output
        if isinstance(s, str)
        else backbone.get_layer(index=s).output
        for s in skip_layers
    ]
    x = backbone.output
    if isinstance(backbone.layers[-1], layers.MaxPooling2D):  # VGG ends in a pool: add a centre
        x = _conv_bn_relu(x, 512, 3, "center")
    x = PositionAttention(pab_channels, name="pab")(x)
    for i, filters in enumerate(decoder_filters):
        x = mfab(x, skips[i] if i < len(skips) else None, filters, i)
    x = layers.Conv2D(classes, 3, padding="same", name="final_conv")(x)
    out = layers.Activation("sigmoid" if classes == 1 else "softmax", name="output")(x)
    return tf.keras.Model(backbone.input, out, name="manet")
