"""Tests of the audit population and the per strategy x channel metrics table."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from features.vocabulary import Entity, Policy
from governance.audit.metrics import METRIC_COLUMNS, strategy_metrics
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
