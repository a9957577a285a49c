"""Who is working on which input: one locked ledger of claims, keyed by content hash.

Parallel tasks (Airflow maps one per pair) claim an input before working on it. A claim is an
entry ``{<owner_field>: <owner>, "status": "processing", "claimed": <time>, ...}``; the owner
later replaces it with its final entry (``"status": "done"``) or releases it. A key held by
another owner means "already taken" (for content hashes: a duplicate), unless the claim is
still ``processing`` and older than ``STALE_CLAIM_S``: then its run crashed and the key is free.
Every read-modify-write happens under one ``fcntl`` lock, so two tasks never both win.
"""

from __future__ import annotations

import contextlib
import json
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
        now = time.time() if now is None else now
        age = now - float(entry.get("claimed", 0))
        return entry.get("status") == PROCESSING and age > self.stale_s

    def claim(self, entries: dict[str, Entry], key: str, owner: str, **fields: Any) -> Entry:
        """Record ``owner``'s processing claim on ``key`` (call inside ``edit``)."""
        entries[key] = {
            **fields,
            self.owner_field: owner,
            "status": PROCESSING,
            "claimed": time.time(),
        }
        return entries[key]

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
