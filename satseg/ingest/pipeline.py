"""The ingest steps, one function per DAG task: scan, process one pair, finalize.

``process_pair`` never raises for bad input: the pair is quarantined and the result says why, so
one bad file does not stop the others. Anything else (a bug, a full disk, a parser's
``RecursionError``) raises: the task fails, its ledger claim is released and the files stay in
the inbox for the retry. Each file is opened once without following links and read only through
that descriptor (``satseg.inbox.verified``); it moves only while its name still refers to that
unchanged file, and a pair moves into raw/ whole or not at all. Every step is idempotent: a processed pair's
result is stored under ``state/ingest_results/`` and returned again on a re-run, a content hash
already in the ledger is a duplicate, and an unchanged dataset gives no new version.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from satseg.config import Settings
from satseg.inbox.claims import Ledger
from satseg.inbox.quarantine import quarantine
from satseg.inbox.stuck import StuckFiles
from satseg.inbox.verified import (
    Changed,
    NotVerified,
    Verified,
    is_same,
    kind_of,
    open_verified,
)
from satseg.ingest.errors import IngestError
from satseg.ingest.inbox import refuse, scan_inbox
from satseg.ingest.scene import build_scene, scene_params
from satseg.ingest.state import (
    ledger_path,
    pending_dir,
    provenance_path,
    read_state,
    results_dir,
    stuck_path,
)
from satseg.io.atomic import move, write_json
from satseg.preprocess.dataset import build_dataset, load_scenes, scene_dir
from satseg.vocab import DATASET_SEP

log = logging.getLogger(__name__)


def _data_errors() -> tuple[type[BaseException], ...]:
    """What the readers and parsers raise for bad bytes: malformed input, quarantined.

    Only these: satseg's own ``IngestError`` / ``RasterError`` (the parse sites convert what
    they anticipate), and the decoders' own errors for what they did not (OpenCV, GDAL via
    rasterio, GEOS via shapely, JSON/UTF-8). A ``TypeError``, ``KeyError``, ``IndexError`` or
    ``AttributeError`` (or a bare ``ValueError``) is a bug in satseg: the task fails loudly and
    the files stay in the inbox. So does ``OSError`` (disk full, permissions): Airflow retries.
    """
    import cv2
    from rasterio.errors import RasterioError
    from shapely.errors import ShapelyError

    from satseg.io.raster import RasterError

    return (
        IngestError,
        RasterError,
        cv2.error,
        RasterioError,
        ShapelyError,
        json.JSONDecodeError,
        UnicodeDecodeError,
    )


_DATA_ERRORS = _data_errors()

__all__ = ["finalize", "process_pair", "run_once", "scan_inbox"]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _scene_id(settings: Settings, dataset: str, stem: str, sha: str, taken: set[str]) -> str:
    """The stem, unless another image already uses (or has reserved) it in this dataset."""
    index = scene_dir(settings, dataset, stem) / "scene.json"
    clash = index.is_file() and json.loads(index.read_text()).get("sha256") != sha
    return f"{stem}-{sha[:8]}" if clash or stem in taken else stem


def _raw_target(settings: Settings, dataset: str, rel: str, sha: str, taken: set[str]) -> Path:
    name = Path(rel).name
    if "/" not in rel and name.startswith(f"{dataset}{DATASET_SEP}"):
        name = name[len(dataset) + len(DATASET_SEP) :]
    target = settings.raw / dataset / name
    if target.exists() or str(target) in taken:
        stem, dot, ext = name.partition(".")
        target = target.with_name(f"{stem}-{sha[:8]}{dot}{ext}")
    return target


@dataclass
class Claim:
    """This pair owns its image hash, scene id and raw/ file names (or duplicates ``owner``)."""

    owner: dict[str, Any] | None = None
    scene: str = ""
    raw: dict[str, Path] = field(default_factory=dict)


def _ledger(settings: Settings) -> Ledger:
    """sha256 of every claimed or accepted image -> its pair, scene and raw/ names."""
    return Ledger(ledger_path(settings), settings.state / "ledger.lock", owner_field="pair_id")


def _claim(
    settings: Settings, pair: dict[str, Any], members: list[str], hashes: dict[str, str]
) -> Claim:
    """Under the ledger lock: detect a duplicate, else reserve names no parallel task can take."""
    sha, ds = hashes[pair["image"]], pair["dataset"]
    claims = _ledger(settings)
    with claims.edit() as ledger:
        holder = claims.holder(ledger, sha, pair["pair_id"])
        if holder is not None:
            return Claim(owner=dict(holder))
        entry = ledger.get(sha)
        if entry and entry.get("pair_id") == pair["pair_id"] and entry.get("scene"):
            return Claim(
                scene=entry["scene"], raw={r: settings.home / p for r, p in entry["files"].items()}
            )
        others = [e for h, e in ledger.items() if h != sha and e.get("dataset") == ds]
        scenes = {str(e.get("scene")) for e in others if e.get("status") == "processing"}
        names = {str(settings.home / p) for e in others for p in (e.get("files") or {}).values()}
        scene = _scene_id(settings, ds, pair["scene"], sha, scenes)
        raw = {}
        for rel in members:
            raw[rel] = _raw_target(settings, ds, rel, hashes[rel], names)
            names.add(str(raw[rel]))
        claims.claim(
            ledger,
            sha,
            pair["pair_id"],
            dataset=ds,
            scene=scene,
            original=pair["image"],
            files={r: str(p.relative_to(settings.home)) for r, p in raw.items()},
        )
    return Claim(scene=scene, raw=raw)


def _ledger_update(settings: Settings, sha: str, entry: dict[str, Any] | None) -> None:
    _ledger(settings).put(sha, entry)


def _finish(settings: Settings, result: dict[str, Any]) -> dict[str, Any]:
    write_json(results_dir(settings) / f"{result['pair_id']}.json", result)
    return result


class Stuck(Exception):
    """A member of a pair could not be moved out of the inbox (read-only folder, ...)."""

    def __init__(self, rel: str, error: OSError) -> None:
        super().__init__(f"{rel}: cannot move it out of the inbox: {error.strerror or error}")
        self.rel, self.error = rel, error


@dataclass
class _Pair:
    """One pair's files in the inbox with their hashes (what every step below needs)."""

    spec: dict[str, Any]
    members: list[str]
    paths: dict[str, Path]
    hashes: dict[str, str]
    opened: dict[str, Verified] = field(default_factory=dict)

    @property
    def base(self) -> dict[str, Any]:
        return {k: self.spec[k] for k in ("pair_id", "dataset", "scene")}


