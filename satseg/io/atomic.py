"""Atomic file writes: a reader never sees a half-written file, a crash leaves the old one.

Files are published with the mode any other tool would give them (``0666`` less the umask:
``0644`` by default), not the ``0600`` of the temp file, so a GIS user or a service in another
account can read the outputs.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask_at_import() -> int:
    """Read once, while importing is single-threaded (``os.umask`` can only be read by setting it)."""
    old = os.umask(0o022)
    os.umask(old)
    return old


_IMPORT_UMASK = _umask_at_import()


def current_umask() -> int:
    """The process umask, read without changing it (Linux ``/proc``), else as at import."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _IMPORT_UMASK


def file_mode() -> int:
    """The mode a new file gets from ``open()``: ``0666`` less the umask."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_path(target: Path | str, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path beside ``target``; rename it over ``target`` only on success.

    The temp file lives in the same directory so the final ``os.replace`` is atomic on POSIX;
    it is created with the umask's mode (``file_mode``), which a copy (``move``) may override.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix or target.suffix or ".tmp", dir=target.parent
    )
    try:
        os.fchmod(fd, file_mode())  # mkstemp's 0600 would survive the rename
    finally:
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(target: Path | str, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: Path | str, text: str) -> Path:
    return write_bytes(target, text.encode("utf-8"))


def write_json(target: Path | str, obj: Any, *, compact: bool = False) -> Path:
    """Sorted keys; indented for people, or ``compact`` for large machine-read indexes
    (json's C encoder only runs without indentation: ~10x faster on a scene's patch list)."""
    if compact:
        text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    else:
        text = json.dumps(obj, indent=2, sort_keys=True, default=str)
    return write_text(target, text + "\n")


def move(src: Path | str, dst: Path | str) -> Path:
    """Move a file (a symbolic link as a link, never followed) without ever copying it twice.

    Same filesystem: one ``os.replace``; any error but a cross-device one (``EXDEV``) is
    raised as it is (a read-only inbox folder: ``PermissionError``), with nothing copied.
    Across filesystems: copy to a temp beside ``dst``, fsync, rename, then remove the source;
    if the source cannot be removed, the copy is removed again and the error raised, so
    there is never a second copy of anything.
    """
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(src, dst)
        return dst
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        if src.is_symlink():
            os.symlink(os.readlink(src), tmp)
        else:
            _copy_regular(src, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.lexists(tmp):
            tmp.unlink()
    try:
        src.unlink()
    except OSError:
        dst.unlink(missing_ok=True)  # the original stays the only copy
        raise
    return dst


def _copy_regular(src: Path, tmp: Path) -> None:
    """Copy a regular file (opened without following links) with its times, fsynced."""
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file; not copied across devices", str(src))
        os.set_blocking(fd, True)
        with open(fd, "rb", closefd=False) as fin, open(tmp, "xb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    finally:
        os.close(fd)


def replace_dir(new: Path, dst: Path) -> None:
    """Replace directory ``dst`` by ``new`` with two renames (readers see the old or the new tree).

    ``new`` must be on ``dst``'s filesystem; the old tree is parked in ``<parent>/.work/``
    and removed after the swap.
    """
    if dst.exists():
        old = dst.parent / ".work" / f"old-{dst.name}-{uuid.uuid4().hex[:8]}"
        old.parent.mkdir(parents=True, exist_ok=True)
        dst.rename(old)
        new.rename(dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        new.rename(dst)


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
