"""The one manifest reader: what it returns, and one error naming the file and the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from satseg.manifest import ManifestError, manifest_path, read_manifest


def _write(d: Path, text: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "manifest.json").write_text(text)
    return d


def test_reads_headline_fields_and_keeps_the_document(tmp_path: Path) -> None:
    doc = {"dataset": "city", "tag": "city-v2", "counts": {"train": 6, "val": 2}, "md5": "ab"}
    d = _write(tmp_path / "city", json.dumps(doc))
    m = read_manifest(d)
    assert (m.dataset, m.tag, m.counts) == ("city", "city-v2", {"train": 6, "val": 2})
    assert m.doc == doc and m.path == manifest_path(d) == d / "manifest.json"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (None, "no manifest.json (not a processed dataset)"),
        ("{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        ("[1, 2]", "not a JSON object but list"),
        (json.dumps({"dataset": "x"}), "missing key(s) tag, counts"),
    ],
)
def test_every_problem_is_one_error_naming_path_and_problem(
    tmp_path: Path, text: str | bytes | None, problem: str
) -> None:
    d = tmp_path / "ds"
    d.mkdir()
    if isinstance(text, bytes):
        (d / "manifest.json").write_bytes(text)
    elif text is not None:
        (d / "manifest.json").write_text(text)
    with pytest.raises(ManifestError) as err:
        read_manifest(d)
    assert isinstance(err.value, ValueError)
    assert problem in err.value.problem and str(d) in str(err.value)
    assert err.value.path in (d, d / "manifest.json")


def test_require_names_only_the_keys_a_caller_needs(tmp_path: Path) -> None:
    d = _write(tmp_path / "ds", json.dumps({"counts": {"train": 1}}))
    m = read_manifest(d, require=("counts",))
    assert m.counts == {"train": 1} and m.tag is None and m.dataset is None
    with pytest.raises(ManifestError, match="missing key"):
        read_manifest(d)
