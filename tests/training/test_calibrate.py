"""Calibration: maps fitted on held-out margins fix a deliberately miscalibrated model."""

from __future__ import annotations

import numpy as np
import pytest

from models.calibration import Calibration
from training.calibrate import choose_method, fit_calibration, population_shift
from training.evaluate import ece


def _miscalibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Margins 3x too confident and shifted: the true log-odds are (margin - 1) / 3."""
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(-1.0, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-true_logit))).astype(float)
    return 3.0 * true_logit + 1.0, y


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibration_improves_ece_on_fresh_data(method: str) -> None:
    margin, y = _miscalibrated(20_000, seed=0)
    cal = fit_calibration(margin, y, method=method)
    assert cal.kind == method
    fresh_margin, fresh_y = _miscalibrated(20_000, seed=1)
    before = ece(fresh_y, 1 / (1 + np.exp(-fresh_margin)))
    after = ece(fresh_y, cal.apply(fresh_margin))
    assert before > 0.05
    assert after < before / 3


def test_platt_recovers_the_true_map() -> None:
    margin, y = _miscalibrated(50_000, seed=2)
    cal = fit_calibration(margin, y, method="platt")
    # p = 1 / (1 + exp(a m + b)) with true log-odds (m - 1) / 3: a = -1/3, b = 1/3.
    assert cal.a == pytest.approx(-1 / 3, abs=0.02)
    assert cal.b == pytest.approx(1 / 3, abs=0.05)


def test_weights_act_like_repeated_rows() -> None:
    margin, y = _miscalibrated(3_000, seed=3)
    w = np.random.default_rng(4).integers(1, 4, len(y)).astype(float)
    weighted = fit_calibration(margin, y, weight=w, method="platt")
    repeated = fit_calibration(
        np.repeat(margin, w.astype(int)), np.repeat(y, w.astype(int)), method="platt"
    )
    # Weights are relative (mean 1), so only Platt's prior smoothing differs: O(1/n).
    assert weighted.a == pytest.approx(repeated.a, rel=5e-3)
    assert weighted.b == pytest.approx(repeated.b, rel=5e-3, abs=5e-3)


def test_isotonic_map_is_monotone_and_serialisable() -> None:
    margin, y = _miscalibrated(5_000, seed=5)
    cal = fit_calibration(margin, y, method="isotonic")
    grid = np.linspace(-15, 15, 301)
    p = cal.apply(grid)
    assert (np.diff(p) >= 0).all() and p.min() >= 0 and p.max() <= 1
    assert Calibration.from_dict(cal.to_dict()) == cal


def test_auto_picks_isotonic_only_with_enough_of_each_class() -> None:
    y = np.array([1] * 400 + [0] * 5_000)
    assert choose_method(y, isotonic_min_per_class=300) == "isotonic"
    assert choose_method(y, isotonic_min_per_class=500) == "platt"
    assert choose_method(y, method="platt", isotonic_min_per_class=1) == "platt"


def test_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="one class only"):
        fit_calibration(np.zeros(10), np.zeros(10))
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit_calibration(np.array([np.nan, 1.0]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="expected labels in"):
        fit_calibration(np.array([0.0, 1.0]), np.array([0.0, 2.0]))


def test_population_shift_recovers_an_offset_and_shrinks_with_few_labels() -> None:
    rng = np.random.default_rng(6)
    logit = rng.normal(-2.0, 1.5, 40_000)
    p = 1 / (1 + np.exp(-logit))
    y = (rng.random(len(p)) < 1 / (1 + np.exp(-(logit - 1.0)))).astype(float)  # p too high
    delta, se = population_shift(p, y, np.ones(len(p)))
    assert delta == pytest.approx(-1.0, abs=0.05) and se < 0.03
    few, few_se = population_shift(p[:30], y[:30], np.ones(30), prior_sd=0.5)
    assert abs(few) < 0.9 and few_se > 0.2  # the prior holds a 30-label shift back
    # Heavy design weights on the (rare) representative rows decide the shift.
    flagged = p > 0.5
    y_mix = np.where(flagged, 1.0, y)  # flagged rows all violating: the label mix over-predicts
    w = np.where(flagged, 0.01, 1.0)
    mixed, _ = population_shift(p, y_mix, w)
    assert mixed == pytest.approx(delta, abs=0.1)
    with pytest.raises(ValueError, match="prior_sd"):
        population_shift(p, y, np.ones(len(p)), prior_sd=0.0)
