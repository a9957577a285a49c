"""Registered model versions and their aliases: challenger, champion, history, rollback.

``challenger`` marks the newest candidate; ``champion`` the version inference serves. The
order of champions is kept as a registered-model tag (``champion_history``, JSON list of
versions) so ``rollback`` can move ``champion`` back to the one before.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from satseg.config import Settings
from satseg.registry.ref import CLASSES_TAG, POSTPROCESS_TAG, ModelRef
from satseg.registry.tracking import setup

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"
HISTORY_TAG = "champion_history"


class RegistryError(RuntimeError):
    """A registry operation that cannot be done (no such version, nothing to roll back to)."""


def _client(settings: Settings) -> MlflowClient:
    return setup(settings)


def _exists(client: MlflowClient, name: str) -> bool:
    try:
        client.get_registered_model(name)
        return True
    except MlflowException:
        return False


def _aliases(client: MlflowClient, name: str) -> dict[str, str]:
    return dict(client.get_registered_model(name).aliases) if _exists(client, name) else {}


def _ref(client: MlflowClient, mv: Any, aliases: dict[str, str] | None = None) -> ModelRef:
    aliases = _aliases(client, mv.name) if aliases is None else aliases
    metrics: dict[str, float] = {}
    postprocess: dict[str, Any] = {}
    classes: dict[str, Any] = {}
    try:
        run = client.get_run(mv.run_id).data
        metrics = {
            k.removeprefix("final_"): float(v)
            for k, v in run.metrics.items()
            if k.startswith("final_")
        }
        postprocess = _postprocess(run.tags.get(POSTPROCESS_TAG))
        classes = _postprocess(run.tags.get(CLASSES_TAG))
    except MlflowException:
        pass
    return ModelRef(
        name=mv.name,
        version=str(mv.version),
        run_id=str(mv.run_id),
        dataset_tag=(mv.tags or {}).get("dataset_tag"),
        aliases=sorted(a for a, v in aliases.items() if str(v) == str(mv.version)),
        metrics=metrics,
        postprocess=postprocess,
        classes=classes,
    )


def _postprocess(raw: str | None) -> dict[str, Any]:
    """A JSON run tag (tuned post-processing, class table); {} when absent or unreadable."""
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        log.warning("ignoring unreadable JSON run tag %r", raw)
        return {}
    return dict(value) if isinstance(value, dict) else {}


def get_ref(settings: Settings, ref: str) -> ModelRef:
    """Alias (``champion``, ``challenger``) or version number -> ModelRef."""
    client = _client(settings)
    name = settings.registered_model
    try:
        if ref.isdigit():
            mv = client.get_model_version(name, ref)
        else:
            mv = client.get_model_version_by_alias(name, ref)
    except MlflowException as e:
        raise RegistryError(f"model {name!r} has no version or alias {ref!r}") from e
    return _ref(client, mv)


def champion(settings: Settings) -> ModelRef | None:
    """The version inference serves, or None before the first promotion."""
    client = _client(settings)
    if CHAMPION not in _aliases(client, settings.registered_model):
        return None
    return get_ref(settings, CHAMPION)


def list_models(settings: Settings) -> list[ModelRef]:
    """Every version of the registered model, newest first."""
    client = _client(settings)
    name = settings.registered_model
    if not _exists(client, name):
        return []
    aliases = _aliases(client, name)
    versions = client.search_model_versions(f"name='{name}'")
    return sorted(
        (_ref(client, mv, aliases) for mv in versions), key=lambda r: int(r.version), reverse=True
    )


def find_version(settings: Settings, run_id: str) -> ModelRef | None:
    """The version registered from ``run_id`` (re-running register must not add another)."""
    return next((r for r in list_models(settings) if r.run_id == run_id), None)


def register(settings: Settings, model_uri: str, run_id: str, tags: dict[str, str]) -> ModelRef:
    """New version from a logged model, aliased ``challenger`` (idempotent per run)."""
    import mlflow

    client = _client(settings)
    name = settings.registered_model
    found = find_version(settings, run_id)
    if found is None:
        mv = mlflow.register_model(model_uri, name, tags=tags)
        version = str(mv.version)
    else:
        version = found.version
    if _aliases(client, name).get(CHAMPION) != version:
        client.set_registered_model_alias(name, CHALLENGER, version)
    log.info("registered %s version %s (run %s)", name, version, run_id)
    return get_ref(settings, version)


def history(settings: Settings) -> list[str]:
    client = _client(settings)
    name = settings.registered_model
    if not _exists(client, name):
        return []
    raw = client.get_registered_model(name).tags.get(HISTORY_TAG, "[]")
    return [str(v) for v in json.loads(raw)]


def _set_champion(settings: Settings, version: str, hist: list[str]) -> ModelRef:
    client = _client(settings)
    name = settings.registered_model
    client.set_registered_model_alias(name, CHAMPION, version)
    if _aliases(client, name).get(CHALLENGER) == version:
        client.delete_registered_model_alias(name, CHALLENGER)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(hist))
    return get_ref(settings, version)


def promote(settings: Settings, version: str) -> ModelRef:
    """Make ``version`` the champion (no metric check: the compare step or a person decided)."""
    version = str(get_ref(settings, str(version)).version)  # raises for unknown versions
    hist = history(settings)
    if hist and hist[-1] == version:
        return get_ref(settings, version)
    log.info("promoting %s version %s to champion", settings.registered_model, version)
    return _set_champion(settings, version, [*hist, version])


def rollback(settings: Settings) -> ModelRef:
    """Move ``champion`` back to the previous champion; the demoted version keeps no alias."""
    hist = history(settings)
    if len(hist) < 2:
        raise RegistryError(
            f"nothing to roll back to: champion history of {settings.registered_model!r} "
            f"is {hist or 'empty'}"
        )
    previous = hist[-2]
    get_ref(settings, previous)  # still registered?
    log.info("rolling back champion %s -> %s", hist[-1], previous)
    return _set_champion(settings, previous, hist[:-1])


def load_model(settings: Settings, ref: str = CHAMPION) -> tuple[Any, ModelRef]:
    """Keras model (uncompiled) of an alias or version, with its ModelRef."""
    import mlflow.tensorflow

    import satseg.models.manet  # noqa: F401  (registers MA-Net's layers)

    mref = get_ref(settings, str(ref))
    model = mlflow.tensorflow.load_model(mref.uri, keras_model_kwargs={"compile": False})
    return model, mref


LINEAGE_TAGS = ("dataset", "dataset_tag", "dataset_md5", "code_version")


def lineage(settings: Settings, run_id: str) -> dict[str, Any]:
    """Where a version came from: its run's lineage tags, experiment, and a link to the run
    in the MLflow UI when the tracking URI is an MLflow server (``None`` for a file store)."""
    client = _client(settings)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return {"run_id": run_id, "run_url": None}
    out: dict[str, Any] = {k: run.data.tags.get(k) for k in LINEAGE_TAGS}
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(settings.tracking_uri.rstrip("/"))
    web = parts.scheme in ("http", "https") and parts.hostname is not None
    netloc = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    uri = urlunsplit((parts.scheme, netloc, parts.path, "", ""))  # no credentials in a link
    exp = run.info.experiment_id
    out.update(
        run_id=run_id,
        experiment_id=exp,
        run_name=run.info.run_name,
        run_url=f"{uri}/#/experiments/{exp}/runs/{run_id}" if web else None,
    )
    return out
