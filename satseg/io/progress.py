"""Progress for long work: a rich bar on a terminal, plain log lines otherwise (Airflow logs)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("satseg")


def progress(
    items: Iterable[T], total: int | None = None, desc: str = "", enabled: bool | None = None
) -> Iterator[T]:
    """Iterate with progress; ``enabled=None`` means "bar only if stderr is a terminal"."""
    interactive = sys.stderr.isatty() if enabled is None else enabled
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if interactive:
        from rich.progress import Progress

        with Progress(transient=False) as bar:
            task = bar.add_task(desc or "working", total=total)
            for item in items:
                yield item
                bar.advance(task)
        return
    step = max(1, (total or 10) // 10)
    for i, item in enumerate(items, 1):
        yield item
        if i % step == 0 or (total is not None and i == total):
            log.info("%s: %d/%s", desc or "progress", i, total if total is not None else "?")
