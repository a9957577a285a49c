"""The CI job that does what this machine cannot: build the image, `docker compose config`,
bring the stack up and smoke-test it (docker/smoke.sh) on a runner with a Docker engine."""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.ops.procs import REPO

SMOKE = REPO / "docker" / "smoke.sh"


def _image_job() -> dict:
    ci = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yaml").read_text())
    return ci["jobs"]["image"]


def test_ci_builds_the_image_validates_compose_and_smoke_tests() -> None:
    job = _image_job()
    assert job["runs-on"].startswith("ubuntu")  # GitHub's Ubuntu runners have Docker
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    order = [
        "docker/new_env.py > .env",
        "docker compose config --quiet",
        "-f docker/compose.multihost.yaml config --quiet",
        "docker compose build",
        "docker compose up -d",
        "bash docker/smoke.sh",
        "docker compose down -v",
    ]
    positions = [runs.find(s) for s in order]
    assert -1 not in positions, dict(zip(order, positions, strict=True))
    assert positions == sorted(positions), "steps out of order"
    teardown = next(s for s in job["steps"] if "down -v" in s.get("run", ""))
    assert teardown["if"] == "always()"


def test_smoke_script_parses_and_covers_every_dag() -> None:
    subprocess.run(["bash", "-n", str(SMOKE)], check=True)
    text = SMOKE.read_text()
    dag_ids = sorted(p.stem for p in (REPO / "dags").glob("satseg_*.py"))
    expected = "*" + "*".join(dag_ids) + "*"
    assert text.count(expected) >= 2, f"smoke.sh must wait for every DAG: {expected}"
    for check in (
        "/api/v2/monitor/health",
        "/auth/token",
        "/api/v2/importErrors",
        "/satseg/health",
        "pip check",
        "/proc/1/status",  # redis not root
        "available_cpus",  # thread pools from the worker's limit
        "run_dag satseg_housekeeping",
        "run_dag satseg_ingest",
    ):
        assert check in text, check
    assert re.search(r"^set -euo pipefail$", text, re.M)
