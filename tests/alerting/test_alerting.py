"""Alerts delivered for real to a local SMTP server and a local Slack-webhook stand-in."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from alert_sinks import UI, Sinks

from satseg import alerting
from satseg.config import get_settings

RUN = "manual__2026-05-01T06:00:00+00:00"


def _context(task_id: str = "evaluate", exc: BaseException | None = None) -> dict:
    ti = SimpleNamespace(dag_id="satseg_retrain", task_id=task_id, run_id=RUN, try_number=3)
    ctx = {"ti": ti, "dag": SimpleNamespace(dag_id="satseg_retrain"), "run_id": RUN}
    if exc is not None:
        ctx["exception"] = exc
    return ctx


def test_promotion_alert_reaches_email_and_slack(sinks: Sinks, tmp_path: Path) -> None:
    report = tmp_path / "promotion.json"
    report.write_text("{}")
    sent = alerting.notify(
        alerting.MODEL_PROMOTED,
        _context("promote"),
        version="7",
        reason="challenger val IoU 0.81 beats champion 0.74",
        report=report,
    )
    assert sent == ["SmtpNotifier", "SlackWebhookNotifier"]
    sinks.wait(mails=1, posts=1)
    (mail,) = sinks.mails
    assert mail["Subject"] == (
        f"[satseg] new model promoted to champion: satseg_retrain.promote (run {RUN})"
    )
    assert mail["From"] == "satseg@example.com"
    assert mail["X-Rcpt"] == "ops@example.com,oncall@example.com"
    body = sinks.bodies()[0]
    run_url = f"{UI}/dags/satseg_retrain/runs/manual__2026-05-01T06%3A00%3A00%2B00%3A00"
    assert f"{run_url}/tasks/promote" in body
    assert "challenger val IoU 0.81 beats champion 0.74" in body
    assert report.as_uri() in body
    (post,) = sinks.posts
    assert post["path"] == "/T000/B000/XXXX"
    text = post["json"]["text"]
    assert "new model promoted to champion" in text and "version: 7" in text
    assert f"<{run_url}/tasks/promote|" in text and f"<{report.as_uri()}|" in text


def test_not_better_and_failure_messages(sinks: Sinks) -> None:
    alerting.notify(alerting.RETRAIN_NOT_BETTER, _context("promote"), reason="0.70 <= 0.74")
    cb = alerting.failure_callbacks()
    assert cb == [alerting.on_task_failure]
    cb[0](_context("fit", ValueError("dataset {{ demo }} has no val patches <b>")))
    sinks.wait(mails=2, posts=2)
    subjects = [m["Subject"] for m in sinks.mails]
    assert subjects[0].startswith("[satseg] retrained model did not beat the champion")
    assert subjects[1] == f"[satseg] task failed: satseg_retrain.fit (run {RUN})"
    body = sinks.bodies()[1]
    # The exception is quoted verbatim (no Jinja pass, HTML escaped).
    assert "ValueError: dataset {{ demo }} has no val patches &lt;b&gt;" in body
    assert "try 3" in body
    assert "ValueError: dataset {{ demo }} has no val patches <b>" in sinks.posts[1]["json"]["text"]


def test_callback_factory_resolves_details_from_the_context(sinks: Sinks) -> None:
    cb = alerting.callback(alerting.MODEL_PROMOTED, version=lambda ctx: ctx["ti"].task_id)
    cb(_context("v42"))
    sinks.wait(posts=1)
    assert "version: v42" in sinks.posts[0]["json"]["text"]


def test_one_broken_channel_does_not_hide_the_other(
    sinks: Sinks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SATSEG_TEST_SMTP",
        '{"conn_type": "smtp", "host": "127.0.0.1", "port": 1, '
        '"extra": {"disable_tls": true, "disable_ssl": true, "retry_limit": 0, "timeout": 2}}',
    )
    sent = alerting.notify(alerting.DRIFT_DETECTED, _context(), reason="r", settings=get_settings())
    assert sent == ["SlackWebhookNotifier"]
    sinks.wait(posts=1)
    assert sinks.mails == [] and "drift detected: r" in sinks.posts[0]["json"]["text"]


def test_nothing_configured_means_no_notifiers_and_no_errors(settings) -> None:
    assert settings.alert_email_to is None and settings.slack_conn_id is None
    msg = alerting.compose(alerting.DRIFT_DETECTED, None, settings, {"reason": "x"})
    assert alerting.build_notifiers(settings, msg) == []
    assert alerting.notify(alerting.DRIFT_DETECTED, reason="x") == []
    alerting.on_task_failure(_context("fit", RuntimeError("boom")))  # silently nothing


def test_message_without_a_dag_run_links_the_ui_root(settings) -> None:
    msg = alerting.compose(alerting.DRIFT_DETECTED, {}, settings, {"reason": "cli check"})
    assert msg.subject == "[satseg] drift detected: satseg"
    assert f"<{settings.airflow_ui_url}|" in msg.text
    assert "drift detected: cli check" in msg.text
