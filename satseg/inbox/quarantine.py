"""Rejected input: moved to ``quarantine/<date>/`` with one ``<name>.error.json`` record beside it.

One record schema for every inbox (``QuarantineRecord``): why (``reason``, ``check``), what
(``sha256``, ``size``, ``symlink_to``), where from (``original``, ``source``, ``dataset``,
``related``) and when (``time``). Nothing is deleted: the file is moved atomically under a name
that was never used in that folder (``a.tif``, then ``a.1.tif``, ...), so a person can read the
reason, fix the file and drop it again. Predict-inbox input goes to ``quarantine/<date>/predict/``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import stat
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from satseg.config import Settings
from satseg.inbox.verified import (
    Changed,
    Identity,
    NotVerified,
    is_same,
    lstat_under,
    open_verified,
)
from satseg.io.atomic import move, write_json
from satseg.vocab import ERROR_RECORD_SUFFIX, sanitize

log = logging.getLogger(__name__)

Source = Literal["ingest", "predict"]


@dataclass(frozen=True)
class QuarantineRecord:
    """What ``<name>.error.json`` says about the quarantined file ``<name>`` beside it."""

    file: str  # the file's name in the quarantine folder (sanitised, made unique)
    original: str  # where it was: relative to the inbox (e.g. demo/a.tif, predict/s.tif)
    source: Source  # which inbox refused it: "ingest" (training data) or "predict"
    reason: str  # for a person: what is wrong and how to fix it
    check: str  # for machines: the validation that failed (decode, symlink, duplicate, ...)
    sha256: str | None  # of the content (None for a symbolic link, which is never followed)
    size: int  # bytes (0 for a symbolic link)
    time: str  # ISO 8601 UTC; its date is the folder's name
    dataset: str | None = None  # the dataset it was meant for (ingest)
    symlink_to: str | None = None  # a symbolic link's target (the link itself is moved)
    related: list[str] = field(default_factory=list)  # the files refused with it (its pair)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuarantineRecord:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def record_path(target: Path) -> Path:
    """``<name>.error.json`` beside the quarantined ``<name>``."""
    return target.with_name(target.name + ERROR_RECORD_SUFFIX)


def read_record(target: Path) -> QuarantineRecord:
    """The record of a quarantined file (or of the record's own path)."""
    path = target if target.name.endswith(ERROR_RECORD_SUFFIX) else record_path(target)
    return QuarantineRecord.from_dict(json.loads(path.read_text()))


def free_target(folder: Path, name: str) -> Path:
    """A name in ``folder`` no file or record has used, reserved by creating its record.

    The record is created with ``O_EXCL``, so two tasks quarantining ``a.tif`` in the same
    second get ``a.tif`` and ``a.1.tif``; ``name`` is sanitised first (``vocab.sanitize``: at
    most 128 characters with its extension kept, never ending in ``.error.json``, so a user
    file can never pass for a record).
    """
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    while True:
        target = folder / sanitize(name, n)
        n += 1
        if target.exists() or target.is_symlink():
            continue
        try:
            os.close(os.open(record_path(target), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return target


def is_record(path: Path) -> bool:
    """Whether ``path`` is a genuine quarantine record: ``<name>.error.json`` holding a record
    whose ``file`` is ``<name>`` (user files never carry that suffix in quarantine)."""
    if not path.name.endswith(ERROR_RECORD_SUFFIX) or path.is_symlink() or not path.is_file():
        return False
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("file") == path.name[: -len(ERROR_RECORD_SUFFIX)]


def quarantine(
    settings: Settings,
    path: Path,
    reason: str,
    check: str,
    *,
    source: Source = "ingest",
    dataset: str | None = None,
    sha256: str | None = None,
    related: list[str] | None = None,
    now: datetime | None = None,
    expect: Identity | None = None,
) -> Path:
    """Move ``path`` into quarantine; its new path. Links and FIFOs move as they are.

    Nothing is followed or opened for reading but a regular file (``O_NOFOLLOW``): its hash
    comes from that descriptor, or is ``sha256`` when the caller verified the file
    (``expect``, its identity: if the name no longer refers to it, ``Changed`` is raised and
    nothing moves). The record is written (atomically) before the move: a crash in between
    leaves the file in the inbox, to be quarantined again. A move that fails (a read-only
    inbox folder) removes the record again and raises: no record without its file, no copy.
    After the move the record is checked against what actually arrived.
    """
    now = now or datetime.now(UTC)
    folder = settings.quarantine / now.strftime("%Y-%m-%d")
    if source == "predict":
        folder = folder / "predict"
    if expect is not None and not is_same(path, expect):
        raise Changed(f"{path.name} changed since it was verified; left in the inbox")
    try:
        described = _describe(path, sha256, expect, settings.inbox)
    except NotVerified as e:  # a folder on its path became a link: the scan refuses that
        raise Changed(str(e)) from e
    target = free_target(folder, path.name)
    record = QuarantineRecord(
        file=target.name,
        original=original_name(settings, path),
        source=source,
        reason=reason,
        check=check,
        dataset=dataset,
        related=list(related or []),
        time=now.isoformat(),
        **described[0],
    )
    write_json(record_path(target), record.to_dict())
    try:
        move(path, target)
    except OSError:
        record_path(target).unlink(missing_ok=True)
        raise
    arrived = _arrived(target, described)
    if arrived is not None:  # swapped between the check and the move: describe what came
        record = dataclasses.replace(record, **arrived)
        write_json(record_path(target), record.to_dict())
    log.warning("quarantined %s -> %s: [%s] %s", record.original, target, check, reason)
    return target


Described = tuple[dict[str, Any], Identity | None]


def _describe(
    path: Path, sha256: str | None, expect: Identity | None, root: Path | None = None
) -> Described:
    """Record fields of what ``path`` names (never followed, never blocking), and its identity.

    With ``root``, no folder between it and ``path`` is followed (``NotVerified`` if one is a
    link)."""
    st = lstat_under(path, root)
    if stat.S_ISLNK(st.st_mode):
        return {"sha256": None, "size": 0, "symlink_to": os.readlink(path)}, None
    if not stat.S_ISREG(st.st_mode):
        return {"sha256": None, "size": 0, "symlink_to": None}, None
    if sha256 is not None and expect is not None:
        return {"sha256": sha256, "size": expect.size, "symlink_to": None}, expect
    try:
        with open_verified(path, root) as v:
            return {"sha256": v.sha256, "size": v.ident.size, "symlink_to": None}, v.ident
    except NotVerified as e:  # swapped since the lstat: described again after the move
        if e.check == "symlink_parent":
            raise
        return {"sha256": None, "size": 0, "symlink_to": None}, None


def _arrived(target: Path, described: Described) -> dict[str, Any] | None:
    """What arrived at ``target``, if it is not what the record says (else None)."""
    fields, ident = described
    st = os.lstat(target)
    if ident is not None and stat.S_ISREG(st.st_mode) and Identity.of(st) == ident:
        return None
    if ident is None and not stat.S_ISREG(st.st_mode):
        link = os.readlink(target) if stat.S_ISLNK(st.st_mode) else None
        if link == fields["symlink_to"]:
            return None
    return _describe(target, None, None)[0]


def original_name(settings: Settings, path: Path) -> str:
    """``path`` relative to the inbox (as given when outside it)."""
    try:
        return str(path.relative_to(settings.inbox))
    except ValueError:
        return str(path)
