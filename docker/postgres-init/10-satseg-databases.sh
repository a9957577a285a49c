#!/usr/bin/env bash
# Run once by the postgres image on an empty data volume (/docker-entrypoint-initdb.d):
# one role and one database each for Airflow's metadata and MLflow's tracking store, so
# neither service holds the superuser password. Names and passwords come from the
# environment (docker-compose.yaml, .env); psql variables quote them safely.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --no-psqlrc \
  --username "${POSTGRES_USER}" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" \
  -v airflow_user="${AIRFLOW_DB_USER}" -v airflow_password="${AIRFLOW_DB_PASSWORD}" \
  -v airflow_db="${AIRFLOW_DB}" \
  -v mlflow_user="${MLFLOW_DB_USER}" -v mlflow_password="${MLFLOW_DB_PASSWORD}" \
  -v mlflow_db="${MLFLOW_DB}" <<'SQL'
CREATE ROLE :"airflow_user" LOGIN PASSWORD :'airflow_password';
CREATE DATABASE :"airflow_db" OWNER :"airflow_user";
CREATE ROLE :"mlflow_user" LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE :"mlflow_db" OWNER :"mlflow_user";
REVOKE ALL ON DATABASE :"airflow_db" FROM PUBLIC;
REVOKE ALL ON DATABASE :"mlflow_db" FROM PUBLIC;
SQL
