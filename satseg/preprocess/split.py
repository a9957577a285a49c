"""Train/val split: grouped by scene, stratified by foreground, seeded and stable.

With several scenes, whole scenes go to one side (neighbouring patches of one scene are
near-duplicates; splitting them leaks). Scenes are ranked by a seeded hash of their content
hash rather than shuffled, so adding a scene to a dataset does not reshuffle the others: a
model trained on version N is not evaluated on its own training scenes in version N+1.
Within each stratum (scenes with / without foreground) the lowest-ranked scenes fill val up
to ``val_fraction`` of that stratum's patches. A single-scene dataset falls back to a
patch-level split, stratified by positive/negative patches.

Multi-class datasets (scenes know which classes they hold) are also stratified by class
presence: after the fill, every class found in at least two scenes is made to reach both
sides, rarest class first, by moving the lowest-ranked scene that holds it, never one whose
move would take a class off the side it leaves. Patches of a single scene are stratified by
their rarest class.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class SceneCounts:
    scene: str
    key: str  # content hash: rank is stable whatever the scene is called
    patches: int
    positive: int
    classes: frozenset[int] = frozenset()  # multi-class: class indices the scene holds


def rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def split_scenes(scenes: list[SceneCounts], val_fraction: float, seed: int) -> dict[str, str]:
    """scene -> "train" | "val" (needs at least two scenes with patches)."""
    out = {s.scene: "train" for s in scenes}
    usable = [s for s in scenes if s.patches > 0]
    if len(usable) < 2 or val_fraction <= 0:
        return out
    for has_fg in (True, False):
        stratum = sorted(
            (s for s in usable if (s.positive > 0) == has_fg), key=lambda s: rank(seed, s.key)
        )
        target = val_fraction * sum(s.patches for s in stratum)
        val = 0
        for s in stratum:
            # take the scene if that brings the val count closer to the target
            if abs(val + s.patches - target) < abs(val - target):
                out[s.scene] = "val"
                val += s.patches
    ranked = sorted(usable, key=lambda s: rank(seed, s.key))
    if any(s.classes for s in usable):
        _cover_classes(ranked, out)
    if not any(out[s.scene] == "val" for s in usable):
        out[min(ranked, key=lambda s: s.patches).scene] = "val"
    if not any(out[s.scene] == "train" for s in usable):
        out[ranked[-1].scene] = "train"
    return out


def _cover_classes(ranked: list[SceneCounts], out: dict[str, str]) -> None:
    """Move scenes so that each class held by two or more scenes is on both sides."""

    def holders(c: int, side: str) -> list[SceneCounts]:
        return [s for s in ranked if c in s.classes and out[s.scene] == side]

    every = sorted(
        {c for s in ranked for c in s.classes},
        key=lambda c: (sum(c in s.classes for s in ranked), c),
    )
    for c in every:
        if sum(c in s.classes for s in ranked) < 2:
            continue
        for side, other in (("val", "train"), ("train", "val")):
            if holders(c, side):
                continue
            for s in holders(c, other):  # lowest rank first
                # the move must leave every class of s on the side it leaves, where it was
                if all(len(holders(k, other)) > 1 for k in s.classes):
                    out[s.scene] = side
                    break


def split_patches(
    patches: list[tuple[str, bool | int]], val_fraction: float, seed: int
) -> dict[str, str]:
    """patch id -> split for one scene: per stratum (positive / negative, or a multi-class
    patch's rarest class), the lowest-ranked ids go to val."""
    out = {pid: "train" for pid, _ in patches}
    for stratum in sorted({k for _, k in patches}, key=int):
        ids = sorted((pid for pid, k in patches if k == stratum), key=lambda i: rank(seed, i))
        n_val = round(val_fraction * len(ids))
        if len(ids) >= 2:
            n_val = min(max(n_val, 1), len(ids) - 1)
        for pid in ids[:n_val]:
            out[pid] = "val"
    return out
