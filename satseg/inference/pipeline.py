"""Two small threads around the model: read ahead, and blend/write behind.

TensorFlow, GDAL, NumPy and OpenCV release the GIL in their heavy loops, so reading the
next strip and writing finished rows overlap with the model's batches instead of adding
to them. GDAL calls themselves are serialised (``satseg.io.gdal.GDAL_LOCK``). Queues are short (bounded
memory); an error in a thread is raised in the caller.
With ``enabled=False`` everything runs inline (same results, easier to profile).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")
_STOP = object()


@functools.cache
def _libc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc ``malloc_trim``; no-op elsewhere).

    With reader/writer threads glibc keeps freed strip arrays in per-thread heaps, and the
    process RSS creeps up with the number of strips (measured: +260 MiB still held after
    a 20000² scene). Trimming once per row of tiles keeps the peak flat for a small cost.
    """
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def prefetch(items: Iterable[T], depth: int = 1, enabled: bool = True) -> Iterator[T]:
    """Iterate ``items`` produced by a background thread, at most ``depth`` ahead."""
    if not enabled:
        yield from items
        return
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_STOP)
        except BaseException as err:  # handed to the consumer
            q.put(_Error(err))

    t = threading.Thread(target=produce, name="satseg-prefetch", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _STOP:
                return
            if isinstance(item, _Error):
                raise item.err
            yield item
    finally:
        stop.set()
        t.join(timeout=5)


class _Background:
    """What ``Worker`` and ``Follower`` share: their thread (``_loop``), started on entry when
    enabled, and the time spent in their work (``busy_s`` wall, ``cpu_s`` the thread's CPU)."""

    name = "satseg-background"
    enabled: bool
    _t: threading.Thread | None
    busy_s: float
    cpu_s: float

    def __enter__(self) -> Self:
        if self.enabled:
            self._t = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._t.start()
        return self

    def _loop(self) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def _timed(self) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.busy_s += time.perf_counter() - t0
            self.cpu_s += time.thread_time() - c0


class Worker(_Background):
    """Context manager: ``put(msg)`` calls ``handle(msg)`` in order on one background thread.

    It keeps the figures that say whether the writer side keeps up: ``busy_s`` (wall time in
    ``handle``), ``cpu_s`` (the thread's CPU time in it), ``blocked_s`` (time ``put`` waited
    for a full queue: the producer stalled behind the writer) and ``drain_s`` (time from the
    last ``put`` to the end of the work on exit).
    """

    def __init__(self, handle: Callable[[Any], None], maxsize: int = 4, enabled: bool = True):
        self.handle = handle
        self.enabled = enabled
        self._q: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
        self._err: BaseException | None = None
        self._t: threading.Thread | None = None
        self.busy_s = self.cpu_s = self.blocked_s = self.drain_s = 0.0

    name = "satseg-writer"

    def _loop(self) -> None:
        while True:
            msg = self._q.get()
            if msg is _STOP:
                return
            if self._err is None:  # after an error, drain without work until stopped
                self._handle(msg)

    def _handle(self, msg: Any) -> None:
        with self._timed():
            try:
                self.handle(msg)
            except BaseException as err:
                if self._t is None:
                    raise
                self._err = err

    def put(self, msg: Any) -> None:
        if self._err is not None:
            raise self._err
        if self._t is None:
            self._handle(msg)
            return
        try:
            self._q.put_nowait(msg)
        except queue.Full:
            t0 = time.perf_counter()
            self._q.put(msg)
            self.blocked_s += time.perf_counter() - t0

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._t is not None:
            t0 = time.perf_counter()
            self._q.put(_STOP)
            self._t.join()
            self.drain_s = time.perf_counter() - t0
        if exc_type is None and self._err is not None:
            raise self._err


class Follower(_Background):
    """Context manager: ``advance(upto)`` lets ``work(upto)`` run on its own thread, which
    follows a target that only grows; ``wait()`` returns once the last target is done.

    For work that reads what another thread has already written (rows back from a raster
    being written), so nothing queues but a number: the writer is never held up by it and
    memory does not grow when it falls behind. Figures as in ``Worker``: ``busy_s``,
    ``cpu_s`` and ``drain_s`` (how long ``wait`` waited). Leaving the context on an error
    stops the thread without doing the rest. ``enabled=False``: ``advance`` works inline.
    """

    def __init__(self, work: Callable[[int], None], enabled: bool = True) -> None:
        self.work = work
        self.enabled = enabled
        self._cv = threading.Condition()
        self._target = self._done = 0
        self._stop = False
        self._err: BaseException | None = None
        self._t: threading.Thread | None = None
        self.busy_s = self.cpu_s = self.drain_s = 0.0

    name = "satseg-follower"

    def _loop(self) -> None:
        while True:
            with self._cv:
                while self._target <= self._done and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                upto = self._target
            with self._timed():
                try:
                    self.work(upto)
                except BaseException as err:
                    self._err = err
            with self._cv:
                self._done = upto
                if self._err is not None:
                    self._stop = True
                self._cv.notify_all()

    def _raise(self) -> None:
        if self._err is not None:
            raise self._err

    def advance(self, upto: int) -> None:
        self._raise()
        if self._t is None:
            with self._timed():
                self.work(upto)
            return
        with self._cv:
            if upto > self._target:
                self._target = upto
                self._cv.notify_all()

    def wait(self) -> None:
        """Block until the work has reached the last target (raising its error, if any)."""
        t0 = time.perf_counter()
        with self._cv:
            while self._t is not None and self._done < self._target and not self._stop:
                self._cv.wait()
        self.drain_s += time.perf_counter() - t0
        self._raise()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._t is not None:
            with self._cv:
                self._stop = True
                self._cv.notify_all()
            self._t.join()
        if exc_type is None:
            self._raise()


class _Error:
    def __init__(self, err: BaseException) -> None:
        self.err = err
