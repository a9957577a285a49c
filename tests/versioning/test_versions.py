"""Dataset versions in a real git + DVC repository: tags, idempotence, exact checkout."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from satseg.cli import app
from satseg.ingest.pipeline import run_once
from satseg.synthetic import make_scene
from satseg.versioning import (
    VersioningError,
    checkout,
    dataset_dir,
    latest_version,
    list_versions,
    materialize,
    version_dataset,
)


def _files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _ingest(settings, name: str, seed: int) -> list[dict]:
    make_scene(settings.inbox / "demo", name, 256, 256, seed, geojson=False)
    return run_once(settings, poll_interval=0.05)["versions"]


@pytest.fixture
def two_versions(settings):
    (v1,) = _ingest(settings, "one", 1)
    snap1 = _files(dataset_dir(settings, "demo"))
    (v2,) = _ingest(settings, "two", 2)
    snap2 = _files(dataset_dir(settings, "demo"))
    return v1, snap1, v2, snap2


def test_versions_are_tagged_and_listed(settings, two_versions) -> None:
    v1, _, v2, _ = two_versions
    assert (v1["tag"], v1["new"], v2["tag"], v2["new"]) == ("demo-v1", True, "demo-v2", True)
    versions = list_versions(settings, "demo")
    assert [(v.tag, v.number) for v in versions] == [("demo-v1", 1), ("demo-v2", 2)]
    assert versions[1].md5.endswith(".dir") and versions[0].md5 != versions[1].md5
    manifest = json.loads((dataset_dir(settings, "demo") / "manifest.json").read_text())
    assert versions[1].counts == manifest["counts"] and manifest["tag"] == "demo-v2"
    assert latest_version(settings, "demo") == versions[1]
    assert list_versions(settings, "other") == [] and latest_version(settings, "other") is None
    tags = subprocess.run(
        ["git", "-C", str(settings.data_repo), "tag"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert tags == ["demo-v1", "demo-v2"]
    pushed = list((settings.home / "dvc-remote").rglob("*"))
    assert sum(p.is_file() for p in pushed) >= len(_files(dataset_dir(settings, "demo")))


def test_unchanged_data_gives_no_new_version(settings, two_versions) -> None:
    again = version_dataset(settings, "demo")
    assert again.tag == "demo-v2"
    out = run_once(settings, poll_interval=0.05)
    assert out["versions"] == [] and len(list_versions(settings)) == 2


def test_checkout_restores_old_version_byte_for_byte(settings, two_versions) -> None:
    _, snap1, _, snap2 = two_versions
    path = checkout(settings, "demo-v1")
    assert path == dataset_dir(settings, "demo")
    assert _files(path) == snap1
    # from the remote when the local cache is gone
    shutil.rmtree(settings.data_repo / ".dvc" / "cache")
    assert _files(checkout(settings, "demo-v2")) == snap2
    assert _files(checkout(settings, "demo-v1")) == snap1
    # a new scene after a checkout builds on everything accepted so far
    (v3,) = _ingest(settings, "three", 3)
    manifest = json.loads((dataset_dir(settings, "demo") / "manifest.json").read_text())
    assert v3["tag"] == "demo-v3" and [s["scene"] for s in manifest["scenes"]] == [
        "one",
        "three",
        "two",
    ]


@pytest.mark.usefixtures("two_versions")
def test_checkout_detects_corruption(settings) -> None:
    shutil.rmtree(settings.data_repo / ".dvc" / "cache")
    for victim in (settings.home / "dvc-remote").rglob("*"):
        if victim.is_file() and not victim.name.endswith(".dir"):
            os.chmod(victim, 0o644)
            victim.write_bytes(b"not what was pushed")
    before = _files(dataset_dir(settings, "demo"))
    with pytest.raises(VersioningError):
        checkout(settings, "demo-v1")
    assert _files(dataset_dir(settings, "demo")) == before  # live dataset untouched


def test_unknown_tag(settings, two_versions) -> None:
    with pytest.raises(VersioningError, match="known: demo-v1, demo-v2"):
        checkout(settings, "demo-v7")
    with pytest.raises(VersioningError, match="not a dataset tag"):
        checkout(settings, "../../etc")


def test_materialize_leaves_live_dataset(settings, two_versions) -> None:
    _, snap1, _, snap2 = two_versions
    path = materialize(settings, "demo-v1")
    assert _files(path) == snap1
    assert _files(dataset_dir(settings, "demo")) == snap2


def test_cli_versions_and_checkout(settings, two_versions) -> None:
    _, snap1, _, _ = two_versions
    runner = CliRunner()
    r = runner.invoke(app, ["data", "versions", "demo", "--json"])
    assert r.exit_code == 0, r.output
    assert [v["tag"] for v in json.loads(r.output)] == ["demo-v1", "demo-v2"]
    r = runner.invoke(app, ["data", "versions"])
    assert "demo-v2" in r.output and "train" in r.output
    r = runner.invoke(app, ["data", "checkout", "demo-v1"])
    assert r.exit_code == 0, r.output
    assert _files(dataset_dir(settings, "demo")) == snap1
    r = runner.invoke(app, ["data", "checkout", "demo-v9"])
    assert r.exit_code == 1 and "no version" in r.output


def test_works_without_git_identity_and_with_custom_remote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from satseg.config import get_settings, reset_settings_cache

    for var in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))  # no ~/.gitconfig
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("SATSEG_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("SATSEG_DVC_REMOTE", str(tmp_path / "elsewhere"))
    reset_settings_cache()
    s = get_settings()
    (v,) = _ingest(s, "solo", 5)
    assert v["tag"] == "demo-v1"
    assert any(p.is_file() for p in (tmp_path / "elsewhere").rglob("*"))
    reset_settings_cache()


@pytest.mark.parametrize(("text", "problem"), [(None, "no manifest.json"), ("{", "not valid JSON")])
def test_versioning_needs_a_readable_manifest(settings, text, problem) -> None:
    d = dataset_dir(settings, "demo")
    d.mkdir(parents=True)
    if text is not None:
        (d / "manifest.json").write_text(text)
    with pytest.raises(VersioningError, match=problem):
        version_dataset(settings, "demo")
