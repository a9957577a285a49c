"""Rejected input: moved to ``quarantine/<date>/`` with one ``<name>.error.json`` record beside it.

One record schema for every inbox (``QuarantineRecord``): why (``reason``, ``check``), what
(``sha256``, ``size``, ``symlink_to``), where from (``original``, ``source``, ``dataset``,
``related``) and when (``time``). Nothing is deleted: the file is moved atomically under a name
that was never used in that folder (``a.tif``, then ``a.1.tif``, ...), so a person can read the
reason, fix the file and drop it again. Predict-inbox input goes to ``quarantine/<date>/predict/``.

What a person then does (the Data page): ``release`` a file back into the inbox, ``discard`` it
(the only deletion, and its record lives on in ``quarantine/actions.jsonl``) or ``download`` it;
each action is appended to that log.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import re
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
from satseg.vocab import ERROR_RECORD_SUFFIX, is_safe_name, sanitize

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


# --- what people do with quarantined files (the Data page, ``satseg.api.routes.pages``) -------
#
# Each action is appended to ``quarantine/actions.jsonl`` (who, when, what, the record) after it
# succeeded: release moves the file back into the inbox under its original name (never over an
# existing file) and removes its record; discard deletes the file and its record, the record
# itself living on in the log; download is logged too. Files are named by their ``ref``, the
# path below ``quarantine/`` (``2026-05-04/a.tif``, ``2026-05-04/predict/s.tif``), and only a
# ref naming a genuine record beside an existing file is acted on.

ACTIONS_LOG = "actions.jsonl"
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
Action = Literal["release", "discard", "download"]


class QuarantineActionError(Exception):
    """An action that cannot be done; ``check`` says why (``not_found``, ``exists``, ...)."""

    def __init__(self, message: str, check: str) -> None:
        super().__init__(message)
        self.check = check


@dataclass(frozen=True)
class Quarantined:
    """One quarantined file: its ref below ``quarantine/``, its path and its record."""

    ref: str
    path: Path
    record: QuarantineRecord

    @property
    def regular(self) -> bool:
        return stat.S_ISREG(os.lstat(self.path).st_mode)


def list_quarantined(settings: Settings) -> list[Quarantined]:
    """Every quarantined file that is still there, newest first."""
    root = settings.quarantine
    if not root.is_dir():
        return []
    found = []
    for day in (d for d in root.iterdir() if DAY.match(d.name) and d.is_dir()):
        for folder in (day, day / "predict"):
            if not folder.is_dir() or folder.is_symlink():
                continue
            for rec in folder.glob("*" + ERROR_RECORD_SUFFIX):
                target = rec.with_name(rec.name[: -len(ERROR_RECORD_SUFFIX)])
                if is_record(rec) and os.path.lexists(target):
                    ref = str(target.relative_to(root))
                    found.append(Quarantined(ref, target, read_record(target)))
    return sorted(found, key=lambda q: (q.record.time, q.ref), reverse=True)


def find_quarantined(settings: Settings, ref: str) -> Quarantined:
    """The quarantined file ``ref`` names (``<date>/<name>`` or ``<date>/predict/<name>``)."""
    parts = ref.split("/")
    ok = len(parts) in (2, 3) and DAY.match(parts[0]) and (len(parts) == 2 or parts[1] == "predict")
    name = parts[-1]
    if not ok or not name or name.startswith(".") or ".." in name or "\\" in name:
        raise QuarantineActionError(f"{ref!r} does not name a quarantined file", "not_found")
    target = settings.quarantine.joinpath(*parts)
    if not is_record(record_path(target)) or not os.path.lexists(target):
        raise QuarantineActionError(f"no quarantined file {ref!r}", "not_found")
    return Quarantined(ref, target, read_record(target))


def release(settings: Settings, ref: str, user: str) -> Path:
    """Move a quarantined file back into the inbox (the next pass takes it); its new path.

    It returns to its original place (``inbox/<original>``) under its original name, or under
    its sanitised quarantine name if the original was unsafe. Only regular files are released
    (a symbolic link or a FIFO would only be quarantined again); an inbox file of that name is
    never replaced (``exists``). The move is one rename (a hard link then unlink, so no
    existing file is overwritten even by a racing upload).
    """
    item = find_quarantined(settings, ref)
    if not item.regular:
        raise QuarantineActionError(
            f"{item.record.file} is not a regular file ({item.record.check}); it cannot be "
            "released, only discarded",
            "not_regular",
        )
    dest = _release_target(settings, item.record)
    _move_no_clobber(item.path, dest)
    record_path(item.path).unlink(missing_ok=True)
    log_action(settings, "release", item, user, to=str(dest.relative_to(settings.inbox)))
    log.info("released %s -> %s by %s", ref, dest, user)
    return dest


def discard(settings: Settings, ref: str, user: str) -> dict[str, Any]:
    """Delete a quarantined file and its record; the record is kept in the actions log."""
    item = find_quarantined(settings, ref)
    entry = log_action(settings, "discard", item, user)
    item.path.unlink()
    record_path(item.path).unlink(missing_ok=True)
    log.warning("discarded quarantined %s (%s) by %s", ref, item.record.reason, user)
    return entry


def download(settings: Settings, ref: str, user: str) -> Quarantined:
    """The quarantined file to send to ``user`` (regular files only); the download is logged."""
    item = find_quarantined(settings, ref)
    if not item.regular:
        raise QuarantineActionError(f"{item.record.file} is not a regular file", "not_regular")
    log_action(settings, "download", item, user)
    return item


def actions(settings: Settings, limit: int = 200) -> list[dict[str, Any]]:
    """The last ``limit`` recorded actions, newest first."""
    path = settings.quarantine / ACTIONS_LOG
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for line in reversed(lines[-limit:]):
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a crash mid-append
    return out


def log_action(
    settings: Settings, action: Action, item: Quarantined, user: str, **extra: Any
) -> dict[str, Any]:
    """Append one action to ``quarantine/actions.jsonl`` (locked, fsynced); the entry."""
    from satseg.io.locks import file_lock

    entry = {
        "time": datetime.now(UTC).isoformat(),
        "action": action,
        "user": user,
        "ref": item.ref,
        "record": item.record.to_dict(),
        **extra,
    }
    path = settings.quarantine / ACTIONS_LOG
    with file_lock(settings.state / "quarantine-actions.lock"):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, (json.dumps(entry, sort_keys=True) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    return entry


def _release_target(settings: Settings, record: QuarantineRecord) -> Path:
    """``inbox/<original>``: its folders must be safe names; an unsafe file name is replaced."""
    original = Path(record.original)
    folders = original.parent.parts
    if original.is_absolute() or not all(is_safe_name(p) for p in folders):
        raise QuarantineActionError(
            f"{record.file} came from {record.original!r}, outside the inbox's safe folders; "
            "download it and drop it again",
            "unsafe_original",
        )
    name = original.name if is_safe_name(original.name) else record.file
    return settings.inbox.joinpath(*folders, name)


def _move_no_clobber(src: Path, dest: Path) -> None:
    """Rename ``src`` to ``dest`` unless ``dest`` exists (also across devices, via ``move``)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    taken = QuarantineActionError(
        f"inbox/{dest.name} already exists: move or remove it, then release again", "exists"
    )
    try:
        os.link(src, dest, follow_symlinks=False)
    except FileExistsError:
        raise taken from None
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        if os.path.lexists(dest):
            raise taken from None
        move(src, dest)
        return
    os.unlink(src)
