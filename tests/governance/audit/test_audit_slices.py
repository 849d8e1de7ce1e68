"""Tests of the SliceLine-style root-cause search."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from features.vocabulary import Entity
from governance.audit.population import build_populations
from governance.audit.ranking import posterior
from governance.audit.slices import SLICE_COLUMNS, audit_slices, bin_features, find_slices
from governance.evaluator import evaluate_condition
from governance.strategy import AllOf, Predicate
from tests.governance.audit.audit_world import World


def _planted(n: int = 20000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "category": pd.Series(rng.choice(list("abcdefgh"), n), dtype="str"),
            "tier": pd.Series(rng.choice(["none", "basic", "business"], n), dtype="str"),
            "price": rng.lognormal(3, 1, n),
            "official": rng.random(n) < 0.2,
        }
    )
    err = rng.random(n) * 0.1
    hot = (X["category"] == "c") & (X["tier"] == "none")
    err[hot.to_numpy()] = 0.3 + rng.random(int(hot.sum())) * 0.6
    return X, err


def test_finds_the_planted_slice_first_without_redundant_refinements() -> None:
    X, err = _planted()
    feats = bin_features(X, n_bins=5)
    found = find_slices(feats, err, max_level=3, min_support=30, top_k=5)
    top = {(feats[f].name, feats[f].labels[lv]) for f, lv in found[0].items}
    assert top == {("category", "category = c"), ("tier", "tier = none")}
    # No later slice is a mere refinement of the top one with the same error rate.
    for s in found[1:]:
        assert not set(found[0].items) < set(s.items)


def test_slice_predicates_select_exactly_the_slice_rows() -> None:
    X, err = _planted(n=5000)
    frame = X.assign(item_id=[f"i{i}" for i in range(len(X))])
    feats = bin_features(X, n_bins=4)
    for s in find_slices(feats, err, max_level=2, min_support=20, top_k=5):
        mask = np.ones(len(X), dtype=bool)
        preds = []
        for f, lv in s.items:
            mask &= feats[f].codes == lv
            preds.extend(feats[f].predicates[lv])
        cond = AllOf(all=tuple(Predicate.model_validate(p) for p in preds))
        assert (evaluate_condition(cond, frame) == mask).all()
        assert mask.sum() == s.size


def test_audit_slices_surface_the_irrelevant_clause(world: World) -> None:
    pops = build_populations(
        world.tables,
        world.strategies,
        world.predictions,
        items={Entity.LISTING: world.frame["item_id"]},
        flip_rate=world.flip_rate,
        design_frames={"random": "population", "strategy_flagged": "actioned"},
    )
    posts = {k: posterior(p, world.tables["audit_labels"]) for k, p in pops.items()}
    table = audit_slices(pops, {Entity.LISTING: world.frame}, posts, min_support=20)
    assert tuple(table.columns) == SLICE_COLUMNS
    bags_fp = table[(table["strategy"] == "cf-bags@v2") & (table["error_kind"] == "fp")]
    top3 = " | ".join(bags_fp.sort_values("rank").head(3)["description"])
    assert "seller_verification = none" in top3
    assert (table["lift"] > 1).all()
    terms_fn = table[(table["strategy"] == "cf-terms@v1") & (table["error_kind"] == "fn")]
    # cf-terms does not act in shop_ads: its misses concentrate there.
    assert terms_fn["description"].head(3).str.contains("channel = shop_ads").any()
    json.loads(table["predicates"].iloc[0])


def test_near_miss_slices_show_what_the_scope_just_leaves_out(world: World) -> None:
    pops = build_populations(
        world.tables,
        world.strategies,
        world.predictions,
        items={Entity.LISTING: world.frame["item_id"]},
        flip_rate=world.flip_rate,
        design_frames={"random": "population", "strategy_flagged": "actioned"},
    )
    posts = {k: posterior(p, world.tables["audit_labels"]) for k, p in pops.items()}
    table = audit_slices(
        pops,
        {Entity.LISTING: world.frame},
        posts,
        min_support=20,
        strategies={s.ref: s for s in world.strategies},
    )
    bags_fn = table[(table["strategy"] == "cf-bags@v2") & (table["error_kind"] == "fn")]
    near = bags_fn[bags_fn["description"].str.startswith("[near miss]")]
    assert len(near) > 0
    assert bags_fn["rank"].tolist() == list(range(1, len(bags_fn) + 1))
    # Near-miss and general slices alternate.
    assert bags_fn["description"].iloc[0].startswith("[near miss]")
    assert not bags_fn["description"].iloc[1].startswith("[near miss]")
