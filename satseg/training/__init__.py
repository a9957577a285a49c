"""satseg.training: tf.data pipeline, losses/metrics, fit and evaluate.

``evaluate`` is imported lazily (TensorFlow and numpy work happen only when called), so the
CLI and DAG files can import this package cheaply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from satseg.training.evaluate import evaluate


def __getattr__(name: str) -> Any:
    if name == "evaluate":
        from satseg.training.evaluate import evaluate

        return evaluate
    raise AttributeError(name)


__all__ = ["evaluate"]
