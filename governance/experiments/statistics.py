"""Two-arm statistics: per-arm sufficient statistics, effects with fixed or always-valid intervals.

The arithmetic follows GrowthBook's `gbstats` 0.8 where the methods coincide, so the two agree
to rounding (tests/governance/experiments/test_statistics.py):

- a mean metric: the Welch t interval on the difference of means;
- a ratio metric sum(num) / sum(den) over units: the delta method on the per-unit pairs;
- CUPED / regression adjustment: y - (X - mean(X)) @ theta with theta fitted on both arms
  pooled (one covariate: cov(y, x) / var(x), Deng et al. 2013);
- relative lift (treatment - control) / control with the delta-method variance;
- always-valid intervals: the asymptotic confidence sequence of Waudby-Smith et al. (2023,
  eq. 9, normal mixture with rho tuned to a planned sample size), which holds uniformly over
  every look, so a PM may read the result every day at level alpha.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

#: gbstats' default planned total sample size of the confidence sequence.
DEFAULT_SEQUENTIAL_TUNING = 5_000.0


@dataclass(frozen=True)
class ArmStats:
    """Sufficient statistics of one arm for one metric.

    `mean` is the (adjusted) estimate, `unadjusted_mean` the plain one (the denominator of the
    relative lift), `variance` the per-unit variance of the (linearised, adjusted) metric.
    """

    n: int
    mean: float
    unadjusted_mean: float
    variance: float


def _as_1d(values: object, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one value per unit (1-D), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} has NaN or infinite values; fill or drop those units first")
    return arr


def mean_stats(values: object) -> ArmStats:
    """One arm of a per-unit mean metric: values has one entry per unit."""
    y = _as_1d(values, "values")
    n = y.size
    mean = float(y.mean()) if n else 0.0
    var = float(y.var(ddof=1)) if n > 1 else 0.0
    return ArmStats(n=n, mean=mean, unadjusted_mean=mean, variance=var)


def ratio_stats(numerator: object, denominator: object) -> ArmStats:
    """One arm of a ratio metric sum(numerator) / sum(denominator), delta-method variance."""
    num, den = _as_1d(numerator, "numerator"), _as_1d(denominator, "denominator")
    if num.size != den.size:
        raise ValueError(f"numerator has {num.size} units, denominator {den.size}; pair them")
    n = num.size
    if n < 2 or den.sum() == 0:
        ratio = float(num.sum() / den.sum()) if n and den.sum() != 0 else 0.0
        return ArmStats(n=n, mean=ratio, unadjusted_mean=ratio, variance=0.0)
    m_mean, d_mean = num.mean(), den.mean()
    ratio = float(num.sum() / den.sum())
    cov = np.cov(num, den, ddof=1)
    var = (
        cov[0, 0] / d_mean**2
        - 2 * cov[0, 1] * m_mean / d_mean**3
        + m_mean**2 * cov[1, 1] / d_mean**4
    )
    return ArmStats(n=n, mean=ratio, unadjusted_mean=ratio, variance=float(var))


class RegressionAdjustment:
    """CUPED / regression adjustment of a per-unit metric on pre-period covariates.

    `fit` learns `theta_` (one coefficient per covariate) and `covariate_mean_` on both arms
    pooled; `arm_stats` gives an arm's statistics with y replaced by y - (X - mean) @ theta.
    Fitting on the pooled arms keeps the estimate unbiased (the covariates predate assignment).
    """

    def __init__(self) -> None:
        pass

    def fit(self, X: object, y: object) -> RegressionAdjustment:
        """X: (units, covariates) or (units,) pre-period values; y: (units,) metric values."""
        x = np.asarray(X, dtype=np.float64)
        x = x[:, None] if x.ndim == 1 else x
        target = _as_1d(y, "y")
        if x.shape[0] != target.size:
            raise ValueError(f"X has {x.shape[0]} units but y has {target.size}; pair them")
        if not np.isfinite(x).all():
            raise ValueError("X has NaN or infinite values; fill missing pre-period values with 0")
        self.covariate_mean_ = x.mean(axis=0)
        xc = x - self.covariate_mean_
        yc = target - target.mean()
        gram = xc.T @ xc
        if np.linalg.matrix_rank(gram) < gram.shape[0]:
            self.theta_ = np.zeros(x.shape[1])  # no usable pre-period variance: no adjustment
        else:
            self.theta_ = np.linalg.solve(gram, xc.T @ yc)
        return self

    def arm_stats(self, X: object, y: object) -> ArmStats:
        """Statistics of one arm after adjustment (the unadjusted mean is kept for the lift)."""
        x = np.asarray(X, dtype=np.float64)
        x = x[:, None] if x.ndim == 1 else x
        target = _as_1d(y, "y")
        adjusted = target - (x - self.covariate_mean_) @ self.theta_
        out = mean_stats(adjusted)
        return ArmStats(
            n=out.n,
            mean=out.mean,
            unadjusted_mean=float(target.mean()) if target.size else 0.0,
            variance=out.variance,
        )


@dataclass(frozen=True)
class Effect:
    """Treatment minus control on one metric, absolute and relative, with intervals."""

    control: ArmStats
    treatment: ArmStats
    difference: float
    difference_low: float
    difference_high: float
    lift: float
    lift_low: float
    lift_high: float
    p_value: float
    alpha: float
    sequential: bool

    @property
    def significant(self) -> bool:
        """Whether the (1 - alpha) interval of the difference excludes zero."""
        return self.difference_low > 0 or self.difference_high < 0


def compare(
    control: ArmStats,
    treatment: ArmStats,
    *,
    alpha: float = 0.05,
    sequential: bool = False,
    sequential_tuning: float = DEFAULT_SEQUENTIAL_TUNING,
) -> Effect:
    """The effect of treatment over control with (1 - alpha) two-sided intervals.

    Fixed horizon: Welch's t interval and p-value. Sequential: the asymptotic confidence
    sequence (valid at every look) and its always-valid p-value, tuned for `sequential_tuning`
    units in total.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if sequential_tuning <= 0:
        raise ValueError(f"sequential_tuning must be positive, got {sequential_tuning}")
    return _compute_effect(control, treatment, alpha, sequential, sequential_tuning)


