#!/usr/bin/env bash
# The airflow-init job of docker-compose.yaml (also usable by hand on any deployment):
# migrate the metadata DB, then create or refresh the admin user and the connections from
# the environment. Idempotent: re-running it changes nothing but what the environment changed.
set -euo pipefail
: "${AIRFLOW_ADMIN_USERNAME:?set AIRFLOW_ADMIN_USERNAME (.env)}"
: "${AIRFLOW_ADMIN_PASSWORD:?set AIRFLOW_ADMIN_PASSWORD (.env)}"

echo "airflow-init: migrating the metadata database"
airflow db migrate
echo "airflow-init: admin user, connections, SATSEG_HOME folders"
exec python "$(dirname "${BASH_SOURCE[0]}")/airflow_init.py"
