"""MLflow tracking and the model registry: challenger/champion, promotion, rollback.

The public functions import MLflow on first use, so importing this package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from satseg.registry.ref import ModelRef

if TYPE_CHECKING:
    from satseg.registry.store import champion, list_models, load_model, promote, rollback

_LAZY = ("champion", "list_models", "load_model", "promote", "rollback")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from satseg.registry import store

        return getattr(store, name)
    raise AttributeError(name)


__all__ = ["ModelRef", "champion", "list_models", "load_model", "promote", "rollback"]
