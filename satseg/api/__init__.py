"""satseg's REST API: a FastAPI app the Airflow plugin mounts on the api-server at /satseg.

The logic lives in small modules (uploads, health, training, catalog) that work and are
tested without an api-server; each area's routes are one ``APIRouter`` in ``routes/``, and
``app.create_app()`` mounts them behind Airflow's own authentication (``deps``), so users log
in once, with the same accounts and roles as the UI.
"""
