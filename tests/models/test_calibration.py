"""Calibration maps: equal to scikit-learn's, validated, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from models.calibration import Calibration, CalibrationError


def _isotonic_fit(seed: int = 0) -> tuple[IsotonicRegression, np.ndarray]:
    rng = np.random.default_rng(seed)
    margin = rng.normal(size=500) * 2
    y = (rng.random(500) < 1 / (1 + np.exp(-margin))).astype(int)
    return IsotonicRegression(out_of_bounds="clip").fit(margin, y), margin


def test_isotonic_matches_sklearn_including_out_of_range_margins() -> None:
    iso, margin = _isotonic_fit()
    calibration = Calibration.isotonic(iso.X_thresholds_, iso.y_thresholds_)
    probe = np.concatenate([margin, np.linspace(-20, 20, 401), iso.X_thresholds_])
    np.testing.assert_allclose(calibration.apply(probe), iso.predict(probe), rtol=0, atol=1e-12)
    assert calibration.apply(np.array([-1e9]))[0] == iso.y_thresholds_[0]
    assert calibration.apply(np.array([1e9]))[0] == iso.y_thresholds_[-1]


def test_platt_uses_sklearn_sign_convention() -> None:
    calibration = Calibration.platt(-1.5, 0.25)
    margin = np.array([-3.0, 0.0, 2.0])
    expected = 1.0 / (1.0 + np.exp(-1.5 * margin + 0.25))
    np.testing.assert_allclose(calibration.apply(margin), expected, rtol=1e-15)
    assert Calibration.platt(-1.0, 0.0).apply(np.array([0.0]))[0] == 0.5


def test_nan_margin_stays_nan() -> None:
    iso, _ = _isotonic_fit()
    for calibration in (
        Calibration.isotonic(iso.X_thresholds_, iso.y_thresholds_),
        Calibration.platt(-1.0, 0.0),
    ):
        out = calibration.apply(np.array([np.nan, 0.0]))
        assert np.isnan(out[0]) and not np.isnan(out[1])


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        ([0.0, 0.0, 1.0], [0.1, 0.2, 0.3], "strictly increasing"),
        ([0.0, 1.0], [0.5, 0.4], "non-decreasing"),
        ([0.0, 1.0], [0.5, 1.5], r"\[0, 1\]"),
        ([0.0, 1.0], [0.5], "same non-zero length"),
        ([], [], "same non-zero length"),
        ([0.0, np.inf], [0.1, 0.2], "finite"),
    ],
)
def test_isotonic_refuses_malformed_knots(x: list[float], y: list[float], message: str) -> None:
    with pytest.raises(CalibrationError, match=message):
        Calibration.isotonic(x, y)


def test_json_round_trip_is_exact() -> None:
    iso, margin = _isotonic_fit(seed=3)
    for calibration in (
        Calibration.isotonic(iso.X_thresholds_, iso.y_thresholds_),
        Calibration.platt(-0.731, 1.0 / 3.0),
    ):
        restored = Calibration.from_dict(json.loads(json.dumps(calibration.to_dict())))
        assert restored == calibration
        np.testing.assert_array_equal(restored.apply(margin), calibration.apply(margin))


def test_from_dict_names_the_problem() -> None:
    with pytest.raises(CalibrationError, match="unknown calibration kind"):
        Calibration.from_dict({"format_version": 1, "kind": "beta"})
    with pytest.raises(CalibrationError, match="missing 'b'"):
        Calibration.from_dict({"format_version": 1, "kind": "platt", "a": -1.0})
    with pytest.raises(CalibrationError, match="format_version"):
        Calibration.from_dict({"kind": "platt", "a": -1.0, "b": 0.0})


@pytest.mark.parametrize(
    "cal",
    [
        Calibration.platt(-0.8, 0.3),
        Calibration.isotonic([-3.0, -1.0, 0.5, 2.0], [0.02, 0.1, 0.4, 0.9]),
    ],
)
def test_a_shifted_map_moves_log_odds_by_the_offset(cal: Calibration) -> None:
    margins = np.array([-3.0, -1.0, 0.5, 2.0]) if cal.kind == "isotonic" else np.linspace(-4, 4, 9)
    p, q = cal.apply(margins), cal.shifted(-1.2).apply(margins)
    logit = lambda x: np.log(x / (1 - x))  # noqa: E731
    assert logit(q) - logit(p) == pytest.approx(np.full(len(margins), -1.2), abs=1e-9)
    assert cal.shifted(0.0) == cal
    assert Calibration.from_dict(cal.shifted(0.7).to_dict()) == cal.shifted(0.7)
    with pytest.raises(CalibrationError, match="finite"):
        cal.shifted(float("nan"))
