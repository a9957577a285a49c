"""Real SpaceNet Atlanta chip (skipped when ../shared/data/real is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio
import shapely

from satseg.inference.predict import predict_scene

pytestmark = pytest.mark.realdata


def test_spacenet_scene_keeps_its_georeference(real_data, roof_model, tmp_path) -> None:
    scene = real_data / "spacenet_atlanta" / "sample_geotiff.tif"
    if not scene.exists():
        pytest.skip(f"{scene} absent")
    # a low threshold so that the brightest (stretched) roofs give polygons to validate
    r = predict_scene(
        roof_model, scene, tmp_path / "atl", tile=256, overlap=64, precision="fp32", threshold=0.2
    )
    with rasterio.open(scene) as src:
        want = (src.crs, src.transform, src.width, src.height)
    for key in ("probability", "mask"):
        with rasterio.open(r["outputs"][key]) as d:
            assert (d.crs, d.transform, d.width, d.height) == want
    assert r["scaler"]["dtype"] == "uint16" and r["scaler"]["nodata"] == 0
    doc = json.loads(Path(r["outputs"]["vectors"]).read_text())
    _assert_rfc7946(doc)
    assert doc["features"], "expected some polygons on the real chip"
    # Atlanta, Georgia
    lon0, lat0, lon1, lat1 = doc["bbox"]
    assert -84.5 < lon0 <= lon1 < -84.3 and 33.6 < lat0 <= lat1 < 33.7
    item = json.loads(Path(r["outputs"]["stac"]).read_text())
    assert item["properties"]["proj:epsg"] == 32616


def _assert_rfc7946(doc: dict) -> None:
    """RFC 7946: FeatureCollection, WGS84 lon/lat, no crs member, closed CCW shells, valid."""
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    for f in doc["features"]:
        assert f["type"] == "Feature" and isinstance(f["properties"], dict)
        g = f["geometry"]
        assert g["type"] == "Polygon"
        for i, ring in enumerate(g["coordinates"]):
            assert len(ring) >= 4 and ring[0] == ring[-1]
            assert all(
                -180 <= x <= 180 and -90 <= y <= 90 and len(p) == 2 for p in ring for x, y in [p]
            )
            assert shapely.LinearRing(ring).is_ccw == (i == 0)  # shell CCW, holes CW
        assert shapely.geometry.shape(g).is_valid
        assert f["properties"]["area_m2"] > 0
    json.dumps(doc, allow_nan=False)
