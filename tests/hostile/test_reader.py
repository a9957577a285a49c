"""Issue 15, the reader's side: only GeoTIFF/PNG/JPEG are opened, within pixel limits, on the
right grid, as displayed, and never decoded from corrupt data.

Classes 1 (any GDAL format read as ".tif"), 10 (no pixel limit), 13 (mask on another grid),
14 (EXIF orientation ignored) and 15's image side (corrupt JPEG, scenes yielding no patch),
each through the real code path: the training inbox (``run_once``), ``satseg predict`` (CLI
or ``predict_scene``), monitoring's ``scene_features`` and the reader itself.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from typer.testing import CliRunner

from satseg.ingest.pipeline import run_once
from satseg.io.raster import RasterError
from satseg.io.scene import open_scene
from satseg.io.sniff import PixelLimits, sniff
from satseg.synthetic import labelme_doc, make_scene
from satseg.versioning import list_versions

from .conftest import assert_accounted, error_records, inventory


def _ingest(settings, build) -> tuple[dict, dict[str, dict], dict[str, str]]:
    """Drop what ``build(inbox)`` writes into inbox/demo, run one pass: (result, records, where)."""
    inbox = settings.inbox / "demo"
    inbox.mkdir(parents=True, exist_ok=True)
    build(inbox)
    dropped = inventory(settings.inbox)
    settings.annotation_timeout_s = 0
    out = run_once(settings, poll_interval=0.05)
    return out, error_records(settings.quarantine), assert_accounted(settings, dropped)


def _labelme(folder: Path, name: str, image: str, w: int, h: int, polys=()) -> None:
    doc = labelme_doc([np.asarray(p, float) for p in polys], image, w, h)
    (folder / f"{name}.json").write_text(json.dumps(doc))


# --- class 1: only GeoTIFF, PNG and JPEG, by content and by driver --------------------------


def _vrt_raw(target: Path, width: int = 64, height: int = 64) -> str:
    """A VRT whose one raw band is the bytes of ``target`` (3 bands for a scene)."""
    bands = "".join(
        f'<VRTRasterBand dataType="Byte" band="{b}" subClass="VRTRawRasterBand">'
        f'<SourceFilename relativeToVRT="0">{target}</SourceFilename>'
        f"<ImageOffset>{(b - 1) * width}</ImageOffset><PixelOffset>1</PixelOffset>"
        f"<LineOffset>{width}</LineOffset></VRTRasterBand>"
        for b in (1, 2, 3)
    )
    return f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">{bands}</VRTDataset>'


def _vrt_source(src: str, width: int = 64, height: int = 64) -> str:
    """A VRT whose bands are a SimpleSource reading ``src`` (a path or /vsicurl/ URL)."""
    bands = "".join(
        f'<VRTRasterBand dataType="Byte" band="{b}"><SimpleSource>'
        f'<SourceFilename relativeToVRT="0">{src}</SourceFilename><SourceBand>1</SourceBand>'
        f"</SimpleSource></VRTRasterBand>"
        for b in (1, 2, 3)
    )
    return f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">{bands}</VRTDataset>'


@pytest.mark.parametrize("kind", ["raw", "source"])
@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_vrt_in_training_inbox_is_quarantined_and_reads_nothing(
    settings, canary, kind: str, suffix: str
) -> None:
    def build(inbox: Path) -> None:
        if kind == "raw":
            vrt = _vrt_raw(canary.path)
        else:  # a GeoTIFF made of the canary's bytes, pulled in through a SimpleSource
            tif = canary.path.parent / "secret.tif"
            with rasterio.open(
                tif, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8"
            ) as d:
                d.write(
                    np.frombuffer(canary.path.read_bytes()[: 64 * 64], np.uint8).reshape(1, 64, 64)
                )
            vrt = _vrt_source(str(tif))
        (inbox / f"scene{suffix}").write_text(vrt)
        _labelme(inbox, "scene", f"scene{suffix}", 64, 64, [[[5, 5], [40, 5], [40, 40]]])

    out, records, where = _ingest(settings, build)
    rec = records[f"demo/scene{suffix}"]
    assert rec["check"] == "format", rec
    assert "VRT" in rec["reason"]
    assert records["demo/scene.json"]["check"] == "partner_rejected"
    assert out["versions"] == [] and list_versions(settings) == []
    assert set(where.values()) == {"quarantine"}
    canary.assert_absent(settings.home)


def test_vrt_is_refused_by_satseg_predict(settings, canary, tmp_path) -> None:
    from satseg.cli import app
    from tests.inference.conftest import _roof_model

    model_file = tmp_path / "roof.keras"
    _roof_model((1,), 40.0).save(model_file)
    scene = tmp_path / "in" / "scene.tif"
    scene.parent.mkdir()
    scene.write_text(_vrt_raw(canary.path))
    out = tmp_path / "preds"
    r = CliRunner().invoke(
        app, ["predict", str(scene), "--out", str(out), "--model-file", str(model_file)]
    )
    assert r.exit_code == 1, r.output
    (line,) = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert line["status"] == "error" and line["check"] == "format" and "VRT" in line["error"]
    canary.assert_absent(out, settings.home)


def test_vrt_is_refused_by_monitoring(canary, tmp_path) -> None:
    from satseg.monitoring import MonitorError
    from satseg.monitoring.imagery import scene_features

    scene = tmp_path / "scene.tif"
    scene.write_text(_vrt_raw(canary.path))
    with pytest.raises(MonitorError, match="VRT"):
        scene_features(scene, size=32, k=4)


def test_vsicurl_source_sends_no_request(settings, listener, tmp_path) -> None:
    url = f"/vsicurl/{listener.url}/remote.tif"
    scene = tmp_path / "remote.tif"
    scene.write_text(_vrt_source(url))
    for path in (scene, Path(url)):  # hidden in a VRT, or given as the path itself
        with pytest.raises(RasterError) as info:
            open_scene(path)
        assert info.value.check == "format"

    def build(inbox: Path) -> None:
        (inbox / "remote.tif").write_text(_vrt_source(url))
        _labelme(inbox, "remote", "remote.tif", 64, 64, [[[5, 5], [40, 5], [40, 40]]])

    _, records, _ = _ingest(settings, build)
    assert records["demo/remote.tif"]["check"] == "format"
    assert listener.requests == []


def test_gdal_itself_never_fetches(listener, tmp_path) -> None:
    """Belt and braces: even a direct rasterio open inside satseg's GDAL env reaches nobody."""
    from satseg.io.gdal import gdal_env

    with gdal_env(), pytest.raises(rasterio.errors.RasterioError):
        rasterio.open(f"/vsicurl/{listener.url}/x.tif")
    assert listener.requests == []


