"""Tiny deterministic Keras models for inference tests (no training, no registry needed).

Synthetic roofs are much brighter in the red band (R >= 170) than ground (R <= ~150), so a
fixed-weight conv net that thresholds a smoothed red channel is a real segmentation model
whose answer is known: predicted polygons must land on the generator's buildings.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("SM_FRAMEWORK", "tf.keras")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

ROOF_R = 158 / 255  # red level between ground (<~150) and the darkest roof (170)


def _roof_model(dilations: tuple[int, ...], steepness: float):
    """smoothed red channel (3x3 box blurs at the given dilations) -> sigmoid(k (r - t))."""
    import tensorflow as tf

    inp = tf.keras.Input((None, None, 3))
    x = tf.keras.layers.Conv2D(1, 1, use_bias=False, name="red")(inp)
    for i, d in enumerate(dilations):
        x = tf.keras.layers.Conv2D(
            1, 3, padding="same", dilation_rate=d, use_bias=False, name=f"blur{i}"
        )(x)
    out = tf.keras.layers.Conv2D(1, 1, activation="sigmoid", name="prob")(x)
    model = tf.keras.Model(inp, out, name="roof_model")
    model.get_layer("red").set_weights([np.array([1.0, 0.0, 0.0], np.float32).reshape(1, 1, 3, 1)])
    for i in range(len(dilations)):
        model.get_layer(f"blur{i}").set_weights([np.full((3, 3, 1, 1), 1 / 9, np.float32)])
    model.get_layer("prob").set_weights(
        [np.full((1, 1, 1, 1), steepness, np.float32), np.array([-steepness * ROOF_R], np.float32)]
    )
    return model


@pytest.fixture(scope="session")
def roof_model():
    """Receptive field 3 px: answers 'is this pixel roof-bright' (georeferencing tests)."""
    return _roof_model((1,), 40.0)


@pytest.fixture(scope="session")
def context_model():
    """Receptive field 31 px with zero padding: tile edges really differ (seam tests)."""
    return _roof_model((1, 2, 4, 8), 12.0)


MODEL_INFO = {
    "name": "test-roof",
    "version": "7",
    "run_id": "run-abc",
    "dataset_tag": "demo-v1",
}


@pytest.fixture
def model_info() -> dict:
    return dict(MODEL_INFO)
