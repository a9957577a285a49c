"""satseg's REST API: a FastAPI app the Airflow plugin mounts on the api-server at /satseg.

The logic lives in small modules (uploads, health, training, catalog) that work and are
tested without an api-server; ``app.create_app()`` wires them to routes behind Airflow's
own authentication, so users log in once, with the same accounts and roles as the UI.
"""
