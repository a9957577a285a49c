"""``POST /predictions`` and ``GET /predictions/{id}`` with the real app, a real metadata DB
(runs queued through Airflow's own ``trigger_dag``), a real MLflow registry and a real
``satseg_predict`` run (``dag.test()``) producing the outputs the links point to.

Only the login is overridden here (as in test_app.py); ``test_without_a_login`` checks it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.airflow_helpers import load_dag, load_module, task_states

TESTS = Path(__file__).resolve().parents[1]
PREDICT = "satseg_predict"


@pytest.fixture(scope="module")
def predict_dag(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The DAG, written to the metadata DB once (trigger_dag needs it serialized)."""
    from satseg.config import reset_settings_cache

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SATSEG_HOME", str(tmp_path_factory.mktemp("predict-api") / "home"))
        reset_settings_cache()
        dag = load_dag(PREDICT)
        dag.test()  # an empty inbox: a run that skips, but the DAG is in the DB now
    reset_settings_cache()
    return dag


@pytest.fixture
def client(settings, predict_dag):
    from satseg.api import app as api

    app = api.create_app()
    deps = (api.AUTHENTICATED, api.MAY_RUN_PREDICT, api.MAY_READ_PREDICT, api.MAY_RUN_INGEST)
    for dep in deps:
        app.dependency_overrides[dep] = lambda: None
    app.dependency_overrides[api.current_user] = lambda: "tester"
    with TestClient(app) as c:
        yield c


@pytest.fixture
def champion(settings) -> str:
    mod = load_module("predict_dag_tests", TESTS / "dags" / "test_predict_dag.py")
    return str(mod._register_champion(settings))


def _scene(tmp_path: Path, name: str = "city1") -> Path:
    from satseg.synthetic import make_scene

    return Path(make_scene(tmp_path / "scenes", name, width=96, height=96, seed=3).image)


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _runs() -> list[str]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return list(session.scalars(select(DagRun.run_id).where(DagRun.dag_id == PREDICT)))


