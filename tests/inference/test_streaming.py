"""The streaming pieces give the same answer as whole-array processing, in bounded memory."""

from __future__ import annotations

import itertools
import json

import cv2
import numpy as np
import pytest
import shapely
from affine import Affine
from rasterio.features import rasterize

from satseg.inference.blend import StripBlender, column_bands, positions, weight_window
from satseg.inference.postprocess import NODATA, MaskStream, threshold_u8, to_u8
from satseg.inference.vectorize import PolygonWriter


@pytest.mark.parametrize(
    ("length", "tile", "stride"),
    [(1000, 256, 192), (256, 256, 192), (100, 256, 192), (700, 64, 48)],
)
def test_positions_cover_everything_once_flush(length: int, tile: int, stride: int) -> None:
    pos = positions(length, tile, stride)
    covered = np.zeros(length, int)
    for p in pos:
        covered[p : p + tile] += 1
    assert covered.min() >= 1
    assert pos[0] == 0 and pos == sorted(set(pos))
    if length > tile:
        assert pos[-1] + tile == length and np.diff(pos).max() <= stride


def test_window_is_smooth_positive_and_symmetric() -> None:
    w = weight_window(64)
    assert w.min() > 0 and w.max() <= 1.0
    np.testing.assert_allclose(w, w.T)
    np.testing.assert_allclose(w, w[::-1, ::-1], rtol=1e-6)
    assert w[32, 32] > 100 * w[0, 32]  # edges count, but far less than the centre


def _blend(field: np.ndarray, tile: int, overlap: int, batch: int) -> tuple[np.ndarray, int]:
    """Blend tiles cut from ``field`` through StripBlender in the order predict uses."""
    h, w = field.shape
    stride = tile - overlap
    xs, ys = positions(w, tile, stride), positions(h, tile, stride)
    b = StripBlender(w, h, tile, stride, batch)
    out = np.full((h, w), np.nan, np.float32)
    pending: list[tuple[int, int]] = []

    def take(rows) -> None:
        for r0, prob, valid in rows:
            assert valid.all()  # no nodata was set
            assert np.isnan(out[r0 : r0 + prob.shape[0]]).all(), "row emitted twice"
            out[r0 : r0 + prob.shape[0]] = prob

    for y in ys:
        for x in xs:
            if not pending:
                take(b.flush(y))
            pending.append((y, x))
            if len(pending) == batch:
                for yy, xx in pending:
                    t = np.zeros((tile, tile), np.float32)
                    src = field[yy : yy + tile, xx : xx + tile]
                    t[: src.shape[0], : src.shape[1]] = src
                    b.add(yy, xx, t)
                pending = []
    for yy, xx in pending:
        t = np.zeros((tile, tile), np.float32)
        src = field[yy : yy + tile, xx : xx + tile]
        t[: src.shape[0], : src.shape[1]] = src
        b.add(yy, xx, t)
    take(b.flush(h))
    return out, b.cap


@pytest.mark.parametrize(("h", "w", "batch"), [(530, 610, 8), (90, 700, 3), (1000, 40, 8)])
def test_blender_reconstructs_consistent_predictions(h: int, w: int, batch: int) -> None:
    # When every tile agrees with a global field, blending must return it exactly.
    rng = np.random.default_rng(0)
    field = rng.random((h, w), dtype=np.float32)
    out, _ = _blend(field, 64, 16, batch)
    assert not np.isnan(out).any(), "some rows never emitted"
    np.testing.assert_allclose(out, field, atol=1e-5)


def test_blender_memory_does_not_grow_with_height() -> None:
    field = np.zeros((2000, 300), np.float32)
    _, cap_tall = _blend(field, 64, 16, 8)
    _, cap_short = _blend(field[:200], 64, 16, 8)
    assert cap_tall == cap_short < 400


def _whole(prob_u8: np.ndarray, nodata: np.ndarray, thr: float, k: int, area: int) -> np.ndarray:
    b = (prob_u8 >= threshold_u8(thr)).astype(np.uint8)
    b[nodata] = 0
    if k > 1:
        b = cv2.morphologyEx(
            b, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        )
    _, lab, stats, _ = cv2.connectedComponentsWithStats(b, connectivity=4)
    small = stats[:, cv2.CC_STAT_AREA] < area
    small[0] = False
    b[small[lab]] = 0
    b[nodata] = NODATA
    return b


