"""Issue 15, classes 3, 8, 15 (labels): hostile annotations through ``run_once``.

A GeoJSON ``crs`` that would make PROJ open a file, JSON nested past any sane depth or
larger than the limit, and LabelMe documents whose points or sizes have the wrong types are
each quarantined with a reason and a ``check``; every byte stays accounted for; the canary
file outside the inbox is never opened (checked with ``strace`` at the system-call level).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from satseg.ingest.errors import IngestError
from satseg.ingest.labels import geojson_labels, labelme_labels
from satseg.ingest.pipeline import run_once
from satseg.io.jsonload import JsonError, JsonLimits, check_json, load_json
from satseg.synthetic import make_scene

from .conftest import SMALL_PARAMS, assert_accounted, error_records, inventory

STRACE = shutil.which("strace")


def _hostile_crs(canary: Path) -> dict[str, str]:
    """crs names that reference the canary file, one per way PROJ could be made to read it."""
    c = str(canary)
    return {
        "nadgrids": f"+proj=longlat +datum=WGS84 +nadgrids={c}",
        "init": f"+init={c}:4326",
        "geoidgrids": f"+proj=longlat +geoidgrids={c} +vunits=m",
        "pipeline": f"+proj=pipeline +step +proj=hgridshift +grids={c}",
        "wkt_extension": 'GEOGCS["x",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
        f'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433],EXTENSION["PROJ4",'
        f'"+proj=longlat +nadgrids={c}"]]',
        "wkt2_boundcrs": f'BOUNDCRS[SOURCECRS[GEOGCRS["x"]],TARGETCRS[GEOGCRS["y"]],'
        f'ABRIDGEDTRANSFORMATION["t",METHOD["NTv2"],PARAMETERFILE["f","{c}"]]]',
        "projjson": json.dumps({"type": "GeographicCRS", "name": c}),
        "esri": "ESRI:102100",
        "file_path": c,
    }


def _drop_geojson(folder: Path, name: str, crs_name: str, seed: int) -> None:
    scene = make_scene(folder, name, 256, 256, seed, labelme=False)
    assert scene.geojson is not None
    doc = json.loads(Path(scene.geojson).read_text())
    doc["crs"] = {"type": "name", "properties": {"name": crs_name}}
    Path(scene.geojson).write_text(json.dumps(doc))


def test_proj_strings_and_file_references_in_crs_are_quarantined(settings, canary) -> None:
    d = settings.inbox / "demo"
    d.mkdir(parents=True)
    cases = _hostile_crs(canary.path)
    for i, (case, crs_name) in enumerate(cases.items()):
        _drop_geojson(d, f"crs_{case}", crs_name, i)
    make_scene(d, "good", 256, 256, 99, labelme=False)  # urn:ogc:def:crs:EPSG::32637
    dropped = inventory(settings.inbox)

    out = run_once(settings, poll_interval=0.05)

    records = error_records(settings.quarantine)
    for case in cases:
        rec = records[f"demo/crs_{case}.geojson"]
        assert rec["check"] == "crs", (case, rec)
        assert "EPSG:<code>" in rec["reason"] and "WKT" in rec["reason"], rec["reason"]
    accepted = [r for r in out["results"] if r["status"] == "accepted"]
    assert [r["scene"] for r in accepted] == ["good"], out["results"]
    assert_accounted(settings, dropped)
    canary.assert_absent(settings.home)


_PARSE = """
import json, sys
from affine import Affine
from satseg.ingest.errors import IngestError
from satseg.ingest.labels import geojson_labels
for name in json.loads(sys.argv[1]):
    doc = {"type": "FeatureCollection", "features": [],
           "crs": {"type": "name", "properties": {"name": name}}}
    try:
        geojson_labels(doc, "EPSG:32637", Affine(0.5, 0, 5e5, 0, -0.5, 2.8e6), 256, 256)
    except IngestError as e:
        assert e.check == "crs", e
    else:
        raise SystemExit("accepted: " + name)
print("all refused")
"""

_CONTROL = """
import sys
from pyproj import CRS
try:
    CRS.from_user_input("+init=" + sys.argv[1] + ":4326")
except Exception:
    pass
