"""satseg_ingest end to end under real Airflow (dag.test) and a real DVC repository."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from satseg.dagkit import PROCESSED, dataset_asset
from satseg.versioning import list_versions
from tests.airflow_helpers import asset_events, load_dag, run_dag, task_states
from tests.ingest.conftest import (  # the ingest tests' inputs and their small params
    BAD,
    TEST_PARAMS,
    _small_params,  # noqa: F401 - autouse fixture: 128 px patches, 50 ms polls
    drop_good,
    error_records,
    inventory,
    total_bytes,
)

DATE = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def ingest_dag() -> Any:
    return load_dag("satseg_ingest")


def _snapshot(settings) -> dict[str, Any]:
    return {
        "raw": inventory(settings.raw),
        "quarantine": inventory(settings.quarantine),
        "processed": inventory(settings.processed / "demo"),
        "tags": [v.tag for v in list_versions(settings)],
    }


@pytest.mark.slow
def test_ingest_dag_end_to_end(settings, airflow_db, ingest_dag) -> None:
    settings.annotation_timeout_s = 0  # the lone image of the bad set is quarantined now
    drop_good(settings.inbox)
    bad_dir = settings.inbox / "demo"
    for builder, _ in BAD.values():
        builder(bad_dir)
    dropped = inventory(settings.inbox)
    dropped_bytes = total_bytes(settings.inbox)

    dr = run_dag(ingest_dag, logical_date=DATE, expect="success")
    assert task_states(dr)["publish"].endswith("success")

    # every input byte accounted for: raw + quarantine == what was dropped
    assert inventory(settings.inbox) == {}
    kept = inventory(settings.raw, (".ingest.json",))
    for h, v in inventory(settings.quarantine, (".error.json",)).items():
        kept.setdefault(h, []).extend(v)
    assert {h: len(v) for h, v in kept.items()} == {h: len(v) for h, v in dropped.items()}
    assert (
        total_bytes(settings.raw, (".ingest.json",))
        + total_bytes(settings.quarantine, (".error.json",))
        == dropped_bytes
    )

    # each bad input quarantined with its own check
    checks = {r["check"] for r in error_records(settings.quarantine).values()}
    for name, (_, expected) in BAD.items():
        assert expected & checks, f"{name}: none of {expected} in {checks}"

    # the good ones processed and versioned
    manifest = json.loads((settings.processed / "demo" / "manifest.json").read_text())
    assert {s["scene"] for s in manifest["scenes"]} == {"alpha", "beta", "gamma", "delta"}
    assert manifest["tag"] == "demo-v1"
    (v1,) = list_versions(settings)
    assert (v1.tag, v1.counts) == ("demo-v1", manifest["counts"])
    assert {p.parent.name for p in settings.processed.glob("*/manifest.json")} == {"demo"}

    # Asset events: PROCESSED and the dataset's own Asset, with the version in the extra
    events = asset_events(dr.run_id)
    want = {"dataset": "demo", "tag": "demo-v1", "md5": v1.md5, "counts": v1.counts}
    assert events == {PROCESSED.name: [want], dataset_asset("demo").name: [want]}

    # re-running the same DAG run changes nothing (no new files, version or event)
    before = _snapshot(settings)
    dr2 = run_dag(ingest_dag, logical_date=DATE, expect="success")
    states2 = task_states(dr2)
    assert states2["publish"].endswith("skipped")
    assert _snapshot(settings) == before
    assert asset_events(dr2.run_id) == {}


@pytest.mark.slow
def test_ingest_dag_with_forked_patch_workers(
    settings, airflow_db, ingest_dag, tmp_path: Path
) -> None:
    """The DAG's default: patches cut by forked worker processes inside the Airflow task.

    Tall scenes (three 512-row GeoTIFF block rows) so that the workers get a share; one is
    truncated, so that a worker's read error quarantines it like any decode error.
    """
    import yaml

    from satseg.preprocess.patches import can_fork
    from satseg.synthetic import make_scene

    if not can_fork():
        pytest.skip("forked patch workers run on Linux only")
    params = {"preprocess": {**TEST_PARAMS["preprocess"], "workers": 2}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    d = settings.inbox / "tall"
    for name, seed in (("north", 31), ("south", 32)):
        make_scene(d, name, 300, 1100, seed, geojson=False, mask_tif=name == "south")
    (d / "south.json").unlink()  # the mask raster is south's annotation
    broken = make_scene(d, "broken", 300, 1100, 33, geojson=False).image
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size * 2 // 3])
    dropped_bytes = total_bytes(settings.inbox)

    run_dag(ingest_dag, logical_date=DATE, expect="success")
    manifest = json.loads((settings.processed / "tall" / "manifest.json").read_text())
    assert {s["scene"] for s in manifest["scenes"]} == {"north", "south"}
    # 9 x 3 grid per scene; the right column (44 of 128 px inside) is dropped as padding
    assert sum(manifest["counts"].values()) - manifest["augmented"] == 2 * 18
    records = error_records(settings.quarantine)
    assert records["tall/broken.tif"]["check"] == "decode", records["tall/broken.tif"]
    assert "rows" in records["tall/broken.tif"]["reason"]  # failed mid-scene, not at open
    assert records["tall/broken.json"]["check"] == "partner_rejected"
    assert (
        total_bytes(settings.raw, (".ingest.json",))
        + total_bytes(settings.quarantine, (".error.json",))
        == dropped_bytes
    )