def _reject(
    settings: Settings, pair: _Pair, status: str, reason: str, check: str, culprit: str | None
) -> dict[str, Any]:
    """Quarantine every file of the pair; the culprit gets the reason, partners a pointer."""
    quarantined = []
    for rel in pair.members:
        own = culprit is None or rel == culprit
        partner = f"its partner {Path(culprit or '').name} was rejected: {reason}"
        try:
            target = quarantine(
                settings,
                pair.paths[rel],
                reason if own else partner,
                check if own else "partner_rejected",
                dataset=pair.spec["dataset"],
                sha256=pair.hashes[rel],
                related=pair.members,
                expect=pair.opened[rel].ident,
            )
        except OSError as e:
            raise Stuck(rel, e) from e
        quarantined.append(str(target))
    result = {**pair.base, "status": status, "check": check, "reason": reason}
    return _finish(settings, {**result, "quarantined": quarantined})


def _accept(
    settings: Settings, pair: _Pair, claim: Claim, record: dict[str, Any], index: dict[str, Any]
) -> dict[str, Any]:
    """Move the originals to raw/ with a provenance sidecar; mark the dataset for versioning."""
    ds, spec = pair.spec["dataset"], pair.spec
    _move_all(pair, claim.raw)
    files = {rel: str(claim.raw[rel].relative_to(settings.home)) for rel in pair.members}
    now = _now()
    sidecar = {
        **record,
        "dataset": ds,
        "scene": claim.scene,
        "ingested": now,
        "files": [
            {
                "original": rel,
                "raw": files[rel],
                "sha256": pair.hashes[rel],
                "size": claim.raw[rel].stat().st_size,
            }
            for rel in pair.members
        ],
        "source": index["source"],
        "labels": index["labels"],
        "patches": index["summary"],
        **_credit(index["labels"]),
    }
    write_json(provenance_path(settings, ds, claim.scene), sidecar)
    entry = {
        "pair_id": spec["pair_id"],
        "dataset": ds,
        "scene": claim.scene,
        "status": "done",
        "original": spec["image"],
        "raw": record["raw"],
        "files": files,
        "time": now,
    }
    _ledger_update(settings, record["sha256"], entry)
    write_json(pending_dir(settings) / f"{ds}.json", {"dataset": ds, "since": now})
    log.info("accepted %s as %s/%s: %s", spec["image"], ds, claim.scene, index["summary"])
    result = {**pair.base, "scene": claim.scene, "status": "accepted", "patches": index["summary"]}
    return _finish(settings, {**result, "raw": [str(p) for p in claim.raw.values()]})


