"""What the DAG tasks and the CLI call: pick scenes, resolve the model, predict, file inputs.

Kept free of Airflow so it runs (and is tested) on its own: bad input raises satseg's
``BadInput`` and up-to-date outputs ``NothingToDo``, which ``satseg.dagkit`` maps to Airflow's.
"""

from __future__ import annotations

import glob as globlib
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from satseg.config import Settings
from satseg.errors import BadInput, NothingToDo
from satseg.inbox.verified import Changed
from satseg.inference import inbox
from satseg.inference.params import PredictParams, error_path, scene_name
from satseg.inference.predict import predict_scene, relocate_source
from satseg.io.raster import RasterError

log = logging.getLogger(__name__)

CHAMPION = "champion"


def predict_params(settings: Settings, **overrides: Any) -> PredictParams:
    """params.yaml ``predict:`` section with the non-None ``overrides`` applied.

    Band choice and scaling default to the ``ingest:`` section so that inference scales
    imagery exactly as the training patches were scaled.
    """
    return PredictParams.from_params(settings.params(), **overrides)


def collect_scenes(
    settings: Settings, paths: Iterable[str] | str | None = None, pattern: str | None = None
) -> list[str]:
    """Scenes to predict: explicit paths / a glob when given, else the ready inbox files."""
    if isinstance(paths, str):
        paths = [paths] if paths else []
    chosen = [str(Path(p).expanduser()) for p in paths or []]
    if pattern:
        chosen += sorted(globlib.glob(str(Path(pattern).expanduser()), recursive=True))
    if paths or pattern:
        return sorted(dict.fromkeys(chosen))
    scenes = [str(p) for p in inbox.ready_scenes(settings)]
    log.info("predict inbox: %d scene(s) ready", len(scenes))
    return scenes


def resolve_model_version(settings: Settings, version: str | int | None = None) -> str:
    """The registry version every scene of a run uses: ``version``, else today's champion.

    Resolved once per run, so a promotion during a long batch cannot mix two models.
    """
    from satseg.registry.store import get_ref

    return str(get_ref(settings, str(version) if version not in (None, "") else CHAMPION).version)


def load_registered_model(
    settings: Settings, version: str | None = None
) -> tuple[Any, dict[str, Any]]:
    """(Keras model, info dict) from the MLflow registry: champion unless a version is named."""
    from satseg.registry import load_model
    from satseg.registry.artifacts import fetch

    model, ref = load_model(settings, ref=str(version) if version else CHAMPION)
    info: dict[str, Any] = {
        "name": ref.name,
        "version": str(ref.version),
        "run_id": ref.run_id,
        "dataset_tag": ref.dataset_tag,
        "postprocess": ref.postprocess,  # threshold / min area tuned on val ({} before)
        "classes": ref.classes,  # the class table the model was trained with ({} = binary)
    }
    info["artifacts"], info["artifacts_reason"] = fetch(settings, ref.run_id)
    return model, info


def load_model_file(path: Path | str) -> tuple[Any, dict[str, Any]]:
    """(Keras model, info) from a local .keras/.h5/SavedModel file (no registry needed)."""
    from satseg.inference.engine import configure_tf

    configure_tf()
    import tensorflow as tf

    p = Path(path)
    model = tf.keras.models.load_model(p, compile=False)
    info = {"name": p.stem, "version": f"file:{p.name}", "run_id": None, "dataset_tag": None}
    return model, {**info, "artifacts_reason": "a local model file has no ONNX artifacts"}


def predict_many(
    model: Any,
    info: dict[str, Any],
    scenes: Iterable[str | Path],
    out_root: Path,
    params: PredictParams,
    force: bool = False,
) -> list[dict[str, Any]]:
    """Predict each scene into ``out_root/<scene>/``; a bad scene is reported, not fatal."""
    from satseg.inference.engine import configure_tf
    from satseg.inference.runtime import predictor_for

    configure_tf()  # one predictor (one loaded session) for every scene
    predictor = predictor_for(model, params.tile, params.runtime, params.precision, info)
    results = []
    for scene in scenes:
        out = out_root / scene_name(scene)
        try:
            results.append(
                predict_scene(predictor, scene, out, params=params, model_info=info, force=force)
            )
        except RasterError as err:
            results.append(
                {
                    "status": "error",
                    "scene": scene_name(scene),
                    "source": str(scene),
                    "error": str(err),
                    "check": err.check,
                    "error_file": str(error_path(out, scene_name(scene))),
                }
            )
    return results


def run_scene(
    settings: Settings,
    scene: str,
    version: str,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One mapped DAG task: predict ``scene`` with registry ``version``; file the input.

    Returns the Asset event extra. Bad input is quarantined (when it came from the inbox),
    its error file written, and ``BadInput`` raised; model or disk trouble propagates as is
    (the input stays in the inbox for the next poll or retry). Outputs already up to date
    raise ``NothingToDo`` (no new prediction, no Asset event).
    """
    path = Path(scene)
    params = predict_params(settings, **(overrides or {}))
    out = settings.predictions / scene_name(path)
    model, info = load_registered_model(settings, version)
    from_inbox = inbox.in_inbox(settings, path)
    # an inbox scene is opened once, never through a link, and read only through that fd
    verified = inbox.verify(settings, path) if from_inbox else None
    try:
        source = verified.view if verified else path
        try:
            summary = predict_scene(model, source, out, params=params, model_info=info)
        except RasterError as err:
            if verified is not None and verified.unchanged():
                moved = inbox.refuse(settings, path, str(err), err.check)
                log.error("%s quarantined to %s", path.name, moved)
            raise BadInput(f"{path.name}: {err} [{err.check}]") from err
        if verified is not None:
            try:
                moved = inbox.archive_done(settings, path, verified.ident)
            except Changed as e:  # the next poll looks at whatever the name is now
                log.warning("%s", e)
            except OSError as e:  # a read-only inbox: predicted, left there, reported once
                inbox.report_stuck(settings, path, "archive", e)
            else:
                relocate_source(out, moved)
                log.info("%s archived to %s", path.name, moved)
    finally:
        if verified is not None:
            verified.close()
    if summary["status"] == "skipped":
        raise NothingToDo(
            f"{path.name}: outputs of model version {info['version']} already in {out}"
        )
    return {
        "scene": summary["scene"],
        "status": summary["status"],
        "outputs": summary["out_dir"],
        "model_name": info["name"],
        "model_version": info["version"],
        "polygons": summary["polygons"],
        "warnings": summary["warnings"],
    }
