"""The one exception ingest raises for bad input; it says which check failed and on which file."""

from __future__ import annotations

from typing import Literal

Role = Literal["image", "annotation", "pair"]


class IngestError(ValueError):
    """Input that cannot be used. ``check`` names the validation; ``role`` the culprit file."""

    def __init__(self, message: str, check: str, role: Role = "pair") -> None:
        super().__init__(message)
        self.check = check
        self.role: Role = role
