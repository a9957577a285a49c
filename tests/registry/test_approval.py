"""The approval step's logic without Airflow, on a real MLflow registry with models whose val
IoU is known (registry_models.constant_model): what is asked, and what each answer does.

The Airflow path (the HITL operator waiting, answered through the REST API, the scheduler's
timeout sweep) is tests/dags/test_approval_dag.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from registry_models import constant_model

from satseg.registry import champion, list_models
from satseg.training.approval import (
    challenge_for_run,
    needs_approval,
    request_for,
    settle,
    verdict,
)

APPROVE = {"promotion": "approve", "approval_timeout_h": 24, "on_timeout": "reject"}
ADMIN = {"id": "1", "name": "ana"}


@pytest.fixture
def two_versions(settings: Any, tiny_dataset: Path, log_version: Callable[..., Any]) -> Any:
    """v1 (all background, IoU 0) champion; v2 (all foreground) a better challenger."""
    log_version(constant_model(-10.0))
    settle(settings, challenge_for_run(settings, "1", tiny_dataset, {}), None)  # auto
    log_version(constant_model(10.0))
    return challenge_for_run(settings, "2", tiny_dataset, APPROVE)


def test_the_request_shows_both_models_side_by_side(two_versions: Any) -> None:
    c = two_versions
    assert needs_approval(c) and c["decision"]["promoted"]  # the rule would promote
    req = request_for(c)
    assert req is not None and req["defaults"] == ["Reject"] and req["timeout_h"] == 24
    lines = req["body"].splitlines()
    assert "| val metric | challenger v2 | champion v1 | difference |" in lines
    iou = next(line for line in lines if line.startswith("| iou |"))
    chall, champ = c["decision"]["challenger_iou"], c["decision"]["champion_iou"]
    assert iou == f"| iou | {chall:.4f} | {champ:.4f} | {chall - champ:+.4f} |"
    assert "would replace champion v1" in req["body"]
    promote_on_timeout = request_for({**c, "on_timeout": "promote", "approval_timeout_h": 2})
    assert promote_on_timeout and promote_on_timeout["defaults"] == ["Approve"]
    assert "Without an answer in 2 h: **promote**" in promote_on_timeout["body"]


def test_nothing_to_approve_without_a_champion_change(settings, two_versions, tiny_dataset):
    assert request_for({**two_versions, "promotion": "auto"}) is None
    same = challenge_for_run(settings, "1", tiny_dataset, APPROVE)  # v1 is the champion
    assert same["decision"]["reason"] == "already champion" and request_for(same) is None
    worse = {**two_versions, "decision": {**two_versions["decision"], "promoted": False}}
    assert request_for(worse) is None


def test_approve_promotes(settings: Any, two_versions: Any) -> None:
    answer = {"chosen_options": ["Approve"], "params_input": {}, "responded_by_user": ADMIN}
    d = settle(settings, two_versions, answer)
    assert d["promoted"] and d["approval"] == "approved by ana"
    assert champion(settings).version == "2"


def test_reject_keeps_the_champion_and_says_why(settings: Any, two_versions: Any) -> None:
    answer = {
        "chosen_options": ["Reject"],
        "params_input": {"comment": "  overlays look wrong  "},
        "responded_by_user": ADMIN,
    }
    d = settle(settings, two_versions, answer)
    assert not d["promoted"] and d["approval"] == "rejected by ana: overlays look wrong"
    assert champion(settings).version == "1"
    assert {r.version: r.aliases for r in list_models(settings)}["2"] == ["challenger"]
    from satseg.registry.tracking import setup

    tag = setup(settings).get_model_version(settings.registered_model, "2").tags["promotion"]
    assert tag.startswith("rejected by ana: overlays look wrong (rule: challenger val IoU")


@pytest.mark.parametrize(("default", "promoted"), [("Reject", False), ("Approve", True)])
def test_timeout_applies_the_default(settings, two_versions, default, promoted) -> None:
    answer = {"chosen_options": [default], "responded_by_user": None, "timedout": True}
    d = settle(settings, two_versions, answer)
    assert d["promoted"] is promoted
    assert d["approval"] == f"no answer within 24 h: {'promoted' if promoted else 'rejected'}"
    assert champion(settings).version == ("2" if promoted else "1")


def test_no_answer_recorded_keeps_the_champion(settings: Any, two_versions: Any) -> None:
    d = settle(settings, two_versions, None)  # e.g. the approval task was marked skipped
    assert not d["promoted"] and d["approval"] == "missing"
    assert champion(settings).version == "1"


def test_an_answer_outside_the_options_is_an_error() -> None:
    with pytest.raises(ValueError, match="expected one of"):
        verdict({"chosen_options": ["Maybe"], "responded_by_user": ADMIN}, 24)
    with pytest.raises(ValueError, match="expected one of"):
        verdict({"chosen_options": ["Approve", "Reject"], "responded_by_user": ADMIN}, 24)


def test_bad_run_options_are_refused(settings: Any, tiny_dataset: Path, log_version) -> None:
    from satseg.params import ParamsError

    log_version(constant_model(-10.0))
    for bad in ({"promotion": "maybe"}, {"approval_timeout_h": 0}, {"on_timeout": "ask"}):
        with pytest.raises(ParamsError):
            challenge_for_run(settings, "1", tiny_dataset, bad)