def test_upload_queues_a_run_and_the_finished_run_links_its_outputs(
    client, settings, champion, predict_dag, tmp_path
) -> None:
    import rasterio

    tif = _scene(tmp_path)
    r = client.post(
        "/predictions",
        files={"file": ("city1.tif", tif.read_bytes())},
        data={"threshold": "0.4", "model_version": champion},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["dag_id"] == PREDICT and body["state"] == "queued" and body["scene"] == "city1"
    conf = body["conf"]
    stored = Path(conf["paths"][0])
    assert stored.read_bytes() == tif.read_bytes()  # the upload, byte for byte
    assert stored.parent.parent == settings.home / "requests"  # not the polled inbox
    assert conf["threshold"] == 0.4 and conf["model_version"] == champion
    queued = client.get(f"/predictions/{body['id']}").json()
    assert queued["state"] == "queued" and queued["outputs"] == {} and queued["scene"] == "city1"
    assert body["id"] in _runs()

    # the scheduler's part: run satseg_predict with that conf, then follow it by its id
    dr = predict_dag.test(run_conf=conf)
    assert str(dr.state) == "success", task_states(dr)
    done = client.get(f"/predictions/{dr.run_id}").json()
    assert done["state"] == "success" and done["result"]["model_version"] == champion
    assert set(done["outputs"]) >= {"mask.tif", "prob.tif", "mask.geojson", "item.json"}
    link = done["outputs"]["mask.tif"]
    assert link.endswith(f"/predictions/{dr.run_id}/outputs/mask.tif")
    got = client.get(link)
    assert got.status_code == 200
    (tmp_path / "mask.tif").write_bytes(got.content)
    with rasterio.open(tmp_path / "mask.tif") as src, rasterio.open(tif) as scene:
        assert src.crs == scene.crs and src.transform == scene.transform
    assert client.get(f"/predictions/{dr.run_id}/outputs/secret.txt").status_code == 404


def test_a_scene_already_under_raw_can_be_named(client, settings, tmp_path) -> None:
    dest = settings.raw / "city" / "a.tif"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(_scene(tmp_path).read_bytes())
    r = client.post("/predictions", data={"scene": "raw/city/a.tif", "tile": "128"})
    assert r.status_code == 201, r.text
    assert r.json()["conf"]["paths"] == [str(dest)] and r.json()["conf"]["tile"] == 128
    assert r.json()["conf"]["model_version"] is None  # the champion when the run starts


BAD_NAMED = [
    ({"scene": "../../etc/passwd"}, 400, "not a scene name"),
    ({"scene": "/etc/passwd"}, 400, "not a scene name"),
    ({"scene": "inbox/predict/a.tif"}, 400, "only scenes under raw/"),
    ({"scene": "raw/city/missing.tif"}, 404, "no scene"),
    ({"scene": "raw/city/link.tif"}, 400, "not an image file"),
    ({"scene": "raw/city/notes.txt"}, 400, "not an image file"),
    ({"scene": "raw/city/a.tif", "threshold": "2"}, 400, "threshold"),
    ({"scene": "raw/city/a.tif", "threshold": "abc"}, 400, "threshold"),
    ({"scene": "raw/city/a.tif", "tile": "64", "overlap": "64"}, 400, "overlap=64 must be <="),
    ({"scene": "raw/city/a.tif", "model_version": "99"}, 404, "not registered"),
    ({"scene": "raw/city/a.tif", "model_version": "$(reboot)"}, 400, "not a model version"),
    ({}, 400, "either a file or a scene"),
]


@pytest.mark.parametrize(("form", "status", "words"), BAD_NAMED)
def test_bad_requests_queue_nothing(client, settings, tmp_path, form, status, words) -> None:
    city = settings.raw / "city"
    city.mkdir(parents=True)
    (city / "a.tif").write_bytes(_scene(tmp_path).read_bytes())
    (city / "notes.txt").write_text("not a scene")
    (city / "link.tif").symlink_to(city / "a.tif")
    before = _runs()
    r = client.post("/predictions", data=form)
    assert r.status_code == status, r.text
    assert words in r.text
    assert _runs() == before
    assert not (settings.home / "requests").exists() or not any(
        (settings.home / "requests").iterdir()
    )


BAD_UPLOADS = [
    (("tool.exe", b"MZ\x90\x00"), 415, "file_type"),
    (("fake.tif", _png()), 415, "file_type"),  # PNG bytes under a .tif name
    (("labels.json", b"{}"), 415, "file_type"),  # labels are not a scene
    (("../../escape.png", _png()), 400, "path_traversal"),
    (("empty.png", b""), 400, "empty"),
]


@pytest.mark.parametrize(("upload", "status", "check"), BAD_UPLOADS)
def test_hostile_uploads_are_refused_and_leave_nothing(
    client, settings, upload, status, check
) -> None:
    before = _runs()
    r = client.post("/predictions", files={"file": upload})
    assert r.status_code == status, r.text
    assert r.json()["detail"]["check"] == check
    assert _runs() == before
    left = [p for p in settings.home.rglob("*") if p.is_file()]
    assert left == [], left
    assert not (settings.home.parent / "escape.png").exists()


def test_upload_size_cap_and_a_file_and_a_name_together(client, settings, monkeypatch, tmp_path):
    from satseg.config import reset_settings_cache

    both = client.post(
        "/predictions", files={"file": ("a.png", _png())}, data={"scene": "raw/x/a.tif"}
    )
    assert both.status_code == 400 and "not both" in both.text
    monkeypatch.setenv("SATSEG_MAX_UPLOAD_MB", "1")
    reset_settings_cache()
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (3 * 1024 * 1024)
    r = client.post("/predictions", files={"file": ("big.png", big)})
    assert r.status_code == 413
    assert [p for p in settings.home.rglob("*") if p.is_file()] == []


def test_unknown_prediction_is_404(client) -> None:
    assert client.get("/predictions/manual__nope").status_code == 404
    assert client.get("/predictions/manual__nope/outputs/mask.tif").status_code == 404


def test_in_the_openapi_page_and_behind_the_login(client, settings) -> None:
    from satseg.api.app import create_app

    spec = client.get("/openapi.json").json()
    assert {"/predictions", "/predictions/{run_id}", "/predictions/{run_id}/outputs/{name}"} <= set(
        spec["paths"]
    )
    with TestClient(create_app()) as anonymous:
        assert anonymous.post("/predictions", data={"scene": "raw/a.tif"}).status_code == 401
        assert anonymous.get("/predictions/manual__x").status_code == 401
