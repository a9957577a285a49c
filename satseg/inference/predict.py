"""Whole-scene inference: sliding window -> blended probability -> COGs, GeoJSON, STAC.

One streaming pass: row strips are read and scaled exactly as in training, cut into
overlapping tiles, predicted in batches, blended in a strip buffer, and the finished rows go
straight to the probability COG, the mask post-processor, the polygon writer and the
quicklook decimator. Nothing is held for the whole scene, so peak memory depends on the
scene width and the batch, not on the scene size.

A multi-class model (its class table in ``model_info["classes"]``, from the registered
version; see :class:`satseg.classes.ModelClasses`) streams the same way with n softmax
channels: ``classes.tif`` (uint8 argmax class, 255 nodata, colour table, category names and
a raster attribute table in ``classes.tif.aux.xml``), ``prob.tif`` with one band per class,
the uncertainty as class entropy, per-class polygons (``class``, ``class_index``,
``area_m2``), a quicklook with a legend, ``classification:classes`` in the STAC item and
per-class areas in the summary. Without a table (every model registered before) it is
binary, exactly as before.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from satseg import __version__
from satseg.classes import BINARY_NAME, IGNORE, ModelClasses
from satseg.inference.blend import Band, StripBlender, column_bands
from satseg.inference.cog import CogWriter
from satseg.inference.engine import configure_tf
from satseg.inference.outputs import (
    Decimator,
    stac_item,
    write_class_quicklook,
    write_quicklook,
)
from satseg.inference.params import (
    FALLBACK_POSTPROCESS,
    OUTPUT_NAMES,
    SUMMARY,
    PredictParams,
    error_path,
    output_paths,
    scene_name,
)
from satseg.inference.pipeline import Follower, Worker, prefetch, trim_heap
from satseg.inference.postprocess import NODATA, MaskStream, threshold_u8
from satseg.inference.runtime import predictor_for
from satseg.inference.sink import ClassRowSink, RowSink
from satseg.inference.tta import TTA
from satseg.inference.vectorize import PolygonWriter
from satseg.io.atomic import sha256_file, write_json
from satseg.io.gdal import gdal_env
from satseg.io.raster import RasterError, to_model_input
from satseg.io.scene import SceneReader, open_scene
from satseg.io.sniff import PixelLimits

log = logging.getLogger(__name__)


def predict_scene(
    model: Any,
    scene_path: Path | str,
    out_dir: Path | str,
    *,
    params: PredictParams | None = None,
    model_info: dict[str, Any] | None = None,
    force: bool = False,
    window: str = "hann",
    pipeline: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """Predict one scene into ``out_dir``; return the summary (paths, counts, timings).

    ``model`` is a Keras model (or a ``Predictor``); ``overrides`` (tile, overlap, threshold,
    ...) replace fields of ``params``. ``window="uniform"`` (plain averaging) and
    ``pipeline=False`` (no reader/writer threads) exist for comparisons. Bad input raises ``RasterError`` after writing
    ``<scene>.error.json`` into ``out_dir``. With the same input, model version and
    parameters as an existing complete output, nothing is recomputed (``status: skipped``).
    """
    configure_tf()
    info = dict(model_info or {})
    p, info["postprocess_from"] = _for_model(
        _with_overrides(params or PredictParams(), overrides), info
    )
    src_path = Path(scene_path)
    out = Path(out_dir)
    scene = scene_name(src_path)
    t0 = time.perf_counter()
    # A small GDAL block cache for the whole scene: decoded blocks must not pile up with
    # scene size (the default is 5 % of RAM); it also bounds make_scaler's sample read.
    with gdal_env():
        try:
            limits = PixelLimits(p.max_megapixels, p.max_plain_megapixels)
            source = open_scene(
                src_path, list(p.bands) if p.bands else None, p.scale, limits=limits
            )
        except RasterError as err:
            _write_error(out, scene, src_path, err)
            raise
        with source:
            key = {
                "source_sha256": sha256_file(src_path),
                "model": {k: info.get(k) for k in ("name", "version", "run_id")},
                "params": p.key(),
            }
            previous = _previous(out, key)
            if previous is not None and not force:
                log.info(
                    "%s: outputs for model %s already present, skipped", scene, info.get("version")
                )
                return {**previous, "status": "skipped"}
            summary = _run_reporting_bad_input(
                src_path,
                out,
                scene,
                lambda: _run(model, source, out, scene, p, info, window, pipeline),
            )
    summary.update(key=key, seconds=round(time.perf_counter() - t0, 2))
    summary["mpx_per_s"] = round(source.width * source.height / 1e6 / summary["seconds"], 3)
    error_path(out, scene).unlink(missing_ok=True)
    write_json(out / SUMMARY, summary)
    if "class_areas" in summary:
        shares = ", ".join(f"{c['name']} {100 * c['share']:.1f}%" for c in summary["class_areas"])
        log.info(
            "%s: %d polygons, %s, %.1f s (%.2f Mpx/s) -> %s",
            *(scene, summary["polygons"], shares, summary["seconds"], summary["mpx_per_s"], out),
        )
        return summary
    log.info(
        "%s: %d polygons, %.1f%% building, %.1f s (%.2f Mpx/s) -> %s",
        *(scene, summary["polygons"], 100 * summary["positive_fraction"]),
        *(summary["seconds"], summary["mpx_per_s"], out),
    )
    return summary


def _with_overrides(p: PredictParams, overrides: dict[str, Any]) -> PredictParams:
    """``p`` with the non-None ``overrides`` applied, validated."""
    if overrides:
        p = PredictParams(**{**p.__dict__, **{k: v for k, v in overrides.items() if v is not None}})
    p.validate()
    return p


def _run_reporting_bad_input(
    src_path: Path, out: Path, scene: str, run: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """``run()``; pixels that fail to decode mid-scene become a RasterError with its error file."""
    from rasterio.errors import RasterioError

    try:
        return run()
    except RasterError as err:
        _write_error(out, scene, src_path, err)
        raise
    except RasterioError as err:
        bad = RasterError(f"{src_path.name} could not be decoded: {err}", "decode")
        _write_error(out, scene, src_path, bad)
        raise bad from err


def relocate_source(out_dir: Path, new_source: Path) -> None:
    """Point the STAC item and summary at the input's new home (after archiving it)."""
    import json

    item_path, summary_path = out_dir / OUTPUT_NAMES["stac"], out_dir / SUMMARY
    if item_path.is_file():
        item = json.loads(item_path.read_text())
        item["assets"]["source"]["href"] = new_source.resolve().as_uri()
        write_json(item_path, item)
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        summary["source"] = str(new_source)
        write_json(summary_path, summary)


