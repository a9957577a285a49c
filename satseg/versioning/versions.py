"""Dataset versions: ``dvc add`` + commit + tag ``<dataset>-v<N>`` + ``dvc push``; list; checkout.

A version is an annotated git tag whose message carries the DVC md5 of the dataset
directory and its counts, so listing versions needs git only. ``version_dataset`` is
idempotent: a dataset whose md5 matches an existing version returns that version.
``checkout`` rebuilds the directory from the DVC cache (or the remote) beside the live one,
checks every file's md5 against the version's listing, then swaps it in.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from satseg import vocab
from satseg.config import Settings
from satseg.io.atomic import replace_dir
from satseg.manifest import ManifestError, read_manifest
from satseg.versioning.paths import dataset_dir
from satseg.versioning.repo import (
    VersioningError,
    dataset_lock,
    dvc_repo,
    ensure_repo,
    git,
    repo_lock,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetVersion:
    tag: str
    dataset: str
    number: int
    date: str
    md5: str
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _dataset_of(tag: str) -> str:
    try:
        return vocab.parse_tag(tag)[0]
    except vocab.TagError as e:
        raise VersioningError(str(e)) from e


def list_versions(settings: Settings, dataset: str | None = None) -> list[DatasetVersion]:
    """Every version (of ``dataset``), oldest first; empty when no repository exists yet."""
    root = settings.data_repo
    if not (root / ".git").exists():
        return []
    out = git(
        root,
        "for-each-ref",
        "--format=%(refname:short)%09%(creatordate:iso-strict)%09%(contents:subject)",
        "refs/tags",
    )
    versions = []
    for line in out.splitlines():
        tag, date, subject = (line.split("\t", 2) + ["", ""])[:3]
        m = vocab.TAG.match(tag)
        if not m or (dataset is not None and m["dataset"] != dataset):
            continue
        try:
            meta = json.loads(subject)
        except json.JSONDecodeError:
            meta = {}
        versions.append(
            DatasetVersion(
                tag=tag,
                dataset=m["dataset"],
                number=int(m["n"]),
                date=date,
                md5=str(meta.get("md5", "")),
                counts=dict(meta.get("counts", {})),
            )
        )
    return sorted(versions, key=lambda v: (v.dataset, v.number))


def latest_version(settings: Settings, dataset: str) -> DatasetVersion | None:
    versions = list_versions(settings, dataset)
    return versions[-1] if versions else None


def next_tag(settings: Settings, dataset: str) -> str:
    latest = latest_version(settings, vocab.check_dataset_name(dataset))
    return vocab.format_tag(dataset, (latest.number if latest else 0) + 1)


def _mirror(src: Path, dst: Path) -> None:
    """Make ``dst`` hold exactly the files of ``src`` (hard links; stale files removed)."""
    wanted = set()
    for dirpath, _, files in os.walk(src):
        for f in files:
            rel = Path(dirpath, f).relative_to(src)
            wanted.add(rel)
            target = dst / rel
            if target.exists() and os.path.samefile(src / rel, target):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists() or target.is_symlink():
                target.unlink()
            try:
                os.link(src / rel, target)
            except OSError:
                shutil.copy2(src / rel, target)
    if dst.exists():
        for dirpath, _, files in os.walk(dst, topdown=False):
            for f in files:
                p = Path(dirpath, f)
                if p.relative_to(dst) not in wanted:
                    p.unlink()
            if dirpath != str(dst) and not os.listdir(dirpath):
                os.rmdir(dirpath)


def _dvc_md5(root: Path, dataset: str, rev: str | None = None) -> str:
    text = (
        git(root, "show", f"{rev}:{dataset}.dvc") if rev else (root / f"{dataset}.dvc").read_text()
    )
    outs = (yaml.safe_load(text) or {}).get("outs") or [{}]
    return str(outs[0].get("md5", ""))


def version_dataset(settings: Settings, dataset: str) -> DatasetVersion:
    """Record ``processed/<dataset>`` as a new version (or return the one it already is)."""
    src = dataset_dir(settings, dataset)
    try:
        manifest = read_manifest(src, require=()).doc
    except ManifestError as e:
        raise VersioningError(str(e)) from e
    with repo_lock(settings):
        root = ensure_repo(settings)
        _mirror(src, root / dataset)
        with dvc_repo(root) as repo:
            repo.add([str(root / dataset)])
        md5 = _dvc_md5(root, dataset)
        existing = {v.md5: v for v in list_versions(settings, dataset)}
        if md5 in existing:
            git(root, "checkout", "-q", "HEAD", "--", f"{dataset}.dvc")
            log.info("dataset %s unchanged: %s", dataset, existing[md5].tag)
            return existing[md5]
        tag = next_tag(settings, dataset)
        counts = {k: int(v) for k, v in manifest.get("counts", {}).items()}
        git(root, "add", f"{dataset}.dvc", ".gitignore")
        if git(root, "diff", "--cached", "--name-only").strip():
            git(root, "commit", "-q", "-m", f"{tag}: {counts} ({md5})")
        meta = {
            "dataset": dataset,
            "md5": md5,
            "counts": counts,
            "manifest_tag": manifest.get("tag"),
        }
        git(root, "tag", "-a", tag, "-m", json.dumps(meta, sort_keys=True))
        with dvc_repo(root) as repo:
            repo.push(targets=[str(root / f"{dataset}.dvc")])
    version = latest_version(settings, dataset)
    assert version is not None and version.tag == tag
    log.info("dataset %s versioned as %s (%s)", dataset, tag, md5)
    return version


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _export(settings: Settings, tag: str, dest: Path) -> None:
    """Write version ``tag``'s files into ``dest`` (new dir) and verify every md5."""
    from dvc.api import DVCFileSystem

    dataset = _dataset_of(tag)
    root = settings.data_repo
    if not git(root, "tag", "--list", tag).strip():
        known = ", ".join(v.tag for v in list_versions(settings, dataset)) or "none"
        raise VersioningError(f"no version {tag!r} (known: {known})")
    fs = DVCFileSystem(str(root), rev=tag)
    listing = {
        str(Path(p).relative_to(dataset)): info for p, info in fs.find(dataset, detail=True).items()
    }
    dest.mkdir(parents=True, exist_ok=False)
    for rel in sorted(listing):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(f"{dataset}/{rel}", str(dest / rel))
    bad = []
    for rel, info in listing.items():
        want = (info.get("dvc_info") or {}).get("md5") or info.get("md5")
        if want is None or _md5(dest / rel) != want:
            bad.append(rel)
    got = {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}
    if bad or got != set(listing):
        raise VersioningError(
            f"checkout of {tag} failed verification: {len(bad)} file(s) with a wrong md5, "
            f"{len(got ^ set(listing))} missing/extra"
        )


def checkout(settings: Settings, tag: str) -> Path:
    """Restore ``processed/<dataset>`` to version ``tag`` exactly (md5-checked); return it."""
    dataset = _dataset_of(tag)
    out = dataset_dir(settings, dataset)
    # the dataset lock first (as ingest's finalize takes it), so a checkout never swaps the
    # directory under a rebuild
    with dataset_lock(settings, dataset), repo_lock(settings):
        tmp = settings.processed / ".work" / f"checkout-{tag}-{uuid.uuid4().hex[:8]}"
        try:
            _export(settings, tag, tmp)
            replace_dir(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("checked out %s into %s", tag, out)
    return out


def materialize(settings: Settings, tag: str) -> Path:
    """A read-only copy of version ``tag`` under ``processed/.versions/<tag>`` (live dir untouched).

    For readers of an old version (e.g. a drift reference) that must not swap the dataset
    training uses.
    """
    dest = settings.processed / ".versions" / tag
    if (dest / "manifest.json").is_file():
        return dest
    with repo_lock(settings):
        tmp = settings.processed / ".work" / f"export-{tag}-{uuid.uuid4().hex[:8]}"
        try:
            _export(settings, tag, tmp)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                shutil.rmtree(dest)
            tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest
