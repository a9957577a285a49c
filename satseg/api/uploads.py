"""Uploads into the inbox: validated like ingest's first checks, written atomically.

A file is streamed to a staging folder outside the inbox (so the ingest poller never sees
a half-written upload), checked (name, extension, size, magic bytes), then hard-linked into
place, which fails instead of overwriting when the name is already taken.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from satseg.config import Settings
from satseg.io.atomic import file_mode, move
from satseg.io.jsonload import JsonError, JsonLimits, check_json, read_limited
from satseg.io.raster import RasterError
from satseg.io.sniff import sniff
from satseg.vocab import ANNOTATION_SUFFIXES, IMAGE_SUFFIXES, SAFE_DATASET, is_safe_name

ALLOWED_EXTENSIONS = tuple(sorted(IMAGE_SUFFIXES | ANNOTATION_SUFFIXES))
CHUNK = 1 << 20
STAGING = ".uploads"


class UploadError(Exception):
    """A rejected upload: HTTP status, the check that failed and a message for the user."""

    def __init__(self, status: int, check: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.check = check
        self.message = message


@dataclass(frozen=True)
class SavedUpload:
    name: str
    dataset: str | None
    path: str  # relative to SATSEG_HOME
    bytes: int
    sha256: str


def safe_filename(name: str | None) -> str:
    """The file name itself, or UploadError: no directories, no traversal, plain characters."""
    if not name:
        raise UploadError(400, "filename", "the upload has no file name")
    if "/" in name or "\\" in name or "\x00" in name or ".." in name:
        raise UploadError(400, "path_traversal", f"unsafe file name {name!r}: no paths allowed")
    if not is_safe_name(name):  # the names ingest accepts, so nothing uploaded is refused later
        raise UploadError(
            400, "unsafe_name", f"unsafe file name {name!r}: use letters, digits, '.', '_', '-'"
        )
    return name


def safe_dataset(name: str | None) -> str | None:
    """An inbox subfolder: a dataset name, or ``predict`` for scenes to segment."""
    if not name:
        return None
    if not SAFE_DATASET.match(name):
        raise UploadError(
            400, "unsafe_dataset", f"unsafe dataset name {name!r}: letters, digits, '_', '-'"
        )
    return name


def check_extension(name: str) -> str:
    ext = Path(name).suffix.lower()
    if ext not in ALLOWED_EXTENSIONS:
        raise UploadError(
            415,
            "file_type",
            f"{name!r}: type {ext or 'none'} not accepted ({', '.join(ALLOWED_EXTENSIONS)})",
        )
    return ext


def check_content(path: Path, ext: str, name: str, limits: JsonLimits | None = None) -> None:
    """The bytes must be what the extension says (deeper checks are ingest's job).

    JSON is checked by :func:`satseg.io.jsonload.check_json`, the scanner ingest uses too: it
    builds no objects (a 10 MB upload parsed whole cost the api-server 254 MiB) and refuses
    files over ``ingest.max_annotation_mb`` or nested deeper than ``ingest.max_json_depth``.
    """
    if ext in ANNOTATION_SUFFIXES:
        limits = limits or JsonLimits()
        try:
            check_json(read_limited(path, limits, repr(name)), limits, repr(name))
        except JsonError as e:
            status = {"json_size": 413, "json_depth": 400}.get(e.check, 415)
            raise UploadError(status, "file_type" if status == 415 else e.check, str(e)) from e
        return
    try:
        sniff(path, name)  # the readers' own check: content is GeoTIFF/PNG/JPEG, suffix agrees
    except RasterError as e:
        raise UploadError(415, "file_type", str(e)) from e


def destination(settings: Settings, name: str, dataset: str | None, root: Path) -> Path:
    folder = root / dataset if dataset else root
    dest = (folder / name).resolve()
    if not dest.is_relative_to(root.resolve()):  # belt and braces after the regexes
        raise UploadError(400, "path_traversal", f"{name!r} resolves outside the inbox")
    return dest


def save_upload(
    stream: BinaryIO,
    filename: str | None,
    dataset: str | None,
    settings: Settings,
    root: Path | None = None,
) -> SavedUpload:
    """Validate and store one upload in the inbox (or ``root`` under SATSEG_HOME); on any
    error nothing is left behind."""
    name = safe_filename(filename)
    ext = check_extension(name)
    ds = safe_dataset(dataset)
    dest = destination(settings, name, ds, settings.inbox if root is None else root)
    if dest.exists():
        raise UploadError(409, "exists", f"{dest.relative_to(settings.home)} already exists")
    limit = settings.max_upload_mb * 1024 * 1024
    staging = settings.home / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix="upload-", suffix=ext, dir=staging)
    os.fchmod(fd, file_mode())  # mkstemp's 0600 would follow the file into raw/
    tmp = Path(tmp_name)
    try:
        size, digest = _copy_limited(stream, fd, limit, name)
        if size == 0:
            raise UploadError(400, "empty", f"{name!r} is empty (0 bytes)")
        check_content(tmp, ext, name, JsonLimits.from_params(settings.params().ingest))
        dest.parent.mkdir(parents=True, exist_ok=True)
        _place(tmp, dest, settings)
    finally:
        tmp.unlink(missing_ok=True)
    return SavedUpload(name, ds, str(dest.relative_to(settings.home)), size, digest)


def _copy_limited(stream: BinaryIO, fd: int, limit: int, name: str) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "wb") as out:
        while block := stream.read(CHUNK):
            size += len(block)
            if size > limit:
                raise UploadError(
                    413, "size", f"{name!r} is larger than the limit of {limit // (1024 * 1024)} MB"
                )
            h.update(block)
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    return size, h.hexdigest()


def _place(tmp: Path, dest: Path, settings: Settings) -> None:
    """Publish without overwriting: link() is atomic and fails if ``dest`` exists."""
    try:
        os.link(tmp, dest)
    except FileExistsError as e:
        raise UploadError(409, "exists", f"{dest.relative_to(settings.home)} already exists") from e
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP):
            raise
        move(tmp, dest)  # staging on another filesystem: copy + rename beside dest
