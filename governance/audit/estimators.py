"""Model-assisted, design-weighted estimates of label totals with few noisy audit labels.

The estimand is always a population total `T = sum_i d_i * y_i` of the true label `y_i` over a
domain weight `d_i` (1 for membership, an exposure for costs, +-1 for a change). The estimator
is the difference (GREG-style, prediction-powered) estimator

    T_hat = sum_i d_i f_i  +  sum_g |D|_g * sum_design lambda_gd * mean_gd(d * (y* - f))

- `f_i` is the calibrated model probability;
- `y*` is the reviewer-noise corrected label `(y_obs - eps) / (1 - 2 eps)`, unbiased for `y`
  when reviewers flip verdicts at rate `eps` (E[y_obs] = eps + (1 - 2 eps) y);
- labels come from one or more sampling designs (random, strategy_flagged, ...), each a
  probability sample of its own frame with known inclusion probabilities `pi`; the population
  is split into regions `g` by which designs cover a unit; within a region each design gives
  the domain's weighted mean residual (weights `|d| / pi`, a Hajek ratio within the domain)
  scaled to the domain's known size `|D|_g`, and designs are pooled with weights proportional
  to their effective sample sizes in the domain;
- (region, domain) pairs no label reaches keep the model term, with the model's variance.

The variance is the with-replacement linearisation per (region, design) cell, floored at what
a calibrated model implies, kept as a covariance matrix between estimands so ratios (precision,
recall) get delta-method intervals. With no labels the estimate is the model's; with a perfect
model the correction is zero; with an uninformative model it is the design-weighted estimate.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

#: Largest reviewer flip rate the correction accepts (at 0.5 labels carry no information).
MAX_FLIP_RATE = 0.45


class EstimationError(ValueError):
    """Inputs to an estimator are inconsistent (shapes, ranges, unknown designs)."""


#: Bytes of one block of a domain matrix: a population of any size is read in row blocks of
#: about this size (float64), so the estimators' memory does not grow with its units x totals.
BLOCK_BYTES = 256 * 2**20


def block_rows(n_columns: int) -> int:
    """Rows of a float64 block of `n_columns` columns within `BLOCK_BYTES`."""
    return max(1, BLOCK_BYTES // (8 * max(n_columns, 1)))


@runtime_checkable
class Domains(Protocol):
    """An (N, K) domain matrix the estimators read in row blocks, never whole."""

    @property
    def shape(self) -> tuple[int, int]:
        """(units, totals)."""
        ...

    def blocks(self) -> Iterator[tuple[int, FloatArray]]:
        """(first row, block) of consecutive row blocks covering every unit in order."""
        ...

    def take(self, rows: IntArray) -> FloatArray:
        """The rows at `rows` (label positions), as a (len(rows), K) array."""
        ...


@dataclass(frozen=True)
class ArrayDomains:
    """A domain matrix already in memory: one block."""

    array: FloatArray

    @property
    def shape(self) -> tuple[int, int]:
        """(units, totals)."""
        return (int(self.array.shape[0]), int(self.array.shape[1]))

    def blocks(self) -> Iterator[tuple[int, FloatArray]]:
        """The whole matrix as one block."""
        yield 0, self.array

    def take(self, rows: IntArray) -> FloatArray:
        """The rows at `rows`."""
        return self.array[rows]


def domain_totals(weights: npt.ArrayLike, domains: Domains) -> FloatArray:
    """(K,) `weights @ domains`, block by block."""
    w = np.asarray(weights, dtype=np.float64)
    out = np.zeros(domains.shape[1])
    for start, block in domains.blocks():
        out += w[start : start + block.shape[0]] @ block
    return out


@dataclass(frozen=True)
class LabelDraws:
    """Audit labels aligned to a population: one row per (design, unit) draw.

    `position` indexes the population's units; `y_obs` is the share of reviewers who said
    violating (0/1 for a single review); `n_reviews` counts them; `inclusion_probability` is
    the draw's probability under its design; `f_label` is the model probability at the label
    (out-of-fold where available, so the correction is not fitted on its own labels);
    `p_label` is the same probability before recalibration (None: equal to `f_label`).
    """

    position: IntArray
    y_obs: FloatArray
    n_reviews: IntArray
    inclusion_probability: FloatArray
    design: npt.NDArray[np.object_]
    f_label: FloatArray
    p_label: FloatArray | None = None

    def __len__(self) -> int:
        return int(self.position.shape[0])

    @classmethod
    def empty(cls) -> LabelDraws:
        """No labels at all."""
        return cls(
            position=np.zeros(0, dtype=np.int64),
            y_obs=np.zeros(0),
            n_reviews=np.zeros(0, dtype=np.int64),
            inclusion_probability=np.ones(0),
            design=np.zeros(0, dtype=object),
            f_label=np.zeros(0),
        )


@dataclass(frozen=True)
class TotalEstimate:
    """Point estimates of K totals and their K x K covariance, with label support per total."""

    names: tuple[str, ...]
    point: FloatArray
    cov: FloatArray
    n_labels: IntArray
    n_labeled_positive: IntArray
    model_only_share: FloatArray

    def index(self, name: str) -> int:
        """Position of a named total."""
        try:
            return self.names.index(name)
        except ValueError as err:
            raise KeyError(f"no estimated total named {name!r}") from err

    def value(self, name: str) -> float:
        """Point estimate of one total."""
        return float(self.point[self.index(name)])

    def se(self, name: str) -> float:
        """Standard error of one total."""
        i = self.index(name)
        return float(np.sqrt(max(self.cov[i, i], 0.0)))

    def linear(self, coefs: Mapping[str, float], *, offset: float = 0.0) -> tuple[float, float]:
        """Point and standard error of `offset + sum_k c_k T_k`."""
        g = np.zeros(len(self.names))
        for name, c in coefs.items():
            g[self.index(name)] += c
        point = offset + float(g @ self.point)
        return point, float(np.sqrt(max(float(g @ self.cov @ g), 0.0)))

    def ratio(self, numerator: str, denominator: str | float) -> tuple[float, float]:
        """Point and delta-method standard error of `T_num / T_den` (or `/ constant`)."""
        i = self.index(numerator)
        if isinstance(denominator, str):
            j = self.index(denominator)
            den = float(self.point[j])
            if den <= 0:
                return float("nan"), float("nan")
            r = float(self.point[i]) / den
            g = np.zeros(len(self.names))
            g[i] += 1.0 / den
            g[j] -= r / den
            return r, float(np.sqrt(max(float(g @ self.cov @ g), 0.0)))
        if denominator <= 0:
            return float("nan"), float("nan")
        return float(self.point[i]) / denominator, float(np.sqrt(max(self.cov[i, i], 0.0))) / float(
            denominator
        )


def z_value(confidence: float) -> float:
    """Two-sided normal quantile for a confidence level (1.96 for 0.95)."""
    if not 0.0 < confidence < 1.0:
        raise EstimationError(f"confidence must be in (0, 1), got {confidence}")
    return float(NormalDist().inv_cdf(0.5 + confidence / 2.0))


def interval(
    point: float,
    se: float,
    *,
    confidence: float = 0.95,
    lower: float = -np.inf,
    upper: float = np.inf,
) -> tuple[float, float]:
    """Normal interval `point +- z se`, clipped to [lower, upper]."""
    if not np.isfinite(point) or not np.isfinite(se):
        return float("nan"), float("nan")
    z = z_value(confidence)
    return float(np.clip(point - z * se, lower, upper)), float(
        np.clip(point + z * se, lower, upper)
    )


def denoise_probability(p: npt.ArrayLike, flip_rate: float) -> FloatArray:
    """P(truly violating) from a model calibrated on noisy verdicts: (p - eps) / (1 - 2 eps)."""
    _check_flip_rate(flip_rate)
    arr = np.asarray(p, dtype=np.float64)
    return np.clip((arr - flip_rate) / (1.0 - 2.0 * flip_rate), 0.0, 1.0)


def correct_labels(y_obs: npt.ArrayLike, flip_rate: float) -> FloatArray:
    """Noise-corrected labels `(y - eps) / (1 - 2 eps)`: unbiased for the truth, per label."""
    _check_flip_rate(flip_rate)
    arr = np.asarray(y_obs, dtype=np.float64)
    return (arr - flip_rate) / (1.0 - 2.0 * flip_rate)


def posterior_violation(
    prior: npt.ArrayLike, n_violating: npt.ArrayLike, n_reviews: npt.ArrayLike, flip_rate: float
) -> FloatArray:
    """P(violating | prior, k of n reviewers said violating) under symmetric flips at `eps`."""
    _check_flip_rate(flip_rate)
    p = np.clip(np.asarray(prior, dtype=np.float64), 1e-9, 1 - 1e-9)
    k = np.asarray(n_violating, dtype=np.float64)
    n = np.asarray(n_reviews, dtype=np.float64)
    eps = max(flip_rate, 1e-6)
    log_lr = k * np.log((1 - eps) / eps) + (n - k) * np.log(eps / (1 - eps))
    logit = np.log(p / (1 - p)) + log_lr
    return np.asarray(1.0 / (1.0 + np.exp(-logit)), dtype=np.float64)


#: Probabilities are kept this far from 0 and 1 before taking log-odds (isotonic calibration
#: can give exact 0 or 1): log-odds stay within about +-13.8.
LOGIT_EPS = 1e-6


def logit(p: npt.ArrayLike) -> FloatArray:
    """Log-odds of probabilities, clipped to [LOGIT_EPS, 1 - LOGIT_EPS] first."""
    q = np.clip(np.asarray(p, dtype=np.float64), LOGIT_EPS, 1 - LOGIT_EPS)
    return np.asarray(np.log(q / (1 - q)), dtype=np.float64)


def _sigmoid(x: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -30, 30))), dtype=np.float64)


def fit_recalibration(
    p_label: npt.ArrayLike,
    y_obs: npt.ArrayLike,
    weights: npt.ArrayLike,
    *,
    flip_rate: float,
    prior_sd: float = 3.0,
) -> tuple[float, float]:
    """(a, b) of `P(y=1) = sigmoid(a + b logit(p))` fitted to noisy verdicts.

    Maximises the design-weighted likelihood of the verdicts under the flip model
    `P(verdict) = eps + (1 - 2 eps) P(y=1)`, with a Gaussian prior (sd `prior_sd`) pulling
    (a, b) toward the identity (0, 1): with few labels the model's own calibration stands.
    Weights are rescaled to sum to their effective sample size.
    """
    _check_flip_rate(flip_rate)
    x = logit(np.asarray(p_label, dtype=np.float64))
    y = np.clip(np.asarray(y_obs, dtype=np.float64), 0.0, 1.0)
    w = np.asarray(weights, dtype=np.float64)
    if x.shape[0] == 0 or w.sum() <= 0:
        return 0.0, 1.0
    n_eff = w.sum() ** 2 / np.square(w).sum()
    w = w / w.sum() * n_eff
    eps = flip_rate
    theta = np.array([0.0, 1.0])
    prior = 1.0 / prior_sd**2
    # Newton's method on the penalised log-likelihood (2 parameters, converges in a few steps).
    for _ in range(50):
        q = _sigmoid(theta[0] + theta[1] * x)
        pv = np.clip(eps + (1 - 2 * eps) * q, 1e-9, 1 - 1e-9)
        dq = q * (1 - q)
        # d loglik / d eta per unit
        g_eta = w * (1 - 2 * eps) * dq * (y / pv - (1 - y) / (1 - pv))
        grad = np.array([g_eta.sum(), (g_eta * x).sum()]) - prior * (theta - np.array([0, 1]))
        # Fisher information (expected), always positive definite with the prior.
        info_eta = w * ((1 - 2 * eps) * dq) ** 2 / (pv * (1 - pv))
        hess = np.array(
            [
                [info_eta.sum() + prior, (info_eta * x).sum()],
                [(info_eta * x).sum(), (info_eta * x * x).sum() + prior],
            ]
        )
        step = np.linalg.solve(hess, grad)
        theta = theta + step
        if np.abs(step).max() < 1e-8:
            break
    return float(theta[0]), float(theta[1])


def fit_noisy_logistic(
    X: npt.ArrayLike,
    y_obs: npt.ArrayLike,
    weights: npt.ArrayLike,
    *,
    flip_rate: float,
    prior_mean: npt.ArrayLike,
    prior_sd: npt.ArrayLike,
    offset: npt.ArrayLike | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Coefficients and their (Laplace) covariance of `P(y=1) = sigmoid(offset + X theta)`
    fitted to noisy verdicts, `P(verdict) = eps + (1 - 2 eps) P(y=1)`, with a Gaussian prior per
    coefficient. X is (n, k); weights are rescaled to sum to their effective sample size."""
    _check_flip_rate(flip_rate)
    x = np.asarray(X, dtype=np.float64)
    y = np.clip(np.asarray(y_obs, dtype=np.float64), 0.0, 1.0)
    w = np.asarray(weights, dtype=np.float64)
    mu = np.asarray(prior_mean, dtype=np.float64)
    prec = 1.0 / np.square(np.broadcast_to(np.asarray(prior_sd, dtype=np.float64), mu.shape))
    if x.ndim != 2 or x.shape[1] != mu.shape[0]:
        raise EstimationError(f"X must be (n, {mu.shape[0]}), got {x.shape}")
    theta = mu.copy()
    if x.shape[0] == 0 or w.sum() <= 0:
        return theta, np.diag(1.0 / prec)
    off = np.zeros(x.shape[0]) if offset is None else np.asarray(offset, dtype=np.float64)
    n_eff = w.sum() ** 2 / np.square(w).sum()
    w = w / w.sum() * n_eff
    eps = flip_rate

    def objective(t: FloatArray) -> float:
        pv = np.clip(eps + (1 - 2 * eps) * _sigmoid(off + x @ t), 1e-12, 1 - 1e-12)
        loglik = float((w * (y * np.log(pv) + (1 - y) * np.log(1 - pv))).sum())
        return loglik - 0.5 * float((prec * np.square(t - mu)).sum())

    # Fisher scoring with step halving on the penalised log-likelihood: the flip model's
    # likelihood is flat in the tails, where a full step would overshoot.
    current = objective(theta)
    hess = np.diag(prec)
    for _ in range(100):
        q = _sigmoid(off + x @ theta)
        pv = np.clip(eps + (1 - 2 * eps) * q, 1e-9, 1 - 1e-9)
        dq = q * (1 - q)
        g_eta = w * (1 - 2 * eps) * dq * (y / pv - (1 - y) / (1 - pv))
        grad = x.T @ g_eta - prec * (theta - mu)
        info = w * ((1 - 2 * eps) * dq) ** 2 / (pv * (1 - pv))
        hess = (x * info[:, None]).T @ x + np.diag(prec)
        step = np.linalg.solve(hess, grad)
        for _ in range(30):
            value = objective(theta + step)
            if value >= current - 1e-12:
                break
            step = step / 2.0
        theta, current = theta + step, max(value, current)
        if np.abs(step).max() < 1e-8:
            break
    q = _sigmoid(off + x @ theta)
    pv = np.clip(eps + (1 - 2 * eps) * q, 1e-9, 1 - 1e-9)
    info = w * ((1 - 2 * eps) * q * (1 - q)) ** 2 / (pv * (1 - pv))
    hess = (x * info[:, None]).T @ x + np.diag(prec)
    return theta, np.linalg.inv(hess)


