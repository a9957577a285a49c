"""Inbox files opened once, without following links, and checked again before they move.

Between the scan and the task that processes a file, its name may come to mean something
else: a symbolic link to a file outside the inbox, a FIFO, or the same file still growing
because its writer only paused. So an inbox file is opened exactly once with ``O_NOFOLLOW``
(a link is refused, never followed) and ``O_NONBLOCK`` (a FIFO without a writer does not
hang the pass), ``fstat``-ed (only a regular file is accepted: FIFOs, devices and sockets are
``NotRegular``), and hashed from that descriptor. Readers get ``Verified.view``: a path that
names the *opened* file (``/proc/self/fd/<n>`` on Linux, which resolves to the opened inode
even after the name is swapped), under the original file name so suffix-based code keeps
working. Before the name is moved (into ``raw/`` or quarantine), ``unchanged`` checks that it
still refers to the same inode with the same size and mtime; after the move, ``is_same``
checks the destination. A mismatch means: move nothing that is not the verified file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class NotVerified(Exception):
    """The name is not a regular file that can be read: ``check`` says what it is."""

    def __init__(self, message: str, check: str) -> None:
        super().__init__(message)
        self.check = check


@dataclass(frozen=True)
class Identity:
    """What a name referred to when it was verified: its inode, size and mtime."""

    dev: int
    ino: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Identity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def kind_of(mode: int) -> str:
    """A person's word for what a non-regular inbox entry is."""
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def is_same(path: Path, ident: Identity) -> bool:
    """Does ``path`` (not followed) still name the file ``ident`` describes, unchanged?"""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(st.st_mode) and Identity.of(st) == ident


@dataclass
class Verified:
    """An inbox file opened once; close it (or use ``with``) when done."""

    path: Path  # the name in the inbox
    fd: int
    ident: Identity
    sha256: str
    _view_dir: Path | None = field(default=None, repr=False)

    @property
    def fd_path(self) -> Path:
        """A path that opens the verified file itself, whatever its name now refers to."""
        return Path(f"/proc/self/fd/{self.fd}") if sys.platform.startswith("linux") else self.path

    @property
    def view(self) -> Path:
        """``fd_path`` under the original file name (a private link), for suffix-aware readers."""
        if not sys.platform.startswith("linux"):
            return self.path
        if self._view_dir is None:
            self._view_dir = Path(tempfile.mkdtemp(prefix="satseg-verified-"))
            os.symlink(self.fd_path, self._view_dir / self.path.name)
        return self._view_dir / self.path.name

    def unchanged(self) -> bool:
        """The name still refers to this file, and the file has not grown or been touched."""
        try:
            now = Identity.of(os.fstat(self.fd))
        except OSError:
            return False
        return now == self.ident and is_same(self.path, self.ident)

    def close(self) -> None:
        if self._view_dir is not None:
            shutil.rmtree(self._view_dir, ignore_errors=True)
            self._view_dir = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Verified:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_verified(path: Path, root: Path | None = None, chunk: int = 1 << 20) -> Verified:
    """Open ``path`` without following links, check it is a regular file, hash it from the fd.

    With ``root`` (the inbox), no folder between ``root`` and the file is followed either
    (each is opened with ``O_NOFOLLOW``). Raises ``NotVerified`` (check ``symlink``,
    ``symlink_parent`` or ``not_regular``) for anything else and ``FileNotFoundError`` once
    the name is gone.
    """
    fd = _open_under(Path(path), root)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotVerified(
                f"{Path(path).name} is {kind_of(st.st_mode)}, not a regular file", "not_regular"
            )
        os.set_blocking(fd, True)
        h = hashlib.sha256()
        offset = 0
        while block := os.pread(fd, chunk, offset):
            h.update(block)
            offset += len(block)
    except BaseException:
        os.close(fd)
        raise
    return Verified(Path(path), fd, Identity.of(st), h.hexdigest())


def lstat_under(path: Path, root: Path | None = None) -> os.stat_result:
    """``os.lstat(path)``, but (with ``root``) through folders opened without following links."""
    dirfd, name = _parent_fd(Path(path), root)
    try:
        return os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    finally:
        os.close(dirfd)


def _parent_fd(path: Path, root: Path | None) -> tuple[int, str]:
    """An fd of ``path``'s folder, reached from ``root`` without following any link."""
    dir_flags = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
    try:
        parts = path.relative_to(root).parts if root is not None else ()
    except ValueError:
        parts = ()
    if not parts:
        return os.open(path.parent, dir_flags), path.name
    dirfd = os.open(root, dir_flags)  # type: ignore[arg-type]
    for part in parts[:-1]:
        try:
            nxt = os.open(part, dir_flags | os.O_NOFOLLOW, dir_fd=dirfd)
        except OSError as e:
            os.close(dirfd)
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise NotVerified(
                    f"{path.name}: the folder {part!r} on its path is not a plain folder "
                    "(a symbolic link?); nothing in it is followed",
                    "symlink_parent",
                ) from e
            raise
        os.close(dirfd)
        dirfd = nxt
    return dirfd, parts[-1]


def _open_under(path: Path, root: Path | None) -> int:
    dirfd, name = _parent_fd(path, root)
    try:
        try:
            return os.open(name, OPEN_FLAGS, dir_fd=dirfd)
        except FileNotFoundError:
            raise
        except OSError as e:  # a link (ELOOP), a socket or device that cannot be opened, ...
            mode = os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                raise NotVerified(
                    f"{path.name} is a symbolic link; links are never followed", "symlink"
                ) from e
            if not stat.S_ISREG(mode):
                raise NotVerified(
                    f"{path.name} is {kind_of(mode)}, not a regular file", "not_regular"
                ) from e
            raise
    finally:
        os.close(dirfd)


class Changed(Exception):
    """A verified file's name now refers to something else, or the file changed: not moved."""
