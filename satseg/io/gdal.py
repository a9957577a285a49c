"""GDAL settings, in one place: the block-cache size, the environment of every read, the lock.

Every read is confined to the one file it was given: no network (``/vsicurl/`` and friends
cannot fetch, PROJ grids are never downloaded: ``PROJ_NETWORK=OFF`` is also set process-wide
when this module is imported), no directory listing or sidecar files (``.aux.xml``, world
files, ``.ovr``) read or written. Which driver may open a file is decided by
``satseg.io.sniff`` and passed to every ``rasterio.open``.

Every satseg read and write of a raster happens inside ``gdal_env()``: GDAL's block cache
defaults to 5 % of RAM and would grow with the scene, while satseg reads block-aligned chunks
and writes windows, so a small cache is plenty (it also bounds ``make_scaler``'s sample read).
A stage holds one ``gdal_env()`` around its work (inference does); the scene reader wraps each
of its GDAL calls in ``gdal_context()``, which adds an environment only where the thread has
none, so the reader never holds one across calls (rasterio environments are per thread and
must be exited in the order they were entered).

``GDAL_LOCK`` serialises GDAL calls made by the threads of one process: the block cache is
shared by every dataset, and a read in one thread may evict (write out) a dirty block of a
dataset another thread is writing, which GTiff does not survive (seen as a hang in close()).
The numpy / OpenCV / TensorFlow work around those calls still overlaps. A fork waits until no
thread holds the lock, so a forked worker never starts with it held by a thread it lacks.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

GDAL_CACHE_MB = 64  # read at each gdal_env() call (tests lower it to put the cache under pressure)

GDAL_LOCK = threading.Lock()

NO_NETWORK_OPTIONS: dict[str, Any] = {
    "PROJ_NETWORK": "OFF",  # no grid downloads from cdn.proj.org
    "GDAL_HTTP_MAX_RETRY": "0",
    "GDAL_HTTP_TIMEOUT": "1",
    "GDAL_HTTP_CONNECTTIMEOUT": "1",
    "GDAL_HTTP_PROXY": "127.0.0.1:9",  # discard port: any HTTP request GDAL tries fails
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".satseg-no-network",  # no /vsicurl/ file matches
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # no sibling listing: no sidecars found
    "GDAL_PAM_ENABLED": "NO",  # no .aux.xml read or written
    "GDAL_ERROR_ON_LIBJPEG_WARNING": "TRUE",  # corrupt JPEG data is an error, not grey blocks
}
os.environ["PROJ_NETWORK"] = "OFF"  # PROJ reads it when a context is made (pyproj's too)
if "pyproj" in sys.modules:  # already made its context: switch it off there as well
    from pyproj.network import set_network_enabled

    set_network_enabled(False)

if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=GDAL_LOCK.acquire,
        after_in_parent=GDAL_LOCK.release,
        after_in_child=GDAL_LOCK.release,
    )


def gdal_options() -> dict[str, Any]:
    """The GDAL configuration options of every satseg raster read and write."""
    return {"GDAL_CACHEMAX": GDAL_CACHE_MB, **NO_NETWORK_OPTIONS}


def gdal_env() -> Any:
    """A ``rasterio.Env`` with satseg's GDAL options (a context manager)."""
    import rasterio

    return rasterio.Env(**gdal_options())


@contextlib.contextmanager
def gdal_context() -> Iterator[None]:
    """satseg's GDAL options around a GDAL call: the thread's environment, or a new one."""
    from rasterio.env import hasenv

    if hasenv():
        yield
        return
    with gdal_env():
        yield
