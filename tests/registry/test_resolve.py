"""Which data a retraining run uses, and when it has nothing new to learn (short-circuit)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from registry_models import constant_model

from satseg.dagkit import event_extras
from satseg.synthetic import SceneStyle
from satseg.training.data import DatasetError
from satseg.training.retrain import resolve_data
from satseg.training.sample import write_sample_dataset


def test_no_dataset_fails_clearly(settings: Any) -> None:
    with pytest.raises(DatasetError, match="no processed dataset under"):
        resolve_data(settings)
    with pytest.raises(DatasetError, match="no processed dataset 'ghost'"):
        resolve_data(settings, dataset="ghost")


def test_broken_dataset_fails_before_training(settings: Any, tiny_dataset: Path) -> None:
    shutil.rmtree(tiny_dataset / "val" / "masks")
    with pytest.raises(DatasetError, match="val/masks: missing"):
        resolve_data(settings)


def test_short_circuit_until_new_data_or_force(
    settings: Any, tiny_dataset: Path, log_version: Callable[..., Any]
) -> None:
    from satseg.registry import promote

    first = resolve_data(settings)
    assert first["train"] and first["reason"] == "no champion yet"
    assert (first["dataset"], first["tag"], first["counts"]) == (
        "tiny",
        "tiny-v1",
        {"train": 4, "val": 4},
    )
    promote(settings, log_version(constant_model(0.0), tag="tiny-v1").version)
    same = resolve_data(settings)
    assert same["train"] is False and "no new data" in same["reason"]
    forced = resolve_data(settings, force=True)
    assert forced["train"] and "force" in forced["reason"]
    write_sample_dataset(
        settings.processed / "tiny", dataset="tiny", tag="tiny-v2", n_train=4, n_val=4, seed=5
    )
    newer = resolve_data(settings)
    assert newer["train"] and newer["tag"] == "tiny-v2" and "new data tiny-v2" in newer["reason"]


def test_asset_events_pick_the_newest_version_of_the_dataset(
    settings: Any, tiny_dataset: Path
) -> None:
    class Event:
        def __init__(self, ts: str, extra: dict[str, Any]) -> None:
            self.timestamp, self.extra = ts, extra

    write_sample_dataset(
        settings.processed / "other", dataset="other", tag="other-v1", n_train=2, n_val=2
    )
    events = {
        "satseg_processed": [
            Event("2026-01-02", {"dataset": "tiny", "tag": "tiny-v1", "md5": "a" * 32}),
            Event("2026-01-01", {"dataset": "other", "tag": "other-v1", "md5": "b" * 32}),
        ],
        "satseg_drift": [Event("2026-01-03", {"reason": "brightness drift"})],
    }
    extras = event_extras(events)
    assert [e.get("tag") for e in extras] == ["other-v1", "tiny-v1", None]
    data = resolve_data(settings, events=extras)
    assert (data["tag"], data["md5"]) == ("tiny-v1", "a" * 32)
    assert resolve_data(settings, dataset="other", events=extras)["tag"] == "other-v1"


def test_unversioned_mismatch_fails_clearly(settings: Any, tiny_dataset: Path) -> None:
    with pytest.raises(DatasetError, match="holds tiny-v1, not tiny-v7"):
        resolve_data(settings, version="tiny-v7")


def test_dvc_versions_give_tag_md5_and_old_versions(settings: Any) -> None:
    """With the ingest side's DVC repo: tag + DVC md5 from it; an old tag is materialised."""
    versioning = pytest.importorskip("satseg.versioning")
    dense = SceneStyle(building_density=2.0)
    live = settings.processed / "tiny"
    write_sample_dataset(live, dataset="tiny", tag="tiny-v1", n_train=4, n_val=2, style=dense)
    v1 = versioning.version_dataset(settings, "tiny")
    write_sample_dataset(
        live, dataset="tiny", tag="tiny-v2", n_train=6, n_val=2, seed=9, style=dense
    )
    v2 = versioning.version_dataset(settings, "tiny")
    assert (v1.tag, v2.tag) == ("tiny-v1", "tiny-v2")
    latest = resolve_data(settings)
    assert (latest["tag"], latest["md5"], latest["dir"]) == ("tiny-v2", v2.md5, str(live))
    old = resolve_data(settings, version="tiny-v1")
    assert (old["tag"], old["md5"], old["counts"]["train"]) == ("tiny-v1", v1.md5, 4)
    assert latest["counts"]["train"] == 6
    assert Path(old["dir"]) != live and (live / "manifest.json").read_text().count("tiny-v2")
    with pytest.raises(DatasetError, match="no version 'tiny-v9'"):
        resolve_data(settings, version="tiny-v9")
