"""Alerts by e-mail and Slack through the Airflow provider notifiers.

Targets are Airflow connections named in settings (``SATSEG_SMTP_CONN_ID`` with
``SATSEG_ALERT_EMAIL_TO``, ``SATSEG_SLACK_CONN_ID`` for an incoming webhook), so no address
or secret lives in code; with nothing configured there are no notifiers and nothing fails.
Notifiers are built when an alert fires, not when a DAG file is parsed: parsing stays fast
and a changed setting applies to the next alert.

Other modules call ``notify(EVENT, context, **details)``; DAGs attach ``failure_callbacks()``
(via ``satseg.dagkit.default_args``) or ``callback(EVENT)`` as task/DAG callbacks.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from satseg.config import Settings, get_settings

log = logging.getLogger(__name__)

TASK_FAILED = "task_failed"
DRIFT_DETECTED = "drift_detected"
MODEL_PROMOTED = "model_promoted"
RETRAIN_NOT_BETTER = "retrain_not_better"
APPROVAL_REQUESTED = "approval_requested"
EVENTS = {
    TASK_FAILED: "task failed",
    DRIFT_DETECTED: "drift detected",
    MODEL_PROMOTED: "new model promoted to champion",
    RETRAIN_NOT_BETTER: "retrained model did not beat the champion",
    APPROVAL_REQUESTED: "a new champion waits for approval",
}
_MAX_ERROR = 2000  # characters of an exception message quoted in an alert


@dataclass(frozen=True)
class Message:
    subject: str
    text: str  # Slack mrkdwn
    html: str  # e-mail body


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def run_info(context: Mapping[str, Any] | None) -> dict[str, Any]:
    """DAG id, run id, task id, try number and exception from an Airflow context (or {})."""
    ctx = context or {}
    ti, dag, dag_run = ctx.get("ti"), ctx.get("dag"), ctx.get("dag_run")
    return {
        "dag_id": _get(dag, "dag_id") or _get(ti, "dag_id") or _get(dag_run, "dag_id"),
        "run_id": ctx.get("run_id") or _get(ti, "run_id") or _get(dag_run, "run_id"),
        "task_id": _get(ti, "task_id"),
        "map_index": _get(ti, "map_index"),
        "try_number": _get(ti, "try_number"),
        "exception": ctx.get("exception"),
    }


def ui_link(settings: Settings, dag_id: str | None, run_id: str | None, task_id: str | None) -> str:
    """Airflow 3 UI page of the run (or of the task instance when a task is known)."""
    base = settings.airflow_ui_url.rstrip("/")
    if not dag_id:
        return base
    url = f"{base}/dags/{quote(dag_id, safe='')}"
    if run_id:
        url += f"/runs/{quote(run_id, safe='')}"
        if task_id:
            url += f"/tasks/{quote(task_id, safe='')}"
    return url


def _link(value: Any) -> str | None:
    """A clickable form of a report path or URL."""
    if value is None:
        return None
    s = str(value)
    if "://" in s:
        return s
    return Path(s).resolve().as_uri()


def compose(
    event: str, context: Mapping[str, Any] | None, settings: Settings, details: Mapping[str, Any]
) -> Message:
    """What happened, which DAG run, and links to the report and the Airflow UI."""
    info = run_info(context)
    what = EVENTS.get(event, event.replace("_", " "))
    where = info["dag_id"] or "satseg"
    if info["task_id"]:
        where += f".{info['task_id']}"
    subject = f"[satseg] {what}: {where}"
    if info["run_id"]:
        subject += f" (run {info['run_id']})"
    lines: list[tuple[str, str, str | None]] = []  # (label, text, url)
    if event == TASK_FAILED:
        err = info["exception"]
        lines.append(("what", f"task {where} failed (try {info['try_number']})", None))
        if err is not None:
            lines.append(("error", f"{type(err).__name__}: {err}"[:_MAX_ERROR], None))
    elif details.get("reason"):
        lines.append(("what", f"{what}: {details['reason']}", None))
    else:
        lines.append(("what", what, None))
    lines.append(("DAG run", f"{info['dag_id'] or '-'} / {info['run_id'] or '-'}", None))
    ui = ui_link(settings, info["dag_id"], info["run_id"], info["task_id"])
    lines.append(("Airflow UI", ui, ui))
    if details.get("approve_at"):
        lines.append(("approve or reject", str(details["approve_at"]), str(details["approve_at"])))
    for key in ("report", "plot"):
        if details.get(key):
            lines.append((key, str(details[key]), _link(details[key])))
    for key, val in details.items():
        if key not in ("reason", "report", "plot", "approve_at") and val not in (None, "", [], {}):
            lines.append((key, str(val), None))
    text = f"*{html.escape(subject, quote=False)}*\n" + "\n".join(
        f"• {label}: <{url}|{val}>" if url else f"• {label}: {val}" for label, val, url in lines
    )
    rows = "".join(
        f"<tr><th align='left'>{html.escape(label)}</th><td>"
        + (
            f"<a href='{html.escape(url)}'>{html.escape(val)}</a>"
            if url
            else f"<pre>{html.escape(val)}</pre>"
            if label == "error"
            else html.escape(val)
        )
        + "</td></tr>"
        for label, val, url in lines
    )
    body = f"<h3>{html.escape(subject)}</h3><table>{rows}</table>"
    return Message(subject=subject, text=text, html=body)


def build_notifiers(settings: Settings, msg: Message) -> list[Any]:
    """Provider notifiers for the configured channels; empty when none is configured."""
    out: list[Any] = []
    if settings.alert_email_to:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        to = [a.strip() for a in settings.alert_email_to.split(",") if a.strip()]
        out.append(
            SmtpNotifier(
                to=to,
                from_email=settings.alert_email_from,
                subject=msg.subject,
                html_content=msg.html,
                smtp_conn_id=settings.smtp_conn_id,
            )
        )
    if settings.slack_conn_id:
        from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

        out.append(
            SlackWebhookNotifier(slack_webhook_conn_id=settings.slack_conn_id, text=msg.text)
        )
    return out


def _current_context() -> Mapping[str, Any] | None:
    try:
        from airflow.sdk import get_current_context

        return get_current_context()
    except Exception:  # not inside a running task (CLI, tests)
        return None


def notify(
    event: str,
    context: Mapping[str, Any] | None = None,
    *,
    settings: Settings | None = None,
    **details: Any,
) -> list[str]:
    """Send ``event`` to every configured channel; returns the channels that accepted it.

    A channel that fails is logged and skipped, so one broken target never hides the alert
    from the others (nor fails the task that raised it).
    """
    s = settings or get_settings()
    ctx = context if context is not None else _current_context()
    msg = compose(event, ctx, s, details)
    sent = []
    for n in build_notifiers(s, msg):
        name = type(n).__name__
        try:
            n.notify(dict(ctx or {}))  # fields are final text: no Jinja pass over messages
            sent.append(name)
        except Exception:
            log.exception("alert %s via %s failed", event, name)
    log.info("alert %s sent via %s", event, ", ".join(sent) or "no channel (none configured)")
    return sent


def on_task_failure(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` of every satseg task."""
    notify(TASK_FAILED, context)


