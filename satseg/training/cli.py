"""``satseg train`` and ``satseg model list|promote|rollback``: the DAG's steps by hand."""

from __future__ import annotations

import json

import typer

from satseg.cliopts import param_option
from satseg.config import get_settings
from satseg.params import TrainParams, build, overrides_model

model_app = typer.Typer(
    help="Registered model versions: list, promote, roll back.", no_args_is_help=True
)


TRAIN_OVERRIDES = overrides_model(TrainParams)


def _echo(obj: object) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


def train(
    dataset: str = typer.Option(None, help="Dataset name (default: the newest processed one)"),
    version: str = typer.Option(None, "--dataset-version", help="Version tag, e.g. demo-v3"),
    arch: str = param_option(TrainParams, "arch"),
    backbone: str = param_option(TrainParams, "backbone"),
    epochs: int = param_option(TrainParams, "epochs"),
    batch_size: int = param_option(TrainParams, "batch_size"),
    learning_rate: float = param_option(TrainParams, "learning_rate"),
    loss: str = param_option(TrainParams, "loss"),
    sweep: str = typer.Option(None, help='JSON grid, e.g. {"arch": ["linknet", "unet"]}'),
    force: bool = typer.Option(False, help="Train even if the champion already saw this data"),
) -> None:
    """Train, log to MLflow, register a challenger and promote it if it beats the champion."""
    from satseg.training.data import DatasetError
    from satseg.training.runner import run_pipeline

    overrides = {
        "arch": arch,
        "backbone": backbone,
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "loss": loss,
    }
    try:
        build(TRAIN_OVERRIDES, overrides, "options")
        grid = json.loads(sweep) if sweep else None
        result = run_pipeline(
            get_settings(),
            dataset=dataset,
            version=version,
            force=force,
            overrides=overrides,
            sweep=grid,
        )
    except (DatasetError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    _echo(result)


@model_app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="One JSON array")) -> None:
    """Every version, newest first, with aliases, dataset and val metrics (multi-class: mIoU
    and the classes)."""
    from satseg.classes import ModelClasses
    from satseg.registry import list_models

    refs = list_models(get_settings())
    if as_json:
        _echo([r.to_dict() for r in refs])
        return
    if not refs:
        typer.echo("no registered model versions yet")
    for r in refs:
        classes = ModelClasses.from_json(r.classes)
        shown = LISTED_CLASSES if classes.multiclass else LISTED
        rule = (
            f" classes={','.join(classes.names)}"
            if classes.multiclass
            else f" threshold={_fmt(r.postprocess.get('threshold'), '.2f')}"
        )
        typer.echo(
            f"v{r.version:<4} {','.join(r.aliases) or '-':<20} {r.dataset_tag or '-':<20} "
            + " ".join(f"val_{k}={_fmt(r.metrics.get('val_' + k))}" for k in shown)
            + f"{rule} run={r.run_id}"
        )


LISTED = ("iou", "object_f1", "boundary_iou")  # val metrics `satseg model list` shows
LISTED_CLASSES = ("miou", "mdice", "pixel_accuracy")  # those of a multi-class model


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


@model_app.command()
def promote(version: str = typer.Argument(..., help="Version number to make champion")) -> None:
    """Make VERSION the champion (a person's decision: no metric check)."""
    from satseg.registry import promote as do_promote
    from satseg.registry.store import RegistryError

    try:
        _echo(do_promote(get_settings(), version).to_dict())
    except RegistryError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e


@model_app.command()
def rollback() -> None:
    """Move ``champion`` back to the previous champion."""
    from satseg.registry import rollback as do_rollback
    from satseg.registry.store import RegistryError

    try:
        _echo(do_rollback(get_settings()).to_dict())
    except RegistryError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e


def register(app: typer.Typer) -> None:
    """Add ``train`` and the ``model`` group to the main ``satseg`` app."""
    app.command("train")(train)
    app.add_typer(model_app, name="model")
