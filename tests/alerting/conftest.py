"""Fixtures: local SMTP + webhook servers wired in as Airflow connections."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from alert_sinks import Sinks, configure, running_sinks


@pytest.fixture
def sinks(settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sinks]:
    with running_sinks() as s:
        configure(monkeypatch, s)
        yield s
