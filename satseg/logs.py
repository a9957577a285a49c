"""One log record is one line: satseg's log messages cannot be forged by the names they quote.

Inbox and quarantine messages quote user-supplied file names; a name holding a newline, a
carriage return or an ANSI escape would otherwise print a fake log line (or recolour the
terminal). ``install()`` wraps the process's log-record factory once, so every record of the
``satseg`` logger and its children (``satseg.ingest.inbox``, ...) has its message passed
through ``vocab.printable`` when it is created, before any handler or formatter (Airflow's,
pytest's) sees it. A logger ``Filter`` would not do: filters on ``satseg`` are not consulted
for records of its child loggers. Records of other libraries are left untouched.
"""

from __future__ import annotations

import logging
from typing import Any

from satseg.vocab import printable

PREFIX = "satseg"


class _SafeFactory:
    """The previous record factory, with satseg's messages made printable."""

    satseg_safe = True

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = self.inner(*args, **kwargs)
        name = record.name if isinstance(record.name, str) else ""  # makeLogRecord: None
        if name == PREFIX or name.startswith(PREFIX + "."):
            try:
                message = record.getMessage()
            except Exception:  # a bad format string: logging reports it when it is emitted
                return record
            safe = printable(message)
            if safe != message:
                record.msg, record.args = safe, None
        return record


def install() -> None:
    """Wrap the current log-record factory (idempotent; later factories that chain keep it)."""
    current = logging.getLogRecordFactory()
    if not getattr(current, "satseg_safe", False):
        logging.setLogRecordFactory(_SafeFactory(current))
