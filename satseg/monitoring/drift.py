"""Data drift: per-feature two-sample KS tests, corrected for testing many features at once.

With 16 features and alpha 0.05, uncorrected tests would flag at least one feature on about
half of all same-distribution batches; Bonferroni (or Benjamini-Hochberg) keeps the false
alarm rate near alpha, and requiring a share of drifted features guards against one noisy
feature triggering a retrain.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from satseg.monitoring import MonitorError
from satseg.monitoring.features import feature_names
from satseg.params import CORRECTIONS

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class FeatureTest:
    statistic: float
    p_value: float
    drifted: bool


@dataclass
class DriftResult:
    drift_detected: bool
    share_drifted: float
    n_drifted: int
    alpha: float
    drift_share: float
    correction: str
    n_reference: int
    n_current: int
    features: dict[str, FeatureTest] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rejected(pvals: np.ndarray, alpha: float, correction: str) -> np.ndarray:
    m = len(pvals)
    if correction == "bonferroni":
        return pvals < alpha / m
    # Benjamini-Hochberg: reject the k smallest where p_(k) <= k/m * alpha.
    order = np.argsort(pvals)
    ok = pvals[order] <= alpha * np.arange(1, m + 1) / m
    k = int(np.nonzero(ok)[0].max()) + 1 if ok.any() else 0
    out = np.zeros(m, bool)
    out[order[:k]] = True
    return out


def ks_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    alpha: float = 0.05,
    drift_share: float = 0.05,
    correction: str = "bonferroni",
    features: list[str] | None = None,
    min_samples: int = 2,
) -> DriftResult:
    """KS test of every feature; drift when the share of drifted features exceeds ``drift_share``."""
    from scipy.stats import ks_2samp

    if correction not in CORRECTIONS:
        raise MonitorError(f"correction {correction!r}: use one of {', '.join(CORRECTIONS)}")
    names = features or feature_names()
    for label, df in (("reference", reference), ("current", current)):
        missing = [n for n in names if n not in df.columns]
        if missing:
            raise MonitorError(f"{label} features lack columns: {', '.join(missing)}")
        if len(df) < min_samples:
            raise MonitorError(
                f"{label} has {len(df)} feature rows; at least {min_samples} are needed "
                "for a meaningful test (add imagery or lower monitor.min_samples)"
            )
    stats, pvals = [], []
    for n in names:
        a = reference[n].dropna().to_numpy(float)
        b = current[n].dropna().to_numpy(float)
        res = ks_2samp(a, b) if len(a) and len(b) else None
        stats.append(float(res.statistic) if res else 0.0)
        pvals.append(float(res.pvalue) if res else 1.0)
    rejected = _rejected(np.array(pvals), alpha, correction)
    tests = {
        n: FeatureTest(round(s, 6), p, bool(r))
        for n, s, p, r in zip(names, stats, pvals, rejected, strict=True)
    }
    n_drifted = int(rejected.sum())
    share = n_drifted / len(names)
    return DriftResult(
        drift_detected=share > drift_share,
        share_drifted=round(share, 6),
        n_drifted=n_drifted,
        alpha=alpha,
        drift_share=drift_share,
        correction=correction,
        n_reference=len(reference),
        n_current=len(current),
        features=tests,
    )
