#!/usr/bin/env bash
# One role and one database each for Airflow's metadata and MLflow's tracking store, so that
# neither service holds the superuser password. Run by the postgres-init job of
# docker-compose.yaml on every `up` (PGHOST=postgres), and usable as a
# /docker-entrypoint-initdb.d script too. Idempotent: creates what is missing, sets each
# role's password to the environment's value (a password changed in .env takes effect) and
# changes nothing else. Names and passwords come from the environment; psql variables quote
# them safely.
set -euo pipefail
: "${AIRFLOW_DB_USER:?}" "${AIRFLOW_DB_PASSWORD:?}" "${AIRFLOW_DB:?}"
: "${MLFLOW_DB_USER:?}" "${MLFLOW_DB_PASSWORD:?}" "${MLFLOW_DB:?}"
for _ in $(seq 30); do  # the server may still be starting (healthy only means it answers)
  pg_isready --quiet --username "${POSTGRES_USER}" && break
  sleep 2
done
psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
  --username "${POSTGRES_USER}" --dbname "${POSTGRES_DB:-$POSTGRES_USER}" \
  -v airflow_user="${AIRFLOW_DB_USER}" -v airflow_password="${AIRFLOW_DB_PASSWORD}" \
  -v airflow_db="${AIRFLOW_DB}" \
  -v mlflow_user="${MLFLOW_DB_USER}" -v mlflow_password="${MLFLOW_DB_PASSWORD}" \
  -v mlflow_db="${MLFLOW_DB}" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'airflow_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'airflow_user') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'mlflow_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'mlflow_user') \gexec
ALTER ROLE :"airflow_user" WITH LOGIN NOSUPERUSER PASSWORD :'airflow_password';
ALTER ROLE :"mlflow_user" WITH LOGIN NOSUPERUSER PASSWORD :'mlflow_password';
SELECT format('CREATE DATABASE %I OWNER %I', :'airflow_db', :'airflow_user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'airflow_db') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'mlflow_db', :'mlflow_user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'mlflow_db') \gexec
REVOKE ALL ON DATABASE :"airflow_db" FROM PUBLIC;
REVOKE ALL ON DATABASE :"mlflow_db" FROM PUBLIC;
SQL
echo "postgres-init: roles ${AIRFLOW_DB_USER}, ${MLFLOW_DB_USER} and databases ${AIRFLOW_DB}, ${MLFLOW_DB} ready"
