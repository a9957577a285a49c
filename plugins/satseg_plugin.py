"""Airflow plugin: satseg's REST API on the Airflow API server at /satseg (docs: /satseg/docs),
and satseg's pages (``/satseg/pages/...``) in the Airflow UI's navigation as external views
(each an iframe of the UI under ``/plugin/<url_route>``, grouped under "satseg").

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

    external_views = [  # noqa: RUF012 - the attribute Airflow reads
        {
            "name": label,
            "href": f"/satseg/pages/{page}",
            "url_route": f"satseg-{page}",
            "category": "satseg",
            "destination": "nav",
            "icon": "/satseg/pages/static/satseg.svg",
        }
        for page, label in (
            ("predictions", "Predictions"),
            ("models", "Models"),
            ("data", "Data"),
            ("monitoring", "Monitoring"),
            ("annotate", "Annotate"),
        )
    ]
