"""Tests of the model-assisted, design-weighted estimators."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from governance.audit.estimators import (
    EstimationError,
    LabelDraws,
    ModelBias,
    RegionPart,
    TotalParts,
    combine_parts,
    correct_labels,
    denoise_probability,
    estimate_flip_rate,
    estimate_totals,
    fit_model_bias,
    interval,
    posterior_violation,
)


def _population(seed: int, n: int = 6000, eps: float = 0.04) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = rng.random(n) < 1 / (1 + np.exp(-(2 * x - 3)))
    f = 1 / (1 + np.exp(-(1.8 * x - 2.9 + rng.normal(0, 0.3, n))))
    actioned = (x + rng.normal(0, 0.7, n)) > 1.2
    return {"y": y, "f": f, "a": actioned, "rng": rng, "eps": eps}  # type: ignore[dict-item]


def _draws(w: dict, pi_random: float, pi_flag: float) -> LabelDraws:
    rng, y, a, f, eps = w["rng"], w["y"], w["a"], w["f"], w["eps"]
    n = len(y)
    r = np.flatnonzero(rng.random(n) < pi_random)
    fl = np.flatnonzero(a & (rng.random(n) < pi_flag))
    pos = np.concatenate([r, fl])
    obs = y[pos].astype(float)
    obs = np.where(rng.random(len(pos)) < eps, 1 - obs, obs)
    return LabelDraws(
        position=pos.astype(np.int64),
        y_obs=obs,
        n_reviews=np.ones(len(pos), dtype=np.int64),
        inclusion_probability=np.concatenate(
            [np.full(len(r), pi_random), np.full(len(fl), pi_flag)]
        ),
        design=np.array(["random"] * len(r) + ["flagged"] * len(fl), dtype=object),
        f_label=f[pos],
    )


def test_precision_and_recall_are_unbiased_and_intervals_cover() -> None:
    errs_p, errs_r, cov_p, cov_r = [], [], [], []
    for seed in range(150):
        w = _population(seed)
        d = _draws(w, 0.02, 0.08)
        a = w["a"]
        n = len(a)
        est = estimate_totals(
            w["f"],
            np.column_stack([a.astype(float), np.ones(n)]),
            d,
            frames={"random": np.ones(n, dtype=bool), "flagged": a},
            flip_rate=w["eps"],
            names=["tp", "pos"],
        )
        tp = float((w["y"] & a).sum())
        p, se_p = est.ratio("tp", float(a.sum()))
        r, se_r = est.ratio("tp", "pos")
        true_p, true_r = tp / a.sum(), tp / w["y"].sum()
        errs_p.append(p - true_p)
        errs_r.append(r - true_r)
        lo, hi = interval(p, se_p)
        cov_p.append(lo <= true_p <= hi)
        lo, hi = interval(r, se_r)
        cov_r.append(lo <= true_r <= hi)
    # Mean error within ~3 Monte Carlo standard errors of zero; coverage near 95%.
    assert abs(np.mean(errs_p)) < 3 * np.std(errs_p) / np.sqrt(len(errs_p))
    assert abs(np.mean(errs_r)) < 3 * np.std(errs_r) / np.sqrt(len(errs_r)) + 0.005
    assert 0.90 <= np.mean(cov_p) <= 0.99
    assert 0.90 <= np.mean(cov_r) <= 0.99


def test_noise_correction_removes_the_bias_of_noisy_labels() -> None:
    raw, corrected = [], []
    for seed in range(60):
        w = _population(seed, eps=0.15)
        d = _draws(w, 0.1, 0.0)
        n = len(w["y"])
        frames = {"random": np.ones(n, dtype=bool), "flagged": w["a"]}
        flat = np.full(n, 0.5)  # uninformative model: all weight on the labels
        d_flat = LabelDraws(
            d.position, d.y_obs, d.n_reviews, d.inclusion_probability, d.design, flat[d.position]
        )
        for out, eps in ((raw, 0.0), (corrected, 0.15)):
            est = estimate_totals(flat, np.ones(n), d_flat, frames=frames, flip_rate=eps)
            out.append(est.point[0] - w["y"].sum())
    assert abs(np.mean(corrected)) < 40
    assert np.mean(raw) > 200  # noise inflates the rare positive class


def test_without_labels_the_estimate_is_the_model_total_with_model_variance() -> None:
    f = np.array([0.1, 0.5, 0.9])
    est = estimate_totals(f, np.ones(3), LabelDraws.empty(), frames={}, flip_rate=0.0)
    assert est.point[0] == pytest.approx(1.5)
    assert est.cov[0, 0] == pytest.approx(0.09 + 0.25 + 0.09)
    assert est.model_only_share[0] == pytest.approx(1.0)
    assert est.n_labels[0] == 0


def test_uniform_design_matches_the_prediction_powered_mean() -> None:
    rng = np.random.default_rng(3)
    n = 1000
    f = rng.random(n)
    y = (rng.random(n) < f).astype(float)
    pos = rng.choice(n, 100, replace=False)
    d = LabelDraws(
        pos.astype(np.int64),
        y[pos],
        np.ones(100, dtype=np.int64),
        np.full(100, 0.1),
        np.array(["random"] * 100, dtype=object),
        f[pos],
    )
    est = estimate_totals(
        f, np.ones(n), d, frames={"random": np.ones(n, dtype=bool)}, flip_rate=0.0
    )
    ppi = f.mean() + (y[pos] - f[pos]).mean()  # PPI mean estimate with lambda = 1
    assert est.point[0] / n == pytest.approx(ppi)
    se_ppi = (y[pos] - f[pos]).std(ddof=1) / np.sqrt(100)
    # Same interval up to the calibrated-model variance floor (never narrower).
    assert se_ppi <= est.se("t0") / n <= 1.2 * se_ppi


def test_denoise_and_correct_are_consistent() -> None:
    eps = 0.04
    assert correct_labels([eps + (1 - 2 * eps) * 0.3], eps)[0] == pytest.approx(0.3)
    assert denoise_probability([eps, 1 - eps, 0.5], eps).tolist() == pytest.approx([0, 1, 0.5])


def test_posterior_moves_with_verdicts() -> None:
    prior = np.array([0.5, 0.5, 0.5])
    post = posterior_violation(prior, [0, 1, 2], [1, 1, 2], 0.05)
    assert post[0] < 0.1 < 0.9 < post[1] < post[2]


def test_flip_rate_is_estimated_from_double_reviews() -> None:
    rng = np.random.default_rng(0)
    n, eps = 4000, 0.05
    truth = rng.random(n) < 0.3
    rows = []
    for i in range(n):
        for r in ("a", "b"):
            v = bool(truth[i]) ^ bool(rng.random() < eps)
            rows.append(
                ("listing", f"i{i}", "counterfeit", "violating" if v else "not_violating", r)
            )
    labels = pd.DataFrame(rows, columns=["entity", "item_id", "policy", "verdict", "reviewer_id"])
    est, pairs = estimate_flip_rate(labels)
    assert pairs == n
    assert est == pytest.approx(eps, abs=0.01)


def test_bad_inputs_name_the_problem() -> None:
    f = np.array([0.2, 0.4])
    bad_pi = LabelDraws(
        np.array([0]),
        np.array([1.0]),
        np.array([1]),
        np.array([0.0]),
        np.array(["random"], dtype=object),
        np.array([0.2]),
    )
    with pytest.raises(EstimationError, match="inclusion probabilities"):
        estimate_totals(f, np.ones(2), bad_pi, frames={"random": np.ones(2, bool)}, flip_rate=0.0)
    good = LabelDraws(
        np.array([0]),
        np.array([1.0]),
        np.array([1]),
        np.array([0.5]),
        np.array(["appeal"], dtype=object),
        np.array([0.2]),
    )
    with pytest.raises(EstimationError, match="no frame"):
        estimate_totals(f, np.ones(2), good, frames={}, flip_rate=0.0)
    with pytest.raises(EstimationError, match="flip rate"):
        estimate_totals(f, np.ones(2), LabelDraws.empty(), frames={}, flip_rate=0.6)


def test_model_bias_is_recovered_from_many_regions() -> None:
    rng = np.random.default_rng(5)
    n = 400
    m = rng.uniform(20, 400, n)
    b, v = 0.2 * m, rng.uniform(50, 2000, n)
    delta = -0.4 * m + rng.normal(0, np.sqrt(0.09) * m) + rng.normal(0, np.sqrt(b))
    c = delta + rng.normal(0, np.sqrt(v))
    fitted = fit_model_bias(
        [(0, ci, vi, bi, mi) for ci, vi, bi, mi in zip(c, v, b, m, strict=True)]
    )
    assert set(fitted) == {0}
    assert fitted[0].mean == pytest.approx(-0.4, abs=0.05)
    assert fitted[0].variance == pytest.approx(0.09, rel=0.35)
    assert 0 < fitted[0].mean_variance < 0.01


def _one_region(correction: float, design_var: float) -> TotalParts:
    model = np.array([100.0, 50.0])
    return TotalParts(
        names=("all", "half"),
        model_point=model.copy(),
        regions=(
            RegionPart(
                stratum=0,
                correction=np.array([correction, 0.0]),
                cov=np.array([[design_var, 0.0], [0.0, 0.0]]),
                model=model,
                model_cov=np.array([[20.0, 10.0], [10.0, 10.0]]),
                covered=np.array([True, False]),
                mass=np.array([1000.0, 500.0]),
            ),
        ),
        n_labels=np.array([10, 0]),
        n_labeled_positive=np.array([1, 0]),
    )


def test_composite_moves_from_the_model_to_the_labels_as_they_sharpen() -> None:
    bias = {0: ModelBias(mean=-0.2, variance=0.04, mean_variance=0.0)}
    vague = combine_parts(_one_region(-60.0, 1e9), model_bias=bias)
    # Uninformative labels: the model corrected by the shared bias, with the prior's variance.
    assert vague.point[0] == pytest.approx(100 - 20, abs=0.01)
    assert vague.cov[0, 0] == pytest.approx(0.04 * 100**2 + 20, rel=1e-3)
    sharp = combine_parts(_one_region(-60.0, 1e-6), model_bias=bias)
    assert sharp.point[0] == pytest.approx(40.0, abs=0.01)
    assert sharp.cov[0, 0] < 1e-3
    # The total no label reaches borrows the correction through the shared relative bias.
    assert sharp.point[1] < vague.point[1] < 50.0
    assert sharp.cov[1, 1] < vague.cov[1, 1]
    # Without a bias prior the design correction stands as it is; unreached totals keep the model.
    design = combine_parts(_one_region(-60.0, 400.0))
    assert design.point.tolist() == pytest.approx([40.0, 50.0])
    assert design.cov[1, 1] == pytest.approx(10.0)


def test_floored_variance_keeps_nested_totals_coherent() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    f = np.full(n, 0.02)
    pos = rng.choice(n, 40, replace=False)
    d = LabelDraws(
        pos.astype(np.int64),
        np.zeros(40),  # no positive: the sample variance is zero, the floor binds
        np.ones(40, dtype=np.int64),
        np.full(40, 0.02),
        np.array(["random"] * 40, dtype=object),
        f[pos],
    )
    same = np.column_stack([np.ones(n), np.ones(n)])
    est = estimate_totals(f, same, d, frames={"random": np.ones(n, dtype=bool)}, flip_rate=0.0)
    assert est.cov[0, 0] > 0
    assert est.cov[0, 1] == pytest.approx(est.cov[0, 0])  # identical totals, one uncertainty
