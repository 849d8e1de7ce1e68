"""Tests of suggested strategy changes and their projections."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.vocabulary import Entity, StrategyStatus
from governance.audit.metrics import strategy_metrics
from governance.audit.ranking import posterior
from governance.audit.slices import audit_slices
from governance.audit.suggestions import (
    SUGGESTION_COLUMNS,
    _candidates,
    suggest,
    to_shadow_version,
)
from governance.evaluator import evaluate_condition
from governance.registry import StrategyRegistry
from governance.strategy import AnyOf, render_condition, strategy_from_dict
from tests.governance.audit.audit_world import World, world_populations


@pytest.fixture(scope="module")
def suggestions(world: World) -> tuple[pd.DataFrame, dict, pd.DataFrame]:  # type: ignore[type-arg]
    pops = world_populations(
        world, design_frames={"random": "population", "strategy_flagged": "actioned"}
    )
    posts = {k: posterior(p, world.tables["audit_labels"]) for k, p in pops.items()}
    frame = world.frame.assign(
        p_counterfeit=world.predictions.set_index("item_id")["p"]
        .reindex(world.frame["item_id"])
        .to_numpy()
    )
    frames = {Entity.LISTING: frame}
    slices = audit_slices(pops, frames, posts)
    table = suggest(
        pops, frames, slices, strategies=world.strategies, metrics=strategy_metrics(pops)
    )
    return table, pops, frame


def test_suggestions_follow_the_contract(suggestions) -> None:  # type: ignore[no-untyped-def]
    table, _, _ = suggestions
    assert tuple(table.columns) == SUGGESTION_COLUMNS
    assert table["rank"].tolist() == list(range(1, len(table) + 1))
    assert table["suggestion_id"].is_unique
    assert (table["delta_fp_low"] <= table["delta_fp"]).all()
    assert (table["delta_fn"] <= table["delta_fn_high"]).all()
    assert {"score_gate", "add_predicate", "new_strategy"} <= set(table["kind"])
    new = table[table["kind"] == "new_strategy"]
    assert new["base_version"].isna().all()


def test_changes_with_identical_effects_are_listed_once(  # type: ignore[no-untyped-def]
    suggestions, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from governance.audit import suggestions as module

    table, pops, frame = suggestions
    real = module._candidates

    def twice(*args, **kwargs):  # type: ignore[no-untyped-def]
        found = real(*args, **kwargs)
        return found + [
            replace(
                c,
                summary=c.summary + " (same effect)",
                strategy=c.strategy.model_copy(update={"notes": "worded differently"}),
            )
            for c in found
        ]

    monkeypatch.setattr(module, "_candidates", twice)
    again = suggest(
        pops,
        {Entity.LISTING: frame},
        audit_slices(
            pops,
            {Entity.LISTING: frame},
            {k: posterior(p, world.tables["audit_labels"]) for k, p in pops.items()},
        ),
        strategies=world.strategies,
        metrics=strategy_metrics(pops),
    )
    assert len(again) and not again["summary"].str.endswith("(same effect)").any()


def test_projection_matches_the_truth_of_the_change(  # type: ignore[no-untyped-def]
    suggestions, world: World
) -> None:
    table, pops, frame = suggestions
    row = table[table["strategy_id"] == "cf-bags"].iloc[0]
    proposed = to_shadow_version(row)
    base = next(s for s in world.strategies if s.id == "cf-bags")
    truth = world.truth.set_index("item_id")["violating"].reindex(frame["item_id"]).to_numpy()
    n0 = evaluate_condition(base.condition, frame)
    n1 = evaluate_condition(proposed.condition, frame)
    ch0, ch1 = len(base.channels), len(proposed.channels)
    true_dfp = (n1 & ~truth).sum() * ch1 - (n0 & ~truth).sum() * ch0
    true_dfn = -((n1 & truth).sum() * ch1 - (n0 & truth).sum() * ch0)
    width = row["delta_fp_high"] - row["delta_fp_low"]
    assert abs(row["delta_fp"] - true_dfp) <= width
    assert abs(row["delta_fn"] - true_dfn) <= row["delta_fn_high"] - row["delta_fn_low"]


def test_shadow_version_is_a_child_of_its_base(suggestions, tmp_path) -> None:  # type: ignore[no-untyped-def]
    table, _, _ = suggestions
    row = table[table["strategy_id"] == "cf-bags"].iloc[0]
    strategy = to_shadow_version(row, directory=str(tmp_path))
    assert strategy.status == StrategyStatus.SHADOW
    assert strategy.parent == "cf-bags@v2" and strategy.version == 3
    reg = StrategyRegistry.from_directory(tmp_path)
    assert reg.get("cf-bags@v3") == strategy
    assert np.isfinite(row["delta_impressions"])


def test_decisions_are_projected_from_actual_ones_and_match_rates(world: World) -> None:
    from governance.audit.suggestions import _decision_rates, _MaskOverTime

    pops = world_populations(
        world, design_frames={"random": "population", "strategy_flagged": "actioned"}
    )
    key = next(iter(pops))
    pop = pops[key]
    masks = {key: _MaskOverTime([world.frame, world.frame], pop.item_ids)}
    by_ref = {s.ref: s for s in world.strategies}
    rates = _decision_rates(pops, masks, by_ref)[Entity.LISTING]
    # Units matched in every snapshot were (nearly) all decided; unmatched ones (nearly) never.
    assert rates.shape == (3,)
    assert rates[2] > 0.9 and rates[0] < 0.1
    table = suggest(
        pops,
        {Entity.LISTING: world.frame},
        pd.DataFrame(columns=["strategy"]),
        strategies=world.strategies,
        only_beneficial=False,
        max_per_strategy=1_000,
    )
    # Dropping a channel removes exactly the strategy's actual decisions in it.
    drop = table[table["summary"] == "stop acting in shop_ads"].iloc[0]
    actual = pop.actioned["cf-bags@v2"][:, pop.channel_index("shop_ads")].sum()
    assert drop["delta_fp"] + (-drop["delta_fn"]) == pytest.approx(-actual)


def _fn_slice(description: str, predicates: list[dict[str, object]]) -> dict[str, object]:
    return {
        "strategy": "shop-fakes@v1",
        "error_kind": "fn",
        "rank": 1,
        "description": description,
        "predicates": json.dumps(predicates),
    }


def test_fn_slices_suggest_widening_a_category_list_and_a_gated_branch_where_hits_decayed() -> None:
    base = strategy_from_dict(
        {
            "id": "shop-fakes",
            "version": 1,
            "name": "Cheap branded goods",
            "owner": "t&s",
            "description": "Branded bags and watches far below their price.",
            "entity": "listing",
            "policy": "counterfeit",
            "channels": ["shop_tab"],
            "action": "block",
            "status": "active",
            "condition": {
                "all": [
                    {"feature": "category", "op": "in", "value": ["bags", "watches"]},
                    {"feature": "price", "op": "<", "value": 10},
                ]
            },
        },
        source="test",
    )
    frame = pd.DataFrame(
        {
            "item_id": ["a", "b", "c"],
            "category": pd.Series(["bags", "perfume", "watches"], dtype="str"),
            "price": [5.0, 6.0, 50.0],
            "age_days": [3.0, 30.0, 9.0],
            "p_counterfeit": [0.9, 0.8, 0.1],
        }
    )
    slices = pd.DataFrame(
        [
            _fn_slice(
                "[near miss] fails only category in [bags, watches]: category = perfume",
                [
                    {"feature": "price", "op": "<", "value": 10},
                    {"feature": "category", "op": "==", "value": "perfume"},
                ],
            ),
            _fn_slice(
                "[decay] 70% fewer hits than the 50 expected on items created in the last 14 "
                "days: category in [bags, watches] AND age_days < 14",
                [
                    {"feature": "category", "op": "in", "value": ["bags", "watches"]},
                    {"feature": "age_days", "op": "<", "value": 14.0},
                ],
            ),
        ]
    )
    cands = _candidates(base, frame, slices, version=2)
    wider = [c for c in cands if c.kind == "threshold" and "add perfume" in c.summary]
    assert len(wider) == 1
    hits = evaluate_condition(wider[0].strategy.condition, frame)
    assert hits.tolist() == [True, True, False]  # perfume under $10 now caught
    gated = [c for c in cands if c.kind == "score_gate" and "decayed" in c.summary]
    assert len(gated) == 5  # one per gate level
    for c in gated:
        assert isinstance(c.strategy.condition, AnyOf)
        assert c.strategy.condition.any[0] == base.condition
        rendered = render_condition(c.strategy.condition)
        assert "age_days" not in rendered and "p_counterfeit >=" in rendered
    # Everything the base caught is still caught; the gate adds the risky bags listing.
    loose = next(c for c in gated if "p_counterfeit >= 0.1`" in c.summary)
    assert evaluate_condition(loose.strategy.condition, frame).tolist() == [True, False, True]