def recalibrate(p: npt.ArrayLike, a: float, b: float) -> FloatArray:
    """`sigmoid(a + b logit(p))`."""
    return _sigmoid(a + b * logit(np.asarray(p, dtype=np.float64)))


def estimate_flip_rate(labels: pd.DataFrame) -> tuple[float, int]:
    """Reviewer flip rate from items judged twice or more by different reviewers.

    Two independent reviews disagree with probability `2 eps (1 - eps)`; returns the implied
    `eps` and the number of disagreement pairs it rests on (0 pairs -> nan).
    """
    needed = {"entity", "item_id", "policy", "verdict", "reviewer_id"}
    missing = sorted(needed - set(labels.columns))
    if missing:
        raise EstimationError(
            f"audit_labels lacks column(s) {missing} needed to estimate the reviewer flip rate"
        )
    df = labels[list(needed)].drop_duplicates(["entity", "item_id", "policy", "reviewer_id"])
    v = (df["verdict"].astype(str) == "violating").astype(np.int64)
    g = df.assign(v=v).groupby(["entity", "item_id", "policy"], observed=True)["v"]
    k = g.sum().to_numpy(dtype=np.float64)
    n = g.count().to_numpy(dtype=np.float64)
    keep = n >= 2
    if not keep.any():
        return float("nan"), 0
    k, n = k[keep], n[keep]
    pairs = n * (n - 1) / 2
    disagreeing = k * (n - k)
    d = float(disagreeing.sum() / pairs.sum())
    eps = (1.0 - np.sqrt(max(1.0 - 2.0 * d, 0.0))) / 2.0
    return float(min(eps, MAX_FLIP_RATE)), int(pairs.sum())


