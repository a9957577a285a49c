"""Segmentation models: ``build_model(arch, backbone, ...)`` for linknet, unet and manet.

TensorFlow is imported on first use, not at package import, so the CLI and DAG files that
only reference this package stay fast. Importing the package selects tf.keras for
segmentation-models and TensorFlow (``use_tf_keras``): every module that imports either
imports this package first.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from satseg.cpus import configure_threads
from satseg.params import ARCHS


def use_tf_keras() -> None:
    """segmentation-models on tf.keras, TensorFlow on tf-keras 2 (read when they are imported)."""
    os.environ.setdefault("SM_FRAMEWORK", "tf.keras")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    configure_threads()  # thread pools sized from the container's CPUs, not the host's


use_tf_keras()

if TYPE_CHECKING:
    from satseg.models.factory import build_model, custom_objects, uncompiled_copy


def __getattr__(name: str) -> Any:
    if name in ("build_model", "custom_objects", "backbones", "uncompiled_copy"):
        from satseg.models import factory

        return getattr(factory, name)
    raise AttributeError(name)


__all__ = ["ARCHS", "build_model", "custom_objects", "uncompiled_copy", "use_tf_keras"]
