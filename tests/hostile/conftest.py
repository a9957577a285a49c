"""One harness for hostile and malformed input: byte accounting, a canary file, a listener.

Every test of issue 15 drops files, runs the real code path (the ``satseg`` CLI or
``run_once`` for the inbox, the real app for the API) and then asserts three things with
these helpers:

* ``assert_accounted``: every dropped file's bytes are somewhere, once (raw/ + quarantine/ +
  still in the inbox, by sha256; satseg's own records do not count).
* ``assert_no_canary``: a file outside the inbox whose bytes must never be read shows up in no
  output, neither as file bytes nor as decoded pixels (PNG/JPEG/TIFF outputs are decoded).
* ``listener``: a local HTTP server; any request it receives is a leak.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# the ingest tests' small params (autouse fixture) and their inventory helpers, shared
from tests.ingest.conftest import TEST_PARAMS as SMALL_PARAMS
from tests.ingest.conftest import (
    _small_params,  # noqa: F401 (autouse fixture)
    inventory,
)
from tests.ingest.conftest import error_records as error_records

__all__ = [
    "SMALL_PARAMS",
    "Canary",
    "Listener",
    "assert_accounted",
    "error_records",
    "inventory",
    "sha256",
]

RECORD_SUFFIXES = (".error.json",)  # satseg's own records beside quarantined files


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def assert_accounted(settings, dropped: dict[str, list[str]]) -> dict[str, str]:
    """Every dropped file (sha256 -> inbox paths) is in raw/, quarantine/ or the inbox, once.

    Returns sha256 -> where it is ("raw" | "quarantine" | "inbox"). Files satseg writes
    itself (error records, provenance under raw/.satseg/) are not user bytes.
    """
    where: dict[str, list[str]] = {}
    for name, root in (
        ("raw", settings.raw),
        ("quarantine", settings.quarantine),
        ("inbox", settings.inbox),
    ):
        for h, paths in inventory(root, RECORD_SUFFIXES).items():
            user = [p for p in paths if not p.startswith(".satseg/")]
            where.setdefault(h, []).extend([name] * len(user))
    found = {}
    for h, paths in dropped.items():
        places = where.get(h, [])
        assert len(places) >= len(paths), f"lost: {paths} ({h[:12]}) is nowhere"
        assert len(places) == len(paths), f"duplicated: {paths} found in {places}"
        found[h] = places[0]
    return found


@dataclass
class Canary:
    """A file outside the inbox whose bytes satseg must never read."""

    path: Path
    token: bytes  # 32 random bytes repeated: found in any output that copied them

    def assert_absent(self, *roots: Path) -> None:
        for root in roots:
            for p in root.rglob("*") if root.exists() else []:
                if p.is_symlink() or not p.is_file():
                    continue
                data = p.read_bytes()
                assert self.token not in data, f"canary bytes in {p}"
                pixels = _decoded(p)
                assert pixels is None or self.token not in pixels, f"canary pixels in {p}"


def _decoded(p: Path) -> bytes | None:
    """Pixel bytes of an image output (row-major, band-interleaved), else None."""
    suffix = p.suffix.lower()
    if suffix in (".png", ".jpg", ".jpeg"):
        import cv2

        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if img is None:
            return None
        if img.ndim == 3:  # OpenCV is BGR: the canary would have been written as RGB
            img = img[..., ::-1]
        return bytes(img.tobytes()) + bytes(img[..., 0].tobytes() if img.ndim == 3 else b"")
    if suffix in (".tif", ".tiff"):
        import rasterio

        try:
            with rasterio.open(p, driver="GTiff") as src:  # a VRT kept in quarantine is not
                data = src.read()
        except Exception:
            return None
        return bytes(data.tobytes()) + bytes(data.transpose(1, 2, 0).tobytes())
    return None


@pytest.fixture
def canary(tmp_path: Path) -> Canary:
    token = secrets.token_bytes(32)
    p = tmp_path / "outside" / "secret.bin"
    p.parent.mkdir(parents=True)
    p.write_bytes(token * 4096)  # 128 KiB: enough for a raw band of a few rows
    return Canary(p, token)


@dataclass
class Listener:
    """A local HTTP server; ``requests`` lists the paths it was asked for."""

    port: int
    requests: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def listener() -> Iterator[Listener]:
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(404)
            self.end_headers()

        do_HEAD = do_GET
        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Listener(server.server_address[1], seen)
    finally:
        server.shutdown()
        server.server_close()


def no_world_access(p: Path) -> bool:
    return (os.stat(p).st_mode & 0o077) == 0
