"""MLflow as the stack runs it: a ``mlflow server`` process on PostgreSQL with proxied artifacts.

A training run logs to it through satseg.registry, versions are registered, the
challenger/champion aliases move, the champion loads back by alias and predicts, and the
REST API's /models and /models/{version}/promote read and move the same registry.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ops.procs import BIN, Procs, free_port, http, wait_for
from tests.ops.services import Databases, fresh_databases, require_services

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> Iterator[dict[str, Any]]:
    require_services()
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    with fresh_databases("mlflow") as dbs:
        env = dict(os.environ)
        env.update(
            {
                # the same variables docker-compose.yaml gives the mlflow service
                "MLFLOW_BACKEND_STORE_URI": dbs.url("mlflow"),
                "MLFLOW_ARTIFACTS_DESTINATION": str(root / "artifacts"),
            }
        )
        procs = Procs(root / "logs", env)
        try:
            procs.start(
                "mlflow",
                str(BIN / "mlflow"),
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            )
            yield {"uri": f"http://127.0.0.1:{port}", "root": root, "dbs": dbs, "procs": procs}
        finally:
            procs.stop_all()


def _wait_up(server: dict[str, Any]) -> None:
    wait_for(
        "mlflow server",
        lambda: http("GET", server["uri"] + "/health", timeout=3)[0] == 200,
        180,
        1.0,
        server["procs"],
    )


def _tiny_model() -> Any:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input((None, None, 3))
    out = tf.keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inp)
    model = tf.keras.Model(inp, out)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def _train_and_register(settings, val_iou: float) -> Any:
    import mlflow
    import numpy as np

    from satseg.registry import store, tracking

    tracking.setup(settings)
    model = _tiny_model()
    x = np.random.default_rng(0).random((4, 16, 16, 3), dtype=np.float32)
    with mlflow.start_run() as run:
        mlflow.log_params({"arch": "tiny-conv", "epochs": 1})
        model.fit(
            x,
            (x[..., :1] > 0.5).astype("float32"),
            epochs=1,
            verbose=0,
            callbacks=[tracking.epoch_logger()],
        )
        mlflow.log_metric("final_val_iou", val_iou)
        uri = tracking.log_keras_model(model, sample_hw=(16, 16))
    return store.register(settings, uri, run.info.run_id, {"dataset_tag": "city-v1"})


def test_training_run_and_registry_aliases_on_the_server(
    mlflow_server, settings, monkeypatch
) -> None:
    import numpy as np
    from fastapi.testclient import TestClient

    from satseg.api import app as api
    from satseg.config import reset_settings_cache
    from satseg.registry import store

    _tiny_model()  # import TensorFlow while the server migrates its fresh database
    _wait_up(mlflow_server)
    monkeypatch.setenv("SATSEG_MLFLOW_URI", mlflow_server["uri"])
    reset_settings_cache()
    from satseg.config import get_settings

    settings = get_settings()
    first = _train_and_register(settings, val_iou=0.61)
    assert first.aliases == ["challenger"] and first.metrics["val_iou"] == pytest.approx(0.61)
    store.promote(settings, first.version)
    second = _train_and_register(settings, val_iou=0.55)
    refs = {r.version: r for r in store.list_models(settings)}
    assert refs[first.version].aliases == ["champion"]
    assert refs[second.version].aliases == ["challenger"]

    model, ref = store.load_model(settings, "champion")  # resolves models:/name@champion
    assert ref.version == first.version
    assert model.predict(np.zeros((1, 16, 16, 3), np.float32), verbose=0).shape == (1, 16, 16, 1)

    # the run and the registry live in PostgreSQL, the artifacts in the server's folder
    dbs: Databases = mlflow_server["dbs"]
    import psycopg2

    conn = psycopg2.connect(dbs.url("mlflow", driver="postgresql"))
    with conn, conn.cursor() as cur:
        cur.execute("SELECT alias, version FROM registered_model_aliases ORDER BY alias")
        assert cur.fetchall() == [
            ("challenger", int(second.version)),
            ("champion", int(first.version)),
        ]
        cur.execute("SELECT count(*) FROM runs")
        assert cur.fetchone()[0] == 2
    conn.close()
    artifacts = Path(mlflow_server["root"]) / "artifacts"
    assert list(artifacts.rglob("MLmodel")), "model artifacts were not proxied to the server"

    # the REST API reads and moves the same registry
    app = api.create_app()
    for dep in (api.AUTHENTICATED, api.MAY_RUN_INGEST, api.MAY_RUN_RETRAIN, api.MAY_READ_RETRAIN):
        app.dependency_overrides[dep] = lambda: None
    with TestClient(app) as client:
        listed = client.get("/models").json()
        assert [(m["version"], m["aliases"]) for m in listed] == [
            (second.version, ["challenger"]),
            (first.version, ["champion"]),
        ]
        assert listed[1]["metrics"]["val_iou"] == pytest.approx(0.61)
        r = client.post(f"/models/{second.version}/promote")
        assert r.status_code == 200 and r.json()["aliases"] == ["champion"]
        assert client.post("/models/999/promote").status_code == 404
    assert store.champion(settings).version == second.version
