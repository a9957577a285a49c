"""Command-line commands of this package (registered on the main ``satseg`` app)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app`` (filled in by the package's issue)."""