def _compute_effect(
    a: ArmStats, b: ArmStats, alpha: float, sequential: bool, tuning: float
) -> Effect:
    diff = b.mean - a.mean
    nan = math.nan
    if a.n < 2 or b.n < 2 or a.variance <= 0 or b.variance <= 0:
        return Effect(a, b, diff, nan, nan, nan, nan, nan, 1.0, alpha, sequential)
    var_abs = a.variance / a.n + b.variance / b.n
    lift, var_rel = _relative(diff, a, b)
    if sequential:
        n_total = a.n + b.n
        half_abs = _cs_halfwidth(var_abs, n_total, alpha, tuning)
        half_rel = _cs_halfwidth(var_rel, n_total, alpha, tuning)
        p_value = _cs_p_value(diff, var_abs, n_total, alpha, tuning)
    else:
        dof = _welch_dof(a, b)
        quantile = float(sps.t.ppf(1 - alpha / 2, dof))
        half_abs = quantile * math.sqrt(var_abs)
        half_rel = quantile * math.sqrt(var_rel)
        p_value = float(2 * sps.t.sf(abs(diff) / math.sqrt(var_abs), dof))
    return Effect(
        control=a,
        treatment=b,
        difference=diff,
        difference_low=diff - half_abs,
        difference_high=diff + half_abs,
        lift=lift,
        lift_low=lift - half_rel,
        lift_high=lift + half_rel,
        p_value=p_value,
        alpha=alpha,
        sequential=sequential,
    )


def _welch_dof(a: ArmStats, b: ArmStats) -> float:
    """Welch-Satterthwaite degrees of freedom, scaled so tiny variances do not underflow."""
    va, vb = a.variance / a.n, b.variance / b.n
    ra, rb = va / max(va, vb), vb / max(va, vb)
    return (ra + rb) ** 2 / (rb**2 / (b.n - 1) + ra**2 / (a.n - 1))


def _relative(diff: float, a: ArmStats, b: ArmStats) -> tuple[float, float]:
    """Lift over the control's mean and its delta-method variance; NaN where the control's
    mean is zero or so small that its square underflows."""
    m2 = a.unadjusted_mean**2
    if m2 == 0 or not math.isfinite(m2):
        return math.nan, math.nan
    ratio = b.unadjusted_mean / a.unadjusted_mean
    var_rel = (b.variance / b.n + a.variance * ratio**2 / a.n) / m2
    return diff / a.unadjusted_mean, var_rel


def _rho2(alpha: float, tuning: float) -> float:
    # Waudby-Smith et al. (2023) eq. 161: the mixture width that is tightest at `tuning` units.
    return (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning


def _cs_halfwidth(variance_of_estimate: float, n_total: int, alpha: float, tuning: float) -> float:
    """Half-width of the asymptotic confidence sequence at n_total units (eq. 9)."""
    if math.isnan(variance_of_estimate):
        return math.nan
    rho2 = _rho2(alpha, tuning)
    s2 = variance_of_estimate * n_total
    nr = n_total * rho2 + 1
    return math.sqrt(s2) * math.sqrt(2 * nr * math.log(math.sqrt(nr) / alpha) / (n_total**2 * rho2))


def _cs_p_value(diff: float, variance: float, n_total: int, alpha: float, tuning: float) -> float:
    """Always-valid p-value: 1 / the mixture e-value at the current look (eq. 155), capped at 1."""
    rho2 = _rho2(alpha, tuning)
    st2 = diff**2 * n_total / variance
    nr = n_total * rho2 + 1
    log_e = rho2 * st2 / (2 * nr) - 0.5 * math.log(nr)
    return float(min(1.0, math.exp(-log_e)))


def srm_p_value(n_control: int, n_treatment: int, *, treatment_share: float = 0.5) -> float:
    """Chi-square goodness-of-fit p-value of the arm sizes against the planned split."""
    if not 0 < treatment_share < 1:
        raise ValueError(f"treatment_share must be in (0, 1), got {treatment_share}")
    total = n_control + n_treatment
    if total == 0:
        return 1.0
    expected = np.array([total * (1 - treatment_share), total * treatment_share])
    observed = np.array([n_control, n_treatment], dtype=np.float64)
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    return float(sps.chi2.sf(chi2, df=1))


def units_per_arm(
    *,
    relative_sd: float,
    mde: float,
    alpha: float,
    power: float,
    n_guardrails: int = 0,
) -> int:
    """Units per arm for a fixed-horizon test to detect a relative effect `mde`.

    `relative_sd` is the per-unit standard deviation over the mean. The ship rule needs the
    success metric *and* every guardrail to pass, so the false-negative rate beta is split over
    those 1 + n_guardrails tests (Schultzberg, Ankargren & Franberg 2024, Spotify): each is
    powered at 1 - beta / (1 + n_guardrails). Alpha is not adjusted for guardrails.
    """
    if mde <= 0 or relative_sd <= 0:
        raise ValueError("mde and relative_sd must be positive")
    beta = (1 - power) / (1 + n_guardrails)
    z = float(sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(1 - beta))
    return int(math.ceil(2 * (z * relative_sd / mde) ** 2))
