"""Bad scenes fail clearly, leave an error file beside the outputs, and never stop the batch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from satseg.inference.jobs import predict_many
from satseg.inference.params import PredictParams
from satseg.inference.predict import predict_scene
from satseg.io.raster import RasterError
from satseg.synthetic import make_scene

PARAMS = PredictParams(tile=128, overlap=32, precision="fp32")


def _raster(
    path: Path, count: int, dtype: str, fill: int = 100, nodata: float | None = None
) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=64,
        height=64,
        count=count,
        dtype=dtype,
        crs="EPSG:32637",
        transform=from_origin(5e5, 2.8e6, 0.5, 0.5),
        nodata=nodata,
    ) as d:
        d.write(np.full((count, 64, 64), fill, dtype))
    return path


def _truncated(tmp: Path) -> Path:
    sc = make_scene(tmp / "src", "t", 512, 512, seed=1, labelme=False, geojson=False)
    data = sc.image.read_bytes()
    bad = tmp / "truncated.tif"
    bad.write_bytes(data[: len(data) // 2])
    return bad


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


BAD = {  # kind -> (make the file, expected RasterError.check)
    "garbage": (lambda t: _write(t / "garbage.tif", b"not a tiff at all" * 50), "decode"),
    "zero_bytes": (lambda t: _write(t / "empty.tif", b""), "empty_file"),
    "five_bands": (lambda t: _raster(t / "five.tif", 5, "uint8"), "band_count"),
    "float32": (lambda t: _raster(t / "float.tif", 3, "float32"), "dtype"),
    "all_nodata": (lambda t: _raster(t / "blank.tif", 3, "uint8", fill=0, nodata=0), "empty"),
    "truncated": (_truncated, "decode"),
    "bad_png": (lambda t: _write(t / "bad.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40), "decode"),
    "text_file": (lambda t: _write(t / "notes.txt", b"hello"), "format"),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_input_raises_clearly_and_writes_error_file(tmp_path, roof_model, kind: str) -> None:
    make, check = BAD[kind]
    path = make(tmp_path)
    out = tmp_path / "out" / path.stem
    with pytest.raises(RasterError) as info:
        predict_scene(roof_model, path, out, params=PARAMS)
    assert info.value.check == check
    err = json.loads((out / f"{path.stem}.error.json").read_text())
    assert err["check"] == check and err["source"] == str(path) and err["error"]
    assert path.exists()  # the input is never deleted
    assert not (out / "summary.json").exists() and not (out / "mask.tif").exists()


def test_one_bad_scene_does_not_stop_the_others(tmp_path, roof_model) -> None:
    good1 = make_scene(tmp_path, "a", 200, 200, seed=1, labelme=False, geojson=False).image
    bad = tmp_path / "b.tif"
    bad.write_bytes(b"garbage" * 100)
    good2 = make_scene(tmp_path, "c", 200, 200, seed=2, labelme=False, geojson=False).image
    res = predict_many(
        roof_model, {"name": "m", "version": "1"}, [good1, bad, good2], tmp_path / "out", PARAMS
    )
    assert [r["status"] for r in res] == ["ok", "error", "ok"]
    assert Path(res[1]["error_file"]).is_file() and res[1]["check"] == "decode"
    assert (tmp_path / "out" / "c" / "mask.tif").is_file()


def test_success_removes_a_stale_error_file(tmp_path, roof_model) -> None:
    sc = make_scene(tmp_path, "s", 160, 160, seed=3, labelme=False, geojson=False)
    good = sc.image.read_bytes()
    sc.image.write_bytes(b"junk")
    out = tmp_path / "out" / "s"
    with pytest.raises(RasterError):
        predict_scene(roof_model, sc.image, out, params=PARAMS)
    assert (out / "s.error.json").exists()
    sc.image.write_bytes(good)
    predict_scene(roof_model, sc.image, out, params=PARAMS)
    assert not (out / "s.error.json").exists()


@pytest.mark.parametrize("bad", [{"overlap": 100}, {"threshold": 1.5}, {"tile": 16}])
def test_bad_parameters_are_rejected(tmp_path, roof_model, bad) -> None:
    sc = make_scene(tmp_path, "p", 64, 64, seed=3, labelme=False, geojson=False)
    with pytest.raises(ValueError):
        predict_scene(roof_model, sc.image, tmp_path / "o", params=PARAMS, **bad)
