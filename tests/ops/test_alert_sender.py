"""Issue 20 defect 3: the alert sender is configurable and no longer `satseg@localhost`.

Mail goes to a real local SMTP server (tests/alerting/alert_sinks.py) through an Airflow
connection, as in production: the sender is SATSEG_ALERT_EMAIL_FROM, else the connection's
``from_email`` extra; with neither, the mail channel fails loudly in the log, alone.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from satseg import alerting
from satseg.config import Settings, get_settings, reset_settings_cache
from tests.airflow_helpers import load_module
from tests.ops.procs import REPO

sinks_mod = load_module("alert_sinks", REPO / "tests" / "alerting" / "alert_sinks.py")
CONN = "satseg_sender_smtp"


@pytest.fixture
def smtp(settings, monkeypatch) -> Iterator[Any]:
    with sinks_mod.running_sinks() as sinks:
        monkeypatch.setenv("SATSEG_ALERT_EMAIL_TO", "ops@example.org")
        monkeypatch.setenv("SATSEG_SMTP_CONN_ID", CONN)
        monkeypatch.delenv("SATSEG_ALERT_EMAIL_FROM", raising=False)
        monkeypatch.delenv("SATSEG_SLACK_CONN_ID", raising=False)
        yield sinks
    reset_settings_cache()


def _connection(monkeypatch, sinks, **extra: Any) -> None:
    conn = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": sinks.smtp_port,
        "extra": {
            "disable_tls": True,
            "disable_ssl": True,
            "timeout": 5,
            "retry_limit": 0,
            **extra,
        },
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(conn))
    reset_settings_cache()


def test_the_default_sender_is_not_localhost() -> None:
    assert Settings.model_fields["alert_email_from"].default is None


def test_sender_from_the_setting(smtp, monkeypatch) -> None:
    _connection(monkeypatch, smtp, from_email="conn@example.org")
    monkeypatch.setenv("SATSEG_ALERT_EMAIL_FROM", "satseg-alerts@example.org")
    reset_settings_cache()
    assert alerting.notify(alerting.TASK_FAILED, {}, error="boom") == ["SmtpNotifier"]
    smtp.wait(mails=1)
    assert [m["From"] for m in smtp.mails] == ["satseg-alerts@example.org"]


def test_sender_from_the_connection_when_unset(smtp, monkeypatch) -> None:
    _connection(monkeypatch, smtp, from_email="relay-user@example.org")
    assert get_settings().alert_email_from is None
    assert alerting.notify(alerting.TASK_FAILED, {}, error="boom") == ["SmtpNotifier"]
    smtp.wait(mails=1)
    assert [m["From"] for m in smtp.mails] == ["relay-user@example.org"]


def test_no_sender_anywhere_fails_the_mail_channel_only(smtp, monkeypatch, caplog) -> None:
    _connection(monkeypatch, smtp)
    assert alerting.notify(alerting.TASK_FAILED, {}, error="boom") == []
    assert smtp.mails == []
    assert "from_email" in caplog.text  # the log says what to set