def estimate_totals(
    f: npt.ArrayLike,
    domains: npt.ArrayLike | Domains,
    draws: LabelDraws,
    *,
    frames: Mapping[str, BoolArray],
    flip_rate: float,
    names: Sequence[str] | None = None,
    strata: npt.ArrayLike | None = None,
    model_bias: Mapping[int, ModelBias] | None = None,
) -> TotalEstimate:
    """Difference-estimator totals `sum_i D[i, k] y_i` for every column k of `domains`.

    `f` (N,) are denoised model probabilities, `domains` (N, K) the domain weights (an array,
    or a `Domains` read in row blocks so a large population never holds them whole), `frames`
    maps each design in `draws.design` to the (N,) mask of units it can draw (its frame).
    `strata` (N,) ints post-stratify the corrections (each stratum's residuals scaled to its own
    known domain sizes); `model_bias` maps a stratum to the prior of the model's relative bias
    under which its corrections are combined with the model (see `combine_parts`).
    """
    parts = total_parts(
        f, domains, draws, frames=frames, flip_rate=flip_rate, names=names, strata=strata
    )
    return combine_parts(parts, model_bias=model_bias)


def total_parts(
    f: npt.ArrayLike,
    domains: npt.ArrayLike | Domains,
    draws: LabelDraws,
    *,
    frames: Mapping[str, BoolArray],
    flip_rate: float,
    names: Sequence[str] | None = None,
    strata: npt.ArrayLike | None = None,
) -> TotalParts:
    """Model totals and, per region of units, the design corrections behind `estimate_totals`."""
    f_arr = np.asarray(f, dtype=np.float64)
    d_arr = _as_domains(domains)
    _check_inputs(f_arr, d_arr, draws, frames, flip_rate)
    k = d_arr.shape[1]
    label_names = tuple(names) if names is not None else tuple(f"t{i}" for i in range(k))
    if len(label_names) != k:
        raise EstimationError(f"{len(label_names)} names for {k} domain columns")
    if strata is None:
        s_arr = np.zeros(f_arr.shape[0], dtype=np.int64)
    else:
        s_arr = np.asarray(strata, dtype=np.int64)
        if s_arr.shape != f_arr.shape or (s_arr.size and s_arr.min() < 0):
            raise EstimationError(f"strata must be {f_arr.shape[0]} non-negative integers")
    return _compute_parts(f_arr, d_arr, draws, frames, flip_rate, label_names, s_arr)