@pytest.mark.parametrize(
    ("content", "name", "says"),
    [
        ("png", "scene.tif", "content is a PNG, not a TIF"),
        ("tif", "scene.png", "content is a TIFF, not a PNG"),
        ("hdf5", "scene.tif", "HDF5"),
        ("netcdf", "scene.tif", "NetCDF"),
        ("zip", "scene.tif", "ZIP"),
    ],
)
def test_suffix_must_agree_with_content(tmp_path, content: str, name: str, says: str) -> None:
    p = tmp_path / name
    if content == "png":
        cv2.imwrite(str(tmp_path / "x.png"), np.zeros((8, 8, 3), np.uint8))
        p.write_bytes((tmp_path / "x.png").read_bytes())
    elif content == "tif":
        make_scene(tmp_path, "x", 32, 32, labelme=False, geojson=False)
        p.write_bytes((tmp_path / "x.tif").read_bytes())
    else:
        head = {"hdf5": b"\x89HDF\r\n\x1a\n", "netcdf": b"CDF\x01", "zip": b"PK\x03\x04"}[content]
        p.write_bytes(head + bytes(200))
    with pytest.raises(RasterError, match=says) as info:
        open_scene(p)
    assert info.value.check == "format"


def test_reader_decides_by_content_under_a_proc_fd_path(tmp_path) -> None:
    sc = make_scene(tmp_path, "fd", 64, 48, labelme=False, geojson=False)
    with open(sc.image, "rb") as fh:
        fd_path = f"/proc/self/fd/{fh.fileno()}"
        assert sniff(fd_path, "fd.tif") == "GTiff"
        with open_scene(fd_path, name="fd.tif") as r:
            assert (r.width, r.height) == (64, 48) and r.georeferenced
        with pytest.raises(RasterError, match=r"fd\.png: content is a TIFF"):
            open_scene(fd_path, name="fd.png")


