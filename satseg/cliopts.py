"""Typer options built from the typed parameter sections (``satseg.params``).

An option's help is the field's description, its shown default the model's default; the
option itself defaults to ``None`` (= the params file's value) and the value is validated
by the model, so the CLI, the DAG and the params file share one set of ranges and choices.
"""

from __future__ import annotations

from typing import Any

import typer
from pydantic import BaseModel

from satseg.params import default_of


def param_option(section: type[BaseModel], name: str, *decls: str) -> Any:
    """``typer.Option`` for ``section.name``: ``None`` unless given, help from the model."""
    info = section.model_fields[name]
    default = default_of(section, name)
    return typer.Option(
        None,
        *decls,
        help=f"{info.description} (params.yaml)",
        show_default=f"{'null' if default is None else default}",
    )
