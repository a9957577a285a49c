"""Segmentation models: ``build_model(arch, backbone, ...)`` for linknet, unet and manet.

TensorFlow is imported on first use, not at package import, so the CLI and DAG files that
only reference this package stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from satseg.params import ARCHS

if TYPE_CHECKING:
    from satseg.models.factory import build_model, custom_objects


def __getattr__(name: str) -> Any:
    if name in ("build_model", "custom_objects", "backbones"):
        from satseg.models import factory

        return getattr(factory, name)
    raise AttributeError(name)


__all__ = ["ARCHS", "build_model", "custom_objects"]
