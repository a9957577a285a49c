"""satseg_ingest: inbox -> validated raw -> processed patches -> DVC version (placeholder)."""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task

from satseg.dagkit import default_args

DOC = """
### satseg_ingest
Polls `SATSEG_HOME/inbox/`. Placeholder of the foundation issue: it lists what is waiting.
"""


@dag(
    dag_id="satseg_ingest",
    schedule="*/5 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args=default_args(),
    tags=["satseg", "ingest"],
    doc_md=DOC,
)
def satseg_ingest() -> None:
    @task
    def list_inbox() -> list[str]:
        from satseg.config import get_settings

        inbox = get_settings().inbox
        return sorted(str(p.relative_to(inbox)) for p in inbox.rglob("*") if p.is_file())

    list_inbox()


satseg_ingest()