def _previous(out: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    import json

    f = out / SUMMARY
    if not f.is_file():
        return None
    try:
        old = json.loads(f.read_text())
    except ValueError:
        return None
    if old.get("key") != key or old.get("status") != "ok":
        return None
    if not all(Path(v).is_file() for v in old.get("outputs", {}).values()):
        return None
    return dict(old)


def _write_error(out: Path, scene: str, src: Path, err: RasterError) -> None:
    log.error("%s: %s [%s]", scene, err, err.check)
    write_json(
        error_path(out, scene),
        {
            "scene": scene,
            "source": str(src),
            "error": str(err),
            "check": err.check,
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
    )


def _pad(t: np.ndarray, tile: int) -> np.ndarray:
    """Pad an edge tile of a scene smaller than the tile (reflect, or edge when too thin)."""
    ph, pw = tile - t.shape[0], tile - t.shape[1]
    if t.shape[0] > ph and t.shape[1] > pw:
        return np.pad(t, ((0, ph), (0, pw), (0, 0)), mode="reflect")
    return np.pad(t, ((0, ph), (0, pw), (0, 0)), mode="edge")


@dataclass
class _Streamed:
    """What one streaming pass produced, for the summary (polygons once the writer closed)."""

    tiles: int = 0
    tiles_skipped: int = 0
    positive_px: int = 0
    valid_px: int = 0
    model_seconds: float = 0.0
    polygons: int = 0
    area_m2: float = 0.0
    class_px: list[int] | None = None  # multi-class: pixels of each class
    class_polygons: list[int] | None = None
    class_area_m2: list[float] | None = None
    timings: dict[str, float] = field(default_factory=dict)  # seconds, see ``_timings``


def _run(
    model: Any,
    source: SceneReader,
    out: Path,
    scene: str,
    p: PredictParams,
    info: dict[str, Any],
    window: str,
    pipeline: bool = True,
) -> dict[str, Any]:
    """Open the writers, stream the tiles through them, then write the quicklook, STAC and
    the summary (the writers publish their files only when the pass completes)."""
    base = predictor_for(model, p.tile, p.runtime, p.precision, info)
    predictor = TTA(base, p.tta)
    precision = getattr(base, "precision", "fp32")
    info = {**info, "runtime": base.choice.tags()}  # runtime and its reason, for outputs
    classes = ModelClasses.from_json(info.get("classes"))
    if classes.multiclass:
        return _run_classes(predictor, source, out, scene, p, info, window, pipeline, classes)
    paths = output_paths(out)
    rgb_q, mask_q = Decimator(source.width, source.height), Decimator(source.width, source.height)
    with _open_writers(paths, source, _tags(info, p, precision, source), info, p) as writers:
        done = _stream_tiles(predictor, source, p, window, pipeline, writers, rgb_q, mask_q)
        t_publish = time.perf_counter()
    done.timings["publish_s"] = time.perf_counter() - t_publish
    vec = writers[2]  # closed: polygons held back at the last chunk boundary are counted now
    done.polygons, done.area_m2 = vec.count, vec.total_area_m2
    trim_heap()
    write_quicklook(paths["quicklook"], rgb_q.image(), mask_q.image())
    return _summarise(source, out, scene, p, info, precision, paths, done)


def _run_classes(
    predictor: TTA,
    source: SceneReader,
    out: Path,
    scene: str,
    p: PredictParams,
    info: dict[str, Any],
    window: str,
    pipeline: bool,
    classes: ModelClasses,
) -> dict[str, Any]:
    """``_run`` for a multi-class model: class raster, n probability bands, per-class
    polygons, a quicklook with a legend, STAC with ``classification:classes``."""
    paths = output_paths(out, multiclass=True)
    rgb_q, cls_q = Decimator(source.width, source.height), Decimator(source.width, source.height)
    tags = {**_tags(info, p, predictor.precision, source), "classes": ",".join(classes.names)}
    with _open_writers(paths, source, tags, info, p, classes) as writers:
        done = _stream_tiles(predictor, source, p, window, pipeline, writers, rgb_q, cls_q, classes)
        t_publish = time.perf_counter()
    done.timings["publish_s"] = time.perf_counter() - t_publish
    vec = writers[2]
    done.polygons, done.area_m2 = vec.count, vec.total_area_m2
    done.class_polygons = [vec.count_by_value[i] for i in range(len(classes.names))]
    done.class_area_m2 = [vec.area_by_value[i] for i in range(len(classes.names))]
    trim_heap()
    names, rgb = list(classes.names), classes.rgb()
    write_class_quicklook(paths["quicklook"], rgb_q.image(), cls_q.image(), names, rgb)
    return _summarise(source, out, scene, p, info, predictor.precision, paths, done, classes)


def _tags(
    info: dict[str, Any], p: PredictParams, precision: str, source: SceneReader
) -> dict[str, Any]:
    """The provenance tags written into both COGs."""
    return {
        "model_name": info.get("name"),
        "model_version": info.get("version"),
        "run_id": info.get("run_id"),
        "dataset_tag": info.get("dataset_tag"),
        "threshold": p.threshold,
        "threshold_u8": threshold_u8(p.mask_rule()[0]),
        "tile": p.tile,
        "overlap": p.overlap,
        "precision": precision,
        **info.get("runtime", {}),
        "source": source.path.name,
        "software": f"satseg {__version__}",
    }


@contextlib.contextmanager
def _open_writers(
    paths: dict[str, Path],
    source: SceneReader,
    tags: dict[str, Any],
    info: dict[str, Any],
    p: PredictParams,
    classes: ModelClasses | None = None,
) -> Iterator[tuple[CogWriter, CogWriter, PolygonWriter, CogWriter]]:
    """The probability, mask and uncertainty COGs and the polygon writer, closed (published)
    together. Multi-class (``classes``): one probability band per class, and the class
    raster (colour table, category names) in place of the mask."""
    masked = source.nodata is not None
    kind = _uncertainty_kind(p)

    def cog(key: str, **kw: Any) -> CogWriter:
        kw.setdefault("tags", tags)
        W, H = source.width, source.height
        return CogWriter(paths[key], W, H, crs=source.crs, transform=source.transform, **kw)

    if classes is None:
        prob = cog("probability", with_mask=masked, description="building probability (0-255)")
        label = cog(
            "mask",
            nodata=NODATA,
            description="building mask (1 building, 0 background, 255 nodata)",
            resampling="nearest",
        )
        unc_description = UNCERTAINTY_DESCRIPTION[kind]
    else:
        names = list(classes.names)
        colormap = {i: (*c, 255) for i, c in enumerate(classes.rgb())}
        colormap[IGNORE] = (0, 0, 0, 0)
        prob = cog("probability", with_mask=masked, count=len(names), descriptions=names)
        legend = ", ".join(f"{i} {n}" for i, n in enumerate(names))
        label = cog(
            "classes",
            nodata=IGNORE,
            description=f"class index ({legend}, {IGNORE} nodata)",
            resampling="nearest",
            colormap=colormap,
            categories=names,
        )
        unc_description = CLASS_UNCERTAINTY_DESCRIPTION[kind]
    uncertainty = cog(
        "uncertainty",
        with_mask=masked,
        tags={**tags, "uncertainty": kind},
        description=unc_description,
    )
    vectors = PolygonWriter(
        paths["vectors"],
        source.width,
        source.height,
        source.crs,
        source.transform,
        _vector_props(info, p, source, classes),
        regularize=p.regularize,
        simplify_px=p.simplify_px,
        classes=classes.names if classes is not None else None,
    )
    with prob as prob_w, label as label_w, vectors as vec, uncertainty as unc_w:
        yield prob_w, label_w, vec, unc_w


def _stream_tiles(
    predictor: Any,
    source: SceneReader,
    p: PredictParams,
    window: str,
    pipeline: bool,
    writers: tuple[CogWriter, CogWriter, PolygonWriter, CogWriter],
    rgb_q: Decimator,
    mask_q: Decimator,
    classes: ModelClasses | None = None,
) -> _Streamed:
    """Read strips ahead, cut and batch tiles for the model, blend and write behind.

    A scene wider than ``p.column_band`` goes band by band (``column_bands``), each band top
    to bottom; the writer side makes the mask and polygons from whole rows, following the
    last band down the scene. ``classes`` (multi-class): the tiles carry n channels and the
    writers are the class ones (``_open_writers`` with ``classes``). Raises RasterError when
    the scene has no valid pixel (inside the writers: nothing is published).
    """
    W, H = source.width, source.height
    n = classes.channels if classes is not None else 1
    stride = p.tile - p.overlap
    bands = column_bands(W, p.tile, stride, p.column_band)
    has_nodata = source.nodata is not None

    def blenders(
        band: Band, prev: tuple[StripBlender, StripBlender | None] | None
    ) -> tuple[StripBlender, StripBlender | None]:
        carry = (prev[0].carry_out, prev[1].carry_out if prev[1] else None) if prev else (None,) * 2
        blend = StripBlender(W, H, p.tile, stride, p.batch_size, window, n, band, carry[0])
        if p.tta == "none":
            return blend, None
        return blend, StripBlender(W, H, p.tile, stride, p.batch_size, window, 1, band, carry[1])

    blender, spread = blenders(bands[0], None)
    sink: RowSink | ClassRowSink
    if classes is not None:
        sink = ClassRowSink(blender, *writers[:3], mask_q, has_nodata, writers[3], spread)
    else:
        threshold, min_area_px = p.mask_rule()
        masks = MaskStream(W, H, threshold, p.opening_px, min_area_px)
        sink = RowSink(blender, masks, *writers[:3], mask_q, has_nodata, writers[3], spread)
    sink.deferred = len(bands) > 1
    done = _Streamed()
    t0 = time.perf_counter()
    with (
        Follower(sink._catch_up, enabled=pipeline) as follower,
        Worker(sink.handle, enabled=pipeline) as behind,
    ):
        sink.follower = follower
        for k, band in enumerate(bands):
            if k:
                blender, spread = blenders(band, (blender, spread))
                behind.put(("band", blender, spread))
            _stream_band(predictor, source, p, blender, pipeline, behind, rgb_q, done)
        behind.put(("finish",))
    done.timings = _timings(time.perf_counter() - t0, done.model_seconds, behind, follower)
    done.valid_px = sink.stats["valid_px"]
    if isinstance(sink, ClassRowSink):
        assert classes is not None
        done.class_px = [int(v) for v in sink.class_px]
        if BINARY_NAME in classes.names:
            done.positive_px = done.class_px[classes.names.index(BINARY_NAME)]
    else:
        done.positive_px = sink.stats["positive_px"]
    if done.valid_px == 0:
        raise RasterError("scene has no valid pixels (all nodata)", "empty")
    return done


def _timings(
    stream_s: float, model_s: float, behind: Worker, follower: Follower
) -> dict[str, float]:
    """Where a streaming pass spent its time: ``stream_s`` (first strip read to the last row
    written), ``model_s`` inside it, the writer thread's ``writer_busy_s`` / ``writer_cpu_s``
    (blend, rasters, mask, polygons), ``waited_for_writer_s`` (the model loop stalled on a
    full writer queue) and ``writer_tail_s`` (writer work left after the last batch). With
    column bands, the whole-row work (mask, polygons) on its own thread: ``whole_rows_busy_s``
    / ``whole_rows_cpu_s``, and ``whole_rows_tail_s`` (the writer waited for it at the end)."""
    out = {
        "stream_s": stream_s,
        "model_s": model_s,
        "writer_busy_s": behind.busy_s,
        "writer_cpu_s": behind.cpu_s,
        "waited_for_writer_s": behind.blocked_s,
        "writer_tail_s": behind.drain_s,
    }
    if follower.busy_s:
        out["whole_rows_busy_s"] = follower.busy_s
        out["whole_rows_cpu_s"] = follower.cpu_s
        out["whole_rows_tail_s"] = follower.drain_s
    return out


def _stream_band(
    predictor: Any,
    source: SceneReader,
    p: PredictParams,
    blender: StripBlender,
    pipeline: bool,
    behind: Worker,
    rgb_q: Decimator,
    done: _Streamed,
) -> None:
    """One column band (the whole width when there is one) through the model, top to
    bottom. The model loop only runs the model: cutting, batching and scaling the tiles
    (``_band_work``) run a batch ahead on their own thread, so the model's threads are not
    left idle while the next batch is put together."""
    for kind, *rest in prefetch(
        _band_work(source, p, blender, rgb_q, done, pipeline), enabled=pipeline
    ):
        if kind == "batch":
            done.model_seconds += _predict_batch(predictor, rest[0], rest[1], behind)
        else:
            behind.put(rest[0])


def _band_work(
    source: SceneReader,
    p: PredictParams,
    blender: StripBlender,
    rgb_q: Decimator,
    done: _Streamed,
    pipeline: bool,
) -> Iterator[tuple[Any, ...]]:
    """The band's work in order: ``("batch", coords, x)`` (model input, scaled) and
    ``("msg", message)`` for the writer (flush points, nodata rows), from strips of the
    band's columns read ahead; every row is flushed at the end."""
    H, ys, x0 = source.height, blender.ys, blender.x0
    has_nodata = source.nodata is not None
    whole = blender.band.width == source.width

    def strip(y: int) -> tuple[np.ndarray, np.ndarray]:
        y1 = min(y + p.tile, H)
        return source.rows(y, y1) if whole else source.window(y, x0, y1 - y, blender.band.width)

    def ready(tiles: list[tuple[int, int, np.ndarray]]) -> tuple[Any, ...]:
        coords = [(y, x) for y, x, _ in tiles]
        return "batch", coords, to_model_input(np.stack([t for _, _, t in tiles]))

    batch: list[tuple[int, int, np.ndarray]] = []
    strips = ((i, y, *strip(y)) for i, y in enumerate(ys))
    for i, y, rgb, nd in prefetch(strips, enabled=pipeline):
        trim_heap()
        if batch and y - batch[0][0] > blender.reach:  # rows of skipped tiles since it
            yield ready(batch)  # started: predict it now, within the strip buffer
            batch = []
        if not batch:  # every tile above is in: finish those rows before this strip's nodata
            yield "msg", ("flush", y)  # rows arrive (they reach a tile below the buffer)
        if has_nodata:
            yield "msg", ("nodata", y, nd)
        next_y = ys[i + 1] if i + 1 < len(ys) else H
        rgb_q.push(y, rgb[: next_y - y, : blender.own], x0)
        for x in blender.xs:
            done.tiles += 1
            if not batch:
                yield "msg", ("flush", y)
            c = x - x0
            if has_nodata and nd[:, c : c + p.tile].all():
                done.tiles_skipped += 1
                continue
            t = rgb[:, c : c + p.tile]
            if t.shape[0] < p.tile or t.shape[1] < p.tile:
                t = _pad(t, p.tile)
            batch.append((y, x, t))
            if len(batch) == p.batch_size:
                yield ready(batch)
                batch = []
    if batch:
        yield ready(batch)
    yield "msg", ("flush", H)


def _summarise(
    source: SceneReader,
    out: Path,
    scene: str,
    p: PredictParams,
    info: dict[str, Any],
    precision: str,
    paths: dict[str, Path],
    done: _Streamed,
    classes: ModelClasses | None = None,
) -> dict[str, Any]:
    """Write the STAC item; return the scene's summary (multi-class: ``class_areas``)."""
    model = {k: info.get(k) for k in ("name", "version", "run_id", "dataset_tag")}
    warnings_ = list(source.warnings)
    props = {
        "satseg:model": model,
        "satseg:threshold": p.threshold,
        "satseg:tile": p.tile,
        "satseg:overlap": p.overlap,
        "satseg:min_area_px": p.min_area_px,
        "satseg:tta": p.tta,
        "satseg:uncertainty": _uncertainty_kind(p),
        "satseg:polygons": done.polygons,
        "satseg:warnings": warnings_,
        **{f"satseg:{k}": v for k, v in info.get("runtime", {}).items()},
    }
    W, H = source.width, source.height
    stac = stac_item(
        scene,
        source.path,
        paths,
        crs=source.crs,
        transform=source.transform,
        width=W,
        height=H,
        properties=props,
        classes=(list(classes.names), list(classes.colors)) if classes is not None else None,
    )
    write_json(paths["stac"], stac)
    summary = {
        "status": "ok",
        "scene": scene,
        "source": str(source.path),
        "out_dir": str(out),
        "outputs": {k: str(v) for k, v in paths.items()},
        "width": W,
        "height": H,
        "crs": source.crs.to_string() if source.crs is not None else None,
        "georeferenced": source.georeferenced,
        "model": model,
        "params": {**p.key(), "batch_size": p.batch_size, "precision": precision},
        "postprocess_from": info.get("postprocess_from"),
        "tta": p.tta,
        "uncertainty": _uncertainty_kind(p),
        **info.get("runtime", {}),
        "scaler": source.scaling,
        "tiles": done.tiles,
        "tiles_skipped_nodata": done.tiles_skipped,
        "model_seconds": round(done.model_seconds, 3),
        "timings": {k: round(v, 3) for k, v in done.timings.items()},
        "polygons": done.polygons,
        "building_area_m2": round(done.area_m2, 1) if source.georeferenced else None,
        "positive_fraction": round(done.positive_px / max(1, done.valid_px), 6),
        "warnings": warnings_,
    }
    if classes is not None:
        summary["classes"] = list(classes.names)
        summary["class_areas"] = _class_areas(source, classes, done)
        if BINARY_NAME not in classes.names:  # no building class: nothing to report as one
            del summary["building_area_m2"], summary["positive_fraction"]
        else:  # the building class's, as for a binary model
            summary["building_area_m2"] = summary["class_areas"][classes.names.index(BINARY_NAME)][
                "area_m2"
            ]
    return summary


def _class_areas(
    source: SceneReader, classes: ModelClasses, done: _Streamed
) -> list[dict[str, Any]]:
    """Per class: pixels, share of the valid pixels, polygons and area (m², from the
    polygons: planimetric in a projected CRS, geodesic otherwise; None in pixel space)."""
    assert done.class_px is not None and done.class_polygons is not None
    assert done.class_area_m2 is not None
    return [
        {
            "index": i,
            "name": name,
            "color": classes.colors[i],
            "pixels": done.class_px[i],
            "share": round(done.class_px[i] / max(1, done.valid_px), 6),
            "polygons": done.class_polygons[i],
            "area_m2": round(done.class_area_m2[i], 1) if source.georeferenced else None,
        }
        for i, name in enumerate(classes.names)
    ]


def _vector_props(
    info: dict[str, Any],
    p: PredictParams,
    source: SceneReader,
    classes: ModelClasses | None = None,
) -> dict[str, Any]:
    props: dict[str, Any] = {
        "satseg": {
            "model": {k: info.get(k) for k in ("name", "version", "run_id")},
            "threshold": p.threshold,
            "opening_px": p.opening_px,
            "min_area_px": p.min_area_px,
            "source": source.path.name,
        }
    }
    if classes is not None:  # the class raster is the argmax: no threshold or minimum area
        for k in ("threshold", "opening_px", "min_area_px"):
            del props["satseg"][k]
        props["satseg"]["classes"] = [
            {"index": i, "name": n, "color": c}
            for i, (n, c) in enumerate(zip(classes.names, classes.colors, strict=True))
        ]
    if not source.georeferenced:
        props["satseg"]["warning"] = source.warnings[0] if source.warnings else "pixel space"
    return props


def _predict_batch(
    predictor: TTA, coords: list[tuple[int, int]], x: np.ndarray, behind: Worker
) -> float:
    """Run one batch (every TTA view); hand the probabilities (and the views' spread) to the
    writer thread; return model seconds."""
    t0 = time.perf_counter()
    probs, spread = predictor.predict(x)
    dt_ = time.perf_counter() - t0
    behind.put(("add", coords, probs, spread))
    return dt_


CLASS_UNCERTAINTY_DESCRIPTION = {
    "entropy": "uncertainty: entropy over the classes / log2(n) (0-255 = 0-1)",
    "tta_variance": "uncertainty: 4 x the largest class's variance across TTA views (0-255 = 0-1)",
}
UNCERTAINTY_DESCRIPTION = {
    "entropy": "uncertainty: binary entropy of the probability (0-255 = 0-1 bit)",
    "tta_variance": "uncertainty: 4 x variance of the TTA views' probabilities (0-255 = 0-1)",
}


def _uncertainty_kind(p: PredictParams) -> str:
    return "entropy" if p.tta == "none" else "tta_variance"


def _for_model(p: PredictParams, info: dict[str, Any]) -> tuple[PredictParams, dict[str, str]]:
    """Threshold / min area left unset taken from the model; and where each came from:
    ``params`` (set by the user), ``model`` (tuned on val, stored with it) or ``fallback``
    (a model registered before tuning: the values used before)."""
    tuned = info.get("postprocess") or {}

    def origin(k: str) -> str:
        if getattr(p, k) is not None:
            return "params"
        return "model" if tuned.get(k) is not None else "fallback"

    source = {k: origin(k) for k in FALLBACK_POSTPROCESS}
    return p.for_model(tuned), source
