"""satseg_predict: scenes in the predict inbox (or named on demand) -> georeferenced masks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, task, teardown

from satseg.config import get_settings
from satseg.dagkit import PREDICTIONS, boundary, default_args
from satseg.params import PREDICT_RUN_OPTIONS  # None: the worker's params.yaml `predict:`

DOC = """
### satseg_predict
Segments scenes with the registry's **champion** (or the `model_version` you name).

* **Scheduled** every few minutes (`SATSEG_INGEST_CRON`): picks up complete scenes in
  `SATSEG_HOME/inbox/predict/` (a `<file>.done` marker, or size unchanged across two looks);
  nothing ready means the mapped task is skipped. Predicted inputs move to
  `raw/predict-done/<date>/`, bad ones to `quarantine/<date>/predict/` with an error file.
* **On demand**: trigger with `paths` (list of files) and/or `glob`, and optionally
  `model_version`, `threshold`, `tile`, `overlap` (empty = `include/params.yaml` `predict:`).

Tasks: `find_scenes` -> `resolve_model` (one version for the whole run) -> `predict`
(one mapped task per scene). Outputs in `predictions/<scene>/`: `prob.tif` and `mask.tif`
(COG, input CRS/transform, model tags), `mask.geojson` (EPSG:4326, `area_m2`),
`quicklook.png`, `item.json` (STAC), `summary.json`; a bad scene writes
`<scene>.error.json` there and fails its own task only. Each prediction emits
`satseg://predictions` (extra: scene, outputs, model version), which `satseg_monitor` watches.
Same scene + same model version again: skipped.

Last, `annotate` exports the windows the model was least sure of (mean entropy of
`prob.tif`, or TTA variance) as labelling tasks under `SATSEG_HOME/annotate/<dataset>/`:
image crop + LabelMe pre-filled with the predicted polygons, ranked, at most
`annotate.budget` per run (`include/params.yaml`).
"""


@dag(
    dag_id="satseg_predict",
    schedule=get_settings().ingest_cron,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # a poll must not pick up the scenes a running batch is predicting
    default_args=default_args(),
    params={
        "paths": Param([], type="array", items={"type": "string"}, description="Scene files"),
        "glob": Param("", type="string", description="Glob of scene files, e.g. /data/*.tif"),
        "model_version": Param(
            None, type=["null", "string"], description="Registry version; empty = champion"
        ),
        "threshold": Param(None, type=["null", "number"], minimum=0.01, maximum=0.99),
        "tile": Param(None, type=["null", "integer"], minimum=32, description="Tile px"),
        "overlap": Param(None, type=["null", "integer"], minimum=0, description="Overlap px"),
    },
    tags=["satseg", "inference"],
    doc_md=DOC,
)
def satseg_predict() -> None:
    @task
    def find_scenes(params: Any = None) -> list[str]:
        from satseg.inference.jobs import collect_scenes

        return collect_scenes(get_settings(), params["paths"], params["glob"])

    @task
    def resolve_model(scenes: list[str], params: Any = None) -> str | None:
        from satseg.inference.jobs import resolve_model_version

        return resolve_model_version(get_settings(), params["model_version"]) if scenes else None

    # one scene at a time: each task already uses every core (TF intra-op threads)
    @task(outlets=[PREDICTIONS], max_active_tis_per_dagrun=1)
    @boundary
    def predict(scene: str, version: str, params: Any = None, outlet_events: Any = None) -> dict:
        from satseg.inference.jobs import run_scene

        overrides = {k: params[k] for k in PREDICT_RUN_OPTIONS}
        extra = run_scene(get_settings(), scene, version, overrides)
        outlet_events[PREDICTIONS].extra = extra
        return extra

    # A teardown: runs once the predictions are done whatever their outcome (a bad scene fails
    # its own task only), and, as teardowns do not count, the run's state stays theirs.
    @teardown
    @boundary
    def annotate(scenes: list[str]) -> dict:
        from satseg.annotate.export import export_for_run

        return export_for_run(get_settings(), scenes)

    scenes = find_scenes()
    predict.partial(version=resolve_model(scenes)).expand(scene=scenes) >> annotate(scenes)


satseg_predict()
