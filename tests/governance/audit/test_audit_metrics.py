"""Tests of the audit population and the per strategy x channel metrics table."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from features.vocabulary import Entity, Policy
from governance.audit import estimators
from governance.audit.metrics import (
    METRIC_COLUMNS,
    estimand_domains,
    more_labels_to_pin,
    population_totals,
    strategy_metrics,
)
from governance.audit.population import Population, build_populations
from tests.governance.audit.audit_world import DESIGN_FRAMES, World, make_world, world_populations


def _pops(w: World) -> dict[tuple[Entity, Policy], Population]:
    return world_populations(w)


def _truth(w: World, pop: Population) -> np.ndarray:
    return w.truth.set_index("item_id")["violating"].reindex(pop.item_ids).to_numpy()


def test_population_aligns_decisions_exposure_and_labels(world: World) -> None:
    pop = _pops(world)[(Entity.LISTING, Policy.COUNTERFEIT)]
    assert pop.channels == ("shop_tab", "campaigns", "shop_ads", "affiliate")
    dec = world.tables["strategy_decisions"]
    n_pairs = len(dec[dec["strategy_id"] == "cf-terms"])
    assert pop.actioned["cf-terms@v1"].sum() == n_pairs
    # cf-terms never acts in shop_ads or affiliate.
    assert not pop.actioned["cf-terms@v1"][:, 2:].any()
    shown = world.tables["channel_exposure"]["impressions"].sum()
    assert pop.impressions.sum() == pytest.approx(shown)
    # Blocked pairs show nothing, so they lost (counterfactual) impressions instead.
    blocked = pop.actioned["cf-terms@v1"]
    assert pop.impressions[blocked].sum() == 0
    assert pop.lost_impressions[blocked].mean() > 0
    # Appeals are not a probability design: excluded from the estimator's draws.
    assert set(pop.draws.design) == {"random", "strategy_flagged"}
    assert pop.n_labels_excluded == pop.label_counts["appeal"]
    # Double reviews of one draw merge into one draw with two reviews.
    assert pop.draws.n_reviews.max() == 2


def test_metrics_table_has_every_strategy_channel_and_the_policy_row(world: World) -> None:
    m = strategy_metrics(_pops(world))
    assert tuple(m.columns) == METRIC_COLUMNS
    got = set(zip(m["strategy"], m["channel"], strict=True))
    assert ("cf-terms@v1", "all") in got and ("cf-terms@v1", "campaigns") in got
    assert ("cf-bags@v2", "shop_ads") in got and ("*", "affiliate") in got
    row = m[(m["strategy"] == "cf-terms@v1") & (m["channel"] == "all")].iloc[0]
    assert row["precision_low"] <= row["precision"] <= row["precision_high"]
    assert row["fp"] + row["tp"] == pytest.approx(row["n_actioned"])
    assert row["n_labels"] > 0 and 0 < row["n_labeled_positive"] <= row["n_labels"]
    assert row["strategy_id"] == "cf-terms" and row["strategy_version"] == 1


def test_truth_table_matches_direct_counts(world: World) -> None:
    pops = _pops(world)
    pop = pops[(Entity.LISTING, Policy.COUNTERFEIT)]
    y = _truth(world, pop)
    m = strategy_metrics(pops, truth=dict.fromkeys(pops, y))
    a = pop.actioned["cf-bags@v2"].any(axis=1)
    row = m[(m["strategy"] == "cf-bags@v2") & (m["channel"] == "all")].iloc[0]
    assert row["precision"] == pytest.approx(y[a].mean())
    assert row["recall"] == pytest.approx((y & a).sum() / y.sum())
    assert row["fp"] == (a & ~y).sum() and row["fn"] == (~a & y).sum()


def test_row_blocks_bound_memory_and_keep_every_estimate(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Estimates read the domain matrix in row blocks (a 10M-unit population would need ~10 GB
    whole): blocks of 7 rows give the one-block table up to summation order."""
    pops = _pops(world)
    whole = strategy_metrics(pops, composite=True)
    domains = estimand_domains(pops[(Entity.LISTING, Policy.COUNTERFEIT)])
    assert len(list(domains.blocks())) == 1
    monkeypatch.setattr(estimators, "BLOCK_BYTES", 8 * 7 * domains.shape[1])
    blocks = list(domains.blocks())
    assert len(blocks) == -(-domains.shape[0] // 7) and blocks[-1][0] == 7 * (len(blocks) - 1)
    blocked = strategy_metrics(pops, composite=True)
    numeric = whole.select_dtypes("number").columns
    pd.testing.assert_frame_equal(
        blocked.drop(columns=numeric), whole.drop(columns=numeric), check_exact=True
    )
    np.testing.assert_allclose(
        blocked[numeric].to_numpy(float), whole[numeric].to_numpy(float), rtol=1e-9, atol=1e-9
    )


def test_estimates_track_the_truth_across_worlds() -> None:
    rows = []
    for seed in range(12):
        w = make_world(n=2000, seed=seed)
        pops = _pops(w)
        pop = next(iter(pops.values()))
        est = strategy_metrics(pops)
        true = strategy_metrics(pops, truth={k: _truth(w, pop) for k in pops})
        j = est.merge(true, on=["strategy", "channel"], suffixes=("", "_true"))
        j = j[(j["channel"] == "all") & (j["strategy"] != "*")]
        rows.append(j)
    j = pd.concat(rows)
    err = (j["precision"] - j["precision_true"]).abs()
    covered = (j["precision_low"] <= j["precision_true"]) & (
        j["precision_true"] <= j["precision_high"]
    )
    assert err.mean() < 0.05
    assert covered.mean() >= 0.7  # nominal 0.95; 24 intervals


def test_composite_recall_borrows_the_model_bias_across_populations() -> None:
    """An over-predicting model and few random labels among unactioned units: the composite
    estimates recall better than design-based corrections, with intervals that still cover."""
    pops, truth = {}, {}
    for i, policy in enumerate(list(Policy)[:6]):
        w = make_world(n=2000, seed=40 + i)
        preds = w.predictions.assign(p=np.clip(w.predictions["p"] * 1.8, 0, 1))
        (pop,) = build_populations(
            w.tables,
            w.strategies,
            preds,
            items={Entity.LISTING: w.frame["item_id"]},
            flip_rate=w.flip_rate,
            design_frames=DESIGN_FRAMES,
            calibration="denoise",
        ).values()
        pops[(Entity.LISTING, policy)] = replace(pop, policy=policy)
        truth[(Entity.LISTING, policy)] = _truth(w, pop)
    true = strategy_metrics(pops, truth=truth)
    keys = ["strategy", "policy", "channel"]
    errors = {}
    for composite in (False, True):
        est = strategy_metrics(pops, composite=composite)
        j = est.merge(true, on=keys, suffixes=("", "_true"))
        j = j[(j["channel"] == "all") & (j["strategy"] != "*")]
        errors[composite] = (j["recall"] - j["recall_true"]).abs()
        if composite:
            covered = (j["recall_low"] <= j["recall_true"]) & (j["recall_true"] <= j["recall_high"])
            assert covered.mean() >= 0.75  # nominal 0.95; 12 intervals
            width = (j["recall_high"] - j["recall_low"]).mean()
    assert errors[True].mean() < 0.8 * errors[False].mean()
    assert width < 0.5


def _overshooting(pop: Population, *, f_scale: float) -> Population:
    """Random labels among unactioned units all negative but three misses two reviewers agreed
    on, where the model over-predicts at the labels (the design correction overshoots), and
    the model elsewhere scaled by `f_scale`."""
    d = pop.draws
    unactioned = ~pop.any_actioned.any(axis=1)
    random_miss = np.flatnonzero((d.design == "random") & unactioned[d.position])
    y_obs, n_reviews, f_label = d.y_obs.copy(), d.n_reviews.copy(), d.f_label.copy()
    y_obs[random_miss] = 0.0
    y_obs[random_miss[:3]], n_reviews[random_miss[:3]] = 1.0, 2
    f_label[random_miss] = np.maximum(f_label[random_miss], 0.3)
    f = np.where(unactioned, pop.f * f_scale, pop.f)
    f[d.position[random_miss[:3]]] = np.maximum(f[d.position[random_miss[:3]]], 0.3)
    return replace(pop, f=f, draws=replace(d, y_obs=y_obs, n_reviews=n_reviews, f_label=f_label))


@pytest.mark.parametrize("f_scale", [1.0, 1e-4])
def test_an_overshooting_correction_falls_back_to_the_model_and_confirmed_misses(
    world: World, f_scale: float
) -> None:
    """The design estimate of the policy's false negatives falls below the three misses
    reviewers confirmed: the table reports the model's count, at least those misses, and a
    recall (and upper bound) below 1."""
    key = (Entity.LISTING, Policy.COUNTERFEIT)
    pop = _overshooting(_pops(world)[key], f_scale=f_scale)
    est = population_totals(pop)
    design_fn = est.value("pos|all") - est.value("tp|*|all")
    m = strategy_metrics({key: pop})
    row = m[(m["strategy"] == "*") & (m["channel"] == "all")].iloc[0]
    assert 2.0 < row["fn_confirmed"] < 4.0  # three agreed misses (+ a little from the rest)
    assert design_fn < row["fn_confirmed"]
    model_fn = float(pop.f[~pop.any_actioned.any(axis=1)].sum())
    assert row["fn"] == pytest.approx(max(model_fn, row["fn_confirmed"]))
    assert (row["fn"] > 100) == (f_scale == 1.0)  # the model's count, else the floor
    assert row["fn_low"] >= row["fn_confirmed"] - 1e-9 and row["fn_high"] >= row["fn"]
    assert row["recall"] == pytest.approx(row["tp"] / (row["tp"] + row["fn"]))
    assert row["recall_low"] <= row["recall"] <= row["recall_high"] < 1.0
    # Every row keeps the floor; the truth table has none.
    assert (m["fn"] >= m["fn_confirmed"] - 1e-9).all()
    true = strategy_metrics({key: pop}, truth={key: _truth(world, pop)})
    assert (true["fn_confirmed"] == 0).all()


def test_more_labels_to_pin_follows_the_square_root_law() -> None:
    # 100 labels behind a 0.4-wide interval: 4x the labels halve it to 0.2.
    assert more_labels_to_pin(0.4, 100, max_width=0.2) == 300
    assert more_labels_to_pin(0.2, 100, max_width=0.2) == 0
    assert more_labels_to_pin(0.05, 0, max_width=0.2) == 0  # narrow without labels: pinned
    assert more_labels_to_pin(0.5, 0, max_width=0.2) is None  # nothing to scale from
    assert more_labels_to_pin(float("nan"), 10, max_width=0.2) is None
    for width in (0.21, 0.3, 0.77, 1.0):
        for n in (1, 7, 40, 1000):
            more = more_labels_to_pin(width, n, max_width=0.2)
            assert more is not None and more >= 1
            # The promised labels narrow the interval to the threshold under the assumption.
            assert width * np.sqrt(n / (n + more)) <= 0.2 + 1e-12
