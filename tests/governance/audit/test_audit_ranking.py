"""Tests of the ranked likely false positives / negatives and the audit slice rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.vocabulary import Entity, Policy
from governance.audit.ranking import FLAG_COLUMNS, rank_flags, reasons_from_frame
from governance.audit.sampling import audit_sample
from tests.governance.audit.audit_world import World, world_populations


def _pops(w: World):  # type: ignore[no-untyped-def]
    return world_populations(w)


def test_flags_follow_the_contract_and_beat_the_base_rates(world: World) -> None:
    pops = _pops(world)
    labels = world.tables["audit_labels"]
    sample = audit_sample(pops, size=100, seed=0)
    flags = rank_flags(pops, labels=labels, list_size=50, audit_slice=sample)
    assert tuple(flags.columns) == FLAG_COLUMNS
    assert str(flags["channel"].dtype) == "str" and flags["priority"].dtype == np.float64
    kinds = flags["kind"].value_counts()
    assert kinds["likely_false_positive"] == 50 and kinds["likely_false_negative"] == 50
    assert kinds["random_audit"] == len(sample)
    audit = flags[flags["kind"] == "random_audit"]
    assert audit["inclusion_probability"].between(0, 1, inclusive="right").all()
    ranked = flags[flags["kind"] != "random_audit"]
    assert (ranked["inclusion_probability"] == 1.0).all()  # take-all stratum
    # Sorted by priority within each list; already-reviewed items are left out.
    # Each list keeps an expected precision (0.98 FP, 0.5 FN) on every prefix of its likely
    # block (FP units each at P(honest) >= 0.95), then follows with the most probable errors.
    for kind, floor in (("likely_false_positive", 0.98), ("likely_false_negative", 0.5)):
        p_err = ranked.loc[ranked["kind"] == kind, "p_error"].to_numpy()
        running = np.cumsum(p_err) / np.arange(1, len(p_err) + 1)
        short = running < floor - 1e-9
        block = int(np.argmax(short)) if short.any() else len(p_err)
        assert block >= 1
        if kind == "likely_false_positive":
            assert (p_err[:block] >= 0.95).all()
        assert (np.diff(p_err[block:]) <= 1e-12).all()
    assert not ranked["item_id"].isin(labels["item_id"]).any()

    truth = world.truth.set_index("item_id")["violating"]
    pop = pops[(Entity.LISTING, Policy.COUNTERFEIT)]
    act = pop.any_actioned.any(axis=1)
    y = truth.reindex(pop.item_ids).to_numpy()
    fp = flags[flags["kind"] == "likely_false_positive"]
    fn = flags[flags["kind"] == "likely_false_negative"]
    fp_precision = (~truth.reindex(fp["item_id"]).to_numpy()).mean()
    fn_precision = truth.reindex(fn["item_id"]).to_numpy().mean()
    assert fp_precision > 1.3 * (~y[act]).mean()
    assert fn_precision > 2 * y[~act].mean()
    assert set(fp["strategies"].str.split(",").explode()) <= {"cf-terms@v1", "cf-bags@v2"}


def test_reasons_come_from_a_precomputed_frame(world: World) -> None:
    pops = _pops(world)
    reasons = pd.DataFrame(
        {
            "entity": "listing",
            "item_id": world.frame["item_id"],
            "policy": "counterfeit",
            "reasons": json.dumps(
                [{"feature": "x", "description": "d", "value": 1, "contribution": 0.5}]
            ),
        }
    )
    flags = rank_flags(pops, list_size=5, reasons=reasons_from_frame(reasons))
    parsed = [json.loads(r) for r in flags["reasons"]]
    assert all(p and p[0]["feature"] == "x" for p in parsed)


def test_fn_list_trades_certainty_for_exposure_under_a_precision_floor() -> None:
    from governance.audit.ranking import _likely_prefix

    # Sorted by priority: a much-seen unit at 0.2 comes first, then sure ones.
    p = np.array([0.2, 0.9, 0.9, 0.1, 0.6])
    order = _likely_prefix(p, 5, min_probability=0.0, min_precision=0.5)
    assert order[0] == 1  # 0.2 alone would break the floor
    means = np.cumsum(p[order]) / np.arange(1, len(order) + 1)
    assert (means >= 0.5 - 1e-12).all()
    assert 0 in order  # admitted once sure units give slack
    assert _likely_prefix(p, 5, min_probability=0.95, min_precision=0.0) == []


@pytest.mark.parametrize("seed", range(6))
def test_lists_from_the_rankable_candidates_equal_the_lists_from_all(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Millions of un-actioned units never become frames: `rankable` keeps the few that can
    reach a list, and `_top` over them is the list over all (ties, blocks and thresholds)."""
    from governance.audit import ranking

    rng = np.random.default_rng(seed)
    monkeypatch.setattr(ranking, "_RANK_BLOCK", int(rng.integers(3, 40)))
    n_units, n = int(rng.integers(50, 400)), int(rng.integers(1, 30))
    # Coarse values: many ties on probability, on priority and on both.
    p_err = np.round(rng.beta(0.6, 1.5, n_units), 1)
    priority = p_err * rng.choice([1.0, 2.0, 50.0], n_units)
    frame = pd.DataFrame(
        {
            "entity": "listing",
            "policy": "counterfeit",
            "item_id": [f"i{k:04d}" for k in rng.permutation(n_units)],
            "priority": priority,
            "p_error": p_err,
        }
    )
    for min_probability, min_precision in ((0.0, 0.5), (0.7, 0.9), (0.0, 0.0)):
        keep = ranking.rankable(priority, p_err, n, min_probability)
        assert len(keep) < n_units or n_units <= 3 * n
        args = {"min_probability": min_probability, "min_precision": min_precision}
        full = ranking._top([frame], n, **args)
        kept = ranking._top([frame.iloc[keep]], n, **args)
        pd.testing.assert_frame_equal(kept, full)


