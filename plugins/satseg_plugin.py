"""Airflow plugin: satseg's REST API on the Airflow API server at /satseg (docs: /satseg/docs).

Kept to the wiring; the app and its logic live in ``satseg.api`` where they are tested. The
app is built on the first request (``LazyApp``) because Airflow also imports plugins in
every task process, where the API is never used.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from satseg.api.lazy import LazyApp


class SatsegPlugin(AirflowPlugin):
    name = "satseg"
    fastapi_apps = [  # noqa: RUF012 - the attribute Airflow reads
        {
            "app": LazyApp(),
            "url_prefix": "/satseg",
            "name": "satseg REST API",
        }
    ]
