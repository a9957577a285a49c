"""``satseg predict``: the DAG's inference on any scenes, from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from satseg.cliopts import param_option
from satseg.params import PredictParams


def register(app: typer.Typer) -> None:
    """Add ``satseg predict`` to ``app``."""

    @app.command()
    def predict(
        scenes: list[Path] = typer.Argument(..., help="GeoTIFF / PNG / JPEG scenes"),
        out: Path | None = typer.Option(
            None,
            "--out",
            help="Output root (one folder per scene); default SATSEG_HOME/predictions",
        ),
        model_version: str | None = typer.Option(
            None, "--model-version", help="Registry version (default: the champion)"
        ),
        model_file: Path | None = typer.Option(
            None, "--model-file", help="Local Keras model file instead of the registry"
        ),
        threshold: float | None = param_option(PredictParams, "threshold"),
        min_area_px: int | None = param_option(PredictParams, "min_area_px", "--min-area-px"),
        tta: str | None = param_option(PredictParams, "tta"),
        regularize: bool | None = param_option(
            PredictParams, "regularize", "--regularize/--no-regularize"
        ),
        simplify_px: float | None = param_option(PredictParams, "simplify_px", "--simplify-px"),
        tile: int | None = param_option(PredictParams, "tile"),
        overlap: int | None = param_option(PredictParams, "overlap"),
        batch_size: int | None = param_option(PredictParams, "batch_size", "--batch-size"),
        precision: str | None = param_option(PredictParams, "precision"),
        runtime: str | None = param_option(PredictParams, "runtime"),
        force: bool = typer.Option(False, help="Recompute even if outputs are up to date"),
    ) -> None:
        """Segment scenes into probability/mask COGs, GeoJSON, quicklook and STAC item."""
        from satseg.config import get_settings
        from satseg.inference import jobs

        settings = get_settings()
        try:
            params = jobs.predict_params(
                settings,
                threshold=threshold,
                min_area_px=min_area_px,
                tta=tta,
                regularize=regularize,
                simplify_px=simplify_px,
                tile=tile,
                overlap=overlap,
                batch_size=batch_size,
                precision=precision,
                runtime=runtime,
            )
            params.validate()
        except (ValueError, TypeError) as err:
            raise typer.BadParameter(str(err)) from err
        if model_file is not None:
            model, info = jobs.load_model_file(model_file)
        else:
            model, info = jobs.load_registered_model(settings, model_version)
        results = jobs.predict_many(model, info, scenes, out or settings.predictions, params, force)
        for r in results:
            typer.echo(json.dumps({k: r.get(k) for k in _SHOWN if k in r}, default=str))
        failed = [r for r in results if r["status"] == "error"]
        if failed:
            typer.echo(f"{len(failed)} of {len(results)} scene(s) failed", err=True)
            raise typer.Exit(1)


_SHOWN = (
    "scene",
    "status",
    "out_dir",
    "polygons",
    "seconds",
    "mpx_per_s",
    "runtime",
    "runtime_reason",
    "warnings",
    "error",
    "check",
    "error_file",
)
