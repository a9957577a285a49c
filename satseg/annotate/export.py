"""Export the most uncertain windows of predicted scenes as labelling tasks.

A task is ``annotate/<dataset>/<task>.tif`` (GeoTIFF with the crop's CRS and transform; PNG
for a scene in pixel space) and ``<task>.json`` (LabelMe, the predicted polygons in crop
pixel coordinates, ``imagePath`` = the crop, and a ``satseg_task`` key naming the source
scene, the window, the model version and the score). ``tasks.json`` lists the dataset's tasks
ranked by score. ``<task>`` is ``<scene>-r<row>-c<col>``: the same window of the same scene is
exported once, so a re-run adds only new windows (idempotent); its name holds no ``__``, so a
task dropped at the top of the inbox is not mistaken for ``<dataset>__<scene>``.

The dataset is the one the predicting model was trained on (its dataset tag), so corrected
tasks go back to the data that model learns from; ``dataset=`` overrides it.
"""

from __future__ import annotations

import heapq
import json
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from satseg.annotate.uncertainty import WindowScore, score_windows
from satseg.config import Settings
from satseg.errors import NothingToDo
from satseg.io.atomic import atomic_path, write_json
from satseg.io.gdal import gdal_context
from satseg.vocab import (
    ANNOTATION_TASK_KEY,
    DEFAULT_DATASET,
    MAX_NAME_LEN,
    PREDICTED_LABEL,
    check_dataset_name,
    is_safe_name,
    is_tag,
    parse_tag,
)

log = logging.getLogger(__name__)

INDEX = "tasks.json"
MASK_COG = "mask.tif"
SUMMARY = "summary.json"
Candidate = tuple[float, int, WindowScore]  # (score, scene index, window): a heap entry


def annotate_root(settings: Settings, dataset: str) -> Path:
    """``SATSEG_HOME/annotate/<dataset>/``: a dataset's open labelling tasks."""
    return settings.home / "annotate" / check_dataset_name(dataset)


def task_id(scene: str, w: WindowScore) -> str:
    """``<scene>-r<row>-c<col>``: safe, unique per window, at most 128 characters."""
    tail = f"-r{w.row}-c{w.col}"
    return scene.replace("__", "_")[: MAX_NAME_LEN - len(tail) - 5] + tail


def read_index(settings: Settings, dataset: str) -> dict[str, Any]:
    path = annotate_root(settings, dataset) / INDEX
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        return {"dataset": dataset, "tasks": {}}


def _dataset_of(summary: dict[str, Any]) -> str:
    tag = (summary.get("model") or {}).get("dataset_tag")
    return parse_tag(tag)[0] if tag and is_tag(tag) else DEFAULT_DATASET


def prediction_dirs(settings: Settings, scenes: Iterable[str] | None) -> list[Path]:
    """Output folders of finished predictions: of ``scenes`` (names or paths), else all."""
    root = settings.predictions
    if scenes is None:
        found = sorted(p.parent for p in root.glob(f"*/{SUMMARY}"))
    else:
        found = [root / Path(s).stem for s in scenes if is_safe_name(Path(s).stem)]
    return [d for d in found if (d / SUMMARY).is_file() and (d / MASK_COG).is_file()]


def _summary(out_dir: Path) -> dict[str, Any]:
    return dict(json.loads((out_dir / SUMMARY).read_text()))


def export_tasks(
    settings: Settings,
    scenes: Iterable[str] | None = None,
    *,
    dataset: str | None = None,
    budget: int | None = None,
) -> dict[str, Any]:
    """Write the ``budget`` most uncertain new windows of ``scenes``' predictions as tasks.

    Returns what was exported (task ids, scores) and how many windows were looked at.
    """
    p = settings.params().annotate
    budget = p.budget if budget is None else budget
    dirs = prediction_dirs(settings, scenes)
    summaries = [_summary(d) for d in dirs]
    datasets = [check_dataset_name(dataset) if dataset else _dataset_of(s) for s in summaries]
    known = {ds: set(read_index(settings, ds)["tasks"]) for ds in set(datasets)}
    top: list[Candidate] = []
    looked = 0
    for i, (out_dir, ds) in enumerate(zip(dirs, datasets, strict=True)):
        for w in score_windows(out_dir, p.window_px):
            looked += 1
            if w.valid < p.min_valid or w.score < p.min_uncertainty or budget <= 0:
                continue
            if task_id(out_dir.name, w) in known[ds]:
                continue
            entry = (w.score, i, w)
            if len(top) < budget:
                heapq.heappush(top, entry)
            elif entry[0] > top[0][0]:
                heapq.heapreplace(top, entry)
    chosen = sorted(top, key=lambda e: (-e[0], e[1], e[2].row, e[2].col))
    written = [write_task(settings, datasets[i], dirs[i], summaries[i], w) for _, i, w in chosen]
    for ds in sorted({t["dataset"] for t in written}):
        _update_index(settings, ds, [t for t in written if t["dataset"] == ds])
    log.info(
        "annotation: %d task(s) from %d window(s) of %d scene(s)", len(written), looked, len(dirs)
    )
    return {
        "exported": [
            {"task": t["task"], "dataset": t["dataset"], "score": t["score"]} for t in written
        ],
        "windows": looked,
        "scenes": [d.name for d in dirs],
        "budget": budget,
    }


