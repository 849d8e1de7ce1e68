"""Analysis: per-metric effects, CUPED, SRM and the ship rule on synthetic unit data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from governance.experiments.analysis import AnalysisConfig, analyze, metric_effect
from governance.experiments.metrics import UNIT_COLUMNS
from governance.experiments.vocabulary import Recommendation
from tests.governance.experiments.factories import make_experiment


def make_units(
    n: int = 4_000,
    *,
    seed: int = 0,
    gmv_lift: float = 0.0,
    complaint_lift: float = 0.0,
    treatment_share: float = 0.5,
) -> pd.DataFrame:
    """Seller-level sums with a persistent seller effect (pre and post correlated)."""
    rng = np.random.default_rng(seed)
    arm = np.where(rng.random(n) < treatment_share, "treatment", "control")
    treated = arm == "treatment"
    size = rng.lognormal(3.0, 1.0, n)
    orders = rng.poisson(size / 5) + 1
    frame = pd.DataFrame({"unit_id": [f"s{i}" for i in range(n)], "arm": arm})
    frame["impressions"] = rng.poisson(size * 20)
    frame["orders"] = orders
    frame["gmv"] = size * rng.lognormal(0, 0.3, n) * np.where(treated, 1 + gmv_lift, 1.0)
    frame["pre_gmv"] = size * rng.lognormal(0, 0.3, n)
    rate = 0.05 * np.where(treated, 1 + complaint_lift, 1.0)
    frame["complaints"] = rng.binomial(orders, rate)
    frame["returns"] = rng.binomial(orders, 0.08)
    frame["nps_count"] = rng.poisson(3, n) + 1
    frame["nps_sum"] = frame["nps_count"] * 7.0 + rng.normal(0, 1, n)
    frame["appeals"] = rng.poisson(0.1, n)
    assert set(UNIT_COLUMNS) <= set(frame.columns)
    return frame


def test_cuped_narrows_the_interval_without_moving_the_estimate_much() -> None:
    units = make_units(seed=1, gmv_lift=0.05)
    plain, used_plain = metric_effect(units, "gmv", cuped=False, sequential=False)
    adjusted, used = metric_effect(units, "gmv", cuped=True, sequential=False)
    assert used and not used_plain
    width = plain.difference_high - plain.difference_low
    assert adjusted.difference_high - adjusted.difference_low < 0.7 * width
    assert abs(adjusted.lift - plain.lift) < width / abs(plain.control.mean)


def test_real_gain_ships() -> None:
    wide = [{"metric": "complaint_rate", "margin": 0.25}, {"metric": "nps", "margin": 0.02}]
    result = analyze(make_experiment(guardrails=wide), make_units(seed=2, gmv_lift=0.08))
    assert result.primary.improved and result.primary.cuped
    assert all(g.non_inferior for g in result.guardrails)
    assert result.recommendation is Recommendation.SHIP
    assert not result.srm


def test_no_effect_keeps_running_then_stops_at_the_end() -> None:
    units = make_units(seed=3)
    assert analyze(make_experiment(), units).recommendation is Recommendation.KEEP_RUNNING
    ended = analyze(make_experiment(), units, finished=True)
    assert ended.recommendation is Recommendation.STOP
    assert "planned end" in ended.reason


def test_broken_guardrail_stops_even_with_a_win() -> None:
    result = analyze(make_experiment(), make_units(seed=4, gmv_lift=0.08, complaint_lift=0.6))
    complaint = next(g for g in result.guardrails if g.metric.name == "complaint_rate")
    assert complaint.deteriorated and not complaint.non_inferior
    assert result.recommendation is Recommendation.STOP


def test_sample_ratio_mismatch_stops() -> None:
    result = analyze(make_experiment(), make_units(seed=5, gmv_lift=0.08, treatment_share=0.45))
    assert result.srm
    assert result.recommendation is Recommendation.STOP
    assert "sample ratio" in result.reason


def test_config_travels_with_the_result() -> None:
    config = AnalysisConfig(alpha=0.01, sequential=False, cuped=False)
    result = analyze(make_experiment(), make_units(seed=6), config=config)
    assert result.config is config and not result.primary.cuped
    assert not result.primary.effect.sequential


def test_missing_columns_named() -> None:
    with pytest.raises(ValueError, match="lacks column"):
        analyze(make_experiment(), make_units().drop(columns=["nps_sum"]))
