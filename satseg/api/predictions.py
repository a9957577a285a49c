"""Prediction on demand: one scene (uploaded, or one already under ``raw/``) -> a queued
``satseg_predict`` run, then its state and output links.

The upload is checked and stored exactly like ``POST /data/upload`` does
(``satseg.api.uploads.save_upload``: name, type, size, magic bytes, atomic, no overwrite),
but under ``SATSEG_HOME/requests/<id>/`` rather than ``inbox/predict/``, so the scheduled
poller never races the run that was asked for. A named scene must be a regular file under
``raw/`` (what ingest accepted, or an archived prediction input): no absolute paths, no
``..``, no links. The options are validated by the typed ``PredictParams`` (with the worker's
params file under them, so ``overlap <= tile/2`` is checked too), the model version against
the registry; Airflow's ``Param``s validate the conf once more when the run is queued
(``satseg.api.training.trigger``, the path ``POST /training/start`` uses).
"""

from __future__ import annotations

import secrets
import shutil
import stat
from pathlib import Path
from typing import Any, BinaryIO

from satseg.api import training, uploads
from satseg.config import Settings
from satseg.params import PREDICT_RUN_OPTIONS, ParamsError
from satseg.vocab import IMAGE_SUFFIXES, is_safe_name

PREDICT_DAG = "satseg_predict"
REQUESTS = "requests"  # SATSEG_HOME/requests/<id>/<scene>: uploaded scenes of on-demand runs
OUTPUT_FILES = (  # those present: a binary model writes mask.tif, a multi-class one classes.tif
    "prob.tif",
    "mask.tif",
    "classes.tif",
    "classes.tif.aux.xml",  # its category names and attribute table (cog.aux_path)
    "mask.geojson",
    "quicklook.png",
    "item.json",
    "summary.json",
)
PredictError = training.TrainingError  # status + message, mapped to HTTP by the route


def options(settings: Settings, given: dict[str, Any]) -> dict[str, Any]:
    """The on-demand inference options (``threshold``, ``tile``, ``overlap``), validated by
    ``PredictParams`` over the worker's params file; None/absent = the params file's value."""
    from satseg.inference.params import PredictParams

    chosen = {k: v for k, v in given.items() if v not in (None, "")}
    try:
        checked = PredictParams.from_params(settings.params(), **chosen)
    except ParamsError as e:
        raise PredictError(400, f"invalid prediction options: {e}") from e
    return {k: getattr(checked, k) for k in PREDICT_RUN_OPTIONS if k in chosen}


def model_version(settings: Settings, version: str | None) -> str | None:
    """A registry version or alias that exists (None = the champion when the run starts)."""
    if not version:
        return None
    from satseg.registry.store import RegistryError, get_ref

    if len(version) > 64 or not is_safe_name(version):
        raise PredictError(400, f"{version[:64]!r} is not a model version")
    try:
        return get_ref(settings, version).version
    except RegistryError as e:
        raise PredictError(404, f"model version {version!r} is not registered ({e})") from e


def named_scene(settings: Settings, name: str) -> Path:
    """``name`` relative to SATSEG_HOME, a regular image file under ``raw/`` (no links)."""
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or not all(is_safe_name(p) for p in parts):
        raise PredictError(400, f"{name[:200]!r} is not a scene name under raw/ (plain names)")
    path = settings.home / name
    root = settings.raw.resolve()
    if parts[0] != settings.raw.name or not path.resolve().is_relative_to(root):
        raise PredictError(400, f"{name[:200]!r}: only scenes under raw/ can be named")
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError as e:
        raise PredictError(404, f"no scene {name!r} on the server") from e
    if not stat.S_ISREG(mode) or path.suffix.lower() not in IMAGE_SUFFIXES:
        raise PredictError(400, f"{name!r} is not an image file (GeoTIFF, PNG, JPEG)")
    return path


def save_scene(settings: Settings, stream: BinaryIO, filename: str | None) -> Path:
    """The uploaded scene, checked like any upload, in its own ``requests/<id>/`` folder."""
    name = uploads.safe_filename(filename)
    if Path(name).suffix.lower() not in IMAGE_SUFFIXES:
        raise uploads.UploadError(415, "file_type", f"{name!r}: send a GeoTIFF, PNG or JPEG")
    folder = settings.home / REQUESTS / secrets.token_hex(8)
    try:
        saved = uploads.save_upload(stream, name, None, settings, root=folder)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return settings.home / saved.path


def queue(
    settings: Settings,
    scene: Path,
    version: str | None,
    opts: dict[str, Any],
    user: str | None,
) -> dict[str, Any]:
    """Queue the ``satseg_predict`` run for ``scene``; its run id is the prediction's id."""
    conf = {"paths": [str(scene)], "glob": "", "model_version": version, **opts}
    run = training.trigger(PREDICT_DAG, conf, user, "started through POST /satseg/predictions")
    return {"id": run["run_id"], **run, "scene": scene.stem}


def outputs(settings: Settings, run: dict[str, Any]) -> dict[str, Path]:
    """The output files of a finished run's scene (``predictions/<scene>/``)."""
    if run["state"] != "success":
        return {}
    paths = (run.get("conf") or {}).get("paths") or []
    if len(paths) != 1:
        return {}
    folder = settings.predictions / Path(paths[0]).stem
    return {n: folder / n for n in OUTPUT_FILES if (folder / n).is_file()}


def status(settings: Settings, run_id: str) -> dict[str, Any] | None:
    """The run's state and tasks, its scene, the predict task's summary, its output files."""
    run = training.status(run_id, PREDICT_DAG)
    if run is None:
        return None
    paths = (run.get("conf") or {}).get("paths") or []
    run["scene"] = Path(paths[0]).stem if len(paths) == 1 else None
    run["result"] = _predict_result(run_id) if run["state"] == "success" else None
    run["files"] = outputs(settings, run)
    return run


def _predict_result(run_id: str) -> Any:
    """What the run's (first) ``predict`` task returned: scene, model version, polygons..."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(
            run_id=run_id, key="return_value", dag_ids=PREDICT_DAG, task_ids="predict"
        )
        row = session.scalars(query).first()
        return None if row is None else XComModel.deserialize_value(row)