def export_for_run(settings: Settings, scenes: list[str]) -> dict[str, Any]:
    """The ``satseg_predict`` DAG's last task: tasks from the scenes this run predicted."""
    if not scenes:
        raise NothingToDo("no scene was predicted: no annotation tasks")
    if settings.params().annotate.budget == 0:
        raise NothingToDo("annotate.budget is 0: annotation tasks are off")
    return export_tasks(settings, scenes)


def _update_index(settings: Settings, dataset: str, new: list[dict[str, Any]]) -> None:
    index = read_index(settings, dataset)
    tasks = dict(index["tasks"])
    tasks.update({t["task"]: t for t in new})
    ranked = sorted(tasks.values(), key=lambda t: (-t["score"], t["task"]))
    for rank, t in enumerate(ranked, 1):
        t["rank"] = rank
    write_json(annotate_root(settings, dataset) / INDEX, {"dataset": dataset, "tasks": tasks})


def write_task(
    settings: Settings, dataset: str, out_dir: Path, summary: dict[str, Any], w: WindowScore
) -> dict[str, Any]:
    """The crop and its pre-filled LabelMe file for window ``w``; returns the task record."""
    from satseg.io.scene import open_scene
    from satseg.io.sniff import PixelLimits

    tid = task_id(out_dir.name, w)
    folder = annotate_root(settings, dataset)
    prm = settings.params()
    pred = prm.resolved_predict()
    bands = list(pred.bands) if pred.bands else None
    limits = PixelLimits.from_params(prm.ingest)
    with open_scene(summary["source"], bands, pred.scale or "percentile", limits=limits) as src:
        rgb, nodata = src.window(w.row, w.col, w.height, w.width)
        georef = src.georeferenced
        image = folder / f"{tid}{'.tif' if georef else '.png'}"
        _write_crop(image, rgb, nodata, src if georef else None, w)
    polygons = mask_polygons(out_dir / MASK_COG, w)
    task = {
        "task": tid,
        "dataset": dataset,
        "source_scene": out_dir.name,
        "source": str(summary["source"]),
        "window": {"row": w.row, "col": w.col, "height": w.height, "width": w.width},
        "score": round(w.score, 6),
        "valid": round(w.valid, 4),
        "model_version": (summary.get("model") or {}).get("version"),
        "georeferenced": georef,
        "image": image.name,
        "labels": f"{tid}.json",
        "polygons": len(polygons),
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    doc = labelme(polygons, image.name, w.width, w.height)
    doc[ANNOTATION_TASK_KEY] = {k: task[k] for k in ("task", "source_scene", "model_version")}
    doc[ANNOTATION_TASK_KEY].update(window=task["window"], score=task["score"])
    write_json(folder / f"{tid}.json", doc)
    return task


def _write_crop(path: Path, rgb: np.ndarray, nodata: np.ndarray, src: Any, w: WindowScore) -> None:
    """GeoTIFF with the window's transform and the scene's CRS, or PNG in pixel space."""
    with atomic_path(path) as tmp:
        if src is None:
            import cv2

            if not cv2.imwrite(str(tmp), np.ascontiguousarray(rgb[..., ::-1])):
                raise OSError(f"could not write {path}")
            return
        import rasterio
        from rasterio.windows import Window, transform

        profile = {
            "driver": "GTiff",
            "width": w.width,
            "height": w.height,
            "count": 3,
            "dtype": "uint8",
            "crs": src.crs,
            "transform": transform(Window(w.col, w.row, w.width, w.height), src.transform),
            "compress": "deflate",
        }
        data = np.moveaxis(rgb, -1, 0).copy()
        if nodata.any():
            profile["nodata"] = 0
            data[:, nodata] = 0
        with gdal_context(), rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data)


def mask_polygons(mask_path: Path, w: WindowScore) -> list[list[list[float]]]:
    """The predicted polygons of window ``w`` (outer rings, crop pixel coordinates)."""
    import rasterio
    from rasterio.features import shapes
    from rasterio.windows import Window
    from shapely.geometry import shape

    with gdal_context(), rasterio.open(mask_path) as src:
        mask = src.read(1, window=Window(w.col, w.row, w.width, w.height))
    fg = (mask == 1).astype(np.uint8)
    out = []
    for geom, _ in shapes(fg, mask=fg.astype(bool), connectivity=4):
        ring = shape(geom).exterior.simplify(0.5, preserve_topology=True)
        points = [[round(x, 2), round(y, 2)] for x, y in list(ring.coords)[:-1]]
        if len(points) >= 3:
            out.append(points)
    return out


def labelme(
    polygons: list[list[list[float]]], image: str, width: int, height: int
) -> dict[str, Any]:
    """A LabelMe 5 document with ``polygons`` as ``PREDICTED_LABEL`` shapes."""
    shapes: list[dict[str, Any]] = [
        {
            "label": PREDICTED_LABEL,
            "points": pts,
            "group_id": None,
            "description": "predicted",
            "shape_type": "polygon",
            "flags": {},
        }
        for pts in polygons
    ]
    return {
        "version": "5.2.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": image,
        "imageData": None,
        "imageHeight": height,
        "imageWidth": width,
    }
