"""Performance history (one row per evaluation), its plot, and concept drift."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from satseg.monitoring import monitor
from satseg.monitoring.performance import (
    COLUMNS,
    concept_drift,
    evaluated,
    load_history,
    plot_history,
    record_evaluation,
)

T0 = datetime(2026, 3, 1, 6, tzinfo=UTC)


def _eval(iou: float) -> dict[str, float]:
    return {"iou": iou, "dice": 2 * iou / (1 + iou), "precision": iou + 0.05, "recall": iou}


def _record(path: Path, version: str, tag: str, iou: float, day: int) -> dict:
    return record_evaluation(
        path,
        _eval(iou),
        model_name="satseg-segmenter",
        model_version=version,
        dataset_tag=tag,
        model_run_id=f"run{version}",
        when=T0 + timedelta(days=day),
    )


def test_history_rows_are_appended_replaced_and_atomic(tmp_path: Path) -> None:
    h = tmp_path / "state" / "performance.csv"
    assert load_history(h) == []
    _record(h, "1", "demo-v1", 0.71, 0)
    _record(h, "1", "demo-v2", 0.69, 2)
    _record(h, "1", "demo-v2", 0.68, 1)  # same model + dataset: replaces, keeps time order
    rows = load_history(h)
    assert [(r["dataset_tag"], r["iou"]) for r in rows] == [("demo-v1", 0.71), ("demo-v2", 0.68)]
    assert h.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert rows[1]["dice"] == pytest.approx(2 * 0.68 / 1.68)
    assert evaluated(rows, "1", "demo-v2") and not evaluated(rows, "2", "demo-v2")
    assert [p.name for p in h.parent.iterdir()] == ["performance.csv"]  # no temp files left


def test_concept_drift_against_training_and_first_evaluation(tmp_path: Path) -> None:
    h = tmp_path / "performance.csv"
    _record(h, "3", "demo-v1", 0.70, 0)
    small = _record(h, "3", "demo-v2", 0.65, 1)
    res = concept_drift(load_history(h), small, iou_drop=0.1)
    assert not res["concept_drift"]
    assert res["baseline_iou"] == 0.70 and res["baseline"] == "evaluation on demo-v1"
    assert res["drop"] == pytest.approx(0.05)
    big = _record(h, "3", "demo-v3", 0.52, 2)
    res = concept_drift(load_history(h), big, iou_drop=0.1)
    assert res["concept_drift"] and res["drop"] == pytest.approx(0.18)
    # The IoU the model logged at training time wins over history when known.
    res = concept_drift(load_history(h), small, iou_drop=0.1, baseline_iou=0.80)
    assert res["concept_drift"] and res["baseline"] == "training"
    # A first evaluation has nothing to compare with.
    first = _record(tmp_path / "other.csv", "9", "x-v1", 0.1, 0)
    assert not concept_drift([first], first, iou_drop=0.1)["concept_drift"]


def test_plot_and_summary(msettings, tmp_path: Path) -> None:
    import cv2

    h = msettings.state / "performance.csv"
    _record(h, "1", "demo-v1", 0.71, 0)
    _record(h, "1", "demo-v2", 0.50, 1)
    _record(h, "2", "demo-v2", 0.74, 2)
    png = plot_history(load_history(h), tmp_path / "perf.png")
    img = cv2.imread(str(png))
    assert img is not None and img.shape == (400, 800, 3)
    assert np.unique(img.reshape(-1, 3), axis=0).shape[0] > 10  # lines drawn, not blank
    rows = load_history(h)
    drift = concept_drift(rows, rows[1], iou_drop=0.1)
    out = monitor.summarize_performance(msettings, [drift], when=T0)
    assert out["concept_drift"] and "IoU 0.500 on demo-v2 vs 0.710" in out["reason"]
    plot = Path(out["plot"])
    assert plot == msettings.reports / "2026-03-01" / "performance.png" and plot.is_file()
    assert "performance.png" in (plot.parent / "index.html").read_text()
