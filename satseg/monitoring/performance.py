"""Champion performance over time: history rows, the over-time plot, concept drift.

Each evaluation of the champion on newly labelled data becomes one row (time, model version,
dataset tag, IoU, Dice, object F1, boundary IoU, ...; scores from ``satseg.metrics``). A fall in IoU beyond ``monitor.iou_drop`` compared with what the
model scored when it was trained (or, failing that, its first evaluation) means the world
changed in a way the imagery features may not show: concept drift.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from satseg.io.atomic import atomic_path, write_text

COLUMNS = (
    "time",
    "model_name",
    "model_version",
    "model_run_id",
    "dataset_tag",
    "split",
    "iou",
    "dice",
    "precision",
    "recall",
    "object_f1",
    "boundary_iou",
)
METRICS = ("iou", "dice", "precision", "recall", "object_f1", "boundary_iou")  # satseg.metrics
Row = dict[str, Any]


def load_history(path: Path) -> list[Row]:
    """All rows, oldest first; metrics as floats (empty list when there is no history yet)."""
    if not path.is_file():
        return []
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    for r in rows:
        for m in METRICS:
            r[m] = float(r[m]) if r.get(m) not in (None, "") else None
    return sorted(rows, key=lambda r: r["time"])


def record_evaluation(
    path: Path,
    metrics: Mapping[str, Any],
    *,
    model_name: str,
    model_version: str | int,
    dataset_tag: str,
    split: str = "val",
    model_run_id: str = "",
    when: datetime | None = None,
) -> Row:
    """Add one evaluation; the same model version, dataset tag and split replaces its old row."""
    rows = load_history(path)
    key = (str(model_version), dataset_tag, split)
    rows = [r for r in rows if (r["model_version"], r["dataset_tag"], r["split"]) != key]
    row: Row = {
        "time": (when or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds"),
        "model_name": model_name,
        "model_version": str(model_version),
        "model_run_id": model_run_id,
        "dataset_tag": dataset_tag,
        "split": split,
        **{m: (float(metrics[m]) if metrics.get(m) is not None else None) for m in METRICS},
    }
    rows.append(row)
    rows.sort(key=lambda r: r["time"])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    write_text(path, buf.getvalue())
    return row


def evaluated(history: Sequence[Row], model_version: str | int, dataset_tag: str) -> bool:
    return any(
        r["model_version"] == str(model_version) and r["dataset_tag"] == dataset_tag
        for r in history
    )


def concept_drift(
    history: Sequence[Row],
    latest: Row,
    *,
    iou_drop: float,
    baseline_iou: float | None = None,
) -> dict[str, Any]:
    """Compare ``latest`` IoU with the model's baseline; drift when it fell by more than iou_drop."""
    base_from = "training"
    if baseline_iou is None:
        earlier = [
            r
            for r in history
            if r["model_version"] == latest["model_version"]
            and r["dataset_tag"] != latest["dataset_tag"]
            and r["time"] <= latest["time"]
            and r["iou"] is not None
        ]
        baseline_iou = earlier[0]["iou"] if earlier else None
        base_from = f"evaluation on {earlier[0]['dataset_tag']}" if earlier else "none"
    iou = latest.get("iou")
    drop = 0.0 if baseline_iou is None or iou is None else float(baseline_iou) - float(iou)
    return {
        "concept_drift": drop > iou_drop,
        "iou": iou,
        "baseline_iou": baseline_iou,
        "baseline": base_from,
        "drop": round(drop, 6),
        "iou_drop": iou_drop,
        "model_version": latest["model_version"],
        "dataset_tag": latest["dataset_tag"],
    }


def plot_history(history: Sequence[Row], out: Path) -> Path:
    """PNG of IoU and Dice per evaluation over time, points labelled with the model version."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    times = [float(mdates.date2num(datetime.fromisoformat(r["time"]))) for r in history]
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    try:
        for m, style in (("iou", "o-"), ("dice", "s--")):
            ax.plot(times, [r[m] for r in history], style, label=m.upper())
        for t, r in zip(times, history, strict=True):
            ax.annotate(
                f"v{r['model_version']}\n{r['dataset_tag']}",
                (t, r["iou"] or 0.0),
                textcoords="offset points",
                xytext=(0, 8),
                ha="center",
                fontsize=7,
            )
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("score (val)")
        ax.set_title("champion performance on new labelled data")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left")
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d %H:%M"))
        fig.autofmt_xdate()
        fig.tight_layout()
        with atomic_path(out, suffix=".png") as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return out
