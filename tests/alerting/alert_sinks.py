"""Real local targets for alerts: an SMTP server (aiosmtpd) and an HTTP server as Slack webhook.

Shared by tests/alerting and tests/dags/test_monitor_dag.py (loaded by path there).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SMTP_CONN = "satseg_test_smtp"
SLACK_CONN = "satseg_test_slack"
UI = "http://airflow.test:8080"


@dataclass
class Sinks:
    mails: list[EmailMessage] = field(default_factory=list)
    posts: list[dict[str, Any]] = field(default_factory=list)
    smtp_port: int = 0
    http_port: int = 0

    def wait(self, mails: int = 0, posts: int = 0, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while (len(self.mails) < mails or len(self.posts) < posts) and time.monotonic() < end:
            time.sleep(0.05)

    def bodies(self) -> list[str]:
        out = []
        for m in self.mails:
            part = m.get_body(("html", "plain"))
            out.append(part.get_content() if part is not None else "")
        return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_sinks() -> Iterator[Sinks]:
    from aiosmtpd.controller import Controller

    sinks = Sinks()

    class Mail:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            msg = message_from_bytes(envelope.original_content, policy=policy.default)
            msg["X-Rcpt"] = ",".join(envelope.rcpt_tos)
            sinks.mails.append(msg)  # type: ignore[arg-type]
            return "250 OK"

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            sinks.posts.append({"path": self.path, "json": json.loads(body or b"{}")})
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    sinks.smtp_port = _free_port()
    ctl = Controller(Mail(), hostname="127.0.0.1", port=sinks.smtp_port)
    ctl.start()
    http = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    sinks.http_port = http.server_address[1]
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield sinks
    finally:
        http.shutdown()
        http.server_close()
        ctl.stop()


def configure(monkeypatch: Any, sinks: Sinks) -> None:
    """Point satseg's alert settings at the sinks through Airflow connections in the env."""
    smtp = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": sinks.smtp_port,
        "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 5, "retry_limit": 0},
    }
    slack = {
        "conn_type": "slackwebhook",
        "host": f"http://127.0.0.1:{sinks.http_port}",
        "password": "T000/B000/XXXX",
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{SMTP_CONN.upper()}", json.dumps(smtp))
    monkeypatch.setenv(f"AIRFLOW_CONN_{SLACK_CONN.upper()}", json.dumps(slack))
    monkeypatch.setenv("SATSEG_ALERT_EMAIL_TO", "ops@example.com, oncall@example.com")
    monkeypatch.setenv("SATSEG_ALERT_EMAIL_FROM", "satseg@example.com")
    monkeypatch.setenv("SATSEG_SMTP_CONN_ID", SMTP_CONN)
    monkeypatch.setenv("SATSEG_SLACK_CONN_ID", SLACK_CONN)
    monkeypatch.setenv("SATSEG_AIRFLOW_UI_URL", UI)
    from satseg.config import reset_settings_cache

    reset_settings_cache()
