"""MLflow run logging: lineage tags, per-epoch metrics and the logged model.

The logged model is an uncompiled copy saved as HDF5: compiled copies do not load back
(custom losses), and tf-keras reads ``.keras`` archives with many seeks into a compressed
zip (15 s for MA-Net vs 0.7 s for HDF5 on these CPUs).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import subprocess
import sys
import warnings
from importlib import metadata
from typing import Any

import mlflow
from mlflow import MlflowClient

from satseg.config import REPO_ROOT, Settings

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"
KERAS_KWARGS = {"save_format": "h5"}


def client(settings: Settings) -> MlflowClient:
    """A client of this deployment's tracking store and registry (no global MLflow state).

    MLflow 3.17 refuses the file store unless ``MLFLOW_ALLOW_FILE_STORE`` is set; the file
    store under ``SATSEG_HOME`` is the documented default here (no server to run).
    """
    if settings.tracking_uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def setup(settings: Settings) -> MlflowClient:
    """Point MLflow at this deployment's store and experiment (every call: tests switch homes)."""
    mlflow_client = client(settings)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    mlflow.set_experiment(settings.mlflow_experiment)
    return mlflow_client


def experiment_id(mlflow_client: MlflowClient, name: str) -> str:
    """Id of experiment ``name``, created when missing (also when another run races us)."""
    exp = mlflow_client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    try:
        return str(mlflow_client.create_experiment(name))
    except Exception:  # created concurrently by another run
        return str(mlflow_client.get_experiment_by_name(name).experiment_id)  # type: ignore[union-attr]


@functools.cache
def code_version() -> str:
    """git commit of the satseg checkout (``+dirty`` with local changes), else the package version."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "satseg"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        from satseg import __version__

        return f"satseg-{__version__}"


def lineage_tags(data: dict[str, Any]) -> dict[str, str]:
    """Tags that tie a run to the exact data and code that produced it."""
    return {
        "dataset": str(data.get("dataset")),
        "dataset_tag": str(data.get("tag")),
        "dataset_md5": str(data.get("md5")),
        "code_version": code_version(),
    }


def pip_requirements() -> list[str]:
    """Pinned requirements of the logged model (skips MLflow's slow inference of them)."""
    out = []
    for pkg in ("tensorflow", "tf-keras", "segmentation-models", "h5py", "numpy"):
        try:
            out.append(f"{pkg}=={metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def epoch_logger() -> Any:
    """Keras callback that logs every epoch's metrics to the active MLflow run."""
    import tensorflow as tf

    class EpochLogger(tf.keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if logs:
                mlflow.log_metrics({k: float(v) for k, v in logs.items()}, step=epoch)

    return EpochLogger()


def log_keras_model(model: Any, sample_hw: tuple[int, int] = (64, 64)) -> str:
    """Log ``model`` (uncompiled) with signature and input example; returns its model URI."""
    import mlflow.tensorflow
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    from satseg.models import custom_objects, uncompiled_copy

    classes = int(model.output_shape[-1])
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1, 3))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1, classes))]),
    )
    example = np.full((1, *sample_hw, 3), 0.5, np.float32)
    # MLflow checks the input example with model.predict: its progress bar goes to stderr.
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*HDF5 file.*legacy", category=UserWarning)
        info = mlflow.tensorflow.log_model(
            uncompiled_copy(model),
            name=MODEL_ARTIFACT,
            signature=signature,
            input_example=example,
            custom_objects=custom_objects(),
            keras_model_kwargs=KERAS_KWARGS,
            pip_requirements=pip_requirements(),
        )
    return str(info.model_uri)
