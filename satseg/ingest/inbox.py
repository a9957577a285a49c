"""Inbox polling: which files are complete, how they pair up, what waits and what is refused.

A file is taken only when complete (``satseg.inbox.completeness``, the rule the predict inbox
uses too): a ``<file>.done`` or ``<stem>.done`` marker is present, or its size and mtime did
not change between two polls (the previous scan, recorded in ``state/inbox_scan.json``, or a
second look ``poll_interval`` seconds later). Hidden files and ``*.part``-style temporaries are
uploads in progress and are left alone. Pairs are formed per folder by file stem; an image
without its annotation (or the reverse) waits until ``annotation_timeout_s`` and is then
quarantined (``satseg.inbox.quarantine``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satseg.config import Settings
from satseg.inbox.completeness import Observed, ScanState, Seen, complete, is_marker, marker_stem
from satseg.inbox.quarantine import original_name, quarantine
from satseg.inbox.stuck import StuckFiles
from satseg.inbox.verified import Changed, kind_of
from satseg.ingest.leftovers import clean_stale_tmp
from satseg.ingest.state import scan_state_path, stuck_path
from satseg.vocab import (
    ERROR_RECORD_SUFFIX,
    GEOJSON_SUFFIX,
    IMAGE_SUFFIXES,
    LABELME_SUFFIX,
    MASK_STEM_SUFFIX,
    MAX_NAME_LEN,
    TIFF_SUFFIXES,
    dataset_of,
    is_in_progress,
    is_record_name,
    is_safe_dataset,
    is_safe_name,
)

log = logging.getLogger(__name__)

ANNOTATION_ORDER = {"labelme": 0, "geojson": 1, "mask": 2}  # the first present is used


@dataclass
class Entry:
    rel: str
    path: Path
    size: int
    mtime_ns: int
    dataset: str
    name: str  # file name with any ``<dataset>__`` prefix removed
    kind: str = "unknown"  # image | labelme | geojson | mask | marker | unknown
    stem: str = ""
    complete: bool = False

    def observed(self) -> Observed:
        return Observed(self.rel, self.path, self.size, self.mtime_ns, _group_key(self))


def _walk(inbox: Path) -> tuple[list[Entry], list[Path], list[Path]]:
    """Regular files under the inbox (not inbox/predict/), symlinks (never followed), and
    FIFOs, devices and sockets (never opened)."""
    entries: list[Entry] = []
    links: list[Path] = []
    specials: list[Path] = []
    for root, dirs, files in os.walk(inbox):
        rootp = Path(root)
        rel_root = rootp.relative_to(inbox)
        keep = []
        for d in dirs:
            p = rootp / d
            if p.is_symlink():
                links.append(p)
            elif not d.startswith(".") and not (rel_root == Path(".") and d == "predict"):
                keep.append(d)
        dirs[:] = sorted(keep)
        for f in sorted(files):
            p = rootp / f
            if is_in_progress(f):
                continue
            try:
                st = p.lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                links.append(p)
                continue
            if not stat.S_ISREG(st.st_mode):
                specials.append(p)
                continue
            parts = p.relative_to(inbox).parts
            ds, name = dataset_of(parts)
            entries.append(Entry("/".join(parts), p, st.st_size, st.st_mtime_ns, ds, name))
    return entries, links, specials


def _classify(entries: list[Entry]) -> None:
    """Kind and pairing stem of each entry (``x_mask.tif`` is a mask only beside ``x.tif``)."""
    by_dir: dict[Path, set[str]] = defaultdict(set)
    for e in entries:
        by_dir[e.path.parent].add(e.name.lower())
    for e in entries:
        base, ext = os.path.splitext(e.name)
        ext = ext.lower()
        if is_marker(e.name):
            e.kind, e.stem = "marker", marker_stem(e.name)
        elif ext in IMAGE_SUFFIXES:
            e.kind, e.stem = "image", base
            mask_of = base[: -len(MASK_STEM_SUFFIX)]
            if base.lower().endswith(MASK_STEM_SUFFIX) and ext in TIFF_SUFFIXES:
                siblings = by_dir[e.path.parent]
                if any(f"{mask_of.lower()}{x}" in siblings for x in IMAGE_SUFFIXES):
                    e.kind, e.stem = "mask", mask_of
        elif ext == GEOJSON_SUFFIX:
            e.kind, e.stem = "geojson", base
        elif ext == LABELME_SUFFIX:
            e.kind, e.stem = "labelme", base  # may hold GeoJSON; decided by content later
        else:
            e.kind, e.stem = "unknown", base


def _mark_complete(entries: list[Entry], previous: dict[str, Seen], poll_interval: float) -> None:
    done = complete((e.observed() for e in entries), previous, poll_interval)
    for e in entries:
        e.complete = e.rel in done


def _group_key(e: Entry) -> tuple[Path, str, str]:
    return (e.path.parent, e.dataset, e.stem)


def _pair_id(dataset: str, files: list[Entry]) -> str:
    key = json.dumps([dataset, [(f.rel, f.size, f.mtime_ns) for f in files]])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def scan_inbox(
    settings: Settings,
    *,
    poll_interval: float | None = None,
    now: float | None = None,
    dataset: str | None = None,
) -> list[dict[str, Any]]:
    """Pairs ready for processing (small JSON-able dicts), after refusing what must be refused.

    Quarantines right here: symlinks, unsafe names, unsupported file types, ambiguous groups
    and partners that waited longer than ``annotation_timeout_s``. Content checks happen in
    ``process_pair``.
    """
    settings.ensure_dirs()
    interval = settings.stable_polls_s if poll_interval is None else poll_interval
    now = time.time() if now is None else now
    scans = ScanState(scan_state_path(settings))
    previous = scans.load()
    clean_stale_tmp(settings)
    entries, links, specials = _walk(settings.inbox)
    _classify(entries)
    _mark_complete(entries, previous, interval)

    for link in links:
        refuse(
            settings,
            link,
            f"{link.name} is a symbolic link (to {_readlink(link)}); links are never followed",
            "symlink",
        )
    for special in specials:
        refuse(settings, special, *_special_reason(special))
    state = ScanState.remember((e.observed() for e in entries), previous, now)
    ready = [e for e in entries if e.complete and dataset in (None, e.dataset)]

    pairs: list[dict[str, Any]] = []
    groups: dict[tuple[Path, str, str], list[Entry]] = defaultdict(list)
    for e in ready:
        bad = _name_problem(e)
        if bad:
            refuse(settings, e.path, bad, "unsafe_name", dataset=e.dataset)
            state.pop(e.rel, None)
        elif e.kind == "unknown":
            refuse(
                settings,
                e.path,
                f"{e.name}: unsupported file type (expected GeoTIFF/PNG/JPEG + LabelMe JSON, "
                "GeoJSON or <stem>_mask.tif)",
                "unsupported_type",
                dataset=e.dataset,
            )
            state.pop(e.rel, None)
        else:
            groups[_group_key(e)].append(e)

    all_by_group: dict[tuple[Path, str, str], list[Entry]] = defaultdict(list)
    for e in entries:
        all_by_group[_group_key(e)].append(e)
    for key, files in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), *kv[0][1:])):
        if len(all_by_group[key]) != len(files):
            continue  # part of the group is still being written
        pair = _make_pair(settings, files, state, now)
        if pair is not None:
            pairs.append(pair)
    scans.save(state)
    log.info("inbox: %d ready pair(s), %d file(s) waiting", len(pairs), len(state))
    return pairs


def refuse(settings: Settings, path: Path, reason: str, check: str, **kw: Any) -> Path | None:
    """Quarantine an inbox file; one that cannot be moved stays, reported once (None)."""
    try:
        target = quarantine(settings, path, reason, check, **kw)
    except FileNotFoundError:
        return None  # gone since the scan: nothing to refuse
    except Changed:
        log.info("%s changed since the scan; left for the next pass", path)
        return None
    except OSError as e:
        StuckFiles(stuck_path(settings)).report(original_name(settings, path), "quarantine", e)
        return None
    StuckFiles(stuck_path(settings)).clear(original_name(settings, path))
    return target


def _readlink(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _special_reason(path: Path) -> tuple[str, str]:
    try:
        what = kind_of(path.lstat().st_mode)
    except OSError:
        what = "not a regular file"
    return (
        f"{path.name} is {what}, not a regular file; only regular files are read "
        "(it was moved without being opened)",
        "not_regular",
    )


def _name_problem(e: Entry) -> str | None:
    parts = e.rel.split("/")
    if not is_safe_dataset(e.dataset):
        return (
            f"dataset name {e.dataset!r} (from {e.rel!r}) is not allowed: use letters, digits, "
            "'_' and '-' (no path traversal, no 'predict')"
        )
    for part in [*parts[1:-1], e.name]:
        if is_record_name(part):
            return (
                f"name {part!r} (in {e.rel!r}) ends in {ERROR_RECORD_SUFFIX!r}, which is "
                "reserved for satseg's quarantine records: rename the file"
            )
        if len(part) > MAX_NAME_LEN:
            return f"name {part[:40]!r}... (in {e.dataset}) is longer than {MAX_NAME_LEN} characters: shorten it"
        if not is_safe_name(part):
            return (
                f"name {part!r} (in {e.rel!r}) has unsafe characters or path traversal: "
                "use letters, digits, '.', '_' and '-'"
            )
    return None


def _make_pair(
    settings: Settings, files: list[Entry], state: dict[str, Seen], now: float
) -> dict[str, Any] | None:
    images = [f for f in files if f.kind == "image"]
    annotations = sorted(
        (f for f in files if f.kind in ANNOTATION_ORDER),
        key=lambda f: (ANNOTATION_ORDER[f.kind], f.name),
    )
    markers = [f for f in files if f.kind == "marker"]
    ds = files[0].dataset

    def reject(reason: str, check: str) -> None:
        rels = [f.rel for f in files]
        for f in files:
            refuse(settings, f.path, reason, check, dataset=ds, related=rels)
            state.pop(f.rel, None)

    if len(images) > 1:
        reject(
            f"several images share the stem {files[0].stem!r}: "
            + ", ".join(f.name for f in images),
            "ambiguous_pair",
        )
        return None
    if images and annotations:
        image, ann = images[0], annotations[0]
        members = [image, ann, *annotations[1:], *markers]
        return {
            "pair_id": _pair_id(ds, members),
            "dataset": ds,
            "scene": image.stem,
            "image": image.rel,
            "annotation": ann.rel,
            "annotation_kind": ann.kind,
            "extras": [f.rel for f in annotations[1:]],
            "markers": [f.rel for f in markers],
            "sizes": {f.rel: f.size for f in members},
        }
    waited = now - min(state[f.rel].first_seen for f in files)
    if waited < settings.annotation_timeout_s:
        return None
    if images:
        reject(
            f"image waited {waited / 3600:.1f} h for its annotation (<stem>.json, <stem>.geojson "
            f"or <stem>_mask.tif); timeout {settings.annotation_timeout_s} s",
            "missing_annotation",
        )
    elif annotations:
        reject(
            f"annotation waited {waited / 3600:.1f} h for its image (<stem>.tif/.png/.jpg); "
            f"timeout {settings.annotation_timeout_s} s",
            "missing_image",
        )
    else:
        reject("a .done marker without the files it marks", "orphan_marker")
    return None