"""


def _opened(tmp_path: Path, code: str, arg: str, target: Path) -> list[str]:
    """System calls of ``python -c code arg`` (and its threads) that name ``target``."""
    log = tmp_path / f"strace-{len(list(tmp_path.glob('strace-*')))}.log"
    cmd = [STRACE or "strace", "-f", "-qq", "-e", "trace=%file", "-o", str(log)]
    run = subprocess.run(
        [*cmd, sys.executable, "-c", code, arg], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return [line for line in log.read_text().splitlines() if str(target) in line]


@pytest.mark.skipif(STRACE is None, reason="strace is not installed")
def test_proj_never_opens_the_file_a_crs_names(tmp_path: Path, canary) -> None:
    """At the system-call level: PROJ (C code, invisible to audit hooks) opens nothing."""
    # the detector works: pyproj itself, handed such a string, does open the canary
    assert any(
        "open" in line for line in _opened(tmp_path, _CONTROL, str(canary.path), canary.path)
    )
    names = [n for n in _hostile_crs(canary.path).values()]
    seen = _opened(tmp_path, _PARSE, json.dumps(names), canary.path)
    assert seen == [], seen


@pytest.mark.parametrize(
    "name",
    [
        "EPSG:4326",
        "epsg:32637",
        "urn:ogc:def:crs:EPSG::32637",
        "urn:ogc:def:crs:EPSG:6.6:4326",
        "urn:ogc:def:crs:OGC:1.3:CRS84",
        4326,
        "WKT",
    ],
)
def test_accepted_crs_forms_still_parse(name) -> None:
    from affine import Affine
    from pyproj import CRS, Transformer

    if name == "WKT":
        name = CRS.from_epsg(4326).to_wkt()
    utm = CRS.from_epsg(32637)
    to_doc = Transformer.from_crs(utm, CRS.from_user_input(name), always_xy=True)
    ring = [
        list(to_doc.transform(500000 + dx, 2800000 - dy))
        for dx, dy in ((10, 10), (60, 10), (60, 60), (10, 60), (10, 10))
    ]
    doc = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": name}},
        "features": [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]}}],
    }
    labels = geojson_labels(doc, utm, Affine(0.5, 0, 500000, 0, -0.5, 2800000), 256, 256)
    (poly,) = labels.geometries
    assert poly.bounds == pytest.approx((20, 20, 120, 120), abs=0.01)


def test_crs_of_another_kind_is_refused() -> None:
    from affine import Affine

    for crs in (
        {"type": "link", "properties": {"href": "http://127.0.0.1:9/crs", "type": "proj4"}},
        {"type": "name", "properties": {"href": "file:///etc/passwd"}},
    ):
        doc = {"type": "FeatureCollection", "crs": crs, "features": []}
        with pytest.raises(IngestError) as err:
            geojson_labels(doc, "EPSG:32637", Affine.identity(), 8, 8)
        assert err.value.check == "crs"


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_geojson_non_finite_coordinates_are_named(bad: float) -> None:
    from affine import Affine

    ring = [[39.0, 25.3], [bad, 25.3], [39.001, 25.301], [39.0, 25.3]]
    doc = {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]}}],
    }
    with pytest.raises(IngestError, match="non-finite coordinates") as err:
        geojson_labels(doc, "EPSG:32637", Affine(0.5, 0, 5e5, 0, -0.5, 2.8e6), 256, 256)
    assert err.value.check == "polygon_points"


def _good_labelme(folder: Path, name: str, seed: int) -> Path:
    scene = make_scene(folder, name, 256, 256, seed, geojson=False)
    assert scene.labelme is not None
    return Path(scene.labelme)


def test_deeply_nested_and_oversized_json_are_quarantined_not_fatal(settings) -> None:
    d = settings.inbox / "demo"
    d.mkdir(parents=True)
    for name, text in (
        ("brackets", "[" * 100_000),
        ("objects", '{"shapes": ' + '{"a": ' * 50_000 + "1" + "}" * 50_001),
        ("shapes", '{"shapes": [' + "[" * 5000 + "]" * 5000 + "]}"),
    ):
        _good_labelme(d, name, 1).write_text(text)
    big = _good_labelme(d, "big", 2)
    doc = json.loads(big.read_text())
    doc["padding"] = "x" * (2 * 1024 * 1024)
    big.write_text(json.dumps(doc))
    _good_labelme(d, "good", 3)
    params = {**SMALL_PARAMS, "ingest": {"max_annotation_mb": 1}}
    Path(os.environ["SATSEG_PARAMS_FILE"]).write_text(yaml.safe_dump(params))
    dropped = inventory(settings.inbox)

    out = run_once(settings, poll_interval=0.05)  # returns: no RecursionError escapes

    records = error_records(settings.quarantine)
    for name in ("brackets", "objects", "shapes"):
        rec = records[f"demo/{name}.json"]
        assert rec["check"] == "json_depth" and "deeper than 64 levels" in rec["reason"], rec
    assert records["demo/big.json"]["check"] == "json_size"
    assert "1 MB" in records["demo/big.json"]["reason"]
    assert [r["scene"] for r in out["results"] if r["status"] == "accepted"] == ["good"]
    assert_accounted(settings, dropped)
    assert inventory(settings.inbox) == {}


BAD_LABELME = {
    # name: (how the first shape / the document is broken, check, words in the reason)
    "xyz": ({"points": [[10, 10, 0], [50, 10, 0], [50, 50, 0]]}, "labelme_points", "[10, 10, 0]"),
    "xyz_two": ({"points": [[10, 10, 0], [50, 10, 0]]}, "labelme_points", "[x, y] pair"),
    "flat": ({"points": [10, 10, 50, 10, 50, 50]}, "labelme_points", "point 0 is 10"),
    "nan": ({"points": [[10, 10], [float("nan"), 10], [50, 50]]}, "labelme_points", "non-finite"),
    "inf": ({"points": [[10, 10], [float("inf"), 10], [50, 50]]}, "labelme_points", "non-finite"),
    "text": ({"points": [[10, 10], ["50", 10], [50, 50]]}, "labelme_points", "pair of numbers"),
    "bools": ({"points": [[True, True], [False, True], [True, False]]}, "labelme_points", "pair"),
    "dict": ({"points": {"x": [1, 2]}}, "labelme_points", "got dict"),
    "shape_list": (["not", "a", "shape"], "labelme_shapes", "is not an object"),
    "width_str": ({"imageWidth": "256"}, "labelme_schema", "'imageWidth' must be an integer"),
    "height_float": ({"imageHeight": 256.0}, "labelme_schema", "got float 256.0"),
    "width_bool": ({"imageWidth": True}, "labelme_schema", "got bool true"),
}


def test_labelme_points_and_sizes_of_the_wrong_type_are_quarantined(settings) -> None:
    d = settings.inbox / "demo"
    d.mkdir(parents=True)
    for i, (name, (change, _, _)) in enumerate(BAD_LABELME.items()):
        path = _good_labelme(d, name, i)
        doc = json.loads(path.read_text())
        if isinstance(change, list):
            doc["shapes"][0] = change
        elif "points" in change:
            doc["shapes"][0]["points"] = change["points"]
        else:
            doc.update(change)
        path.write_text(json.dumps(doc))  # NaN/Infinity: Python's json writes (and reads) them
    dropped = inventory(settings.inbox)

    run_once(settings, poll_interval=0.05)

    records = error_records(settings.quarantine)
    for name, (_, check, words) in BAD_LABELME.items():
        rec = records[f"demo/{name}.json"]
        assert rec["check"] == check and words in rec["reason"], (name, rec)
    assert "256x256 vs" not in json.dumps(records)
    assert_accounted(settings, dropped)


def test_points_are_never_reshaped_into_another_polygon() -> None:
    doc = {"shapes": [{"label": "a", "points": [[1, 2, 3], [4, 5, 6]]}]}
    with pytest.raises(IngestError, match=r"point 0 is \[1, 2, 3\]") as err:
        labelme_labels(doc, 64, 64)
    assert err.value.check == "labelme_points"
    ok = {"imageWidth": 64, "imageHeight": 64, "shapes": [{"points": [[1, 1], [9, 1], [9, 9]]}]}
    assert len(labelme_labels(ok, 64, 64).geometries) == 1


@pytest.mark.parametrize(
    "text",
    [
        '{"a": [1, 2, {"b": null}], "c": "\\u00e9\\n", "d": -1.5e-3, "e": [], "f": {}}',
        "[[], [[]], {}, [{}], true, false, null, NaN, -Infinity, 0, -0, 1E+5]",
        ' \n {"x" : [ 1 , 2 ] } \n',
        '\ufeff{"bom": 1}',
    ],
)
def test_the_scanner_accepts_what_json_accepts(text: str) -> None:
    raw = text.encode()
    check_json(raw, JsonLimits())
    json.loads(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{not json",
        b"[1,]",
        b'{"a":1,}',
        b"[1 2]",
        b'{"a"}',
        b"01",
        b"1.",
        b"[-]",
        b'"a\nb"',
        b'"\\x"',
        b'{"a":1}{',
        b'["a":1]',
        b"\xff",
        b'"\xc3"',
        b"[]]",
        b"[[]",
    ],
)
def test_the_scanner_refuses_what_json_refuses(raw: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(raw)
    with pytest.raises(JsonError) as err:
        check_json(raw, JsonLimits())
    assert err.value.check == "json_parse"


def test_load_json_checks_size_before_reading_and_depth_before_parsing(tmp_path: Path) -> None:
    p = tmp_path / "a.json"
    p.write_text("[" * 65 + "]" * 65)
    with pytest.raises(JsonError, match="deeper than 64") as err:
        load_json(p, JsonLimits())
    assert err.value.check == "json_depth"
    p.write_text("[" * 64 + "]" * 64)
    assert load_json(p, JsonLimits()) == json.loads(p.read_text())
    p.write_text("[1" + "0" * 5000 + "]")  # valid syntax; Python refuses ints over 4300 digits
    with pytest.raises(JsonError, match="not valid JSON") as err:
        load_json(p, JsonLimits())
    assert err.value.check == "json_parse"
    p.write_text(json.dumps({"x": "y" * 2000}))
    with pytest.raises(JsonError) as err:
        load_json(p, JsonLimits(max_bytes=1000))
    assert err.value.check == "json_size"
