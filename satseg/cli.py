"""The ``satseg`` command: the same functions the DAGs call, for people and scripts."""

from __future__ import annotations

import json
import logging
import platform
import shutil
from importlib import metadata
from pathlib import Path

import typer

from satseg import __version__
from satseg.config import Settings, get_settings
from satseg.cpus import configure_threads

app = typer.Typer(
    help="satseg: satellite image segmentation ETL, retraining and inference.",
    no_args_is_help=True,
    add_completion=False,
)

_PACKAGES = (
    "apache-airflow",
    "tensorflow",
    "tf-keras",
    "segmentation-models",
    "mlflow",
    "dvc",
    "evidently",
    "rasterio",
    "numpy",
)


def _versions() -> dict[str, str]:
    out = {"satseg": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _running(settings: Settings) -> dict[str, object]:
    """What the embedded deployment has running (from its pid file and health endpoint)."""
    from satseg import demo

    return demo.status(settings)


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging")) -> None:
    configure_threads()  # native thread pools sized from this container's CPUs
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def info(as_json: bool = typer.Option(False, "--json", help="One JSON object")) -> None:
    """Settings, versions and what is running."""
    s = get_settings()
    data = {
        "settings": json.loads(s.model_dump_json()),
        "paths": {
            "inbox": str(s.inbox),
            "quarantine": str(s.quarantine),
            "raw": str(s.raw),
            "processed": str(s.processed),
            "models": str(s.models),
            "predictions": str(s.predictions),
            "reports": str(s.reports),
            "data_repo": str(s.data_repo),
            "dvc_remote": s.dvc_remote_url,
            "mlflow": s.tracking_uri,
        },
        "versions": _versions(),
        "running": _running(s),
        "disk_free_gb": round(
            shutil.disk_usage(s.home if s.home.exists() else Path.cwd()).free / 1e9, 1
        ),
    }
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for section in ("paths", "versions", "running"):
        t = Table(title=section, show_header=False)
        for k, v in data[section].items():  # type: ignore[attr-defined]
            t.add_row(k, str(v))
        console.print(t)


@app.command()
def synth(
    out: Path = typer.Argument(..., help="Output directory (e.g. $SATSEG_HOME/inbox/demo)"),
    name: str = typer.Option("scene", help="File stem"),
    width: int = typer.Option(1024, min=64, max=20000),
    height: int = typer.Option(1024, min=64, max=20000),
    seed: int = typer.Option(0),
    fmt: str = typer.Option("geotiff", "--format", help="geotiff | png"),
    bands: int = typer.Option(3, min=1, max=4),
    dtype: str = typer.Option("uint8", help="uint8 | uint16"),
    brightness: float = typer.Option(0.0, help="Shift appearance (drift demos)"),
    contrast: float = typer.Option(1.0),
    blur: int = typer.Option(0, min=0),
    land_cover: str = typer.Option("urban", help="urban | desert | vegetation | water"),
    geojson: bool = typer.Option(True, help="Also write GeoJSON labels (GeoTIFF only)"),
    labelme: bool = typer.Option(True, help="Also write LabelMe labels"),
) -> None:
    """Write a deterministic georeferenced sample scene with building labels."""
    from satseg.synthetic import SceneStyle, make_png_pair, make_scene

    style = SceneStyle(brightness=brightness, contrast=contrast, blur=blur, land_cover=land_cover)
    if fmt == "png":
        scene = make_png_pair(out, name, width, height, seed, style)
    elif fmt == "geotiff":
        scene = make_scene(
            out,
            name,
            width,
            height,
            seed,
            bands=bands,
            dtype=dtype,
            style=style,
            geojson=geojson,
            labelme=labelme,
            show_progress=get_settings().log_progress,
        )
    else:
        raise typer.BadParameter("--format must be geotiff or png")
    typer.echo(
        json.dumps(
            {
                "image": str(scene.image),
                "labelme": str(scene.labelme) if scene.labelme else None,
                "geojson": str(scene.geojson) if scene.geojson else None,
                "polygons": len(scene.polygons),
            }
        )
    )


def _register_packages() -> None:
    from satseg.annotate import cli as annotate_cli
    from satseg.inference import cli as inference_cli
    from satseg.ingest import cli as ingest_cli
    from satseg.monitoring import cli as monitoring_cli
    from satseg.ops import cli as ops_cli
    from satseg.training import cli as training_cli

    for mod in (ingest_cli, training_cli, inference_cli, monitoring_cli, ops_cli, annotate_cli):
        mod.register(app)


_register_packages()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
