"""Champion performance over time: history rows, the over-time plot, concept drift.

Each evaluation of the champion on newly labelled data becomes one row (time, model version,
dataset tag, IoU, Dice, object F1, boundary IoU, ...; scores from ``satseg.metrics``). A fall in
IoU beyond ``monitor.iou_drop`` compared with what the model scored when it was trained (or,
failing that, its first evaluation) means the world changed in a way the imagery features may
not show: concept drift.

A multi-class champion's row also holds ``miou`` and one ``iou_<class>`` column per class
(``satseg.metrics.ClassScorer``); its ``iou`` / ``dice`` are then the means over the classes
(``miou`` / ``mdice``) and the object and boundary scores stay empty. The file has the fixed
:data:`COLUMNS` followed by the class columns of the rows it holds, so a binary-only history
(and every file written before classes) is exactly as before. A drop beyond ``iou_drop`` of
ANY class's IoU is concept drift too, and the result names the classes.
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
MEAN_IOU = "miou"  # multi-class rows: mean IoU over the classes (== their ``iou``)
CLASS_IOU = "iou_"  # multi-class rows: ``iou_<class>`` per class
Row = dict[str, Any]


def _is_class_column(name: str) -> bool:
    return name == MEAN_IOU or name.startswith(CLASS_IOU)


def row_classes(row: Mapping[str, Any]) -> list[str]:
    """The class names with an IoU in ``row``, in column order ([] for a binary row)."""
    return [
        k[len(CLASS_IOU) :] for k, v in row.items() if k.startswith(CLASS_IOU) and v is not None
    ]


def _float(v: Any) -> float | None:
    return float(v) if v not in (None, "") else None


def load_history(path: Path) -> list[Row]:
    """All rows, oldest first; metrics as floats (empty list when there is no history yet).

    Class columns a row does not have (binary rows, other models' classes) are absent from
    its dict, so ``row_classes`` tells which classes it was scored on.
    """
    if not path.is_file():
        return []
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    for r in rows:
        for m in METRICS:
            r[m] = _float(r.get(m))
        for k in [k for k in r if _is_class_column(k)]:
            if r[k] in (None, ""):
                del r[k]
            else:
                r[k] = float(r[k])
    return sorted(rows, key=lambda r: r["time"])


def _header(rows: Sequence[Row]) -> list[str]:
    """COLUMNS, then ``miou`` and the ``iou_<class>`` columns in order of first appearance."""
    extra: dict[str, None] = {}
    for r in rows:
        for k in r:
            if _is_class_column(k):
                extra.setdefault(k, None)
    tail = ([MEAN_IOU] if MEAN_IOU in extra else []) + [k for k in extra if k != MEAN_IOU]
    return [*COLUMNS, *tail]


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
    classes: Sequence[str] | None = None,
) -> Row:
    """Add one evaluation; the same model version, dataset tag and split replaces its old row.

    ``classes`` (a multi-class model's class names, in order): ``metrics`` are
    ``satseg.metrics.ClassScorer`` scores and the row gets ``miou`` and ``iou_<class>``, its
    ``iou`` / ``dice`` being ``miou`` / ``mdice``.
    """
    rows = load_history(path)
    key = (str(model_version), dataset_tag, split)
    rows = [r for r in rows if (r["model_version"], r["dataset_tag"], r["split"]) != key]
    if classes:
        scores = {"iou": metrics.get(MEAN_IOU), "dice": metrics.get("mdice")}
        scores[MEAN_IOU] = metrics.get(MEAN_IOU)
        scores.update({f"{CLASS_IOU}{c}": metrics.get(f"{CLASS_IOU}{c}") for c in classes})
    else:
        scores = {m: metrics.get(m) for m in METRICS}
    row: Row = {
        "time": (when or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="seconds"),
        "model_name": model_name,
        "model_version": str(model_version),
        "model_run_id": model_run_id,
        "dataset_tag": dataset_tag,
        "split": split,
        **dict.fromkeys(METRICS),
        **{k: (float(v) if v is not None else None) for k, v in scores.items()},
    }
    rows.append(row)
    rows.sort(key=lambda r: r["time"])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=_header(rows), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    write_text(path, buf.getvalue())
    return {k: v for k, v in row.items() if not (_is_class_column(k) and v is None)}


def evaluated(history: Sequence[Row], model_version: str | int, dataset_tag: str) -> bool:
    return any(
        r["model_version"] == str(model_version) and r["dataset_tag"] == dataset_tag
        for r in history
    )


def _first_earlier(history: Sequence[Row], latest: Row, column: str) -> Row | None:
    """The model's first evaluation on another dataset tag before ``latest`` with ``column``."""
    return next(
        (
            r
            for r in history
            if r["model_version"] == latest["model_version"]
            and r["dataset_tag"] != latest["dataset_tag"]
            and r["time"] <= latest["time"]
            and r.get(column) is not None
        ),
        None,
    )


def _baseline(
    history: Sequence[Row], latest: Row, column: str, known: float | None
) -> tuple[float | None, str]:
    if known is not None:
        return float(known), "training"
    first = _first_earlier(history, latest, column)
    if first is None:
        return None, "none"
    return float(first[column]), f"evaluation on {first['dataset_tag']}"


def concept_drift(
    history: Sequence[Row],
    latest: Row,
    *,
    iou_drop: float,
    baseline_iou: float | None = None,
    baseline_classes: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Compare ``latest`` IoU with the model's baseline; drift when it fell by more than iou_drop.

    A multi-class row is also compared class by class (``baseline_classes``: the class IoUs
    the model scored at training, else each class's first evaluation): any class whose IoU
    fell by more than ``iou_drop`` is drift, listed in ``drifted_classes``.
    """
    baseline_iou, base_from = _baseline(history, latest, "iou", baseline_iou)
    iou = latest.get("iou")
    drop = 0.0 if baseline_iou is None or iou is None else float(baseline_iou) - float(iou)
    per_class = []
    for name in row_classes(latest):
        col = f"{CLASS_IOU}{name}"
        base, src = _baseline(history, latest, col, (baseline_classes or {}).get(name))
        value = float(latest[col])
        d = 0.0 if base is None else base - value
        per_class.append(
            {
                "class": name,
                "iou": value,
                "baseline_iou": base,
                "baseline": src,
                "drop": round(d, 6),
                "drifted": d > iou_drop,
            }
        )
    drifted_classes = [c["class"] for c in per_class if c["drifted"]]
    return {
        "concept_drift": drop > iou_drop or bool(drifted_classes),
        "iou_drifted": drop > iou_drop,
        "iou": iou,
        "baseline_iou": baseline_iou,
        "baseline": base_from,
        "drop": round(drop, 6),
        "iou_drop": iou_drop,
        "model_version": latest["model_version"],
        "dataset_tag": latest["dataset_tag"],
        "classes": per_class,
        "drifted_classes": drifted_classes,
    }


def drift_reason(result: Mapping[str, Any]) -> str:
    """One sentence per drop beyond ``iou_drop`` in a ``concept_drift`` result ("" if none)."""
    r = result
    what = "mIoU" if r.get("classes") else "IoU"
    parts = []
    if r.get("iou_drifted", r.get("concept_drift")) and r.get("baseline_iou") is not None:
        parts.append(
            f"champion v{r['model_version']} {what} {r['iou']:.3f} on {r['dataset_tag']} vs "
            f"{r['baseline_iou']:.3f} ({r['baseline']}): drop {r['drop']:.3f} > {r['iou_drop']}"
        )
    for c in r.get("classes") or []:
        if c["drifted"]:
            parts.append(
                f"champion v{r['model_version']} IoU of class {c['class']!r} {c['iou']:.3f} on "
                f"{r['dataset_tag']} vs {c['baseline_iou']:.3f} ({c['baseline']}): "
                f"drop {c['drop']:.3f} > {r['iou_drop']}"
            )
    return "; ".join(parts)


def plot_history(
    history: Sequence[Row], out: Path, colors: Mapping[str, str] | None = None
) -> Path:
    """PNG of IoU and Dice per evaluation over time, points labelled with the model version.

    When rows have class IoUs (multi-class champions), each class gets its own thinner line
    (in ``colors[class]`` when given) and the IoU / Dice lines are the class means.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    times = [float(mdates.date2num(datetime.fromisoformat(r["time"]))) for r in history]
    classes = list(dict.fromkeys(c for r in history for c in row_classes(r)))
    nan = float("nan")
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    try:
        labels = ("IoU / mIoU", "Dice / mDice") if classes else ("IOU", "DICE")
        for m, style, label in zip(("iou", "dice"), ("o-", "s--"), labels, strict=True):
            values = [nan if r[m] is None else r[m] for r in history]
            ax.plot(times, values, style, label=label)
        for name in classes:
            values = [r.get(f"{CLASS_IOU}{name}", nan) for r in history]
            color = colors.get(name) if colors else None
            ax.plot(times, values, ".:", linewidth=1, label=f"IoU {name}", color=color)
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
        ax.legend(loc="lower left", fontsize=7 if classes else None, ncol=2 if classes else 1)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d %H:%M"))
        fig.autofmt_xdate()
        fig.tight_layout()
        with atomic_path(out, suffix=".png") as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return out
