"""satseg_ingest: inbox -> validated raw/ -> processed patches -> DVC version -> Asset event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import Param, dag, task

from satseg.config import get_settings
from satseg.dagkit import VERSIONS_ALIAS, boundary, default_args, emit_versions

DOC = """
### satseg_ingest
Polls `SATSEG_HOME/inbox/` on `SATSEG_INGEST_CRON` (default every 5 minutes).

1. **scan** – complete files only (size stable across two polls or a `.done` marker), paired
   by stem per dataset (`inbox/<dataset>/` or `<dataset>__<scene>.tif`); symlinks, unsafe names,
   unsupported types and partners that waited past `SATSEG_ANNOTATION_TIMEOUT_S` are quarantined.
2. **process** (mapped, one per pair) – validate, burn labels into masks, cut patches in windows
   into the scene cache, move the originals to `raw/<dataset>/`; bad input goes to
   `quarantine/<date>/` with `<name>.error.json`, without failing the task.
3. **finalize** – rebuild `processed/<dataset>/` (split, balancing, manifest, drift features),
   `dvc add` + commit + tag `<dataset>-v<N>` + `dvc push`.
4. **publish** – one event per new version on `satseg://processed` and
   `satseg://processed/<dataset>` (extra: dataset, tag, md5, counts); skipped when nothing is new.

Every step is idempotent: clearing and re-running a run changes nothing.
"""


@dag(
    dag_id="satseg_ingest",
    schedule=get_settings().ingest_cron,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(),
    params={"dataset": Param(None, type=["null", "string"], description="Only this dataset")},
    tags=["satseg", "ingest"],
    doc_md=DOC,
)
def satseg_ingest() -> None:
    @task
    def scan(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        from satseg.ingest.pipeline import scan_inbox

        return scan_inbox(get_settings(), dataset=(params or {}).get("dataset"))

    @task(max_active_tis_per_dagrun=2)
    def process(pair: dict[str, Any]) -> dict[str, Any]:
        from satseg.ingest.pipeline import process_pair

        return process_pair(get_settings(), pair)

    @task(trigger_rule="all_done")
    def finalize(results: Any) -> list[dict[str, Any]]:
        from satseg.ingest.pipeline import finalize as finalize_datasets

        return finalize_datasets(get_settings(), [results[i] for i in range(len(results))])

    @task(outlets=[VERSIONS_ALIAS])
    @boundary
    def publish(
        versions: list[dict[str, Any]], *, outlet_events: Any = None
    ) -> list[dict[str, Any]]:
        from satseg.ingest.events import publish_versions

        return emit_versions(outlet_events, publish_versions(versions))

    publish(finalize(process.expand(pair=scan())))


satseg_ingest()
