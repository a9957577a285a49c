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
    row_classes,
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


# --- multi-class champions ------------------------------------------------------------------

NAMES = ("building", "land", "road", "vegetation", "water")


def _class_eval(wrong: dict[int, float], seed: int = 0) -> dict[str, float]:
    """Real ``satseg.metrics.class_scores`` of a 5-class prediction: truth is a random class
    map (with an ignored strip), the prediction is right except for the share ``wrong[i]``
    of class i's pixels, which it spreads over the other classes in turn."""
    from satseg.metrics import class_scores

    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 5, (64, 64)).astype(np.uint8)
    truth[:4] = 255  # unlabeled: counts for nothing
    pred = truth.copy()
    pred[:4] = 0
    for i, share in wrong.items():
        ys, xs = np.nonzero(truth == i)
        k = round(share * len(ys))
        others = np.array([c for c in range(5) if c != i], np.uint8)
        pred[ys[:k], xs[:k]] = others[np.arange(k) % 4]
    return class_scores(truth, pred, NAMES)


def _record_mc(path: Path, version: str, tag: str, metrics: dict, day: int) -> dict:
    return record_evaluation(
        path,
        metrics,
        model_name="satseg-segmenter",
        model_version=version,
        dataset_tag=tag,
        when=T0 + timedelta(days=day),
        classes=NAMES,
    )


OLD_HISTORY = (  # a performance.csv as written before class columns existed
    ",".join(COLUMNS) + "\n"
    "2026-02-01T06:00:00+00:00,satseg-segmenter,1,run1,demo-v1,val,0.71,0.83,0.76,0.71,,\n"
)


def test_multiclass_rows_beside_old_binary_rows(tmp_path: Path) -> None:
    h = tmp_path / "performance.csv"
    h.write_text(OLD_HISTORY)
    [old] = load_history(h)
    assert old["iou"] == 0.71 and old["object_f1"] is None and "miou" not in old
    m = _class_eval({2: 0.5})
    row = _record_mc(h, "2", "dubai-v1", m, 0)
    assert row["iou"] == pytest.approx(m["miou"]) and row["dice"] == pytest.approx(m["mdice"])
    assert row["iou_road"] == pytest.approx(m["iou_road"]) == pytest.approx(0.5, abs=0.01)
    assert row["iou_land"] == pytest.approx(m["iou_land"]) and 0.85 < m["iou_land"] < 1.0
    _record(h, "1", "demo-v2", 0.69, 1)  # a binary champion again
    header = h.read_text().splitlines()[0].split(",")
    assert header == [*COLUMNS, "miou", *(f"iou_{n}" for n in NAMES)]
    binary_old, mc, binary_new = load_history(h)
    assert binary_old == old  # the old row reads back unchanged
    assert row_classes(binary_new) == [] and "iou_road" not in binary_new
    assert row_classes(mc) == list(NAMES)
    assert mc["miou"] == pytest.approx(m["miou"]) and mc["iou_water"] == pytest.approx(
        m["iou_water"]
    )
    assert mc["boundary_iou"] is None  # no object/boundary scores for class maps


def test_binary_history_keeps_the_fixed_columns(tmp_path: Path) -> None:
    h = tmp_path / "performance.csv"
    _record(h, "1", "demo-v1", 0.7, 0)
    assert h.read_text().splitlines()[0] == ",".join(COLUMNS)
    res = concept_drift(load_history(h), load_history(h)[0], iou_drop=0.1)
    assert res["classes"] == [] and res["drifted_classes"] == []


def test_a_drop_in_one_class_is_concept_drift(msettings, tmp_path: Path) -> None:
    h = msettings.state / "performance.csv"
    first = _record_mc(h, "4", "dubai-v1", _class_eval({}), 0)
    assert first["miou"] == 1.0
    # road loses 15 % of its pixels to the others: mIoU falls ~0.06, road's IoU 0.15
    later_m = _class_eval({2: 0.15})
    later = _record_mc(h, "4", "dubai-v2", later_m, 1)
    res = concept_drift(load_history(h), later, iou_drop=0.1)
    assert res["concept_drift"] and not res["iou_drifted"]
    assert 1.0 - later_m["miou"] < 0.1
    assert res["drifted_classes"] == ["road"]
    road = next(c for c in res["classes"] if c["class"] == "road")
    assert road["baseline"] == "evaluation on dubai-v1" and road["baseline_iou"] == 1.0
    assert road["drop"] == pytest.approx(1.0 - later_m["iou_road"], abs=1e-6)
    # The class IoUs logged at training win over history; a small drop is no drift.
    res = concept_drift(
        load_history(h),
        later,
        iou_drop=0.1,
        baseline_iou=0.95,
        baseline_classes={"road": later_m["iou_road"] + 0.05, "water": 0.99},
    )
    assert not res["concept_drift"] and res["drifted_classes"] == []
    water = next(c for c in res["classes"] if c["class"] == "water")
    assert water["baseline"] == "training" and water["baseline_iou"] == 0.99
    # The monitor's summary names the class; the plot has a line per class.
    res = concept_drift(load_history(h), later, iou_drop=0.1)
    colors = dict(zip(NAMES, ("#3c1098", "#8429f6", "#6ec1e4", "#fedd3a", "#e2a929"), strict=True))
    out = monitor.summarize_performance(msettings, [res], when=T0, colors=colors)
    assert out["concept_drift"] and out["drifted_classes"] == ["road"]
    assert "IoU of class 'road'" in out["reason"] and "on dubai-v2 vs 1.000" in out["reason"]
    assert "mIoU" not in out["reason"]  # the mean did not fall beyond iou_drop
    ev = monitor.drift_event({"drift_detected": False}, out)
    assert ev is not None and ev["kind"] == ["concept"] and ev["drifted_classes"] == ["road"]
    assert "class 'road'" in ev["reason"]


def test_plot_draws_a_line_per_class(tmp_path: Path) -> None:
    import cv2

    h = tmp_path / "performance.csv"
    _record(h, "1", "demo-v1", 0.71, 0)
    _record_mc(h, "2", "dubai-v1", _class_eval({}), 1)
    _record_mc(h, "2", "dubai-v2", _class_eval({2: 0.6, 4: 0.3}), 2)
    road = "#6ec1e4"
    png = plot_history(load_history(h), tmp_path / "perf.png", colors={"road": road})
    img = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB)
    rgb = np.array([int(road[i : i + 2], 16) for i in (1, 3, 5)])
    assert (np.abs(img.astype(int) - rgb).sum(axis=-1) < 30).sum() > 50  # the road line
    binary_only = tmp_path / "binary.png"
    _record(tmp_path / "b.csv", "1", "demo-v1", 0.71, 0)
    plot_history(load_history(tmp_path / "b.csv"), binary_only)
    b = cv2.cvtColor(cv2.imread(str(binary_only)), cv2.COLOR_BGR2RGB)
    assert (np.abs(b.astype(int) - rgb).sum(axis=-1) < 30).sum() == 0
