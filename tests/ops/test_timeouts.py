"""Issue 20 defect 6: a task queued behind trainings is not failed by task_queued_timeout."""

from __future__ import annotations

import configparser
from datetime import timedelta

import pytest

from satseg.params import TrainParams
from tests.airflow_helpers import load_dag
from tests.ops.procs import REPO


@pytest.fixture(scope="module")
def cfg() -> configparser.ConfigParser:
    c = configparser.ConfigParser(interpolation=None)
    c.read(REPO / "airflow.cfg")
    return c


@pytest.fixture(scope="module")
def longest_training() -> timedelta:
    """The hard cap of a training: the retrain DAG's longest execution_timeout."""
    dag = load_dag("satseg_retrain")
    timeouts = [t.execution_timeout for t in dag.tasks if t.execution_timeout]
    assert timeouts, "the training task must have an execution_timeout"
    return max(timeouts)


def test_queued_timeout_is_above_the_training_budget_and_cap(cfg, longest_training) -> None:
    queued = timedelta(seconds=float(cfg["scheduler"]["task_queued_timeout"]))
    budget = TrainParams.model_fields["time_budget_min"].default
    assert budget is not None
    assert queued > timedelta(minutes=budget) * 2  # behind two trainings (two worker slots)
    assert queued > longest_training


def test_the_broker_does_not_redeliver_a_running_training(cfg, longest_training) -> None:
    assert cfg.getboolean("celery", "task_acks_late")
    visibility = timedelta(
        seconds=int(cfg["celery_broker_transport_options"]["visibility_timeout"])
    )
    assert visibility > longest_training
    assert cfg["celery"]["worker_prefetch_multiplier"] == "1"  # nothing reserved behind a task


def test_airflow_reads_the_values(cfg) -> None:
    from airflow.configuration import conf

    assert conf.getfloat("scheduler", "task_queued_timeout") == float(
        cfg["scheduler"]["task_queued_timeout"]
    )
    assert conf.getint("celery", "worker_prefetch_multiplier") == 1


def test_the_comment_says_what_the_setting_does() -> None:
    text = (REPO / "airflow.cfg").read_text()
    block = text[: text.index("task_queued_timeout =")].rsplit("\n\n", 1)[-1]
    assert "600 s default failed such tasks" in block
    assert "stays at Airflow's 600" not in text
