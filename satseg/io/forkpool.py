"""Shares of work done in forked processes, with the results sent back through pipes.

``run_shares`` does the first share in the calling process and each other share in a forked
child, which pickles its result (or its error) into a pipe. Threads would serialise on the
GIL for work made of many short calls into C libraries; forked children do not, and they
start at once with the parent's memory (no pickled arguments, no import).

The rules a share's work must follow: a child must not read through its parent's open file
handles (reopen them: a forked process shares the file offsets), and everything it returns
must pickle. The guarantees: an error in a child is raised in the parent (with its type,
when it pickles); a child that dies is an error naming the signal; when the parent fails,
every child is killed and reaped; Linux kills a child whose parent dies, so no orphan keeps
writing. A share that cannot be forked (no memory or process slot) is done in this process,
with a warning. Forking is used on Linux only (macOS frameworks are not fork-safe, Windows
has no fork): elsewhere every share is done here.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

log = logging.getLogger(__name__)

R = TypeVar("R")


def can_fork() -> bool:
    """Forked workers only on Linux: macOS frameworks are not fork-safe, Windows has no fork."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def run_shares(
    shares: Sequence[Sequence[int]],
    work: Callable[[list[int], bool], R],
    *,
    label: str = "worker",
) -> list[R]:
    """``work(items, forked)`` for each share: the first here, the others in forked children.

    ``forked`` tells the work it runs in a child (and must reopen its files). Shares that
    cannot be forked are joined to this process's share (items sorted). Results: this
    process's first, then the children's in order. ``label`` names the work in messages.
    """
    if not shares:
        return []
    here = list(shares[0])
    children: list[_Child] = []
    try:
        for share in shares[1:]:
            if not can_fork():
                here = sorted(here + list(share))
                continue
            try:
                children.append(_fork(partial(work, list(share), True), label))
            except OSError as e:  # no memory or process slot for a worker: its share here
                log.warning("%s: cannot fork a worker (%s); doing its share here", label, e)
                here = sorted(here + list(share))
        results = [work(here, False)]
        results += [child.result() for child in children]
    finally:
        for child in children:
            child.stop()
    return results


@dataclass
class _Child:
    """A forked worker: its pid and the read end of the pipe its pickled result comes on."""

    pid: int
    fd: int
    label: str
    done: bool = False

    def result(self) -> Any:
        with os.fdopen(self.fd, "rb") as f:
            data = f.read()
        _, status = os.waitpid(self.pid, 0)
        self.done = True
        if not data:
            raise RuntimeError(
                f"{self.label} worker {self.pid} ended without a result ({_describe(status)})"
            )
        ok, value = pickle.loads(data)
        if not ok:
            raise value
        return value

    def stop(self) -> None:
        """Kill and reap a worker whose result is no longer wanted (the parent failed)."""
        if self.done:
            return
        self.done = True
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self.fd)


def _fork(work: Callable[[], Any], label: str) -> _Child:
    """Run ``work`` in a forked child that pickles its result (or its error) into a pipe."""
    parent = os.getpid()
    r, w = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        raise
    if pid:
        os.close(w)
        return _Child(pid, r, label)
    status = 1  # the child: never returns, never runs the parent's exit handlers
    try:
        os.close(r)
        _die_with_parent(parent)
        try:
            payload: tuple[bool, Any] = (True, work())
        except BaseException as e:  # every error goes back to the parent
            payload = (False, _portable(e, label))
        with os.fdopen(w, "wb") as f:
            pickle.dump(payload, f, protocol=pickle.HIGHEST_PROTOCOL)
        status = 0
    finally:
        os._exit(status)


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this worker if the parent dies, so that no orphan keeps writing
    into a folder that the parent's cleanup has removed."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def _portable(e: BaseException, label: str) -> BaseException:
    """``e`` if it survives pickling, else a RuntimeError that names it."""
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        return RuntimeError(f"{label} worker failed: {type(e).__name__}: {e}")


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