@dataclass(frozen=True)
class RegionPart:
    """One region of units (a stratum x the set of designs that can draw them).

    `correction` (K,) is the design-weighted estimate of `sum d (y - f)` over the region and
    `cov` its covariance; `model` (K,) is `sum d f` and `model_cov` the Bernoulli covariance
    `sum d d' f (1 - f)` of the truth around a calibrated model; `covered` marks the totals
    some label of the region informs.
    """

    stratum: int
    correction: FloatArray
    cov: FloatArray
    model: FloatArray
    model_cov: FloatArray
    covered: BoolArray
    mass: FloatArray


@dataclass(frozen=True)
class TotalParts:
    """Everything `combine_parts` needs: the model totals and the parts per region."""

    names: tuple[str, ...]
    model_point: FloatArray
    regions: tuple[RegionPart, ...]
    n_labels: IntArray
    n_labeled_positive: IntArray

    def moments(self, column: int = 0) -> list[tuple[int, float, float, float, float]]:
        """(stratum, correction, its variance, Bernoulli variance, model total) of one total in
        every region labels reach: the data of `fit_model_bias`."""
        return [
            (
                r.stratum,
                float(r.correction[column]),
                float(r.cov[column, column]),
                float(r.model_cov[column, column]),
                float(r.model[column]),
            )
            for r in self.regions
            if r.covered[column]
        ]