def _credit(labels: dict[str, Any] | None) -> dict[str, Any]:
    """A corrected annotation task is credited to the scene its crop came from (lineage)."""
    task = (labels or {}).get("task")
    if not task:
        return {}
    return {"annotation_task": task["task"], "source_scene": task["source_scene"]}


def _move_all(pair: _Pair, targets: dict[str, Path]) -> None:
    """Move every member to its target, or none: each is checked to be the verified file
    (same inode, size and mtime) before and after its move; on any failure the members
    already moved go back to the inbox and the error is raised (``Changed``, ``OSError``)."""
    moved: list[str] = []
    try:
        for rel in pair.members:
            v = pair.opened[rel]
            if not v.unchanged():
                raise Changed(f"{rel} changed or was replaced since it was verified")
            try:
                move(pair.paths[rel], targets[rel])
            except OSError as e:
                if not os.path.lexists(pair.paths[rel]):
                    raise Changed(f"{rel} vanished while its pair was moved") from e
                raise Stuck(rel, e) from e
            moved.append(rel)
            if not _arrived(targets[rel], v):
                raise Changed(f"{rel} was replaced while it was moved")
    except BaseException:
        for rel in reversed(moved):
            _move_back(targets[rel], pair.paths[rel])
        raise


def _move_back(moved: Path, original: Path) -> None:
    """Undo one move of ``_move_all``: what was moved returns to the inbox (under a fresh
    name if its name was taken meanwhile); a link that arrived instead of the verified file
    goes back too, for ``_refuse_swapped``."""
    back, n = original, 1
    while os.path.lexists(back):
        back, n = original.with_name(f"{original.stem}.{n}{original.suffix}"), n + 1
    move(moved, back)


def _arrived(target: Path, v: Verified) -> bool:
    """Is ``target`` the verified file (the same inode unchanged; a copy: the same bytes)?"""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False
    if (st.st_dev, st.st_ino) == (v.ident.dev, v.ident.ino):
        return is_same(target, v.ident)
    try:  # a copy (cross-device move): it must hold the verified bytes
        with open_verified(target) as copy:
            return copy.sha256 == v.sha256
    except NotVerified:
        return False


def _open_pair(settings: Settings, spec: dict[str, Any]) -> tuple[_Pair, dict[str, Any] | None]:
    """Open every member once (``open_verified``); a result instead if one is not usable.

    A member that is gone makes the pair ``gone`` (the rest waits for the next scan); one
    that became a link, FIFO or device is quarantined as what it is, and its partners stay
    in the inbox to wait for a proper partner (like a missing one).
    """
    members = [spec["image"], spec["annotation"], *spec.get("extras", []), *spec.get("markers", [])]
    pair = _Pair(spec, members, {rel: settings.inbox / rel for rel in members}, {})
    missing, refused = [], []
    for rel, path in pair.paths.items():
        try:
            pair.opened[rel] = open_verified(path, settings.inbox)
        except FileNotFoundError:
            missing.append(rel)
        except NotVerified as e:
            if e.check == "symlink_parent":  # the scan refuses the folder link itself
                missing.append(rel)
                continue
            target = refuse(settings, path, str(e), e.check, dataset=spec["dataset"])
            refused.append(str(target) if target else rel)
    pair.hashes = {rel: v.sha256 for rel, v in pair.opened.items()}
    sizes = spec.get("sizes", {})
    grown = [r for r, v in pair.opened.items() if sizes.get(r, v.ident.size) != v.ident.size]
    if grown:  # still being written: the scan saw other bytes
        log.warning("pair %s: %s changed since the scan; left for the next", spec["pair_id"], grown)
        return pair, {
            **pair.base,
            "status": "changed",
            "reason": f"changed since the scan: {grown}",
        }
    if not missing and not refused:
        return pair, None
    log.warning("pair %s: missing %s, refused %s", spec["pair_id"], missing, refused)
    status = "refused" if refused else "gone"
    return pair, {**pair.base, "status": status, "missing": missing, "quarantined": refused}


