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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

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


@dataclass(frozen=True)
class LabelDraws:
    """Audit labels aligned to a population: one row per (design, unit) draw.

    `position` indexes the population's units; `y_obs` is the share of reviewers who said
    violating (0/1 for a single review); `n_reviews` counts them; `inclusion_probability` is
    the draw's probability under its design; `f_label` is the model probability at the label
    (out-of-fold where available, so the correction is not fitted on its own labels).
    """

    position: IntArray
    y_obs: FloatArray
    n_reviews: IntArray
    inclusion_probability: FloatArray
    design: npt.NDArray[np.object_]
    f_label: FloatArray

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


def _logit(p: FloatArray) -> FloatArray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
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
    x = _logit(np.asarray(p_label, dtype=np.float64))
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


def recalibrate(p: npt.ArrayLike, a: float, b: float) -> FloatArray:
    """`sigmoid(a + b logit(p))`."""
    return _sigmoid(a + b * _logit(np.asarray(p, dtype=np.float64)))


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
    domains: npt.ArrayLike,
    draws: LabelDraws,
    *,
    frames: Mapping[str, BoolArray],
    flip_rate: float,
    names: Sequence[str] | None = None,
) -> TotalEstimate:
    """Difference-estimator totals `sum_i D[i, k] y_i` for every column k of `domains`.

    `f` (N,) are denoised model probabilities, `domains` (N, K) the domain weights, `frames`
    maps each design in `draws.design` to the (N,) mask of units it can draw (its frame).
    """
    f_arr = np.asarray(f, dtype=np.float64)
    d_arr = np.asarray(domains, dtype=np.float64)
    if d_arr.ndim == 1:
        d_arr = d_arr[:, None]
    _check_inputs(f_arr, d_arr, draws, frames, flip_rate)
    k = d_arr.shape[1]
    label_names = tuple(names) if names is not None else tuple(f"t{i}" for i in range(k))
    if len(label_names) != k:
        raise EstimationError(f"{len(label_names)} names for {k} domain columns")
    return _compute_totals(f_arr, d_arr, draws, frames, flip_rate, label_names)


def _check_flip_rate(flip_rate: float) -> None:
    if not 0.0 <= flip_rate <= MAX_FLIP_RATE:
        raise EstimationError(
            f"reviewer flip rate must be in [0, {MAX_FLIP_RATE}], got {flip_rate}; set "
            "GOVRISK_AUDIT_FLIP_RATE or pass flip_rate="
        )


def _check_inputs(
    f: FloatArray,
    domains: FloatArray,
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


def _compute_totals(
    f: FloatArray,
    domains: FloatArray,
    draws: LabelDraws,
    frames: Mapping[str, BoolArray],
    flip_rate: float,
    names: tuple[str, ...],
) -> TotalEstimate:
    n_units, k = domains.shape
    point = f @ domains
    cov = np.zeros((k, k))
    n_labels = np.zeros(k, dtype=np.int64)
    n_pos = np.zeros(k, dtype=np.int64)

    designs = sorted(set(draws.design.tolist()))
    # Region of a unit = which label-carrying designs can draw it (bit set).
    region = np.zeros(n_units, dtype=np.int64)
    for bit, name in enumerate(designs):
        region |= np.asarray(frames[name], dtype=bool).astype(np.int64) << bit
    # (region, estimand) pairs no label reaches keep the model term and its variance.
    unlabelled = np.ones((int(region.max()) + 1 if n_units else 1, k), dtype=bool)
    if len(draws):
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
        d_lab = domains[draws.position]
        for g in np.unique(label_region[valid]):
            in_g = region == g
            size = np.abs(domains[in_g]).sum(axis=0)  # known domain size in the region
            signed = domains[in_g].sum(axis=0)
            cells = []
            for name in designs:
                m = valid & (label_region == g) & (draws.design == name)
                if not m.any():
                    continue
                wd = w[m][:, None] * np.abs(d_lab[m])  # (n_c, K) domain weights
                w_sum = wd.sum(axis=0)
                n_eff = np.divide(
                    w_sum**2, np.square(wd).sum(axis=0), out=np.zeros(k), where=w_sum > 0
                )
                cells.append((m, wd, w_sum, n_eff))
            if not cells:
                continue
            total_eff = np.sum([c[3] for c in cells], axis=0)
            covered = total_eff > 0
            unlabelled[g] &= ~covered
            for m, wd, w_sum, n_eff in cells:
                lam = np.divide(n_eff, total_eff, out=np.zeros(k), where=covered)
                has = w_sum > 0
                sign = np.sign(d_lab[m])
                # Domain ratio (Hajek within the domain, scaled to its known size): the mean
                # residual of the domain's labelled units times the domain's size.
                zr = wd * sign * resid[m][:, None]
                mean = np.divide(zr.sum(axis=0), w_sum, out=np.zeros(k), where=has)
                scale = np.divide(size * lam, w_sum, out=np.zeros(k), where=has)
                # Signed domains (a change's +1 / -1 units) keep the sign per unit; their mean
                # is relative to the absolute size, so signed totals stay unbiased.
                point += scale * zr.sum(axis=0)
                u = scale * (zr - wd * mean)
                n_c = int(m.sum())
                cell = (n_c / max(n_c - 1, 1)) * (u.T @ u)
                # Floor each variance at what a calibrated model implies (Bernoulli residual
                # plus label noise): with rare violations a small cell often holds no positive
                # and its sample variance would claim a certainty it lacks.
                u_model = scale * wd * np.sqrt(resid_var_model[m])[:, None]
                floor = (n_c / max(n_c - 1, 1)) * np.square(u_model).sum(axis=0)
                diag = np.diag(cell)
                cell[np.diag_indices_from(cell)] = np.maximum(diag, floor)
                cov += cell
            del signed
        support = (d_lab[valid] != 0).astype(np.float64)
        n_labels = support.sum(axis=0).astype(np.int64)
        n_pos = (support * (draws.y_obs[valid] >= 0.5)[:, None]).sum(axis=0).astype(np.int64)
    # Model-only variance where no label reaches: the model's Bernoulli variance.
    model_mass = np.zeros(k)
    fvar = f * (1.0 - f)
    for g in np.unique(region):
        cols = unlabelled[g]
        if not cols.any():
            continue
        dg = domains[region == g] * cols[None, :]
        cov += dg.T @ (dg * fvar[region == g][:, None])
        model_mass += np.abs(dg).sum(axis=0)
    mass = np.abs(domains).sum(axis=0)
    model_only = np.divide(model_mass, mass, out=np.zeros(k), where=mass > 0)
    return TotalEstimate(
        names=names,
        point=np.asarray(point, dtype=np.float64),
        cov=cov,
        n_labels=n_labels,
        n_labeled_positive=n_pos,
        model_only_share=model_only,
    )
