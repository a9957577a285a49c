#!/usr/bin/env bash
# Smoke test of a running compose stack (CI runs it after `docker compose up -d`; also
# useful after an upgrade). Needs docker compose, curl and python3 on the host, and .env.
#
#   bash docker/smoke.sh            # exits non-zero, with the failing check named, on failure
set -euo pipefail
cd "$(dirname "$0")/.."
DC=${DC:-docker compose}
API=${API:-http://127.0.0.1:${AIRFLOW_PORT:-8080}}
MLFLOW=${MLFLOW:-http://127.0.0.1:${MLFLOW_PORT:-5000}}
WAIT_S=${WAIT_S:-600}
env_value() { sed -n "s/^$1=//p" .env | tail -n1; }
fail() { echo "SMOKE FAILED: $*" >&2; $DC ps -a >&2 || true; $DC logs --tail 80 >&2 || true; exit 1; }
step() { echo "--- $*"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

step "every long-running service healthy, the one-shot jobs exited 0 (up to ${WAIT_S}s)"
deadline=$(( $(date +%s) + WAIT_S ))
while :; do
  states=$($DC ps -a --format json | python3 -c '
import json, sys
text = sys.stdin.read().strip()
rows = json.loads(text) if text.startswith("[") else [json.loads(l) for l in text.splitlines() if l]
one_shot = {"postgres-init", "airflow-init"}
bad = []
for r in rows:
    svc, state, health = r["Service"], r["State"], r.get("Health", "")
    if svc in one_shot:
        if state == "exited" and r.get("ExitCode", 0) != 0:
            print(f"FATAL {svc} exited {r.get(\"ExitCode\")}")
        elif state != "exited":
            bad.append(f"{svc}:{state}")
    elif state != "running" or health not in ("healthy", ""):
        bad.append(f"{svc}:{state}/{health}")
print(" ".join(bad) if bad else "OK")
')
  case "$states" in
    OK) break ;;
    FATAL*) fail "$states" ;;
  esac
  [ "$(date +%s)" -lt "$deadline" ] || fail "not healthy after ${WAIT_S}s: $states"
  sleep 10
done

step "Airflow health: metadatabase, scheduler, triggerer, dag processor"
curl -fsS "$API/api/v2/monitor/health" | json '" ".join(f"{k}={v[\"status\"]}" for k, v in d.items())' \
  | tee /dev/stderr | grep -qv unhealthy || fail "an Airflow component is unhealthy"

step "login with the admin from .env"
TOKEN=$(curl -fsS -X POST "$API/auth/token" -H 'Content-Type: application/json' \
  -d "{\"username\": \"$(env_value AIRFLOW_ADMIN_USERNAME)\", \"password\": \"$(env_value AIRFLOW_ADMIN_PASSWORD)\"}" \
  | json 'd["access_token"]') || fail "no token for the admin"
auth=(-H "Authorization: Bearer $TOKEN")

step "every satseg DAG parsed without import errors"
for _ in $(seq 30); do
  dags=$(curl -fsS "${auth[@]}" "$API/api/v2/dags?limit=100" | json '" ".join(sorted(x["dag_id"] for x in d["dags"]))')
  case "$dags" in *satseg_housekeeping*satseg_ingest*satseg_monitor*satseg_predict*satseg_retrain*) break ;; esac
  sleep 10
done
echo "$dags"
case "$dags" in *satseg_housekeeping*satseg_ingest*satseg_monitor*satseg_predict*satseg_retrain*) ;; *) fail "DAGs missing: $dags" ;; esac
errors=$(curl -fsS "${auth[@]}" "$API/api/v2/importErrors" | json 'd["total_entries"]')
[ "$errors" = "0" ] || fail "$errors DAG import error(s)"

step "satseg REST API and MLflow"
curl -fsS "${auth[@]}" "$API/satseg/health" >/dev/null || fail "/satseg/health"
curl -fsS "$MLFLOW/health" >/dev/null || fail "MLflow /health"

step "the image is the runtime lock: pip check, no test tools"
$DC exec -T airflow-worker pip check || fail "pip check in the image"
if $DC exec -T airflow-worker python -c "import pytest" 2>/dev/null; then fail "pytest is in the image"; fi

step "Redis runs as the redis user; thread pools follow the worker's CPU limit"
uid=$($DC exec -T redis awk '/^Uid:/{print $2}' /proc/1/status | tr -d '\r')
[ "$uid" != "0" ] || fail "redis-server runs as root"
cpus=$($DC exec -T airflow-worker python -c "from satseg.cpus import available_cpus; print(available_cpus())" | tr -d '\r')
want=$(python3 -c "import math; print(math.ceil(float('${SATSEG_WORKER_CPUS:-2}')))")
echo "worker: available_cpus() = $cpus (limit $want)"
[ "$cpus" -le "$want" ] || fail "the worker sizes its pools for $cpus CPUs, limit $want"

run_dag() {  # dag_id conf timeout_s -> waits for success
  local id=$1 conf=$2 limit=$3 run state
  curl -fsS "${auth[@]}" -X PATCH "$API/api/v2/dags/$id" -H 'Content-Type: application/json' -d '{"is_paused": false}' >/dev/null
  run=$(curl -fsS "${auth[@]}" -X POST "$API/api/v2/dags/$id/dagRuns" -H 'Content-Type: application/json' \
    -d "{\"logical_date\": null, \"conf\": $conf}" | json 'd["dag_run_id"]')
  for _ in $(seq $(( limit / 10 ))); do
    state=$(curl -fsS "${auth[@]}" "$API/api/v2/dags/$id/dagRuns/$run" | json 'd["state"]')
    case "$state" in success) echo "$id: success"; return 0 ;; failed) fail "$id run $run failed" ;; esac
    sleep 10
  done
  fail "$id run $run still $state after ${limit}s"
}

step "a task through scheduler, Celery and the Execution API: satseg_housekeeping (dry run)"
run_dag satseg_housekeeping '{"dry_run": true}' 600

step "ingest of a generated scene on the worker: satseg_ingest"
$DC exec -T airflow-worker bash -c 'satseg synth /data/satseg/inbox/smoke --name smoke0 --width 512 --height 512 \
  && for f in /data/satseg/inbox/smoke/*; do touch "$f.done"; done' >/dev/null
run_dag satseg_ingest '{}' 900
curl -fsS "${auth[@]}" "$API/satseg/data/versions" | grep -q smoke || fail "no dataset version of the smoke scene"

echo "SMOKE OK"
