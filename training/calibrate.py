"""Fit calibration maps on out-of-fold raw margins: isotonic with enough labels, Platt otherwise."""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.optimize import minimize
from sklearn.isotonic import IsotonicRegression

from models.calibration import Calibration
from training.evaluate import expand_labels

CalibrationMethod = Literal["auto", "isotonic", "platt"]


def choose_method(
    y: np.ndarray, *, method: CalibrationMethod = "auto", isotonic_min_per_class: int = 300
) -> Literal["isotonic", "platt"]:
    """Isotonic when each class has at least `isotonic_min_per_class` labels (auto), else Platt."""
    if method != "auto":
        return method
    n_pos = int(np.sum(y == 1))
    n_neg = int(np.sum(y == 0))
    return "isotonic" if min(n_pos, n_neg) >= isotonic_min_per_class else "platt"


def fit_calibration(
    raw_margin: np.ndarray,
    y: np.ndarray,
    *,
    weight: np.ndarray | None = None,
    method: CalibrationMethod = "auto",
    isotonic_min_per_class: int = 300,
) -> Calibration:
    """Calibration map from held-out raw margins (log-odds) and labels, optionally weighted.

    Labels are 0/1 or expected labels in [0, 1] (see `training.evaluate.expand_labels`).
    """
    margin = np.asarray(raw_margin, dtype=np.float64)
    labels = np.asarray(y, dtype=np.float64)
    w = np.ones_like(margin) if weight is None else np.asarray(weight, dtype=np.float64)
    if margin.ndim != 1 or margin.shape != labels.shape or margin.shape != w.shape:
        raise ValueError(
            f"raw_margin, y and weight must be 1-D of one length (got {margin.shape}, "
            f"{labels.shape}, {w.shape})"
        )
    if not np.isfinite(margin).all():
        raise ValueError("raw_margin has NaN or infinite values; calibrate finite model margins")
    if ((labels < 0) | (labels > 1)).any() or np.isnan(labels).any():
        raise ValueError("y must hold 0/1 labels or expected labels in [0, 1]")
    if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError("weights must be finite, non-negative and not all zero")
    labels, w, (margin,) = expand_labels(labels, w, margin)
    if labels.min() == labels.max():
        raise ValueError(
            f"cannot calibrate on labels of one class only (all {int(labels[0])}); "
            "the target needs both violating and non-violating labels"
        )
    chosen = choose_method(labels, method=method, isotonic_min_per_class=isotonic_min_per_class)
    if chosen == "isotonic":
        return _compute_isotonic(margin, labels, w)
    return _compute_platt(margin, labels, w)


def _compute_isotonic(margin: np.ndarray, y: np.ndarray, w: np.ndarray) -> Calibration:
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0, increasing=True)
    iso.fit(margin, y, sample_weight=w)
    x = np.asarray(iso.X_thresholds_, dtype=np.float64)
    values = np.clip(np.asarray(iso.y_thresholds_, dtype=np.float64), 0.0, 1.0)
    if len(x) > 1:
        keep = np.concatenate([[True], np.diff(x) > 0])
        x, values = x[keep], values[keep]
    return Calibration.isotonic(x, np.maximum.accumulate(values))


def _compute_platt(margin: np.ndarray, y: np.ndarray, w: np.ndarray) -> Calibration:
    """Weighted Platt scaling with Platt's smoothed targets; p = 1 / (1 + exp(a*m + b))."""
    w_pos = float(w[y == 1].sum())
    w_neg = float(w[y == 0].sum())
    # Platt (1999): targets pulled off 0 and 1 by the effective class sizes avoid overfitting.
    n_pos = max(w_pos * len(w) / w.sum(), 1e-12)
    n_neg = max(w_neg * len(w) / w.sum(), 1e-12)
    t = np.where(y == 1, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    scale = w / w.mean()

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = params
        z = a * margin + b
        # p = sigmoid(-z); loss = -[t log p + (1-t) log(1-p)] computed stably.
        log_p = -np.logaddexp(0.0, z)
        log_1mp = -np.logaddexp(0.0, -z)
        value = -np.sum(scale * (t * log_p + (1.0 - t) * log_1mp))
        p = np.exp(log_p)
        grad_z = scale * (t - p)
        return float(value), np.array([np.sum(grad_z * margin), np.sum(grad_z)])

    prior = np.log((n_neg + 1.0) / (n_pos + 1.0))
    # a <= 0 keeps the map increasing: calibration may rescale the model, never invert it. A
    # model with no signal out of fold gets a = 0, i.e. the base rate for every item.
    result = minimize(
        loss,
        x0=np.array([-1.0, prior]),
        jac=True,
        method="L-BFGS-B",
        bounds=[(None, 0.0), (None, None)],
    )
    a, b = (float(v) for v in result.x)
    return Calibration.platt(a, b)


def population_shift(
    p: np.ndarray, y: np.ndarray, design_weight: np.ndarray, *, prior_sd: float = 1.0
) -> tuple[float, float]:
    """Log-odds shift (and its standard error) that calibrates `p` in the large under the
    untrimmed design weights: the population's violation rate, not the labelled set's.

    Trimmed inverse-inclusion weights keep the booster's variance down, but they under-weight
    the rare random labels, so a map fitted with them follows the label mix (mostly flagged,
    often violating items) and over-predicts on the population. One offset `delta` in
    `sigmoid(logit p + delta)` is fitted by weighted maximum likelihood (weights rescaled to
    their effective sample size, so a few heavy random labels count as few) with a
    N(0, `prior_sd`^2) prior: with few random labels the map moves little.
    """
    q = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1.0 - 1e-6)
    t = np.asarray(y, dtype=np.float64)
    w = np.asarray(design_weight, dtype=np.float64)
    if not (q.shape == t.shape == w.shape) or q.ndim != 1:
        raise ValueError(f"p, y and design_weight must be 1-D of one length ({q.shape}, {t.shape})")
    if prior_sd <= 0:
        raise ValueError(f"prior_sd must be positive, got {prior_sd}")
    if len(q) == 0 or w.sum() <= 0:
        return 0.0, float(prior_sd)
    w = w * (w.sum() / np.square(w).sum())  # sums to the effective sample size
    base = np.log(q / (1.0 - q))
    delta, precision = 0.0, 1.0 / prior_sd**2
    info = precision
    for _ in range(50):
        r = 1.0 / (1.0 + np.exp(-(base + delta)))
        grad = float((w * (t - r)).sum()) - precision * delta
        info = float((w * r * (1.0 - r)).sum()) + precision
        step = grad / info
        delta += step
        if abs(step) < 1e-10:
            break
    return float(delta), float(np.sqrt(1.0 / info))