def _refuse_swapped(settings: Settings, pair: _Pair, targets: dict[str, Path]) -> list[str]:
    """After a ``Changed``: quarantine what replaced a member (a link, a FIFO) wherever it
    is now, never what is still the member growing in the inbox."""
    out = []
    for rel in pair.members:
        for where in (pair.paths[rel], targets.get(rel)):
            if where is None or not os.path.lexists(where):
                continue
            st = os.lstat(where)
            if stat.S_ISREG(st.st_mode):
                continue
            reason = f"{rel} was replaced by {kind_of(st.st_mode)} while it was processed"
            check = "symlink" if stat.S_ISLNK(st.st_mode) else "not_regular"
            target = refuse(settings, where, reason, check, dataset=pair.spec["dataset"])
            out.extend([str(target)] if target else [])
    return out


def process_pair(
    settings: Settings, spec: dict[str, Any], *, workers: int | None = None
) -> dict[str, Any]:
    """Validate, patch and file one pair: accepted into raw/ or quarantined, never lost.

    Every member is opened once without following links and read only through that
    descriptor; it moves only while its name still refers to that unchanged file. A pair
    whose file changed (a writer that paused, a swap) is left in the inbox (``changed``); a
    file that cannot be moved (read-only folder) stays too, reported once (``stuck``). The
    ledger claim is released whenever the pair is not filed, whatever went wrong.
    """
    done = read_state(results_dir(settings) / f"{spec['pair_id']}.json", None)
    if done is not None:
        return dict(done)
    pair, early = _open_pair(settings, spec)
    try:
        return early if early is not None else _process_opened(settings, pair, workers)
    finally:
        for v in pair.opened.values():
            v.close()


def _process_opened(settings: Settings, pair: _Pair, workers: int | None) -> dict[str, Any]:
    spec = pair.spec
    sha = pair.hashes[spec["image"]]
    claim = _claim(settings, spec, pair.members, pair.hashes)
    try:
        if claim.owner is not None:
            result = _duplicate(settings, pair, claim.owner)
        else:
            result = _build_and_file(settings, pair, claim, workers)
        StuckFiles(stuck_path(settings)).clear(*pair.members)
        return result
    except Changed as e:
        log.warning("pair %s left in the inbox: %s", spec["pair_id"], e)
        swapped = _refuse_swapped(settings, pair, claim.raw)
        return {**pair.base, "status": "changed", "reason": str(e), "quarantined": swapped}
    except Stuck as e:
        StuckFiles(stuck_path(settings)).report(e.rel, "move it out of the inbox", e.error)
        return {**pair.base, "status": "stuck", "reason": str(e)}
    finally:
        if _ledger(settings).release(sha, spec["pair_id"]) and claim.owner is None:
            shutil.rmtree(scene_dir(settings, spec["dataset"], claim.scene), ignore_errors=True)


def _duplicate(settings: Settings, pair: _Pair, owner: dict[str, Any]) -> dict[str, Any]:
    sha = pair.hashes[pair.spec["image"]]
    where = owner.get("raw", {}).get("image") or owner.get("original")
    reason = (
        f"duplicate: the same image content (sha256 {sha[:12]}...) was already ingested as "
        f"{where} (dataset {owner.get('dataset')}, scene {owner.get('scene', '?')}); "
        "not reprocessed"
    )
    return _reject(settings, pair, "duplicate", reason, "duplicate", None)


