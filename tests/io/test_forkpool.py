"""The fork pool: shares in forked children, errors brought back, no process left behind."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

import satseg.io.forkpool as forkpool
from satseg.io.forkpool import can_fork, run_shares
from satseg.io.raster import RasterError

needs_fork = pytest.mark.skipif(not can_fork(), reason="forked workers run on Linux only")


def _where(items: list[int], forked: bool) -> tuple[list[int], bool, int]:
    return items, forked, os.getpid()


@needs_fork
def test_the_first_share_runs_here_the_others_in_children() -> None:
    out = run_shares([[0, 3], [1, 4], [2]], _where)
    assert [(items, forked) for items, forked, _ in out] == [
        ([0, 3], False),
        ([1, 4], True),
        ([2], True),
    ]
    pids = [pid for _, _, pid in out]
    assert pids[0] == os.getpid() and len(set(pids)) == 3
    assert psutil.Process().children() == []
    assert run_shares([], _where) == []


def _fails(how: str):
    def work(items: list[int], forked: bool) -> list[int]:
        if not forked:
            if how == "parent":
                raise ValueError("the parent failed")
            return items
        if how == "raster_error":
            raise RasterError("rows 512-1024 unreadable", "decode")
        if how == "killed":
            os.kill(os.getpid(), signal.SIGKILL)
        if how == "unpicklable":
            err = ValueError("odd failure")
            err.handle = lambda: None  # type: ignore[attr-defined]
            raise err
        time.sleep(30)  # "parent": still busy when the parent fails
        return items

    return work


@needs_fork
@pytest.mark.parametrize(
    ("how", "error", "message"),
    [
        ("raster_error", RasterError, "rows 512-1024 unreadable"),
        ("killed", RuntimeError, "cut worker \\d+ ended without a result \\(killed by signal 9\\)"),
        ("unpicklable", RuntimeError, "cut worker failed: ValueError: odd failure"),
        ("parent", ValueError, "the parent failed"),
    ],
)
def test_errors_come_back_and_every_child_is_reaped(how: str, error: type, message: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(error, match=message) as info:
        run_shares([[0], [1], [2]], _fails(how), label="cut")
    if how == "raster_error":  # the check survives the trip through the pipe
        assert info.value.check == "decode"
    assert time.monotonic() - t0 < 20  # a busy child is killed, not waited for
    assert psutil.Process().children() == []


@needs_fork
def test_a_share_that_cannot_be_forked_is_done_here(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = iter([OSError(12, "Cannot allocate memory"), None])
    real_fork = os.fork

    def fork_once_fails() -> int:
        err = next(calls)
        if err is not None:
            raise err
        return real_fork()

    monkeypatch.setattr(os, "fork", fork_once_fails)
    fds = len(os.listdir("/proc/self/fd"))
    out = run_shares([[0, 3], [1, 4], [2]], _where, label="cut")
    assert [(items, forked) for items, forked, _ in out] == [([0, 1, 3, 4], False), ([2], True)]
    assert "cut: cannot fork a worker" in caplog.text
    assert len(os.listdir("/proc/self/fd")) == fds  # the failed fork's pipe is closed


def test_without_fork_every_share_is_done_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(forkpool, "can_fork", lambda: False)
    out = run_shares([[2, 5], [0], [4, 1]], _where)
    assert [(items, forked) for items, forked, _ in out] == [([0, 1, 2, 4, 5], False)]
