"""The REST API's logic through FastAPI's TestClient (auth overridden here only).

The real authentication is tested against a running api-server in test_api_server.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.ops.procs import free_port


def _png(w: int = 8, h: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _tif(tmp_path: Path) -> bytes:
    from satseg.synthetic import make_scene

    scene = make_scene(tmp_path / "scene", "s1", width=64, height=64, seed=1)
    return Path(scene.image).read_bytes()


@pytest.fixture
def client(settings):
    from satseg.api import app as api

    app = api.create_app()
    for dep in (api.AUTHENTICATED, api.MAY_RUN_INGEST, api.MAY_RUN_RETRAIN, api.MAY_READ_RETRAIN):
        app.dependency_overrides[dep] = lambda: None
    app.dependency_overrides[api.current_user] = lambda: "tester"
    with TestClient(app) as c:
        yield c


def _inbox_files(settings) -> list[Path]:
    return sorted(p for p in settings.home.rglob("*") if p.is_file())


def test_upload_lands_atomically_in_the_inbox(client, settings, tmp_path) -> None:
    tif = _tif(tmp_path)
    r = client.post("/data/upload", files={"file": ("scene_a.tif", tif)}, data={"dataset": "city"})
    assert r.status_code == 201, r.text
    dest = settings.inbox / "city" / "scene_a.tif"
    assert dest.read_bytes() == tif
    body = r.json()
    assert body["sha256"] == hashlib.sha256(tif).hexdigest()
    assert body["bytes"] == len(tif) and body["path"] == "inbox/city/scene_a.tif"
    labels = json.dumps({"shapes": []}).encode()
    r = client.post(
        "/data/upload", files={"file": ("scene_a.json", labels)}, data={"dataset": "city"}
    )
    assert r.status_code == 201, r.text
    # nothing half-written or staged is left anywhere under SATSEG_HOME
    assert _inbox_files(settings) == [
        settings.inbox / "city" / n for n in ("scene_a.json", "scene_a.tif")
    ]
    # the same name again is refused, the first file stays as it was
    r = client.post(
        "/data/upload", files={"file": ("scene_a.tif", _png())}, data={"dataset": "city"}
    )
    assert r.status_code == 409 and dest.read_bytes() == tif


def test_upload_rejects_oversized(client, settings, monkeypatch) -> None:
    from satseg.config import reset_settings_cache

    monkeypatch.setenv("SATSEG_MAX_UPLOAD_MB", "1")
    reset_settings_cache()
    just_over = b"\x89PNG\r\n\x1a\n" + b"\0" * (1024 * 1024 - 7)  # 1 MiB + 1 byte
    r = client.post("/data/upload", files={"file": ("big.png", just_over)})
    assert r.status_code == 413, r.text
    assert r.json()["detail"]["check"] == "size"
    far_over = b"\x89PNG\r\n\x1a\n" + b"\0" * (3 * 1024 * 1024)  # refused from Content-Length
    r = client.post("/data/upload", files={"file": ("big.png", far_over)})
    assert r.status_code == 413 and "1 MB" in r.text
    assert _inbox_files(settings) == []


@pytest.mark.parametrize(
    ("name", "dataset"),
    [("../../escape.png", None), ("..%2Fescape.png", None), ("ok.png", "../outside")],
)
def test_upload_rejects_path_traversal(client, settings, name, dataset) -> None:
    data = {"dataset": dataset} if dataset else {}
    r = client.post("/data/upload", files={"file": (name, _png())}, data=data)
    assert r.status_code == 400, r.text
    assert r.json()["detail"]["check"] in ("path_traversal", "unsafe_name", "unsafe_dataset")
    assert _inbox_files(settings) == []
    assert not (settings.home.parent / "escape.png").exists()
    assert not (settings.home / "outside").exists()


def test_upload_rejects_wrong_type(client, settings) -> None:
    r = client.post("/data/upload", files={"file": ("tool.exe", b"MZ\x90\x00")})
    assert r.status_code == 415 and r.json()["detail"]["check"] == "file_type"
    r = client.post("/data/upload", files={"file": ("fake.tif", _png())})  # PNG bytes, .tif name
    assert r.status_code == 415 and "not a TIF" in r.text
    r = client.post("/data/upload", files={"file": ("labels.json", b"{not json")})
    assert r.status_code == 415 and "not valid JSON" in r.text
    r = client.post("/data/upload", files={"file": ("empty.png", b"")})
    assert r.status_code == 400 and r.json()["detail"]["check"] == "empty"
    assert _inbox_files(settings) == []


def test_health_reports_each_dependency(client, settings, airflow_db, monkeypatch) -> None:
    from satseg.config import reset_settings_cache

    r = client.get("/health")
    assert r.status_code == 200, r.text
    checks = r.json()["checks"]
    assert {k: v["status"] for k, v in checks.items()} == {
        "metadata_db": "ok",
        "mlflow": "ok",
        "dvc_remote": "ok",
        "disk": "ok",
    }
    assert checks["metadata_db"]["dialect"] == "sqlite"
    assert checks["disk"]["free_mb"] > 0
    # an unreachable MLflow server makes the API unhealthy, and says which part and why
    monkeypatch.setenv("SATSEG_MLFLOW_URI", f"http://user:s3cret@127.0.0.1:{free_port()}")
    reset_settings_cache()
    r = client.get("/health")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["mlflow"]["status"] == "error"
    assert body["checks"]["disk"]["status"] == "ok"
    assert "s3cret" not in r.text  # credentials are redacted


def test_health_checks_redis_when_celery_is_used(monkeypatch) -> None:
    from satseg.api import health

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    monkeypatch.setenv("AIRFLOW__CELERY__BROKER_URL", f"redis://:pw@127.0.0.1:{free_port()}/0")
    url = health.celery_broker_url()
    assert url is not None and url.startswith("redis://")
    out = health._timed(lambda: health.redis_broker(url, timeout=0.5))
    assert out["status"] == "error" and "pw@" not in json.dumps(health.redact(url))
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    assert health.celery_broker_url() is None


@pytest.mark.services
def test_health_pings_a_real_redis() -> None:
    from satseg.api import health
    from tests.ops.services import REDIS_HOST, REDIS_PORT, require_services

    require_services(redis=True)
    out = health.redis_broker(f"redis://{REDIS_HOST}:{REDIS_PORT}/0", timeout=2)
    assert out["status"] == "ok"


def test_disk_check_fails_below_the_threshold(tmp_path) -> None:
    from satseg.api import health

    assert health.disk(tmp_path, min_free_mb=1)["status"] == "ok"
    low = health.disk(tmp_path / "not-yet", min_free_mb=10**12)
    assert low["status"] == "error" and "below" in low["error"]


def test_datasets_lists_processed_and_raw(client, settings) -> None:
    (settings.processed / "city").mkdir(parents=True)
    (settings.processed / "city" / "manifest.json").write_text(
        json.dumps({"counts": {"train": 6, "val": 2}})
    )
    (settings.raw / "farm").mkdir(parents=True)
    (settings.raw / "farm" / "a.tif").write_bytes(b"x")
    r = client.get("/datasets")
    assert r.status_code == 200
    assert [(d["name"], d["processed"], d["raw_files"], d["counts"]) for d in r.json()] == [
        ("city", True, 0, {"train": 6, "val": 2}),
        ("farm", False, 1, None),
    ]


def test_data_versions_and_checkout_through_dvc(client, settings) -> None:
    from satseg.io.atomic import write_bytes
    from satseg.versioning import version_dataset

    # like the pipeline, replace files (new inodes): versions are hard-linked into DVC's cache
    ds = settings.processed / "city"
    (ds / "train" / "images").mkdir(parents=True)
    patch = ds / "train" / "images" / "p0.png"
    patch.write_bytes(_png(4, 4))
    (ds / "manifest.json").write_text(json.dumps({"counts": {"train": 1}}))
    version_dataset(settings, "city")
    v1_bytes = patch.read_bytes()
    write_bytes(patch, _png(8, 8))
    write_bytes(ds / "manifest.json", json.dumps({"counts": {"train": 2}}).encode())
    version_dataset(settings, "city")

    r = client.get("/data/versions", params={"dataset": "city"})
    assert r.status_code == 200, r.text
    assert [(v["tag"], v["counts"]) for v in r.json()] == [
        ("city-v1", {"train": 1}),
        ("city-v2", {"train": 2}),
    ]
    assert client.get("/datasets").json()[0]["latest_version"] == "city-v2"
    r = client.post("/data/checkout/city-v1")
    assert r.status_code == 200, r.text
    assert r.json()["files"] == 2 and patch.read_bytes() == v1_bytes
    assert client.post("/data/checkout/city-v9").status_code == 404
    r = client.post("/data/checkout/not-a-tag")
    assert r.status_code == 400 and "<dataset>-v<N>" in r.text


def test_training_status_of_unknown_run_is_404(client, airflow_db) -> None:
    r = client.get("/training/status/manual__nope")
    assert r.status_code == 404 and "satseg_retrain" in r.text


def test_openapi_lists_every_route(client) -> None:
    paths = set(client.get("/openapi.json").json()["paths"])
    assert paths == {
        "/health",
        "/datasets",
        "/data/versions",
        "/data/checkout/{tag}",
        "/data/upload",
        "/models",
        "/models/{version}/promote",
        "/training/start",
        "/training/status/{run_id}",
        "/predictions",
        "/predictions/{run_id}",
        "/predictions/{run_id}/outputs/{name}",
    }
    assert client.get("/docs").status_code == 200


def test_without_overrides_every_route_needs_a_login(settings) -> None:
    from satseg.api.app import create_app

    with TestClient(create_app()) as c:
        assert c.get("/health").status_code == 401
        assert c.get("/datasets").status_code == 401
        r = c.post("/data/upload", files={"file": ("a.png", _png())})
        assert r.status_code == 401
    assert _inbox_files(settings) == []


def test_plugin_import_stays_light_for_task_processes() -> None:
    """Airflow imports plugins in every task; the API app must only be built on a request."""
    import subprocess

    probe = (
        "import sys, runpy; runpy.run_path(sys.argv[1]);"
        "print('satseg.api.app' in sys.modules, 'airflow.api_fastapi.core_api.security' in sys.modules)"
    )
    plugin = Path(__file__).resolve().parents[2] / "plugins" / "satseg_plugin.py"
    out = subprocess.run(
        [sys.executable, "-c", probe, str(plugin)], capture_output=True, text=True, check=True
    )
    assert out.stdout.split()[-2:] == ["False", "False"], out.stdout


def test_lazy_app_serves_the_real_app_once_asked(settings) -> None:
    from satseg.api.lazy import LazyApp

    lazy = LazyApp()
    with TestClient(lazy) as c:  # an ASGI callable like any other
        assert c.get("/health").status_code == 401  # the real app, with its auth
        assert c.get("/openapi.json").status_code == 401  # the docs need the login too
    assert lazy.app.openapi()["info"]["title"] == "satseg"
    first = lazy.app
    assert lazy.app is first  # built once


@pytest.mark.slow
def test_models_show_class_tables_and_mean_iou(client, settings) -> None:
    """A binary version shows its one ``building`` class; a multi-class one (class table in
    the CLASSES_TAG run tag, final_val_miou / final_val_iou_<class> logged as retrain logs
    them) its classes and mIoU."""
    import mlflow

    from satseg.registry import store, tracking
    from satseg.registry.ref import CLASSES_TAG
    from tests.api.conftest import register_version
    from tests.monitoring.monitor_synth import CLASS_TABLE, colour_model

    binary = register_version(settings, 0.7)
    data = {"dataset": "landcover", "tag": "landcover-v1", "md5": "cd" * 16}
    ious = {"building": 0.9, "vegetation": 0.8, "water": 0.7}
    with mlflow.start_run() as run:
        mlflow.set_tags({**tracking.lineage_tags(data), CLASSES_TAG: json.dumps(CLASS_TABLE)})
        mlflow.log_metrics({f"final_val_iou_{k}": v for k, v in ious.items()})
        mlflow.log_metric("final_val_miou", 0.8)
        uri = tracking.log_keras_model(colour_model())
    multi = store.register(settings, uri, run.info.run_id, tracking.lineage_tags(data)).version

    r = client.get("/models")
    assert r.status_code == 200
    by_version = {m["version"]: m for m in r.json()}
    b, m = by_version[binary], by_version[multi]
    assert b["multiclass"] is False and b["ignore_index"] is None
    assert b["classes"] == [{"index": 1, "name": "building", "color": "#ff0000"}]
    assert b["metrics"]["val_iou"] == pytest.approx(0.7) and "val_miou" not in b["metrics"]
    assert m["multiclass"] is True and m["ignore_index"] == 255
    assert m["classes"] == CLASS_TABLE["classes"]
    assert m["metrics"]["val_miou"] == pytest.approx(0.8)
    assert {k: m["metrics"][f"val_iou_{k}"] for k in ious} == pytest.approx(ious)
    assert m["aliases"] == ["challenger"] and m["dataset_tag"] == "landcover-v1"

    from satseg.api import deps

    client.app.dependency_overrides[deps.CAN_RUN_RETRAIN] = lambda: False  # a viewer's page
    page = client.get("/pages/models").text  # the models page lists the classes too
    assert "vegetation" in page and "background:#00ff00" in page and "val_miou" in page
