from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import rasterio
from rasterio.features import rasterize
from shapely.geometry import shape

from satseg.synthetic import SceneStyle, make_png_pair, make_scene, rasterize_polygons


def test_scene_is_georeferenced_and_deterministic(tmp_path: Path) -> None:
    a = make_scene(tmp_path / "a", "s", 700, 600, seed=3, crs="EPSG:32616")
    b = make_scene(tmp_path / "b", "s", 700, 600, seed=3, crs="EPSG:32616")
    with rasterio.open(a.image) as da, rasterio.open(b.image) as db:
        assert da.crs.to_epsg() == 32616 and da.crs.is_projected
        assert da.transform.a == 0.5 and da.transform.e == -0.5
        assert (da.width, da.height, da.count, da.dtypes[0]) == (700, 600, 3, "uint8")
        assert np.array_equal(da.read(), db.read())
    assert a.labelme.read_text() == b.labelme.read_text()
    c = make_scene(tmp_path / "c", "s", 700, 600, seed=4)
    with rasterio.open(c.image) as dc, rasterio.open(a.image) as da:
        assert not np.array_equal(dc.read(), da.read())


def test_labelme_matches_pixels(tmp_path: Path) -> None:
    s = make_scene(tmp_path, "s", 512, 512, seed=1, mask_tif=True)
    doc = json.loads(s.labelme.read_text())
    assert doc["imagePath"] == "s.tif"
    assert (doc["imageWidth"], doc["imageHeight"]) == (512, 512)
    assert doc["shapes"] and all(sh["shape_type"] == "polygon" for sh in doc["shapes"])
    polys = [np.array(sh["points"]) for sh in doc["shapes"]]
    ref = rasterize_polygons(polys, 512, 512)
    with rasterio.open(s.image) as d, rasterio.open(tmp_path / "s_mask.tif") as m:
        img = d.read().astype(float)
        mask = m.read(1)
    assert np.array_equal(mask, ref)
    # Roofs are much brighter/redder than the background: labels sit on the buildings.
    roof = img[:, ref == 1].mean()
    ground = img[:, ref == 0].mean()
    assert abs(roof - ground) > 30


def test_geojson_is_in_map_coordinates(tmp_path: Path) -> None:
    s = make_scene(tmp_path, "s", 512, 512, seed=2)
    gj = json.loads(s.geojson.read_text())
    assert gj["crs"]["properties"]["name"].endswith("32637")
    with rasterio.open(s.image) as d:
        burned = rasterize(
            [shape(f["geometry"]) for f in gj["features"]],
            out_shape=(d.height, d.width),
            transform=d.transform,
        )
    ref = rasterize_polygons(s.polygons, 512, 512)
    inter = np.logical_and(burned, ref).sum()
    union = np.logical_or(burned, ref).sum()
    assert inter / union > 0.9


def test_geojson_in_wgs84(tmp_path: Path) -> None:
    s = make_scene(tmp_path, "s", 256, 256, seed=2, geojson_crs="EPSG:4326")
    gj = json.loads(s.geojson.read_text())
    assert "crs" not in gj
    lon, lat = gj["features"][0]["geometry"]["coordinates"][0][0]
    assert 35 < lon < 45 and 20 < lat < 30  # UTM 37N around 500000E, 2800000N


def test_band_dtype_nodata_variants(tmp_path: Path) -> None:
    s = make_scene(
        tmp_path, "v", 300, 200, seed=0, bands=4, dtype="uint16", nodata=0, nodata_border=20
    )
    with rasterio.open(s.image) as d:
        assert d.count == 4 and d.dtypes[0] == "uint16" and d.nodata == 0
        a = d.read()
        assert (a[:, :, :20] == 0).all() and a[:, :, 20:].max() > 255
    s1 = make_scene(tmp_path, "g", 128, 128, seed=0, bands=1)
    with rasterio.open(s1.image) as d:
        assert d.count == 1


def test_style_shifts_appearance(tmp_path: Path) -> None:
    base = make_scene(tmp_path, "a", 256, 256, seed=0)
    shifted = make_scene(tmp_path, "b", 256, 256, seed=0, style=SceneStyle(brightness=40))
    with rasterio.open(base.image) as a, rasterio.open(shifted.image) as b:
        assert b.read().mean() - a.read().mean() > 25


def test_windowed_writing_is_seamless(tmp_path: Path) -> None:
    # 1100 px spans three 512-px windows; the texture must continue across window edges.
    s = make_scene(tmp_path, "w", 1100, 64, seed=5, labelme=False, geojson=False)
    with rasterio.open(s.image) as d:
        row = d.read(1)[32].astype(float)
    jumps = np.abs(np.diff(row))
    assert jumps[511] < np.percentile(jumps, 99.5) + 20


def test_png_pair_like_the_seed(tmp_path: Path) -> None:
    import cv2

    p = make_png_pair(tmp_path, "sample", 320, 240, seed=9)
    img = cv2.imread(str(p.image))
    assert img.shape == (240, 320, 3)
    doc = json.loads(p.labelme.read_text())
    assert doc["imagePath"] == "sample.png" and doc["imageHeight"] == 240