def test_rankable_keeps_a_tie_split_across_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Units tied on priority and probability are ordered by item id, not position: a block
    must not count the tied units of the blocks before it as ahead of its own."""
    from governance.audit import ranking

    monkeypatch.setattr(ranking, "_RANK_BLOCK", 3)
    # Seven tied units (the last sorts first by item id), then a surer, less exposed one that
    # alone tops the rest of the list.
    p_err = np.array([0.9] * 7 + [1.0])
    priority = np.array([0.9] * 7 + [0.5])
    frame = pd.DataFrame(
        {
            "entity": "listing",
            "policy": "counterfeit",
            "item_id": [f"i{k}" for k in range(7, 0, -1)] + ["j"],
            "priority": priority,
            "p_error": p_err,
        }
    )
    keep = ranking.rankable(priority, p_err, 1, 0.5)
    assert 6 in keep
    top = ranking._top([frame.iloc[keep]], 1, min_probability=0.5, min_precision=0.5)
    assert top["item_id"].tolist() == ["i1"]


def test_domain_calibration_fixes_a_population_calibration_that_misses_the_actioned(
    world: World,
) -> None:
    from dataclasses import replace

    from governance.audit.ranking import domain_calibrated

    pop = _pops(world)[(Entity.LISTING, Policy.COUNTERFEIT)]
    # A model that says 1% for everything actioned, however often it really violates.
    act = pop.any_actioned.any(axis=1)
    p_model = np.where(act, 0.01, pop.p_model)
    d = replace(pop.draws, p_label=np.where(act[pop.draws.position], 0.01, pop.draws.f_label))
    bent = replace(pop, p_model=p_model, f=p_model, draws=d)
    truth = world.truth.set_index("item_id")["violating"].reindex(pop.item_ids).to_numpy()
    units, at_labels = domain_calibrated(bent)
    assert at_labels.shape == (len(d),)
    assert abs(units[act].mean() - truth[act].mean()) < 0.1
    assert units[act].mean() > 5 * 0.01
