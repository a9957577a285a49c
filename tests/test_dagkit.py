"""dagkit maps satseg's own exceptions to Airflow's and adds the events the library returns."""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from satseg import dagkit
from satseg.errors import BadInput, NothingToDo
from satseg.ingest.events import publish_versions
from satseg.monitoring import MonitorError


def _raiser(exc: BaseException) -> Any:
    @dagkit.boundary
    def task(scene: str, params: Any = None, outlet_events: Any = None) -> dict[str, Any]:
        """Docs stay."""
        raise exc

    return task


def test_boundary_maps_satseg_errors_to_airflow() -> None:
    with pytest.raises(AirflowFailException, match=r"BadInput: a\.tif: not a raster") as fail:
        _raiser(BadInput("a.tif: not a raster"))("a.tif")
    assert isinstance(fail.value.__cause__, BadInput)
    with pytest.raises(AirflowFailException, match="MonitorError: unknown tag"):
        _raiser(MonitorError("unknown tag"))("a.tif")  # a domain error that is BadInput
    with pytest.raises(AirflowSkipException, match="up to date"):
        _raiser(NothingToDo("up to date"))("a.tif")


def test_boundary_leaves_other_errors_to_retries() -> None:
    with pytest.raises(TypeError):
        _raiser(TypeError("a bug in satseg"))("a.tif")
    with pytest.raises(OSError):
        _raiser(OSError("disk full"))("a.tif")


def test_boundary_keeps_what_airflow_inspects() -> None:
    @dagkit.boundary
    def task(scene: str, params: Any = None, outlet_events: Any = None) -> dict[str, Any]:
        """Docs stay."""
        return {"scene": scene, "params": params}

    # Airflow injects context arguments by the signature's parameter names
    assert list(inspect.signature(task).parameters) == ["scene", "params", "outlet_events"]
    assert task.__name__ == "task" and task.__doc__ == "Docs stay."
    assert task("a.tif", params={"x": 1}) == {"scene": "a.tif", "params": {"x": 1}}


class _Accessor:
    def __init__(self) -> None:
        self.added: list[tuple[str, dict[str, Any]]] = []
        self.extra: dict[str, Any] = {}

    def add(self, asset: Any, extra: dict[str, Any]) -> None:
        self.added.append((asset.name, extra))


class _Outlets(dict):  # outlet_events[alias] -> accessor, as Airflow passes it
    def __missing__(self, key: Any) -> _Accessor:
        self[key] = _Accessor()
        return self[key]


def test_new_versions_become_events_on_both_assets() -> None:
    versions = [
        {"dataset": "city", "tag": "city-v2", "md5": "a" * 32, "counts": {"train": 4}, "new": True},
        {"dataset": "farm", "tag": "farm-v1", "md5": "b" * 32, "new": False},
    ]
    extras = publish_versions(versions)
    assert extras == [
        {"dataset": "city", "tag": "city-v2", "md5": "a" * 32, "counts": {"train": 4}}
    ]
    outlets = _Outlets()
    assert dagkit.emit_versions(outlets, extras) == extras
    assert outlets[dagkit.VERSIONS_ALIAS].added == [
        ("satseg_processed", extras[0]),
        ("satseg_processed_city", extras[0]),
    ]
    with pytest.raises(NothingToDo, match="no new dataset version"):
        publish_versions(versions[1:])


def test_only_a_promotion_emits_a_model_event() -> None:
    outlets = _Outlets()
    kept = {"promoted": False, "version": "3", "reason": "not better"}
    assert dagkit.emit_promotion(outlets, kept) == kept
    assert outlets[dagkit.MODEL_PROMOTIONS].added == []
    won = {"promoted": True, "version": "4", "reason": "better"}
    dagkit.emit_promotion(outlets, won)
    assert outlets[dagkit.MODEL_PROMOTIONS].added == [("satseg_model", won)]


def test_event_extras_oldest_first() -> None:
    events = {
        "a": [SimpleNamespace(timestamp="2026-01-02", extra={"tag": "x-v2"})],
        "b": [SimpleNamespace(timestamp="2026-01-01", extra={"tag": "x-v1"})],
    }
    assert dagkit.event_extras(events) == [{"tag": "x-v1"}, {"tag": "x-v2"}]
    assert dagkit.event_extras(None) == []
