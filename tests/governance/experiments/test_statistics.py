"""Two-arm statistics agree with GrowthBook's gbstats where the methods coincide."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from governance.experiments.statistics import (
    ArmStats,
    Effect,
    RegressionAdjustment,
    compare,
    mean_stats,
    ratio_stats,
    srm_p_value,
    units_per_arm,
)

gb_tests = pytest.importorskip("gbstats.frequentist.tests")
gb_stats = pytest.importorskip("gbstats.models.statistics")

TOL = 1e-6


def _arms(seed: int, n: int = 800) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.lognormal(2.0, 1.0, size=2 * n)
    pre = base * rng.lognormal(0, 0.4, size=2 * n)
    post = base * rng.lognormal(0, 0.4, size=2 * n) * np.r_[np.ones(n), np.full(n, 1.04)]
    orders = rng.poisson(base / 2) + 1
    complaints = rng.binomial(orders, 0.05)
    return {"pre": pre, "post": post, "orders": orders, "complaints": complaints, "n": n}


def _gb_mean(y: np.ndarray) -> object:
    return gb_stats.SampleMeanStatistic(
        n=y.size, sum=float(y.sum()), sum_squares=float((y**2).sum())
    )


def _gb_test(a: object, b: object, *, relative: bool, sequential: bool) -> object:
    kind = "relative" if relative else "absolute"
    if sequential:
        config = gb_tests.SequentialConfig(difference_type=kind)
        return gb_tests.SequentialTwoSidedTTest(a, b, config).compute_result()
    config = gb_tests.FrequentistConfig(difference_type=kind)
    return gb_tests.TwoSidedTTest(a, b, config).compute_result()


def _assert_agree(ours: Effect, gb_abs: object, gb_rel: object) -> None:
    assert ours.difference == pytest.approx(gb_abs.expected, abs=TOL)  # type: ignore[attr-defined]
    assert ours.difference_low == pytest.approx(gb_abs.ci[0], abs=TOL)  # type: ignore[attr-defined]
    assert ours.difference_high == pytest.approx(gb_abs.ci[1], abs=TOL)  # type: ignore[attr-defined]
    assert ours.p_value == pytest.approx(gb_abs.p_value, abs=TOL)  # type: ignore[attr-defined]
    assert ours.lift == pytest.approx(gb_rel.expected, abs=TOL)  # type: ignore[attr-defined]
    assert ours.lift_low == pytest.approx(gb_rel.ci[0], abs=TOL)  # type: ignore[attr-defined]
    assert ours.lift_high == pytest.approx(gb_rel.ci[1], abs=TOL)  # type: ignore[attr-defined]


@pytest.mark.parametrize("sequential", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mean_metric_agrees_with_gbstats(seed: int, sequential: bool) -> None:
    d = _arms(seed)
    n = d["n"]
    y = d["post"]
    ours = compare(mean_stats(y[:n]), mean_stats(y[n:]), sequential=sequential)
    a, b = _gb_mean(y[:n]), _gb_mean(y[n:])
    _assert_agree(
        ours,
        _gb_test(a, b, relative=False, sequential=sequential),
        _gb_test(a, b, relative=True, sequential=sequential),
    )


@pytest.mark.parametrize("sequential", [False, True])
def test_ratio_metric_agrees_with_gbstats(sequential: bool) -> None:
    d = _arms(3)
    n = d["n"]
    num, den = d["complaints"].astype(float), d["orders"].astype(float)

    def gb_ratio(sl: slice) -> object:
        return gb_stats.RatioStatistic(
            n=n,
            m_statistic=_gb_mean(num[sl]),
            d_statistic=_gb_mean(den[sl]),
            m_d_sum_of_products=float((num[sl] * den[sl]).sum()),
        )

    control, treatment = slice(0, n), slice(n, 2 * n)
    ours = compare(
        ratio_stats(num[control], den[control]),
        ratio_stats(num[treatment], den[treatment]),
        sequential=sequential,
    )
    a, b = gb_ratio(control), gb_ratio(treatment)
    _assert_agree(
        ours,
        _gb_test(a, b, relative=False, sequential=sequential),
        _gb_test(a, b, relative=True, sequential=sequential),
    )


@pytest.mark.parametrize("sequential", [False, True])
def test_cuped_agrees_with_gbstats_regression_adjustment(sequential: bool) -> None:
    d = _arms(4)
    n = d["n"]
    x, y = d["pre"], d["post"]
    adjustment = RegressionAdjustment().fit(x, y)
    ours = compare(
        adjustment.arm_stats(x[:n], y[:n]),
        adjustment.arm_stats(x[n:], y[n:]),
        sequential=sequential,
    )

    def gb_ra(sl: slice) -> object:
        return gb_stats.RegressionAdjustedStatistic(
            n=n,
            post_statistic=_gb_mean(y[sl]),
            pre_statistic=_gb_mean(x[sl]),
            post_pre_sum_of_products=float((x[sl] * y[sl]).sum()),
            theta=0,
        )

    control, treatment = slice(0, n), slice(n, 2 * n)
    gb_abs = _gb_test(gb_ra(control), gb_ra(treatment), relative=False, sequential=sequential)
    gb_rel = _gb_test(gb_ra(control), gb_ra(treatment), relative=True, sequential=sequential)
    _assert_agree(ours, gb_abs, gb_rel)
    plain = compare(mean_stats(y[:n]), mean_stats(y[n:]), sequential=sequential)
    assert ours.difference_high - ours.difference_low < plain.difference_high - plain.difference_low


finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False)


@given(
    st.lists(finite, min_size=3, max_size=60),
    st.lists(finite, min_size=3, max_size=60),
    st.floats(min_value=0.01, max_value=0.2),
)
@settings(max_examples=80, deadline=None)
def test_sequential_interval_contains_the_fixed_one(
    a: list[float], b: list[float], alpha: float
) -> None:
    ca, cb = mean_stats(a), mean_stats(b)
    fixed = compare(ca, cb, alpha=alpha)
    seq = compare(ca, cb, alpha=alpha, sequential=True)
    if math.isnan(fixed.difference_low):
        assert math.isnan(seq.difference_low)
        return
    assert fixed.difference_low <= fixed.difference <= fixed.difference_high
    # with the default tuning (5,000 units) the sequence is wider at every sample size below it
    assert seq.difference_low <= fixed.difference_low + 1e-9
    assert seq.difference_high >= fixed.difference_high - 1e-9
    assert 0 <= seq.p_value <= 1 and 0 <= fixed.p_value <= 1


def test_degenerate_arms_give_no_interval() -> None:
    effect = compare(ArmStats(1, 1.0, 1.0, 0.0), ArmStats(5, 2.0, 2.0, 1.0))
    assert math.isnan(effect.difference_low) and effect.p_value == 1.0
    assert not effect.significant


def test_srm() -> None:
    assert srm_p_value(5_000, 5_000) == pytest.approx(1.0)
    assert srm_p_value(900, 1_100) < 1e-4
    assert srm_p_value(1_000, 1_000, treatment_share=0.25) < 1e-10


def test_sample_size_grows_with_guardrails() -> None:
    base = units_per_arm(relative_sd=1.0, mde=0.05, alpha=0.05, power=0.8)
    # textbook: 2 (1.96 + 0.84)^2 / 0.05^2 = 6,280
    assert 6_200 < base < 6_350
    assert units_per_arm(relative_sd=1.0, mde=0.05, alpha=0.05, power=0.8, n_guardrails=3) > base
