"""Champion/challenger decision: a challenger must beat the champion on the same data.

The champion is re-evaluated on the challenger's val split (with the threshold and minimum
area it predicts with) rather than trusting the score it logged when it was trained (on
other data), so the comparison is fair. The primary metric is ``train.promotion_metric``
(iou | object_f1 | boundary_iou | dice); a challenger whose object F1 is more than
``train.object_f1_tolerance`` below the champion's is not promoted whatever that metric says. The decision
(``promoted`` + ``reason``) is returned for notifiers and stored on the model version.
It lives in ``training`` (not ``registry``) because it evaluates: the registry only stores.

Multi-class models (their run's class table, ``ModelRef.classes``) rank on ``miou`` by default
(``iou`` reads as ``miou``), or a named class's ``iou_<class>`` (``evaluate.resolve_metric``);
the champion is re-evaluated the same way (argmax per-class scores on the same val split).
Models with different class tables (a binary champion and a multi-class challenger, or other
classes or another order) cannot be scored on one dataset: such a challenger is **not**
promoted automatically, the decision says why, and a person promotes it by hand
(``satseg model promote N``) when the switch of what inference produces is intended.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NotRequired, TypedDict

from satseg.classes import ModelClasses
from satseg.config import Settings
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
CLASS_METRICS = ("miou", "mdice", "pixel_accuracy")  # multi-class, then iou_<class> each


def side_by_side(classes: ModelClasses) -> tuple[str, ...]:
    """The val metrics shown beside each other for a model of ``classes``."""
    if not classes.multiclass:
        return METRICS
    return (*CLASS_METRICS, *(f"iou_{n}" for n in classes.names))


def _describe(classes: ModelClasses) -> str:
    if not classes.multiclass:
        return f"binary ({classes.names[0]})"
    return f"{len(classes.names)} classes ({', '.join(classes.names)})"


def comparable(challenger: ModelClasses, champion: ModelClasses) -> bool:
    """Same kind of output and the same classes in the same order (colours aside)."""
    return (challenger.multiclass, challenger.names) == (champion.multiclass, champion.names)


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
    name = {"iou": "IoU", "miou": "mIoU"}.get(metric, metric)
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


def rule_of(
    settings: Settings, run_params: dict[str, str], classes: ModelClasses | None = None
) -> Rule:
    """The challenger run's own promotion settings (its training config, as logged), else
    params.yaml ``train:``; the margin is ``SATSEG_PROMOTION_MARGIN``. ``classes`` (the
    challenger's; binary when None) decides what the metric names (``resolve_metric``)."""
    from satseg.training.evaluate import resolve_metric

    train = settings.params().train
    metric = run_params.get("promotion_metric") or train.promotion_metric
    metric = resolve_metric(metric, classes or ModelClasses.from_json(None))
    tol = run_params.get("object_f1_tolerance")
    return Rule(
        metric=metric,
        margin=settings.promotion_margin,
        object_f1_tolerance=float(tol) if tol not in (None, "") else train.object_f1_tolerance,
    )


def _champion_scores(settings: Settings, version: str, dataset_dir: Path | str) -> dict[str, float]:
    """The champion re-evaluated on ``dataset_dir``'s val split, post-processed as it predicts
    (multi-class: the argmax's per-class scores)."""
    from satseg.training.evaluate import (  # TensorFlow: only when promoting
        as_deployed,
        evaluate,
        evaluate_classes,
    )

    model, ref = load_model(settings, version)
    if ModelClasses.from_json(ref.classes).multiclass:
        return evaluate_classes(model, dataset_dir, "val")
    return evaluate(model, dataset_dir, "val", **as_deployed(settings, ref.postprocess))


def challenge(settings: Settings, version: str, dataset_dir: Path | str) -> Decision:
    """What the rule says about ``version``, nothing changed yet: the champion re-evaluated on
    ``dataset_dir``'s val split, both models' val metrics, ``promoted`` = the rule's verdict."""
    chall = get_ref(settings, str(version))
    classes = ModelClasses.from_json(chall.classes)
    client = setup(settings)
    rule = rule_of(settings, dict(client.get_run(chall.run_id).data.params), classes)
    key = f"val_{rule['metric']}"
    if key not in chall.metrics:
        raise ValueError(f"version {version} has no final_{key} metric (was it evaluated?)")
    champ = champion(settings)
    champ_scores: dict[str, float] | None = None
    champ_classes = ModelClasses.from_json(champ.classes) if champ is not None else classes
    if champ is not None and champ.version == chall.version:
        promoted, reason = True, ALREADY_CHAMPION
        champ_scores = {k.removeprefix("val_"): v for k, v in chall.metrics.items()}
    elif champ is not None and not comparable(classes, champ_classes):
        promoted, reason = (
            False,
            (
                f"not comparable: champion v{champ.version} is {_describe(champ_classes)}, "
                f"challenger v{chall.version} is {_describe(classes)}; the champion is kept "
                f"(promote v{chall.version} by hand, satseg model promote {chall.version}, "
                "to switch what inference produces)"
            ),
        )
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
    return _decision(chall, champ, champ_scores, rule, promoted, reason, side_by_side(classes))


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
    shown: tuple[str, ...] = METRICS,
) -> Decision:
    cs = champ_scores or {}

    def headline(m: dict[str, float], prefix: str = "") -> float | None:
        v = m.get(f"{prefix}iou", m.get(f"{prefix}miou"))
        return None if v is None else float(v)

    return Decision(
        promoted=promoted,
        reason=reason,
        version=chall.version,
        metric=rule["metric"],
        challenger_score=chall.metrics[f"val_{rule['metric']}"],
        champion_score=cs.get(rule["metric"]) if champ_scores is not None else None,
        challenger_iou=headline(chall.metrics, "val_") or 0.0,
        champion_iou=headline(cs) if champ_scores is not None else None,
        challenger_object_f1=chall.metrics.get("val_object_f1"),
        champion_object_f1=cs.get("object_f1") if champ_scores is not None else None,
        object_f1_tolerance=rule["object_f1_tolerance"],
        champion_version=champ.version if champ else None,
        margin=rule["margin"],
        dataset_tag=chall.dataset_tag,
        run_id=chall.run_id,
        challenger_metrics={
            m: chall.metrics[f"val_{m}"] for m in shown if f"val_{m}" in chall.metrics
        },
        champion_metrics=None
        if champ_scores is None
        else {m: float(cs[m]) for m in shown if m in cs},
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
    for m in chall:
        other = champ.get(m)
        diff = f"{chall[m] - other:+.4f}" if other is not None else "-"
        shown = f"{other:.4f}" if other is not None else "-"
        rows.append(f"| {m} | {chall[m]:.4f} | {shown} | {diff} |")
    return "\n".join(rows)