def failure_callbacks() -> list[Callable[[Mapping[str, Any]], None]]:
    """Callbacks attached to every task's ``on_failure_callback`` (via dagkit.default_args)."""
    return [on_task_failure]


def callback(event: str, **details: Any) -> Callable[[Mapping[str, Any]], None]:
    """A task/DAG callback sending ``event``; details may be callables of the context."""

    def _cb(context: Mapping[str, Any]) -> None:
        resolved = {k: (v(context) if callable(v) else v) for k, v in details.items()}
        notify(event, context, **resolved)

    _cb.__name__ = f"notify_{event}"
    return _cb


def required_actions_link(settings: Settings, context: Mapping[str, Any]) -> str:
    """The task's "Required Actions" page in the Airflow UI, where a HITL request is answered."""
    info = run_info(context)
    url = ui_link(settings, info["dag_id"], info["run_id"], info["task_id"]) + "/required_actions"
    return url if info["map_index"] in (None, -1) else f"{url}?map_index={info['map_index']}"


def approval_notifier(**details: Any) -> Any:
    """A notifier for the HITL operator's ``notifiers``: tells the approvers (e-mail/Slack)
    that a promotion waits for them, with the metrics and the link to answer it. It is
    called after the request is stored, so the link works when the message arrives."""
    from airflow.sdk import BaseNotifier

    class ApprovalRequested(BaseNotifier):  # type: ignore[misc]
        def notify(self, context: Any) -> None:
            s = get_settings()
            notify(
                APPROVAL_REQUESTED, context, approve_at=required_actions_link(s, context), **details
            )

    return ApprovalRequested()