@dataclass(frozen=True)
class ModelBias:
    """Prior of the model's relative bias over the regions of one stratum.

    A region's true correction is `delta ~ N(mean M, variance M M' + B)`: the model's totals `M`
    are off by a shared relative bias (`mean`, estimated with variance `mean_variance`) plus a
    region-specific relative bias of variance `variance`, plus Bernoulli variation `B`.
    """

    mean: float
    variance: float
    mean_variance: float


def _moments_by_stratum(
    moments: Sequence[tuple[int, float, float, float, float]],
) -> dict[int, FloatArray]:
    """The usable (c, v, b, m) region moments of each stratum, as a (4, regions) array."""
    by: dict[int, list[tuple[float, float, float, float]]] = {}
    for stratum, c, v, b, m in moments:
        if np.isfinite(c) and np.isfinite(v) and m > 0 and v + b > 0:
            by.setdefault(int(stratum), []).append((c, v, b, m))
    return {k: np.asarray(rows, dtype=np.float64).T for k, rows in by.items()}


def fit_model_bias(
    moments: Sequence[tuple[int, float, float, float, float]],
) -> dict[int, ModelBias]:
    """The `ModelBias` of every stratum, by restricted maximum likelihood (Fay-Herriot).

    Each moment is a region's correction `C` of one total with design variance `V`, Bernoulli
    variance `B` and model total `M`: `C ~ N(mu M, kappa^2 M^2 + B + V)` over the regions of a
    stratum (across populations). For each `kappa^2` on a grid (1e-4 .. 10, log-spaced, then
    refined) `mu` is its weighted least-squares value; the REML likelihood times `kappa^2` (Li
    and Lahiri's adjusted likelihood, which never puts `kappa^2` on the zero boundary, where
    few noisy regions would otherwise claim a perfect model) picks `kappa^2`.
    `mean_variance` is the sampling variance of `mu`.
    """
    out: dict[int, ModelBias] = {}
    for stratum, (c, v, b, m) in _moments_by_stratum(moments).items():
        grid = np.logspace(-4, 1, 101)
        best = int(np.argmax(_reml(grid, c, v, b, m)[0] + np.log(grid)))
        fine = np.linspace(grid[max(best - 1, 0)], grid[min(best + 1, grid.size - 1)], 201)
        reml, mu, mu_var = _reml(fine, c, v, b, m)
        i = int(np.argmax(reml + np.log(fine)))
        out[stratum] = ModelBias(
            mean=float(mu[i]), variance=float(fine[i]), mean_variance=float(mu_var[i])
        )
    return out


