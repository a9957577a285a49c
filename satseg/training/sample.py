"""Small processed datasets in the ingest layout, generated from synthetic scenes.

Tests, the benchmark and quick experiments need a dataset version without running ingest;
this writes exactly what ingest writes (``{train,val}/{images,masks}/<id>.png`` and
``manifest.json``), so training code cannot tell the difference.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from satseg.io.atomic import write_bytes, write_json
from satseg.synthetic import SceneStyle, _index, building_polygons, render_window


def _png(path: Path, arr: np.ndarray) -> None:
    import cv2

    img = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR) if arr.ndim == 3 else arr
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError(f"could not encode {path}")
    write_bytes(path, buf.tobytes())


def write_sample_dataset(
    out_dir: Path | str,
    *,
    dataset: str = "synthetic",
    tag: str | None = None,
    n_train: int = 8,
    n_val: int = 4,
    size: int = 64,
    seed: int = 0,
    style: SceneStyle = SceneStyle(),
    ingest_ids: bool = False,
) -> Path:
    """Cut ``n_train + n_val`` patches of ``size`` px from one generated scene; returns out_dir.

    With ``ingest_ids`` the patches are named as ingest names them (``<scene>_rNNNNN_cNNNNN``,
    pixel offsets in the scene), so ``sampler: scenes`` can put the scene back together.
    """
    out = Path(out_dir)
    for split in ("train", "val"):  # a rewrite replaces the dataset, as ingest does
        shutil.rmtree(out / split, ignore_errors=True)
    n = n_train + n_val
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    width, height = cols * size, rows * size
    polys = building_polygons(width, height, seed, style.building_density)
    rgb, mask = render_window(0, 0, height, width, polys, _index(polys), seed, style)
    for k in range(n):
        r, c = divmod(k, cols)
        split = "train" if k < n_train else "val"
        pid = (
            f"{dataset}_{seed}_r{r * size:05d}_c{c * size:05d}"
            if ingest_ids
            else f"{dataset}_{seed}_{r:03d}_{c:03d}"
        )
        win = np.s_[r * size : (r + 1) * size, c * size : (c + 1) * size]
        _png(out / split / "images" / f"{pid}.png", np.ascontiguousarray(rgb[win]))
        _png(out / split / "masks" / f"{pid}.png", np.ascontiguousarray(mask[win] * 255))
    write_json(
        out / "manifest.json",
        {
            "dataset": dataset,
            "tag": tag or f"{dataset}-v1",
            "counts": {"train": n_train, "val": n_val},
            "patch_size": size,
            "seed": seed,
        },
    )
    return out
