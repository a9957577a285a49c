"""One typed settings object for every part of satseg.

All state lives under ``SATSEG_HOME`` so that one variable relocates everything; each path
below derives from it unless set explicitly. Values come from the environment (prefix
``SATSEG_``) or a ``.env`` file; training and preprocessing hyperparameters come from
``params.yaml`` (``include/params.yaml`` by default) so that DVC can track them, typed and
validated by ``satseg.params``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from satseg.params import DEFAULT_PARAMS, SECTIONS, Params, load_params, markdown_table

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Runtime configuration (environment / ``.env``, prefix ``SATSEG_``)."""

    model_config = SettingsConfigDict(
        env_prefix="SATSEG_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    home: Path = Field(default=Path("var"), description="Root of all satseg state")
    params_file: Path = Field(default=DEFAULT_PARAMS, description="Hyperparameters (params.yaml)")
    mlflow_uri: str | None = Field(
        default=None, description="MLflow tracking URI; default: file store under HOME/mlruns"
    )
    mlflow_experiment: str = Field(default="satseg", description="MLflow experiment name")
    registered_model: str = Field(default="satseg-segmenter", description="MLflow model name")
    dvc_remote: str | None = Field(
        default=None, description="DVC remote URL; default: local directory HOME/dvc-remote"
    )
    promotion_margin: float = Field(
        default=0.0, description="Val IoU a challenger must add over the champion to be promoted"
    )
    retrain_cron: str = Field(default="0 2 * * *", description="Nightly retraining schedule")
    ingest_cron: str = Field(default="*/5 * * * *", description="How often the inbox is polled")
    monitor_cron: str = Field(default="0 6 * * *", description="Daily monitoring schedule")
    annotation_timeout_s: int = Field(
        default=24 * 3600, description="How long an image waits for its annotation"
    )
    stable_polls_s: float = Field(
        default=2.0,
        description=(
            "Quiet period of both inboxes: seconds a new file's size and mtime must stay "
            "unchanged before it is taken (30-120 for network copies, or use .done markers)"
        ),
    )
    max_upload_mb: int = Field(default=2048, description="Upload size limit of the REST API")
    onnx_artifacts: bool = Field(
        default=True,
        description="Make verified ONNX fp32/int8 inference files when a model is registered "
        "(false: TensorFlow serves it)",
    )
    encoder_weights: Path | None = Field(
        default=None, description="Optional local .h5 encoder weights (no downloads)"
    )
    alert_email_to: str | None = Field(default=None, description="Alert e-mail recipients")
    alert_email_from: str | None = Field(
        default=None,
        description=(
            "Alert sender (From:), an address the relay accepts; default: the SMTP "
            "connection's from_email"
        ),
    )
    smtp_conn_id: str = Field(default="smtp_default", description="Airflow connection for e-mail")
    slack_conn_id: str | None = Field(
        default=None, description="Airflow slackwebhook connection for alerts"
    )
    airflow_ui_url: str = Field(default="http://localhost:8080", description="Links in alerts")
    api_port: int = Field(default=8080, description="Port of the embedded Airflow API server/UI")
    api_host: str = Field(
        default="127.0.0.1",
        description="Address the embedded API server/UI listens on (0.0.0.0: every interface)",
    )
    airflow_log_servers: bool = Field(
        default=False,
        description="Start the embedded Airflow's log servers (:8793/:8794, every interface)",
    )
    log_progress: bool | None = Field(
        default=None, description="Force progress bars on/off (default: only on a terminal)"
    )
    housekeeping_cron: str = Field(
        default="30 3 * * *", description="When old task logs and metadata rows are pruned"
    )
    log_retention_days: int = Field(
        default=30, ge=1, description="Task and component logs older than this are deleted"
    )
    db_retention_days: int = Field(
        default=90, ge=1, description="Metadata rows older than this go (`airflow db clean`)"
    )

    @model_validator(mode="after")
    def _absolute(self) -> Settings:
        self.home = self.home.expanduser().resolve()
        self.params_file = self.params_file.expanduser().resolve()
        return self

    # --- derived locations (one variable relocates all state) ---
    @property
    def inbox(self) -> Path:
        return self.home / "inbox"

    @property
    def predict_inbox(self) -> Path:
        return self.inbox / "predict"

    @property
    def quarantine(self) -> Path:
        return self.home / "quarantine"

    @property
    def raw(self) -> Path:
        return self.home / "raw"

    @property
    def processed(self) -> Path:
        return self.home / "processed"

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def predictions(self) -> Path:
        return self.home / "predictions"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def data_repo(self) -> Path:
        """git + DVC repository that versions processed datasets."""
        return self.home / "data"

    @property
    def state(self) -> Path:
        """Small bookkeeping files (ingest ledger, pending files, monitor history)."""
        return self.home / "state"

    @property
    def dvc_remote_url(self) -> str:
        return self.dvc_remote or str(self.home / "dvc-remote")

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_uri or (self.home / "mlruns").as_uri()

    def ensure_dirs(self) -> None:
        for p in (
            self.inbox,
            self.predict_inbox,
            self.quarantine,
            self.raw,
            self.processed,
            self.models,
            self.predictions,
            self.reports,
            self.state,
        ):
            p.mkdir(parents=True, exist_ok=True)

    def params(self) -> Params:
        """The typed hyperparameters of ``params_file`` (loaded once per file version)."""
        return load_params(self.params_file)


def settings_table() -> str:
    """README table of the ``SATSEG_*`` variables (a test keeps the README equal to it)."""
    return markdown_table(
        Settings, key=lambda n: f"SATSEG_{n.upper()}", none="none", root=REPO_ROOT
    )


def readme_tables(text: str) -> str:
    """``text`` with each ``<!-- table: NAME -->`` ... ``<!-- /table -->`` block regenerated.

    NAME is ``settings`` or a params section (``train``, ``predict``, ...).
    """

    def table(m: re.Match[str]) -> str:
        name = m.group(1)
        body = settings_table() if name == "settings" else markdown_table(SECTIONS[name])
        return f"<!-- table: {name} -->\n{body}\n<!-- /table -->"

    return re.sub(r"<!-- table: (\w+) -->\n.*?<!-- /table -->", table, text, flags=re.S)


@functools.cache
def _cached() -> Settings:
    return Settings()


def get_settings(**overrides: Any) -> Settings:
    """Settings from the environment; with overrides, a fresh object (tests, CLI flags)."""
    if overrides:
        return Settings(**overrides)
    return _cached()


def reset_settings_cache() -> None:
    _cached.cache_clear()