def fit_model_bias_posterior(
    moments: Sequence[tuple[int, float, float, float, float]], *, points: int = 9
) -> dict[int, tuple[ModelBias, ...]]:
    """Equally weighted `ModelBias` draws per stratum at quantiles of the posterior of `kappa`.

    Same model as `fit_model_bias`, with a flat prior on `kappa` and the REML likelihood:
    with a dozen noisy regions `kappa^2` is poorly determined, and averaging the composite
    over its uncertainty (rather than plugging in one value) keeps the intervals honest.
    """
    out: dict[int, tuple[ModelBias, ...]] = {}
    for stratum, (c, v, b, m) in _moments_by_stratum(moments).items():
        grid = np.logspace(-4, 1, 201)
        reml, mu, mu_var = _reml(grid, c, v, b, m)
        # Flat in kappa on a log grid of kappa^2: density x d kappa / d log kappa^2 ~ kappa.
        logw = reml + 0.5 * np.log(grid)
        w = np.exp(logw - logw.max())
        cdf = np.cumsum(w) / w.sum()
        picks = np.searchsorted(cdf, (np.arange(points) + 0.5) / points).clip(0, grid.size - 1)
        out[stratum] = tuple(
            ModelBias(mean=float(mu[i]), variance=float(grid[i]), mean_variance=float(mu_var[i]))
            for i in picks
        )
    return out


def _region_posterior(r: RegionPart, bias: ModelBias) -> tuple[FloatArray, FloatArray]:
    """Posterior mean and covariance of a region's correction under one `ModelBias`."""
    prior = bias.variance * np.outer(r.model, r.model) + r.model_cov
    mean = bias.mean * r.model
    o = r.covered
    lever = r.model.copy()  # d delta_hat / d mu
    if o.any():
        s_oo = prior[np.ix_(o, o)] + r.cov[np.ix_(o, o)]
        # Nested domains make s_oo near-singular: invert it in correlation scale.
        sd = np.sqrt(np.clip(np.diag(s_oo), 1e-300, None))
        inv = np.linalg.pinv(s_oo / np.outer(sd, sd), rcond=1e-10, hermitian=True)
        gain = (prior[:, o] / sd) @ inv / sd[None, :]
        delta = mean + gain @ (r.correction[o] - mean[o])
        post = prior - gain @ prior[o, :]
        lever -= gain @ r.model[o]
    else:
        delta, post = mean, prior
    cov = (post + post.T) / 2.0 + bias.mean_variance * np.outer(lever, lever)
    return np.asarray(delta, dtype=np.float64), cov


