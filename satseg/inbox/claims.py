"""Who is working on which input: one locked ledger of claims, keyed by content hash.

Parallel tasks (Airflow maps one per pair) claim an input before working on it. A claim is an
entry ``{<owner_field>: <owner>, "status": "processing", "claimed": <time>, ...}``; the owner
later replaces it with its final entry (``"status": "done"``) or releases it. A key held by
another owner means "already taken" (for content hashes: a duplicate), unless the claim is
still ``processing`` and its run is known to have ended: older than ``STALE_CLAIM_S``, or made
by a process of this host that no longer runs (a killed task: ``pid`` and ``host`` are in every
claim). An owner that fails releases its claim (``release``), so a corrected re-drop of the
same content is never taken for a duplicate of a pass that died.
Every read-modify-write happens under one ``fcntl`` lock, so two tasks never both win.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satseg.io.atomic import write_json
from satseg.versioning.repo import file_lock

STALE_CLAIM_S = 6 * 3600  # a "processing" claim older than this is from a crashed run
PROCESSING = "processing"

Entry = dict[str, Any]


@dataclass(frozen=True)
class Ledger:
    """The claims in ``path`` (JSON), guarded by the lock file ``lock``."""

    path: Path
    lock: Path
    owner_field: str = "owner"
    stale_s: float = STALE_CLAIM_S

    @contextlib.contextmanager
    def edit(self) -> Iterator[dict[str, Entry]]:
        """The entries, locked for the block; written back (atomically) when it ends cleanly."""
        with file_lock(self.lock):
            entries = self._read()
            yield entries
            write_json(self.path, entries)

    def holder(self, entries: dict[str, Entry], key: str, owner: str) -> Entry | None:
        """The entry of *another* owner holding ``key``; None if free, ours, or stale."""
        entry = entries.get(key)
        if not entry or entry.get(self.owner_field) == owner:
            return None
        return None if self.is_stale(entry) else entry

    def is_stale(self, entry: Entry, now: float | None = None) -> bool:
        if entry.get("status") != PROCESSING:
            return False
        now = time.time() if now is None else now
        if now - float(entry.get("claimed", 0)) > self.stale_s:
            return True
        pid = entry.get("pid")
        return entry.get("host") == socket.gethostname() and isinstance(pid, int) and not alive(pid)

    def claim(self, entries: dict[str, Entry], key: str, owner: str, **fields: Any) -> Entry:
        """Record ``owner``'s processing claim on ``key`` (call inside ``edit``)."""
        entries[key] = {
            **fields,
            self.owner_field: owner,
            "status": PROCESSING,
            "claimed": time.time(),
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
        return entries[key]

    def release(self, key: str, owner: str) -> bool:
        """Drop ``owner``'s processing claim on ``key`` (a failed run); True if it was there."""
        with self.edit() as entries:
            entry = entries.get(key)
            if entry and entry.get(self.owner_field) == owner and entry.get("status") == PROCESSING:
                del entries[key]
                return True
        return False

    def put(self, key: str, entry: Entry | None) -> None:
        """Replace ``key``'s entry (its final record), or release it (None)."""
        with self.edit() as entries:
            if entry is None:
                entries.pop(key, None)
            else:
                entries[key] = entry

    def _read(self) -> dict[str, Entry]:
        try:
            data: dict[str, Entry] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return data


def alive(pid: int) -> bool:
    """Does process ``pid`` run on this host (a zombie does not count)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return True
