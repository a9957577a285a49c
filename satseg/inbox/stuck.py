"""Inbox files that cannot be moved out (a read-only folder): reported once, not every pass.

A move that fails (``PermissionError`` on a read-only inbox folder, ...) copies nothing
(``satseg.io.atomic.move``) and leaves the file where it is. Each pass tries again, since the
folder may have been fixed, but only the first failure of a file is logged as an error; the
file stays listed in ``state/<name>.json`` (with the error and when it was first seen) until a
move succeeds, and the pass result names it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satseg.io.atomic import write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StuckFiles:
    """inbox-relative name -> {"error", "since"} of every file that could not be moved."""

    path: Path

    def load(self) -> dict[str, dict[str, Any]]:
        try:
            data: dict[str, dict[str, Any]] = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        return data

    def report(self, key: str, action: str, error: OSError) -> bool:
        """Record that ``key`` could not be moved; log it (as an error) the first time only."""
        entries = self.load()
        message = f"{key}: cannot {action}: {error.strerror or error} (left in the inbox)"
        first = key not in entries
        if first:
            log.error("%s; fix the folder's permissions, later passes will retry", message)
            entries[key] = {"error": message, "since": time.time()}
            write_json(self.path, entries)
        else:
            log.debug("%s (still)", message)
        return first

    def clear(self, *keys: str) -> None:
        """Forget ``keys`` (moved at last)."""
        entries = self.load()
        if any([entries.pop(k, None) is not None for k in keys]):
            write_json(self.path, entries)