def _build_and_file(
    settings: Settings, pair: _Pair, claim: Claim, workers: int | None
) -> dict[str, Any]:
    spec, sha = pair.spec, pair.hashes[pair.spec["image"]]
    record = {
        "pair_id": spec["pair_id"],
        "sha256": sha,
        "original": spec["image"],
        "annotation": {
            "file": spec["annotation"],
            "sha256": pair.hashes[spec["annotation"]],
            "kind": spec["annotation_kind"],
        },
        "raw": {
            role: str(claim.raw[spec[role]].relative_to(settings.home))
            for role in ("image", "annotation")
        },
    }
    # the readers see the verified files, under their own names (suffix-aware readers)
    image, annotation = pair.opened[spec["image"]].view, pair.opened[spec["annotation"]].view
    try:
        try:
            index = build_scene(
                settings,
                spec["dataset"],
                claim.scene,
                image,
                annotation,
                spec["annotation_kind"],
                record=record,
                workers=workers,
            )
        except IngestError:
            raise
        except _DATA_ERRORS as e:  # malformed input that no specific check anticipated
            raise IngestError(f"unreadable input: {type(e).__name__}: {e}", "unreadable") from e
    except IngestError as e:
        culprit = {"image": spec["image"], "annotation": spec["annotation"]}.get(e.role)
        return _reject(settings, pair, "quarantined", str(e), e.check, culprit)
    return _accept(settings, pair, claim, record, index)


def refresh_scenes(settings: Settings, dataset: str) -> int:
    """Re-patch scenes cached with other parameters (from their originals in raw/)."""
    current = scene_params(settings)
    n = 0
    for index in load_scenes(settings, dataset):
        if index.get("params") == current:
            continue
        image = settings.home / index["raw"]["image"]
        annotation = settings.home / index["raw"]["annotation"]
        record = {k: index[k] for k in ("pair_id", "sha256", "original", "annotation", "raw")}
        log.info("re-patching %s/%s: parameters changed", dataset, index["scene"])
        build_scene(
            settings,
            dataset,
            index["scene"],
            image,
            annotation,
            index["annotation"]["kind"],
            record=record,
        )
        n += 1
    return n


def finalize(settings: Settings, results: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Rebuild and version every dataset that gained scenes; one dict per dataset touched.

    Datasets with accepted pairs in ``results`` and any left pending by an earlier failed
    run are included. ``new`` says whether a new version was made (unchanged data: False).
    """
    from satseg.versioning import latest_version, next_tag, version_dataset
    from satseg.versioning.repo import dataset_lock

    results = [r for r in (results or []) if r]
    datasets = {r["dataset"] for r in results if r.get("status") == "accepted"}
    pdir = pending_dir(settings)
    if pdir.is_dir():
        datasets |= {p.stem for p in pdir.glob("*.json")}
    out = []
    for ds in sorted(datasets):
        with dataset_lock(settings, ds):
            refresh_scenes(settings, ds)
            before = latest_version(settings, ds)
            build_dataset(settings, ds, next_tag(settings, ds))
            version = version_dataset(settings, ds)
            (pdir / f"{ds}.json").unlink(missing_ok=True)
        new = before is None or version.number > before.number
        out.append({**version.to_dict(), "new": new})
    summary: dict[str, int] = {}
    for r in results:
        summary[r.get("status", "?")] = summary.get(r.get("status", "?"), 0) + 1
    log.info("ingest summary: %s; versions: %s", summary, [(v["tag"], v["new"]) for v in out])
    return out


def run_once(
    settings: Settings, *, dataset: str | None = None, poll_interval: float | None = None
) -> dict[str, Any]:
    """One ingest pass as the DAG does it (``satseg ingest``): scan, process, finalize."""
    pairs = scan_inbox(settings, poll_interval=poll_interval, dataset=dataset)
    results = [process_pair(settings, p) for p in pairs]
    versions = finalize(settings, results)
    stuck = sorted(StuckFiles(stuck_path(settings)).load())
    return {"pairs": len(pairs), "results": results, "versions": versions, "stuck": stuck}
