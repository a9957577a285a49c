"""Champion/challenger decision: a challenger must beat the champion on the same data.

The champion is re-evaluated on the challenger's val split rather than trusting the IoU it
logged when it was trained (on other data), so the comparison is fair. The decision
(``promoted`` + ``reason``) is returned for notifiers and stored on the model version.
It lives in ``training`` (not ``registry``) because it evaluates: the registry only stores.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TypedDict

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


def compare_and_promote(settings: Settings, version: str, dataset_dir: Path | str) -> Decision:
    """Promote ``version`` if it beats the champion re-evaluated on ``dataset_dir``'s val split."""
    from satseg.training.evaluate import evaluate  # TensorFlow: only when promoting

    chall = get_ref(settings, str(version))
    if "val_iou" not in chall.metrics:
        raise ValueError(f"version {version} has no final_val_iou metric (was it evaluated?)")
    champ = champion(settings)
    champ_iou: float | None = None
    if champ is not None and champ.version == chall.version:
        promoted, reason = True, "already champion"
        champ_iou = chall.metrics["val_iou"]
    else:
        if champ is not None:
            model, _ = load_model(settings, champ.version)
            champ_iou = evaluate(model, dataset_dir, "val")["iou"]
        promoted, reason = decide(chall.metrics["val_iou"], champ_iou, settings.promotion_margin)
        if promoted:
            promote(settings, chall.version)
    client = setup(settings)
    client.set_model_version_tag(settings.registered_model, chall.version, "promotion", reason)
    client.set_tag(chall.run_id, "promotion", reason)  # the run says why, too
    decision = Decision(
        promoted=promoted,
        reason=reason,
        version=chall.version,
        challenger_iou=chall.metrics["val_iou"],
        champion_version=champ.version if champ else None,
        champion_iou=champ_iou,
        margin=settings.promotion_margin,
        dataset_tag=chall.dataset_tag,
        run_id=chall.run_id,
    )
    log.info("promotion decision for version %s: %s", chall.version, reason)
    return decision