def _random_prob(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.random((h, w)).astype(np.float32)
    # blobs of all sizes, incl. long thin ones that cross many chunks
    blobs = cv2.GaussianBlur(noise, (0, 0), 3)
    blobs = (blobs - blobs.min()) / (blobs.max() - blobs.min())
    blobs[:, 100:103] = 1.0
    return to_u8(blobs)


@pytest.mark.parametrize(
    ("k", "area", "push"), [(3, 16, 37), (5, 40, 200), (0, 0, 64), (3, 16, 300)]
)
def test_mask_stream_equals_whole_scene(k: int, area: int, push: int) -> None:
    h, w = 900, 160
    prob = _random_prob(h, w, k + area)
    nodata = np.zeros((h, w), bool)
    nodata[:, :12] = True
    want = _whole(prob, nodata, 0.5, k, area)
    ms = MaskStream(w, h, 0.5, k, area, chunk=64)
    got = np.full((h, w), 77, np.uint8)
    max_rows = 0
    for r0 in range(0, h, push):
        rows = slice(r0, min(h, r0 + push))
        for m0, m in ms.push(r0, prob[rows], nodata[rows]):
            got[m0 : m0 + m.shape[0]] = m
        max_rows = max(max_rows, ms._bin.shape[0])
    for m0, m in ms.finish():
        got[m0 : m0 + m.shape[0]] = m
    assert (want == 1).sum() > 500  # the test scene really has buildings and small specks
    np.testing.assert_array_equal(got, want)
    assert max_rows <= 64 + 2 * ms.halo + push  # bounded by chunk + halo, not scene height


def test_mask_stream_rejects_out_of_order_rows() -> None:
    ms = MaskStream(10, 10, 0.5, 3, 4)
    with pytest.raises(ValueError, match="in order"):
        list(ms.push(5, np.zeros((2, 10), np.uint8), np.zeros((2, 10), bool)))


def test_polygons_streamed_in_chunks_are_whole(tmp_path) -> None:
    h, w = 500, 200
    mask = _whole(_random_prob(h, w, 3), np.zeros((h, w), bool), 0.5, 3, 16)
    n_comp = cv2.connectedComponents((mask == 1).astype(np.uint8), connectivity=4)[0] - 1
    path = tmp_path / "p.geojson"
    with PolygonWriter(path, w, h, None, Affine.identity()) as pw:
        for r0 in range(0, h, 23):
            pw.push(r0, mask[r0 : r0 + 23])
    doc = json.loads(path.read_text())
    geoms = [shapely.geometry.shape(f["geometry"]) for f in doc["features"]]
    assert len(geoms) == n_comp > 5  # one polygon per building, none split at chunk rows
    assert all(g.is_valid for g in geoms)
    burnt = rasterize([(g, 1) for g in geoms], out_shape=(h, w), dtype="uint8")
    np.testing.assert_array_equal(burnt, (mask == 1).astype(np.uint8))
    areas = sorted(f["properties"]["area_px"] for f in doc["features"])
    assert sum(areas) == (mask == 1).sum()


def test_prefetch_and_worker_keep_order_and_raise_errors() -> None:
    from satseg.inference.pipeline import Worker, prefetch

    assert list(prefetch(range(50), depth=2)) == list(range(50))

    def broken():
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(prefetch(broken()))
    seen: list[int] = []
    with Worker(seen.append) as w:
        for i in range(100):
            w.put(i)
    assert seen == list(range(100))

    def fail(msg: int) -> None:
        if msg == 3:
            raise ValueError("bad row")

    with pytest.raises(ValueError, match="bad row"), Worker(fail) as w:
        for i in range(10):
            w.put(i)
    with pytest.raises(ValueError, match="bad row"), Worker(fail, enabled=False) as w:
        for i in range(10):
            w.put(i)


def test_worker_says_when_the_writer_holds_the_producer_up() -> None:
    """A slow writer fills the queue: the producer's waits, the writer's busy time and the
    work left at the end are what ``timings`` in a prediction's summary report."""
    import time

    from satseg.inference.pipeline import Worker

    with Worker(lambda _: time.sleep(0.02), maxsize=1) as slow:
        for i in range(10):
            slow.put(i)
    assert slow.busy_s >= 0.2 - 0.01  # ten handled messages of 20 ms
    assert slow.blocked_s >= 0.1  # the producer waited for most of them
    assert 0 < slow.drain_s < slow.busy_s  # the last one or two after the last put
    assert slow.cpu_s < slow.busy_s / 2  # sleeping is not CPU
    with Worker(lambda _: sum(range(20000)), maxsize=100) as fast:
        for i in range(50):
            fast.put(i)
    assert fast.blocked_s == 0.0 and fast.cpu_s > 0


def test_follower_runs_behind_without_holding_the_caller_up() -> None:
    """``Follower`` (the whole-row work of column bands): ``advance`` returns at once while
    the work catches up on its own thread, in order and up to the last target; ``wait``
    blocks until it is there. Inline (``enabled=False``) it is the same work, in the
    caller. An error surfaces in the caller; leaving on an error stops the thread."""
    import threading
    import time

    from satseg.inference.pipeline import Follower

    def run(enabled: bool) -> tuple[list[int], float, set[str], Follower]:
        done: list[int] = []
        names: set[str] = set()

        def work(upto: int) -> None:
            names.add(threading.current_thread().name)
            time.sleep(0.1)
            done.append(upto)

        t0 = time.perf_counter()
        with Follower(work, enabled=enabled) as f:
            for upto in (10, 20, 30, 40):
                f.advance(upto)
            handed = time.perf_counter() - t0
            f.wait()
            assert done[-1] == 40
        return done, handed, names, f

    done, handed, names, f = run(True)
    assert handed < 0.08  # four advances, none waited for the 100 ms work
    assert done == sorted(done) and names == {"satseg-follower"}
    assert f.busy_s >= 0.1 * len(done) - 0.01 and f.drain_s > 0
    inline, handed, names, _ = run(False)
    assert inline == [10, 20, 30, 40] and handed >= 0.4 and names == {"MainThread"}

    def fail(upto: int) -> None:
        if upto >= 20:
            raise ValueError("row 20 unreadable")

    with pytest.raises(ValueError, match="row 20"), Follower(fail) as f:
        f.advance(10)
        f.advance(20)
        f.wait()
    with pytest.raises(RuntimeError, match="model failed"), Follower(fail) as f:
        f.advance(5)
        raise RuntimeError("model failed")
    assert f._t is not None and not f._t.is_alive()  # stopped and joined on the way out


@pytest.mark.parametrize(
    ("width", "tile", "stride", "max_width"),
    [(600, 128, 96, 250), (5000, 512, 448, 1500), (20000, 512, 448, 6144), (700, 64, 32, 100)],
)
def test_column_bands_partition_the_grid(width: int, tile: int, stride: int, max_width: int):
    bands = column_bands(width, tile, stride, max_width)
    assert len(bands) > 1
    assert [x for b in bands for x in b.xs] == positions(width, tile, stride)
    assert bands[0].x0 == 0 and bands[-1].own1 == width
    for b, nxt in itertools.pairwise(bands):
        assert b.own1 == nxt.x0 < b.x1 <= nxt.own1  # shares columns with the next one only
        assert len(b.xs) >= 2 and b.width <= max_width
    assert len(bands[-1].xs) >= 2 and bands[-1].width <= max_width + stride
    assert column_bands(width, tile, stride, 0) == column_bands(width, tile, stride, width)
    assert len(column_bands(width, tile, stride, 0)) == 1


@pytest.mark.parametrize(("channels", "batch"), [(1, 3), (4, 2)])
def test_banded_blend_equals_the_whole_width_blend(channels: int, batch: int) -> None:
    """Tiles that disagree (random predictions): blending band by band, with the shared
    columns carried from band to band, gives the whole-width blend."""
    h, w, tile, stride = 300, 700, 64, 48
    rng = np.random.default_rng(3)
    ys, xs = positions(h, tile, stride), positions(w, tile, stride)
    shape = (tile, tile, channels) if channels > 1 else (tile, tile)
    preds = {(y, x): rng.random(shape, dtype=np.float32) for y in ys for x in xs}

    def run(blender: StripBlender, out: np.ndarray) -> None:
        for y in ys:
            for r0, prob, valid in blender.flush(y):
                assert valid.all()
                out[r0 : r0 + len(prob), blender.x0 : blender.x0 + prob.shape[1]] = prob
            for x in blender.xs:
                blender.add(y, x, preds[y, x])
        for r0, prob, _ in blender.flush(h):
            out[r0 : r0 + len(prob), blender.x0 : blender.x0 + prob.shape[1]] = prob

    full = np.full((h, w, channels)[: 3 if channels > 1 else 2], np.nan, np.float32)
    run(StripBlender(w, h, tile, stride, batch, channels=channels), full)
    banded = np.full_like(full, np.nan)
    prev = None
    bands = column_bands(w, tile, stride, 200)
    assert len(bands) >= 3
    for band in bands:
        carry = prev.carry_out if prev is not None else None
        prev = StripBlender(w, h, tile, stride, batch, channels=channels, band=band, carry_in=carry)
        assert prev.acc.shape[1] == band.width <= 200
        run(prev, banded)
    assert not np.isnan(banded).any()
    np.testing.assert_allclose(banded, full, rtol=1e-6, atol=1e-6)
