"""Champion/challenger decision: a challenger must beat the champion on the same data.

The champion is re-evaluated on the challenger's val split rather than trusting the IoU it
logged when it was trained (on other data), so the comparison is fair. The decision
(``promoted`` + ``reason``) is returned for notifiers and stored on the model version.
It lives in ``training`` (not ``registry``) because it evaluates: the registry only stores.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NotRequired, TypedDict

from satseg.config import Settings
from satseg.registry.store import champion, get_ref, load_model, promote, setup

log = logging.getLogger(__name__)


class Decision(TypedDict):
    """What ``compare_and_promote`` decided, and why (the ``satseg://model`` event extra)."""

    promoted: bool
    reason: str
    version: str
    challenger_iou: float
    champion_version: str | None
    champion_iou: float | None
    margin: float
    dataset_tag: str | None
    run_id: str | None
    challenger_metrics: NotRequired[dict[str, float]]
    champion_metrics: NotRequired[dict[str, float] | None]
    approval: NotRequired[str]  # with promotion=approve: who answered what (or the timeout)


ALREADY_CHAMPION = "already champion"


def decide(challenger_iou: float, champion_iou: float | None, margin: float) -> tuple[bool, str]:
    """Pure rule: first model wins; otherwise strictly more than champion + margin."""
    if champion_iou is None:
        return True, "first model: no champion yet"
    if challenger_iou > champion_iou + margin:
        return True, (
            f"challenger val IoU {challenger_iou:.4f} beats champion {champion_iou:.4f} "
            f"by more than the margin {margin:.4f}"
        )
    return False, (
        f"challenger val IoU {challenger_iou:.4f} does not beat champion {champion_iou:.4f} "
        f"+ margin {margin:.4f}"
    )


METRICS = ("iou", "dice", "precision", "recall")  # val metrics shown side by side


def challenge(settings: Settings, version: str, dataset_dir: Path | str) -> Decision:
    """What the rule says about ``version``, nothing changed yet: the champion re-evaluated on
    ``dataset_dir``'s val split, both models' val metrics, ``promoted`` = the rule's verdict."""
    from satseg.training.evaluate import evaluate  # TensorFlow: only when promoting

    chall = get_ref(settings, str(version))
    if "val_iou" not in chall.metrics:
        raise ValueError(f"version {version} has no final_val_iou metric (was it evaluated?)")
    chall_metrics = {m: chall.metrics[f"val_{m}"] for m in METRICS if f"val_{m}" in chall.metrics}
    champ = champion(settings)
    champ_metrics: dict[str, float] | None = None
    if champ is not None and champ.version == chall.version:
        promoted, reason = True, ALREADY_CHAMPION
        champ_metrics = chall_metrics
    else:
        if champ is not None:
            model, _ = load_model(settings, champ.version)
            scores = evaluate(model, dataset_dir, "val")
            champ_metrics = {m: float(scores[m]) for m in METRICS if m in scores}
        champ_iou = champ_metrics["iou"] if champ_metrics else None
        promoted, reason = decide(chall.metrics["val_iou"], champ_iou, settings.promotion_margin)
    return Decision(
        promoted=promoted,
        reason=reason,
        version=chall.version,
        challenger_iou=chall.metrics["val_iou"],
        champion_version=champ.version if champ else None,
        champion_iou=champ_metrics["iou"] if champ_metrics else None,
        margin=settings.promotion_margin,
        dataset_tag=chall.dataset_tag,
        run_id=chall.run_id,
        challenger_metrics=chall_metrics,
        champion_metrics=champ_metrics,
    )


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
