"""One accepted pair -> its scene cache: validated labels, then patches written in windows.

The cache (``processed/.scenes/<dataset>/<scene>/``) holds the scene's patches, per-patch
foreground/nodata shares, drift features and band histograms. Datasets are assembled from
these caches (``satseg.preprocess.dataset``), so adding a scene never re-reads the others.
The cache appears by one directory rename: a crash mid-scene leaves only a temp folder.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from satseg.classes import ClassTable
from satseg.config import Settings
from satseg.ingest.errors import IngestError
from satseg.ingest.labels import load_labels
from satseg.ingest.leftovers import tmp_scene_dir
from satseg.io.atomic import write_json
from satseg.io.mask import LabelRasterError, MaskReader
from satseg.io.raster import RasterError
from satseg.io.scene import SceneReader, open_scene
from satseg.io.sniff import PixelLimits
from satseg.preprocess.dataset import scene_dir, scenes_root
from satseg.preprocess.masks import PolygonSet
from satseg.preprocess.patches import PatchParams, patch_scene


def scene_params(settings: Settings) -> dict[str, Any]:
    """The parameters a scene cache depends on (a change re-patches from raw/)."""
    params = settings.params()
    ing = params.ingest
    pp = PatchParams.from_params(params.preprocess)
    return {
        "bands": ing.bands,
        "scale": ing.scale,
        "labels": ing.labels,
        "tolerance_px": ing.tolerance_px,
        "patch": asdict(pp),
        **_class_params(ing),
    }


def _class_params(ing: Any) -> dict[str, Any]:
    """The class table's part of the scene parameters (absent for a binary dataset, so the
    caches of binary datasets made before class tables existed stay valid)."""
    if ing.classes is None:
        return {}
    return {
        "classes": [c.model_dump() for c in ing.classes],
        "unlabeled": ing.unlabeled,
        "unknown_label": ing.unknown_label,
        "label_property": ing.label_property,
    }


def _open_labels(
    annotation: Path,
    kind: str,
    source: SceneReader,
    p: dict[str, Any],
    table: ClassTable | None,
    limits: PixelLimits,
    name: str | None,
) -> tuple[PolygonSet | MaskReader, dict[str, Any]]:
    if kind == "mask":
        lut = None if table is None else table.value_lut()
        mask = MaskReader(annotation, limits=limits, name=name, lut=lut)
        try:
            mask.check_grid(source)
        except LabelRasterError:
            mask.close()
            raise
        return mask, {"kind": "mask"}
    labels = load_labels(
        annotation,
        source,
        classes=p["labels"],
        table=table,
        label_property=p.get("label_property"),
        tolerance_px=p["tolerance_px"],
    )
    return PolygonSet.from_geometries(labels.geometries, labels.values), labels.summary()


def _no_patches(source: SceneReader, pp: PatchParams, patched: Any) -> str:
    """Why a scene gave no patch: too small for one, or every patch over the nodata limit."""
    size, P = f"{source.width}x{source.height}", pp.patch_size
    if source.width < P or source.height < P:
        why = (
            f"smaller than one {P}x{P} patch (preprocess.patch_size) in "
            f"{'width' if source.width < P else 'height'}: each patch would be mostly padding"
        )
    else:
        why = (
            f"all {patched.dropped_nodata} patches have more than {pp.nodata_max:.0%} nodata "
            "(preprocess.nodata_max)"
        )
    return f"scene yields no usable patch: {size} px, {why}"


def _patch(
    source: Any,
    labels: Any,
    tmp: Path,
    scene: str,
    p: dict[str, Any],
    table: ClassTable | None,
    workers: int | None,
    settings: Settings,
) -> Any:
    """Cut the patches into ``tmp``; RasterError ``no_patches`` when none is usable."""
    params = PatchParams(**p["patch"])
    patched = patch_scene(
        source,
        labels,
        tmp,
        scene,
        params,
        workers=workers,
        show_progress=settings.log_progress,
        table=table,
    )
    if isinstance(labels, MaskReader):
        labels.close()
    if not patched.patches:
        raise RasterError(_no_patches(source, params, patched), "no_patches")
    return patched


def build_scene(
    settings: Settings,
    dataset: str,
    scene: str,
    image: Path,
    annotation: Path,
    kind: str,
    *,
    record: dict[str, Any],
    workers: int | None = None,
    image_name: str | None = None,
    annotation_name: str | None = None,
) -> dict[str, Any]:
    """Validate and patch one pair into its scene cache; raises IngestError on bad input.

    ``image_name``/``annotation_name`` are the files' names when the paths do not carry them
    (``/proc/self/fd/<n>`` of a file opened once): the format's suffix check and the messages
    use them.
    """
    p = scene_params(settings)
    pre = settings.params().preprocess
    limits = PixelLimits.from_params(settings.params().ingest)
    table = ClassTable.from_params(settings.params().ingest)  # p["classes"], as a table
    try:
        source = open_scene(image, p["bands"], p["scale"], limits=limits, name=image_name)
    except RasterError as e:
        raise IngestError(str(e), e.check, "image") from e
    tmp = tmp_scene_dir(scenes_root(settings, dataset), scene)
    try:
        described = source.describe()
        labels, label_info = _open_labels(
            annotation, kind, source, p, table, limits, annotation_name
        )
        n = workers or pre.workers or None
        patched = _patch(source, labels, tmp, scene, p, table, n, settings)
    except LabelRasterError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise IngestError(str(e), e.check, "annotation") from e
    except RasterError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise IngestError(str(e), e.check, "image") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        source.close()
    index = {
        **record,
        "scene": scene,
        "dataset": dataset,
        "source": described,
        "labels": label_info,
        "params": p,
        "summary": patched.summary(),
        "patches": patched.patches,
        "features": patched.features,
        "hist": patched.hist.tolist(),
    }
    write_json(tmp / "scene.json", index, compact=True)  # one record per patch: machine-read
    final = scene_dir(settings, dataset, scene)
    if final.exists():  # a retry after a crash between this rename and the raw/ move
        shutil.rmtree(final)
    tmp.rename(final)
    return index
