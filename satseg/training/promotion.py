"""Champion/challenger decision: a challenger must beat the champion on the same data.

The champion is re-evaluated on the challenger's val split (with the threshold and minimum
area it predicts with) rather than trusting the score it logged when it was trained (on
other data), so the comparison is fair. The primary metric is ``train.promotion_metric``
(iou | object_f1 | boundary_iou | dice); a challenger whose object F1 is more than
``train.object_f1_tolerance`` below the champion's is not promoted whatever that metric says. The decision
(``promoted`` + ``reason``) is returned for notifiers and stored on the model version.
It lives in ``training`` (not ``registry``) because it evaluates: the registry only stores.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NotRequired, TypedDict

from satseg.config import Settings
from satseg.metrics import METRIC_NAMES
from satseg.registry.ref import ModelRef
from satseg.registry.store import champion, get_ref, load_model, promote, setup

log = logging.getLogger(__name__)


class Decision(TypedDict):
    """What ``compare_and_promote`` decided, and why (the ``satseg://model`` event extra)."""

    promoted: bool
    reason: str
    version: str
    metric: str
    challenger_score: float
    champion_score: float | None
    challenger_iou: float
    champion_iou: float | None
    challenger_object_f1: float | None
    champion_object_f1: float | None
    object_f1_tolerance: float
    champion_version: str | None
    margin: float
    dataset_tag: str | None
    run_id: str | None
    challenger_metrics: NotRequired[dict[str, float]]
    champion_metrics: NotRequired[dict[str, float] | None]
    approval: NotRequired[str]  # with promotion=approve: who answered what (or the timeout)


ALREADY_CHAMPION = "already champion"
METRICS = ("iou", "dice", "precision", "recall", "object_f1", "boundary_iou")  # side by side


class Rule(TypedDict):
    """How to compare: the primary val metric, its margin, the object F1 tolerance."""

    metric: str
    margin: float
    object_f1_tolerance: float


def decide(
    challenger: float,
    champion: float | None,
    margin: float,
    *,
    metric: str = "iou",
    challenger_f1: float | None = None,
    champion_f1: float | None = None,
    f1_tolerance: float = 1.0,
) -> tuple[bool, str]:
    """Pure rule: first model wins; otherwise strictly more than champion + margin on
    ``metric``, and object F1 no more than ``f1_tolerance`` below the champion's."""
    name = "IoU" if metric == "iou" else metric
    if champion is None:
        return True, "first model: no champion yet"
    if not challenger > champion + margin:
        return False, (
            f"challenger val {name} {challenger:.4f} does not beat champion {champion:.4f} "
            f"+ margin {margin:.4f}"
        )
    if (
        challenger_f1 is not None
        and champion_f1 is not None
        and challenger_f1 < champion_f1 - f1_tolerance
    ):
        return False, (
            f"challenger val {name} {challenger:.4f} beats champion {champion:.4f}, but its "
            f"object F1 {challenger_f1:.4f} is more than {f1_tolerance:.4f} below the "
            f"champion's {champion_f1:.4f}"
        )
    return True, (
        f"challenger val {name} {challenger:.4f} beats champion {champion:.4f} "
        f"by more than the margin {margin:.4f}"
    )


def rule_of(settings: Settings, run_params: dict[str, str]) -> Rule:
    """The challenger run's own promotion settings (its training config, as logged), else
    params.yaml ``train:``; the margin is ``SATSEG_PROMOTION_MARGIN``."""
    train = settings.params().train
    metric = run_params.get("promotion_metric") or train.promotion_metric
    if metric not in METRIC_NAMES:
        raise ValueError(f"promotion_metric {metric!r}: choose one of {', '.join(METRIC_NAMES)}")
    tol = run_params.get("object_f1_tolerance")
    return Rule(
        metric=metric,
        margin=settings.promotion_margin,
        object_f1_tolerance=float(tol) if tol not in (None, "") else train.object_f1_tolerance,
    )


def _champion_scores(settings: Settings, version: str, dataset_dir: Path | str) -> dict[str, float]:
    """The champion re-evaluated on ``dataset_dir``'s val split, post-processed as it predicts."""
    from satseg.training.evaluate import as_deployed, evaluate  # TensorFlow: only when promoting

    model, ref = load_model(settings, version)
    return evaluate(model, dataset_dir, "val", **as_deployed(settings, ref.postprocess))


def challenge(settings: Settings, version: str, dataset_dir: Path | str) -> Decision:
    """What the rule says about ``version``, nothing changed yet: the champion re-evaluated on
    ``dataset_dir``'s val split, both models' val metrics, ``promoted`` = the rule's verdict."""
    chall = get_ref(settings, str(version))
    client = setup(settings)
    rule = rule_of(settings, dict(client.get_run(chall.run_id).data.params))
    key = f"val_{rule['metric']}"
    if key not in chall.metrics:
        raise ValueError(f"version {version} has no final_{key} metric (was it evaluated?)")
    champ = champion(settings)
    champ_scores: dict[str, float] | None = None
    if champ is not None and champ.version == chall.version:
        promoted, reason = True, ALREADY_CHAMPION
        champ_scores = {k.removeprefix("val_"): v for k, v in chall.metrics.items()}
    else:
        if champ is not None:
            champ_scores = _champion_scores(settings, champ.version, dataset_dir)
        promoted, reason = decide(
            chall.metrics[key],
            None if champ_scores is None else champ_scores[rule["metric"]],
            rule["margin"],
            metric=rule["metric"],
            challenger_f1=chall.metrics.get("val_object_f1"),
            champion_f1=None if champ_scores is None else champ_scores.get("object_f1"),
            f1_tolerance=rule["object_f1_tolerance"],
        )
    return _decision(chall, champ, champ_scores, rule, promoted, reason)


def apply_decision(settings: Settings, decision: Decision) -> Decision:
    """Carry ``decision`` out: promote when it says so, record its reason on the model version
    and on its run (the registry and the run both say why). Idempotent."""
    if decision["promoted"] and decision["reason"] != ALREADY_CHAMPION:
        promote(settings, decision["version"])
    client = setup(settings)
    reason = decision["reason"]
    client.set_model_version_tag(
        settings.registered_model, decision["version"], "promotion", reason
    )
    if decision["run_id"]:
        client.set_tag(decision["run_id"], "promotion", reason)
    log.info("promotion decision for version %s: %s", decision["version"], reason)
    return decision


def compare_and_promote(settings: Settings, version: str, dataset_dir: Path | str) -> Decision:
    """Promote ``version`` if it beats the champion re-evaluated on ``dataset_dir``'s val split."""
    return apply_decision(settings, challenge(settings, version, dataset_dir))


def _decision(
    chall: ModelRef,
    champ: ModelRef | None,
    champ_scores: dict[str, float] | None,
    rule: Rule,
    promoted: bool,
    reason: str,
) -> Decision:
    cs = champ_scores or {}
    return Decision(
        promoted=promoted,
        reason=reason,
        version=chall.version,
        metric=rule["metric"],
        challenger_score=chall.metrics[f"val_{rule['metric']}"],
        champion_score=cs.get(rule["metric"]) if champ_scores is not None else None,
        challenger_iou=chall.metrics["val_iou"],
        champion_iou=cs.get("iou") if champ_scores is not None else None,
        challenger_object_f1=chall.metrics.get("val_object_f1"),
        champion_object_f1=cs.get("object_f1") if champ_scores is not None else None,
        object_f1_tolerance=rule["object_f1_tolerance"],
        champion_version=champ.version if champ else None,
        margin=rule["margin"],
        dataset_tag=chall.dataset_tag,
        run_id=chall.run_id,
        challenger_metrics={
            m: chall.metrics[f"val_{m}"] for m in METRICS if f"val_{m}" in chall.metrics
        },
        champion_metrics=None
        if champ_scores is None
        else {m: float(cs[m]) for m in METRICS if m in cs},
    )


def metrics_table(decision: Decision) -> str:
    """Markdown table: the challenger's and the champion's val metrics side by side (the
    champion re-evaluated on the challenger's val split), and their difference."""
    chall = decision.get("challenger_metrics") or {"iou": decision["challenger_iou"]}
    champ = decision.get("champion_metrics") or {}
    champ_head = f"champion v{decision['champion_version']}" if champ else "champion (none yet)"
    rows = [
        f"| val metric | challenger v{decision['version']} | {champ_head} | difference |",
        "|---|---|---|---|",
    ]
    for m in METRICS:
        if m not in chall:
            continue
        other = champ.get(m)
        diff = f"{chall[m] - other:+.4f}" if other is not None else "-"
        shown = f"{other:.4f}" if other is not None else "-"
        rows.append(f"| {m} | {chall[m]:.4f} | {shown} | {diff} |")
    return "\n".join(rows)