def test_no_sidecar_is_read_or_written(tmp_path) -> None:
    """A planted .aux.xml (here: a georeference) is ignored, and none is written."""
    cv2.imwrite(str(tmp_path / "photo.png"), np.full((16, 16, 3), 9, np.uint8))
    aux = tmp_path / "photo.png.aux.xml"
    aux.write_text(
        "<PAMDataset><SRS>EPSG:4326</SRS><GeoTransform>0,1,0,0,0,-1</GeoTransform></PAMDataset>"
    )
    make_scene(tmp_path, "geo", 32, 32, labelme=False, geojson=False)
    with open_scene(tmp_path / "geo.tif") as r:
        r.rows(0, 32)
    assert not (tmp_path / "geo.tif.aux.xml").exists()
    with open_scene(tmp_path / "photo.png") as r:
        assert r.crs is None


# --- class 10: declared size checked before decoding -------------------------------------


def _huge_sparse_tiff(path: Path, side: int = 200_000) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=side,
        height=side,
        count=3,
        dtype="uint8",
        crs="EPSG:32637",
        transform=from_origin(5e5, 2.8e6, 0.5, 0.5),
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="deflate",
        BIGTIFF="YES",
        SPARSE_OK=True,
    ):
        pass
    return path


def _png_declaring(path: Path, w: int, h: int) -> Path:
    """A tiny PNG whose IHDR says w x h (the rest would not even decode)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    idat = zlib.compress(b"\x00" * 1000)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def test_huge_declared_tiff_is_refused_at_once_in_ingest(settings) -> None:
    def build(inbox: Path) -> None:
        _huge_sparse_tiff(inbox / "huge.tif")
        _labelme(inbox, "huge", "huge.tif", 200_000, 200_000, [[[5, 5], [40, 5], [40, 40]]])

    t0 = time.monotonic()
    _, records, where = _ingest(settings, build)
    assert time.monotonic() - t0 < 30
    rec = records["demo/huge.tif"]
    assert rec["check"] == "too_large", rec
    assert "200000x200000" in rec["reason"] and "2,500 Mpx" in rec["reason"]
    assert set(where.values()) == {"quarantine"}


def test_huge_declared_tiff_is_refused_at_once_in_predict(tmp_path) -> None:
    from satseg.inference.predict import predict_scene

    scene = _huge_sparse_tiff(tmp_path / "huge.tif")
    assert scene.stat().st_size < 5_000_000
    t0 = time.monotonic()
    with pytest.raises(RasterError) as info:
        predict_scene(object(), scene, tmp_path / "out")
    assert time.monotonic() - t0 < 10
    assert info.value.check == "too_large" and "ingest.max_megapixels" in str(info.value)
    err = json.loads((tmp_path / "out" / "huge.error.json").read_text())
    assert err["check"] == "too_large"


def test_png_bomb_is_refused_before_decoding(settings, tmp_path) -> None:
    bomb = _png_declaring(tmp_path / "bomb.png", 30_000, 30_000)
    t0 = time.monotonic()
    with pytest.raises(RasterError) as info:
        open_scene(bomb)
    assert time.monotonic() - t0 < 1  # decoding 900 Mpx would take seconds and 2.7 GB
    assert info.value.check == "too_large"  # its IDAT would not even decode: nothing was
    assert "30000x30000" in str(info.value) and "GeoTIFF" in str(info.value)

    def build(inbox: Path) -> None:
        _png_declaring(inbox / "bomb.png", 30_000, 30_000)
        _labelme(inbox, "bomb", "bomb.png", 30_000, 30_000, [[[5, 5], [40, 5], [40, 40]]])

    _, records, _ = _ingest(settings, build)
    assert records["demo/bomb.png"]["check"] == "too_large"


def test_limits_are_typed_params(settings, tmp_path) -> None:
    p = settings.params().ingest
    assert (p.max_megapixels, p.max_plain_megapixels) == (2500, 100)
    img = _png_declaring(tmp_path / "mid.png", 2000, 1000)
    with pytest.raises(RasterError, match="over the limit of 1 Mpx"):
        open_scene(img, limits=PixelLimits(max_plain_megapixels=1))


# --- class 13: a mask raster must lie on the image's grid --------------------------------


@pytest.mark.parametrize("change", ["crs", "shift"])
def test_mask_on_another_grid_is_refused(settings, change: str) -> None:
    def build(inbox: Path) -> None:
        sc = make_scene(inbox, "gridm", 256, 256, 3, labelme=False, geojson=False, mask_tif=True)
        mask = inbox / "gridm_mask.tif"
        with rasterio.open(mask) as src:
            data, profile = src.read(), src.profile
        if change == "crs":
            profile["crs"] = "EPSG:32636"
        else:
            profile["transform"] = from_origin(5e5 + 5000, 2.8e6, 0.5, 0.5)
        mask.unlink()
        with rasterio.open(mask, "w", **profile) as dst:
            dst.write(data)
        assert sc.image.exists()

    _, records, where = _ingest(settings, build)
    rec = records["demo/gridm_mask.tif"]
    assert rec["check"] == "mask_grid", rec
    assert "EPSG:32637" in rec["reason"]
    assert ("EPSG:32636" if change == "crs" else "505000.000") in rec["reason"]
    assert set(where.values()) == {"quarantine"}


def test_mask_on_the_same_grid_is_accepted(settings) -> None:
    _, records, where = _ingest(
        settings,
        lambda d: make_scene(d, "okm", 256, 256, 3, labelme=False, geojson=False, mask_tif=True),
    )
    assert records == {} and set(where.values()) == {"raw"}


# --- class 14: EXIF orientation is applied, as LabelMe does --------------------------------


def _rotated_jpeg(path: Path, orientation: int) -> tuple[int, int, list[list[float]]]:
    """A JPEG stored 320x200 with EXIF orientation; a bright box drawn on the *displayed*
    image at a known place: returns the displayed size and that box's polygon."""
    from PIL import Image

    disp_w, disp_h = 200, 320  # displayed (oriented) size: portrait
    shown = np.full((disp_h, disp_w, 3), 60, np.uint8)
    x0, y0, x1, y1 = 20, 30, 90, 150  # the object, in displayed coordinates
    shown[y0:y1, x0:x1] = 230
    # store it so that applying ``orientation`` gives ``shown`` back
    stored = np.rot90(shown, 1) if orientation == 6 else np.rot90(shown, -1)
    im = Image.fromarray(np.ascontiguousarray(stored))
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(path, quality=95, exif=exif.tobytes())
    return disp_w, disp_h, [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_orientation_is_applied(settings, orientation: int) -> None:
    pytest.importorskip("PIL")
    holder: dict = {}

    def build(inbox: Path) -> None:
        w, h, box = _rotated_jpeg(inbox / "photo.jpg", orientation)
        holder.update(w=w, h=h, box=box)
        _labelme(inbox, "photo", "photo.jpg", w, h, [box])

    out, records, _ = _ingest(settings, build)
    assert records == {}, records
    (res,) = out["results"]
    assert res["status"] == "accepted"
    scene = settings.processed / ".scenes" / "demo" / "photo"
    index = json.loads((scene / "scene.json").read_text())
    assert (index["source"]["width"], index["source"]["height"]) == (holder["w"], holder["h"])
    rec = next(p for p in index["patches"] if p["row"] == 0 and p["col"] == 0)
    rgb = cv2.imread(str(scene / "images" / f"{rec['id']}.png"))[..., ::-1]
    mask = cv2.imread(str(scene / "masks" / f"{rec['id']}.png"), cv2.IMREAD_GRAYSCALE) > 0
    bright = rgb[..., 0] > 145  # the object's pixels in the patch
    iou = (bright & mask).sum() / (bright | mask).sum()
    assert iou > 0.9, iou


# --- class 15, image side: corrupt JPEGs, scenes without a usable patch --------------------


def _corrupt_jpeg(path: Path) -> None:
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur((rng.random((256, 256, 3)) * 255).astype(np.uint8), (9, 9), 3)
    data = bytearray(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    mid = len(data) // 2
    data[mid : mid + 512] = bytes(512)  # inside the entropy-coded data; FFD9 stays intact
    assert data.endswith(b"\xff\xd9")
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("fill", ["zeros", "pattern"])
def test_jpeg_corrupted_in_the_middle_is_refused(settings, tmp_path, fill: str) -> None:
    p = tmp_path / "c.jpg"
    _corrupt_jpeg(p)
    if fill == "pattern":  # leaves the decoder in step but with bytes left over before FFD9
        data = bytearray(p.read_bytes())
        mid = len(data) // 2
        data[mid : mid + 1024] = (b"CORRUPT!" * 128)[:1024]
        p.write_bytes(bytes(data))
    with pytest.raises(RasterError, match="JPEG data is corrupt") as info:
        open_scene(p)
    assert info.value.check == "decode"

    def build(inbox: Path) -> None:
        (inbox / "broken.jpg").write_bytes(p.read_bytes())
        _labelme(inbox, "broken", "broken.jpg", 256, 256, [[[5, 5], [40, 5], [40, 40]]])

    _, records, _ = _ingest(settings, build)
    assert records["demo/broken.jpg"]["check"] == "decode"


def _tif(path: Path, w: int, h: int, fill: int = 100, nodata: float | None = None) -> None:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=w,
        height=h,
        count=3,
        dtype="uint8",
        crs="EPSG:32637",
        transform=from_origin(5e5, 2.8e6, 0.5, 0.5),
        nodata=nodata,
    ) as d:
        d.write(np.full((3, h, w), fill, np.uint8))


@pytest.mark.parametrize(
    ("kind", "w", "h", "says"),
    [
        ("one_pixel", 1, 1, "smaller than one 128x128 patch"),
        ("sliver", 100_000, 10, "smaller than one 128x128 patch"),
        ("all_nodata", 256, 256, "more than 50% nodata"),
    ],
)
def test_scene_without_usable_patch_is_refused(settings, kind: str, w: int, h: int, says: str):
    def build(inbox: Path) -> None:
        _tif(inbox / f"{kind}.tif", w, h, *((0, 0) if kind == "all_nodata" else ()))
        _labelme(inbox, kind, f"{kind}.tif", w, h, [])

    out, records, where = _ingest(settings, build)
    rec = records[f"demo/{kind}.tif"]
    assert rec["check"] == "no_patches", rec
    assert rec["reason"].startswith("scene yields no usable patch") and says in rec["reason"]
    assert f"{w}x{h}" in rec["reason"]
    assert out["versions"] == [] and set(where.values()) == {"quarantine"}
    assert not list((settings.processed / ".scenes").rglob(".tmp-*"))


def test_upload_api_refuses_a_vrt_by_the_same_sniff(settings, canary) -> None:
    from fastapi.testclient import TestClient

    from satseg.api import app as api

    app = api.create_app()
    for dep in (api.AUTHENTICATED, api.MAY_RUN_INGEST, api.MAY_RUN_RETRAIN, api.MAY_READ_RETRAIN):
        app.dependency_overrides[dep] = lambda: None
    app.dependency_overrides[api.current_user] = lambda: "tester"
    with TestClient(app) as client:
        r = client.post(
            "/data/upload", files={"file": ("scene.tif", _vrt_raw(canary.path).encode())}
        )
    assert r.status_code == 415 and r.json()["detail"]["check"] == "file_type"
    assert "VRT" in r.text
    assert not [p for p in settings.inbox.rglob("*") if p.is_file()]  # nothing published
    canary.assert_absent(settings.home)


def test_proj_network_is_off_for_every_reader() -> None:
    import os

    import pyproj

    from satseg.io.gdal import gdal_options

    assert os.environ["PROJ_NETWORK"] == "OFF" and gdal_options()["PROJ_NETWORK"] == "OFF"
    assert not pyproj.network.is_network_enabled()


def test_oversized_plain_file_is_refused_before_reading(tmp_path) -> None:
    """A small-looking PNG padded with a huge chunk is not read into memory."""
    p = _png_declaring(tmp_path / "padded.png", 10, 10)
    with open(p, "r+b") as fh:
        fh.truncate(40 * 2**20)  # sparse: 40 MiB on paper
    with pytest.raises(RasterError, match="larger than any PNG/JPEG") as info:
        open_scene(p, limits=PixelLimits(max_plain_megapixels=0.5))
    assert info.value.check == "too_large"
