"""Approval before a champion changes (``promotion: approve``): what to ask, and the answer.

The rule (``promotion.challenge``) still decides whether a challenger *would* become champion;
with ``promotion=approve`` a person confirms that change first (Airflow's human-in-the-loop
operator, in ``satseg.dagkit``). Nothing here imports Airflow: :func:`request_for` builds the
question (subject, a markdown body with both models' metrics side by side, the default
answer taken on timeout) and :func:`settle` turns the recorded answer into the final
decision, promoting only on "Approve" (or on a timeout when ``on_timeout=promote``).

The answer is the HITL operator's result: ``chosen_options``, ``params_input`` (the optional
``comment``), ``responded_by_user`` (``None`` when the scheduler applied the default on
timeout) and ``timedout``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict

from satseg.config import Settings
from satseg.params import RetrainRun, build
from satseg.training.promotion import (
    ALREADY_CHAMPION,
    Decision,
    apply_decision,
    challenge,
    metrics_table,
)
from satseg.vocab import APPROVAL_COMMENT, APPROVAL_OPTIONS, APPROVE, REJECT

OPTIONS = list(APPROVAL_OPTIONS)
COMMENT = APPROVAL_COMMENT


RUN_OPTIONS = ("promotion", "approval_timeout_h", "on_timeout")


class Challenge(TypedDict):
    """The rule's verdict and the run's approval options (what the approval step reads)."""

    decision: Decision
    promotion: str
    approval_timeout_h: float
    on_timeout: str


class Request(TypedDict):
    """What the approver is asked, and what happens when nobody answers in time."""

    subject: str
    body: str
    defaults: list[str]
    timeout_h: float


def challenge_for_run(
    settings: Settings, version: str, dataset_dir: Path | str, params: Mapping[str, Any]
) -> Challenge:
    """``promotion.challenge`` plus this run's approval options (validated by RetrainRun)."""
    run = build(RetrainRun, {k: params[k] for k in RUN_OPTIONS if k in params}, "params")
    return Challenge(
        decision=challenge(settings, version, dataset_dir),
        promotion=run.promotion,
        approval_timeout_h=run.approval_timeout_h,
        on_timeout=run.on_timeout,
    )


def needs_approval(c: Challenge) -> bool:
    """Only a champion change waits: the rule would promote and the version is not champion."""
    d = c["decision"]
    return c["promotion"] == "approve" and bool(d["promoted"]) and d["reason"] != ALREADY_CHAMPION


def request_for(c: Challenge) -> Request | None:
    """The question for the approvers, or None when this decision needs no approval."""
    if not needs_approval(c):
        return None
    decision, timeout_h, on_timeout = c["decision"], c["approval_timeout_h"], c["on_timeout"]
    champ = decision["champion_version"]
    what = f"replace champion v{champ}" if champ else "become the first champion"
    body = "\n\n".join(
        [
            f"Model version **{decision['version']}** (dataset `{decision['dataset_tag']}`, "
            f"MLflow run `{decision['run_id']}`) would {what}.",
            metrics_table(decision),
            f"The rule says: {decision['reason']}.",
            f"**Approve** promotes version {decision['version']} to champion; **Reject** keeps "
            f"{'v' + str(champ) if champ else 'no champion'} (say why in *{COMMENT}*). "
            f"Without an answer in {timeout_h:g} h: **{on_timeout}**.",
        ]
    )
    return Request(
        subject=f"Promote satseg model version {decision['version']} to champion?",
        body=body,
        defaults=[APPROVE if on_timeout == "promote" else REJECT],
        timeout_h=timeout_h,
    )


def _who(answer: Mapping[str, Any]) -> str:
    user = answer.get("responded_by_user") or {}
    return str(user.get("name") or user.get("id") or "unknown user")


def verdict(answer: Mapping[str, Any], timeout_h: float) -> tuple[bool, str]:
    """(promote?, why) from a recorded answer; a timeout says so and which default applied."""
    chosen = list(answer.get("chosen_options") or [])
    approved = chosen == [APPROVE]
    if not approved and chosen != [REJECT]:
        raise ValueError(f"approval answer {chosen!r}: expected one of {OPTIONS}")
    comment = str((answer.get("params_input") or {}).get(COMMENT) or "").strip()
    if answer.get("timedout") or answer.get("responded_by_user") is None:
        return (
            approved,
            f"no answer within {timeout_h:g} h: {'promoted' if approved else 'rejected'}",
        )
    why = f"{'approved' if approved else 'rejected'} by {_who(answer)}"
    return approved, f"{why}: {comment[:500]}" if comment else why


def settle(settings: Settings, c: Challenge, answer: Mapping[str, Any] | None) -> Decision:
    """The final decision, carried out: the rule's (``auto``, or nothing to approve), or the
    approver's answer. Approval required but no answer recorded keeps the champion."""
    decision = c["decision"]
    final = Decision(**decision)  # type: ignore[typeddict-item]
    if needs_approval(c):
        if answer is None:
            final["promoted"] = False
            final["reason"] = "approval required but no answer was recorded; champion kept"
            final["approval"] = "missing"
        else:
            promoted, why = verdict(answer, c["approval_timeout_h"])
            final["promoted"] = promoted
            final["reason"] = f"{why} (rule: {decision['reason']})"
            final["approval"] = why
    return apply_decision(settings, final)