def _reml(
    k2: FloatArray, c: FloatArray, v: FloatArray, b: FloatArray, m: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """REML log-likelihood, `mu` and its variance at each `kappa^2` of `k2`."""
    var = k2[:, None] * m[None, :] ** 2 + (b + v)[None, :]
    info = (m[None, :] ** 2 / var).sum(axis=1)
    mu = (c[None, :] * m[None, :] / var).sum(axis=1) / info
    resid = c[None, :] - mu[:, None] * m[None, :]
    reml = -0.5 * ((np.log(var) + resid**2 / var).sum(axis=1) + np.log(info))
    return np.asarray(reml), np.asarray(mu), np.asarray(1.0 / info)


def combine_parts(
    parts: TotalParts,
    *,
    model_bias: Mapping[int, ModelBias | Sequence[ModelBias]] | None = None,
) -> TotalEstimate:
    """Totals and covariance from the model and each region's correction.

    Without `model_bias` (or for strata it leaves out) a region adds its design correction
    and design covariance; totals no label of the region reaches keep the model term with the
    model's Bernoulli variance. For a stratum with a `ModelBias` the region's true correction
    `delta` has the prior `N(mu M, kappa^2 M M' + B)` and the design correction is its noisy
    measurement `N(delta, V)`: the region adds the posterior mean and covariance of `delta`
    (plus the uncertainty of `mu`). Where `V` is large against the prior (few labels over many
    units) the model, corrected by the bias shared across populations, carries the total;
    where `V` is small, the labels do; totals no label reaches borrow the correction through
    the shared bias and keep its uncertainty (the empirical-Bayes composite of small-area
    estimation). Several equally weighted `ModelBias` draws mix their posteriors.
    """
    k = len(parts.names)
    point = parts.model_point.copy()
    cov = np.zeros((k, k))
    model_mass = np.zeros(k)
    mass = np.zeros(k)
    for r in parts.regions:
        mass += r.mass
        model_mass += np.where(r.covered, 0.0, r.mass)
        bias = None if model_bias is None else model_bias.get(r.stratum)
        if bias is None:
            point += r.correction
            cov += r.cov
            u = ~r.covered
            cov[np.ix_(u, u)] += r.model_cov[np.ix_(u, u)]
            continue
        draws = [bias] if isinstance(bias, ModelBias) else list(bias)
        posts = [_region_posterior(r, b) for b in draws]
        mean = np.mean([p[0] for p in posts], axis=0)
        point += mean
        for delta, post in posts:
            cov += (post + np.outer(delta - mean, delta - mean)) / len(posts)
    model_only = np.divide(model_mass, mass, out=np.zeros(k), where=mass > 0)
    return TotalEstimate(
        names=parts.names,
        point=np.asarray(point, dtype=np.float64),
        cov=cov,
        n_labels=parts.n_labels,
        n_labeled_positive=parts.n_labeled_positive,
        model_only_share=model_only,
    )


def _check_flip_rate(flip_rate: float) -> None:
    if not 0.0 <= flip_rate <= MAX_FLIP_RATE:
        raise EstimationError(
            f"reviewer flip rate must be in [0, {MAX_FLIP_RATE}], got {flip_rate}; set "
            "GOVRISK_AUDIT_FLIP_RATE or pass flip_rate="
        )


def _as_domains(domains: npt.ArrayLike | Domains) -> Domains:
    if isinstance(domains, Domains):
        return domains
    arr = np.asarray(domains, dtype=np.float64)
    return ArrayDomains(arr[:, None] if arr.ndim == 1 else arr)


def _check_inputs(
    f: FloatArray,
    domains: Domains,
    draws: LabelDraws,
    frames: Mapping[str, BoolArray],
    flip_rate: float,
) -> None:
    _check_flip_rate(flip_rate)
    n = f.shape[0]
    if domains.shape[0] != n:
        raise EstimationError(f"domains have {domains.shape[0]} rows for {n} population units")
    if np.any((f < 0) | (f > 1)) or not np.all(np.isfinite(f)):
        raise EstimationError("model probabilities must be finite and within [0, 1]")
    if len(draws):
        if draws.position.min() < 0 or draws.position.max() >= n:
            raise EstimationError("label positions fall outside the population")
        pi = draws.inclusion_probability
        if np.any((pi <= 0) | (pi > 1)) or not np.all(np.isfinite(pi)):
            raise EstimationError(
                "inclusion probabilities must be in (0, 1]; fix audit_labels.inclusion_probability"
            )
    unknown = sorted(set(draws.design.tolist()) - set(frames))
    if unknown:
        raise EstimationError(f"labels from design(s) {unknown} have no frame; pass frames=")
    for name, mask in frames.items():
        if np.asarray(mask).shape != (n,):
            raise EstimationError(f"frame of design {name!r} must be a mask of {n} units")


def _compute_parts(
    f: FloatArray,
    domains: Domains,
    draws: LabelDraws,
    frames: Mapping[str, BoolArray],
    flip_rate: float,
    names: tuple[str, ...],
    strata: IntArray,
) -> TotalParts:
    k = domains.shape[1]
    designs = sorted(set(draws.design.tolist()))
    region = _regions(designs, frames, strata, len(f))
    acc, covered_by = _region_accumulators(region, domains, f)
    n_labels = np.zeros(k, dtype=np.int64)
    n_pos = np.zeros(k, dtype=np.int64)
    if len(draws):
        n_labels, n_pos = _add_label_corrections(
            acc, covered_by, region, designs, draws, domains, flip_rate
        )
    regions = tuple(
        RegionPart(
            stratum=g >> len(designs),
            correction=a["correction"],
            cov=a["cov"],
            model=a["model"],
            model_cov=a["model_cov"],
            covered=covered_by[g],
            mass=a["mass"],
        )
        for g, a in sorted(acc.items())
    )
    return TotalParts(
        names=names,
        model_point=domain_totals(f, domains),
        regions=regions,
        n_labels=n_labels,
        n_labeled_positive=n_pos,
    )


def _regions(
    designs: list[str], frames: Mapping[str, BoolArray], strata: IntArray, n_units: int
) -> IntArray:
    """Region of a unit = its stratum and which label-carrying designs can draw it (bit set)."""
    region = np.zeros(n_units, dtype=np.int64)
    for bit, name in enumerate(designs):
        region |= np.asarray(frames[name], dtype=bool).astype(np.int64) << bit
    return np.asarray(region | (strata << len(designs)), dtype=np.int64)


def _region_accumulators(
    region: IntArray, domains: Domains, f: FloatArray
) -> tuple[dict[int, dict[str, FloatArray]], dict[int, BoolArray]]:
    """Per region: the model's totals and covariance, the domains' sizes, and zeroed label
    corrections; and which domains labels cover there (none yet). Sums over row blocks."""
    fvar = f * (1.0 - f)
    acc: dict[int, dict[str, FloatArray]] = {}
    for start, block in domains.blocks():
        rows = slice(start, start + block.shape[0])
        _accumulate_block(acc, region[rows], block, f[rows], fvar[rows])
    k = domains.shape[1]
    return acc, {g: np.zeros(k, dtype=bool) for g in acc}


def _accumulate_block(
    acc: dict[int, dict[str, FloatArray]],
    region: IntArray,
    block: FloatArray,
    f: FloatArray,
    fvar: FloatArray,
) -> None:
    """Add one row block's model totals, model covariance and domain sizes to each region's."""
    k = block.shape[1]
    # One stable sort instead of a mask per region: each region's rows in their own order.
    order = np.argsort(region, kind="stable")
    groups, starts = np.unique(region[order], return_index=True)
    bounds = np.append(starts, len(order))
    for i, g in enumerate(groups):
        in_g = order[bounds[i] : bounds[i + 1]]
        dg = block[in_g]
        part = acc.setdefault(
            int(g),
            {
                "correction": np.zeros(k),
                "cov": np.zeros((k, k)),
                "model": np.zeros(k),
                "model_cov": np.zeros((k, k)),
                "mass": np.zeros(k),
            },
        )
        part["model"] += f[in_g] @ dg
        part["model_cov"] += dg.T @ (dg * fvar[in_g][:, None])
        part["mass"] += np.abs(dg).sum(axis=0)


def _add_label_corrections(
    acc: dict[int, dict[str, FloatArray]],
    covered_by: dict[int, BoolArray],
    region: IntArray,
    designs: list[str],
    draws: LabelDraws,
    domains: Domains,
    flip_rate: float,
) -> tuple[IntArray, IntArray]:
    """Add each region's design-weighted label corrections and their covariance to `acc`;
    returns the labels and positive labels behind each domain."""
    k = domains.shape[1]
    y_star = correct_labels(draws.y_obs, flip_rate)
    noise_var = (
        flip_rate * (1 - flip_rate) / (1 - 2 * flip_rate) ** 2 / np.maximum(draws.n_reviews, 1)
    )
    resid = y_star - draws.f_label
    resid_var_model = draws.f_label * (1.0 - draws.f_label) + noise_var
    w = 1.0 / draws.inclusion_probability
    label_region = region[draws.position]
    # A draw outside its design's declared frame cannot be weighted; drop it.
    design_bit = np.array([1 << designs.index(d) for d in draws.design], dtype=np.int64)
    valid = (label_region & design_bit) > 0
    d_lab = domains.take(draws.position)
    for g in np.unique(label_region[valid]):
        cells = []
        for name in designs:
            m = valid & (label_region == g) & (draws.design == name)
            if not m.any():
                continue
            wd = w[m][:, None] * np.abs(d_lab[m])  # (n_c, K) domain weights
            w_sum = wd.sum(axis=0)
            n_eff = np.divide(w_sum**2, np.square(wd).sum(axis=0), out=np.zeros(k), where=w_sum > 0)
            cells.append((m, wd, w_sum, n_eff))
        if not cells:
            continue
        total_eff = np.sum([c[3] for c in cells], axis=0)
        covered = total_eff > 0
        covered_by[int(g)] |= covered
        for m, wd, w_sum, n_eff in cells:
            lam = np.divide(n_eff, total_eff, out=np.zeros(k), where=covered)
            _add_cell(acc[int(g)], lam, wd, w_sum, np.sign(d_lab[m]), resid[m], resid_var_model[m])
    support = (d_lab[valid] != 0).astype(np.float64)
    n_labels = support.sum(axis=0).astype(np.int64)
    n_pos = (support * (draws.y_obs[valid] >= 0.5)[:, None]).sum(axis=0).astype(np.int64)
    return n_labels, n_pos


def _add_cell(
    part: dict[str, FloatArray],
    lam: FloatArray,
    wd: FloatArray,
    w_sum: FloatArray,
    sign: FloatArray,
    resid: FloatArray,
    resid_var_model: FloatArray,
) -> None:
    """One design's labels in one region: their correction and covariance, added to `part`."""
    k = wd.shape[1]
    has = w_sum > 0
    size = part["mass"]  # known domain size in the region
    # Domain ratio (Hajek within the domain, scaled to its known size): the mean residual of
    # the domain's labelled units times the domain's size.
    zr = wd * sign * resid[:, None]
    mean = np.divide(zr.sum(axis=0), w_sum, out=np.zeros(k), where=has)
    scale = np.divide(size * lam, w_sum, out=np.zeros(k), where=has)
    # Signed domains (a change's +1 / -1 units) keep the sign per unit; their mean is relative
    # to the absolute size, so signed totals stay unbiased.
    part["correction"] += scale * zr.sum(axis=0)
    u = scale * (zr - wd * mean)
    n_c = wd.shape[0]
    cell = (n_c / max(n_c - 1, 1)) * (u.T @ u)
    # Floor each variance at what a calibrated model implies (Bernoulli residual plus label
    # noise): with rare violations a small cell often holds no positive and its sample variance
    # would claim a certainty it lacks. The floor tops a total's variance up with the
    # model-implied covariance scaled to the shortfall, so nested totals keep coherent
    # covariances.
    u_model = scale * wd * np.sqrt(resid_var_model)[:, None]
    model_cell = (n_c / max(n_c - 1, 1)) * (u_model.T @ u_model)
    floor = np.diag(model_cell)
    short = np.sqrt(
        np.divide(
            np.clip(floor - np.diag(cell), 0.0, None), floor, out=np.zeros(k), where=floor > 0
        )
    )
    part["cov"] += cell + np.outer(short, short) * model_cell
