"""Feature windows: reproducible sampling, GeoTIFF/PNG/uint16/nodata inputs, discovery."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from satseg.monitoring import MonitorError
from satseg.monitoring.features import feature_names, image_features
from satseg.monitoring.imagery import (
    available_imagery,
    expand_paths,
    features_frame,
    sample_windows,
    scene_features,
)
from satseg.synthetic import SceneStyle, make_png_pair, make_scene, render_window


def test_sample_windows_reproducible_bounded_and_keyed() -> None:
    a = sample_windows(2000, 1500, 256, 10, seed=0, key="a.tif")
    assert a == sample_windows(2000, 1500, 256, 10, seed=0, key="a.tif")
    assert len(a) == 10 and len(set(a)) == 10
    for r, c, h, w in a:
        assert (h, w) == (256, 256) and r + h <= 1500 and c + w <= 2000
        assert r % 256 == 0 and c % 256 == 0  # grid: windows never overlap
    assert a != sample_windows(2000, 1500, 256, 10, seed=0, key="b.tif")
    assert a != sample_windows(2000, 1500, 256, 10, seed=1, key="a.tif")
    # Fewer cells than asked: all of them; a scene smaller than a patch: one window.
    assert len(sample_windows(512, 512, 256, 10, 0, "x")) == 4
    assert sample_windows(100, 80, 256, 10, 0, "x") == [(0, 0, 80, 100)]


def test_blur_and_cover_move_the_features_meant_to_see_them() -> None:
    sharp, _ = render_window(0, 0, 256, 256, [], {}, seed=3)
    blurred, _ = render_window(0, 0, 256, 256, [], {}, seed=3, style=SceneStyle(blur=3))
    water, _ = render_window(0, 0, 256, 256, [], {}, seed=3, style=SceneStyle(land_cover="water"))
    fs, fb, fw = image_features(sharp), image_features(blurred), image_features(water)
    assert set(fs) == set(feature_names())
    assert fb["gradient_mean"] < 0.7 * fs["gradient_mean"]
    assert fb["laplacian_var"] < 0.5 * fs["laplacian_var"]
    assert fw["saturation"] > fs["saturation"] + 0.1


def test_geotiff_png_and_uint16_scenes(tmp_path: Path) -> None:
    tif = make_scene(tmp_path, "t", 512, 384, seed=1, labelme=False, geojson=False).image
    rows = scene_features(tif, size=128, k=5, seed=0)
    assert len(rows) == 5 and rows == scene_features(tif, size=128, k=5, seed=0)
    png = make_png_pair(tmp_path, "p", 256, 256, seed=1).image
    assert len(scene_features(png, size=128, k=10, seed=0)) == 4
    u16 = make_scene(tmp_path, "u", 256, 256, seed=1, bands=4, dtype="uint16").image
    rows16 = scene_features(u16, size=128, k=4)
    assert len(rows16) == 4 and all(0 <= r["brightness"] <= 255 for r in rows16)
    df = features_frame([tif, png], size=128, total=6)
    assert list(df.columns) == ["scene", *feature_names()]
    assert df["scene"].value_counts().to_dict() == {"t.tif": 3, "p.png": 3}


def test_mostly_nodata_windows_are_dropped(tmp_path: Path) -> None:
    tif = make_scene(
        tmp_path, "nd", 512, 128, seed=2, nodata=0, nodata_border=200, labelme=False, geojson=False
    ).image
    rows = scene_features(tif, size=128, k=10, nodata_max=1.0)
    assert [round(r["nodata_frac"], 2) for r in rows] == [1.0, 0.56, 0.0, 0.0]
    kept = scene_features(tif, size=128, k=10, nodata_max=0.5)
    assert len(kept) == 2 and max(r["nodata_frac"] for r in kept) == 0.0


@pytest.mark.parametrize(
    "content,match",
    [(b"", "empty"), (b"II*\x00garbage" * 10, "not a readable image"), (b"\x89PNG\r\n", "corrupt")],
)
def test_unreadable_imagery_is_a_clear_error(tmp_path: Path, content: bytes, match: str) -> None:
    name = "bad.png" if content.startswith(b"\x89") or not content else "bad.tif"
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(MonitorError, match=match) as e:
        scene_features(p, size=128, k=2)
    assert name in str(e.value)
    assert p.read_bytes() == content  # nothing touched
    with pytest.raises(MonitorError, match="no such file"):
        scene_features(tmp_path / "missing.tif", size=128, k=2)


def test_discovery_of_ingested_and_predicted_scenes(settings, tmp_path: Path) -> None:
    raw = settings.raw / "demo"
    a = make_scene(raw, "a", 128, 128, seed=1, mask_tif=True).image
    b = make_png_pair(settings.raw / "predict-done" / "2026-01-02", "b", 128, 128, seed=2).image
    make_png_pair(settings.predict_inbox, "waiting", 128, 128, seed=4)  # not predicted yet
    elsewhere = make_scene(tmp_path / "archive", "c", 128, 128, seed=3).image
    item = settings.predictions / "c" / "item.json"
    item.parent.mkdir(parents=True)
    (item.parent / "mask.tif").write_bytes(b"x")
    item.write_text(
        json.dumps(
            {
                "assets": {"mask": {"href": "mask.tif"}, "quicklook": {"href": "quicklook.png"}},
                "links": [{"rel": "derived_from", "href": elsewhere.as_uri()}],
            }
        )
    )
    found = available_imagery(settings)
    assert found == sorted(p.resolve() for p in (a, b, elsewhere))  # no masks, labels, outputs
    assert expand_paths([raw, b]) == sorted([a, b])
    assert expand_paths([settings.raw]) == sorted([a, b])
    with pytest.raises(MonitorError, match="no such file or directory"):
        expand_paths([tmp_path / "nope"])


def test_feature_values_do_not_depend_on_window_reads(tmp_path: Path) -> None:
    """Windowed GeoTIFF reads give the same features as the pixels rendered whole."""
    tif = make_scene(tmp_path, "w", 256, 256, seed=5, labelme=False, geojson=False)
    rows = scene_features(tif.image, size=256, k=1)
    from satseg.synthetic import _index, building_polygons

    polys = building_polygons(256, 256, 5)
    rgb, _ = render_window(0, 0, 256, 256, polys, _index(polys), seed=5)
    np.testing.assert_allclose(
        [rows[0][n] for n in feature_names()], [image_features(rgb)[n] for n in feature_names()]
    )
