"""Models whose val IoU is known in advance (imported by the registry tests).

A 1x1 convolution with zero weights and a large bias predicts the same class everywhere:
bias -10 -> all background (IoU 0), +10 -> all foreground (IoU = foreground share).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def constant_model(bias: float) -> Any:
    import tensorflow as tf

    inp = tf.keras.Input((None, None, 3))
    out = tf.keras.layers.Conv2D(
        1, 1, activation="sigmoid", kernel_initializer="zeros", bias_initializer="zeros"
    )(inp)
    model = tf.keras.Model(inp, out)
    conv = model.layers[-1]
    conv.set_weights([conv.get_weights()[0], np.array([bias], np.float32)])
    return model
