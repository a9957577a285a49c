"""KS drift: shifted imagery drifts, same-distribution imagery does not (false alarms checked)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from monitor_synth import PATCH, make_scenes

from satseg.monitoring import MonitorError
from satseg.monitoring.drift import ks_drift
from satseg.monitoring.features import feature_names
from satseg.monitoring.imagery import features_frame
from satseg.synthetic import SceneStyle

SHARE = 0.05  # include/params.yaml monitor.drift_share


@pytest.fixture(scope="module")
def ref(reference_dir: Path) -> pd.DataFrame:
    return pd.read_csv(reference_dir / "features.csv")


def current(out: Path, seed0: int, style: SceneStyle = SceneStyle()) -> pd.DataFrame:
    return features_frame(make_scenes(out, 2, seed0, style), size=PATCH, total=32)


@pytest.mark.parametrize(
    "style,expect",
    [
        (SceneStyle(brightness=40), {"brightness", "r_mean", "g_p50"}),
        (SceneStyle(brightness=-25, contrast=0.6), {"brightness", "contrast", "r_std"}),
        (SceneStyle(contrast=1.6), {"r_p02", "r_p98", "gradient_mean"}),
        (SceneStyle(blur=2), {"gradient_mean", "laplacian_var"}),
        (SceneStyle(land_cover="desert"), {"brightness", "r_mean"}),
        (SceneStyle(land_cover="vegetation"), {"saturation", "r_mean"}),
        (SceneStyle(land_cover="water"), {"saturation", "brightness"}),
    ],
    ids=["brighter", "darker-flat", "contrast", "blur", "desert", "vegetation", "water"],
)
def test_shifted_imagery_drifts(
    ref: pd.DataFrame, tmp_path: Path, style: SceneStyle, expect: set[str]
) -> None:
    res = ks_drift(ref, current(tmp_path, 500, style), alpha=0.05, drift_share=SHARE)
    drifted = {n for n, t in res.features.items() if t.drifted}
    assert res.drift_detected, drifted
    assert expect <= drifted
    assert res.share_drifted == pytest.approx(len(drifted) / len(feature_names()), abs=1e-5)
    for n in drifted:
        assert res.features[n].p_value < 0.05 / len(feature_names())  # Bonferroni


def test_same_distribution_false_alarm_rate(ref: pd.DataFrame, tmp_path: Path) -> None:
    """Ten independent same-style batches: Bonferroni keeps false alarms rare (expected ~0)."""
    results = [
        ks_drift(ref, current(tmp_path / str(s), 1000 + 10 * s), alpha=0.05, drift_share=SHARE)
        for s in range(10)
    ]
    alarms = sum(r.drift_detected for r in results)
    feature_alarms = sum(r.n_drifted for r in results)
    assert alarms <= 1, [r.share_drifted for r in results]
    # per-feature rate stays near the corrected alpha (0.05 / 22 per test, 220 tests)
    assert feature_alarms <= 3


def test_correction_matters_and_bh_is_less_strict() -> None:
    rng = np.random.default_rng(0)
    names = feature_names()
    ref = pd.DataFrame(rng.normal(size=(200, len(names))), columns=names)
    cur = pd.DataFrame(rng.normal(size=(60, len(names))), columns=names)
    cur[names[:6]] += 0.45  # six moderately shifted features
    bonf = ks_drift(ref, cur, alpha=0.05, drift_share=0.1, correction="bonferroni")
    bh = ks_drift(ref, cur, alpha=0.05, drift_share=0.1, correction="bh")
    assert bh.n_drifted >= bonf.n_drifted
    assert {n for n, t in bh.features.items() if t.drifted} <= set(names[:6])
    assert bh.drift_detected


def test_bad_inputs_are_clear_errors(ref: pd.DataFrame) -> None:
    with pytest.raises(MonitorError, match="current features lack columns: brightness"):
        ks_drift(ref, ref.drop(columns="brightness"))
    with pytest.raises(MonitorError, match="current has 1 feature rows"):
        ks_drift(ref, ref.head(1), min_samples=8)
    with pytest.raises(MonitorError, match="correction 'holm'"):
        ks_drift(ref, ref, correction="holm")
