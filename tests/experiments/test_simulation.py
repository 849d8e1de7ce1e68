"""Whole simulations: contract, truth kept apart, enforcement, appeals, labels, invariance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.simulator import SimulationResult, simulate, write_simulation
from experiments.simulator.policies import ENTITY_POLICIES
from features.contract import find_problems, find_reference_problems
from features.loader import load_tables
from features.tables import TABLES
from features.vocabulary import Entity, Policy
from tests.experiments.worlds import tiny_config

_STATIC = ("sellers", "creators", "listings", "videos", "live_sessions")


def test_every_table_conforms_and_round_trips(enforced: SimulationResult, tmp_path: Path) -> None:
    for name, df in enforced.tables.items():
        assert find_problems(name, df) == [], name
        assert len(df) > 0, name
    assert find_reference_problems(enforced.tables) == []
    write_simulation(enforced, tmp_path)
    loaded = load_tables(tmp_path / "data")
    for name, df in enforced.tables.items():
        pd.testing.assert_frame_equal(loaded[name], df[TABLES[name].column_names], obj=name)


def test_ground_truth_never_enters_the_contract_tables(
    enforced: SimulationResult, tmp_path: Path
) -> None:
    for name, df in enforced.tables.items():
        assert list(df.columns) == TABLES[name].column_names, name
    hidden = set(enforced.ground_truth.items.columns) | set(enforced.ground_truth.sellers.columns)
    hidden -= {"entity", "item_id", "seller_id", "created_at", "category"}
    assert any(c.startswith("violates_") for c in hidden)
    contract_columns = {c for spec in TABLES.values() for c in spec.column_names}
    assert hidden.isdisjoint(contract_columns)
    paths = write_simulation(enforced, tmp_path)
    data = [p for p in paths if (tmp_path / "data") in p.parents]
    truth = [p for p in paths if (tmp_path / "ground_truth") in p.parents]
    assert data and truth and len(data) + len(truth) == len(paths)
    for path in data:
        if path.suffix == ".parquet":
            assert set(pd.read_parquet(path).columns) <= contract_columns, path
    assert {p.name for p in truth} >= {
        "items.parquet",
        "sellers.parquet",
        "defects.yaml",
        "config.json",
        "labels.parquet",
    }


def test_blocked_items_get_no_exposure_in_the_blocked_channel(enforced: SimulationResult) -> None:
    dec = enforced.tables["strategy_decisions"]
    blocks = dec[dec["action"] == "block"]
    assert len(blocks) > 100
    exposure = enforced.tables["channel_exposure"]
    merged = exposure.merge(blocks, on=["entity", "item_id", "channel"])
    active = (merged["day"] >= merged["decided_at"]) & (
        merged["lifted_at"].isna() | (merged["lifted_at"] > merged["day"])
    )
    assert not active.any(), merged.loc[active].head()
    before = merged["day"] < merged["decided_at"]
    assert before.any()  # the first (partial) day is unconstrained


def test_lifted_decisions_follow_upheld_appeals(enforced: SimulationResult) -> None:
    dec = enforced.tables["strategy_decisions"]
    lifted = dec[dec["lifted_at"].notna()]
    assert len(lifted) > 20
    assert (lifted["lifted_at"] > lifted["decided_at"]).all()
    policy = {s.id: s.policy.value for s in enforced.strategies}
    lifted = lifted.assign(policy=lifted["strategy_id"].map(policy))
    labels = enforced.tables["audit_labels"]
    appeals = labels[labels["sampling"] == "appeal"]
    joined = lifted.merge(appeals, on=["entity", "item_id", "policy"], how="left")
    assert joined["verdict"].eq("not_violating").all()
    assert (joined["reviewed_at"] == joined["lifted_at"]).all()
    outcomes = enforced.tables["outcomes"]
    appealed = outcomes.loc[outcomes["kind"] == "appeal", ["entity", "item_id"]]
    keys = set(map(tuple, appealed.to_numpy()))
    assert all((e, i) in keys for e, i in lifted[["entity", "item_id"]].to_numpy())


def test_outcomes_follow_the_truth(enforced: SimulationResult) -> None:
    items = enforced.ground_truth.items
    listings = items[items["entity"] == "listing"].set_index("item_id")
    bad = listings[[f"violates_{p.value}" for p in ENTITY_POLICIES[Entity.LISTING]]].any(axis=1)
    exposure = enforced.tables["channel_exposure"]
    orders = exposure[exposure["entity"] == "listing"].groupby("item_id")["orders"].sum()
    outcomes = enforced.tables["outcomes"]
    complaints = outcomes[(outcomes["kind"] == "complaint") & (outcomes["entity"] == "listing")]
    per_item = complaints.groupby("item_id").size().reindex(orders.index, fill_value=0)
    flag = bad.reindex(orders.index)
    rate_bad = per_item[flag].sum() / orders[flag].sum()
    rate_ok = per_item[~flag].sum() / orders[~flag].sum()
    assert rate_bad > 3 * rate_ok
    ratings = outcomes[(outcomes["kind"] == "review") & (outcomes["entity"] == "listing")]
    mean = ratings.groupby(bad.reindex(ratings["item_id"]).to_numpy())["value"].mean()
    assert mean[True] < mean[False] - 0.8
    nps = outcomes[outcomes["kind"] == "nps"]
    assert nps["value"].between(0, 10).all() and nps["channel"].notna().all()


def test_audit_labels_have_exact_inclusion_probabilities(enforced: SimulationResult) -> None:
    labels = enforced.tables["audit_labels"]
    truth = enforced.ground_truth.labels.set_index("label_id")
    assert set(labels["sampling"]) == {"appeal", "strategy_flagged", "random"}
    assert (labels.loc[labels["sampling"] == "appeal", "inclusion_probability"] == 1.0).all()

    # random audit: n / N of every entity's items, each labelled on every relevant policy
    rnd = labels[labels["sampling"] == "random"]
    sizes = {
        "listing": len(enforced.tables["listings"]),
        "video": len(enforced.tables["videos"]),
        "live": len(enforced.tables["live_sessions"]),
        "seller": len(enforced.tables["sellers"]),
    }
    for entity, group in rnd.groupby("entity"):
        n = group["item_id"].nunique()
        assert np.allclose(group["inclusion_probability"], n / sizes[str(entity)])
        per_item = group.groupby("item_id")["policy"].apply(frozenset)
        wanted = frozenset(p.value for p in ENTITY_POLICIES[Entity(str(entity))])
        assert (per_item == wanted).all()

    # strategy-flagged: n_h / N_h of the (item, policy) pairs each strategy actioned first
    dec = enforced.tables["strategy_decisions"]
    policy = {s.ref: s.policy.value for s in enforced.strategies}
    dec = dec.assign(ref=dec["strategy_id"] + "@v" + dec["strategy_version"].astype(str))
    dec = dec.assign(policy=dec["ref"].map(policy))
    first = dec.sort_values(["decided_at", "ref"]).drop_duplicates(["entity", "item_id", "policy"])
    pool = first.groupby("ref").size()
    flagged = labels[labels["sampling"] == "strategy_flagged"]
    strata = truth.loc[flagged["label_id"], "stratum"].to_numpy()
    for ref, group in flagged.groupby(strata):
        expected = len(group) / pool[ref]
        assert np.allclose(group["inclusion_probability"], expected), ref
    assert len(flagged) + len(rnd) <= enforced.config.label_budget


def test_reviewer_noise_is_within_bounds(enforced: SimulationResult) -> None:
    labels = enforced.tables["audit_labels"].set_index("label_id")
    truth = enforced.ground_truth.labels.set_index("label_id")
    noise = enforced.ground_truth.reviewer_noise
    assert (noise >= 0.03).all() and (noise <= 0.05).all()
    violating = labels["verdict"] == "violating"
    assert (violating != truth.loc[labels.index, "true_violating"]).eq(truth["flipped"]).all()
    flipped = truth["flipped"].mean()
    assert 0.01 < flipped < 0.08, flipped


def test_world_and_truth_do_not_depend_on_strategies(
    enforced: SimulationResult, unenforced: SimulationResult
) -> None:
    for name in _STATIC:
        pd.testing.assert_frame_equal(enforced.tables[name], unenforced.tables[name], obj=name)
    pd.testing.assert_frame_equal(enforced.ground_truth.items, unenforced.ground_truth.items)
    assert len(unenforced.tables["strategy_decisions"]) == 0
    rnd = [
        r.tables["audit_labels"]
        .query("sampling == 'random'")
        .drop(columns="label_id")
        .reset_index(drop=True)
        for r in (enforced, unenforced)
    ]
    pd.testing.assert_frame_equal(rnd[0], rnd[1])
    shown = [r.tables["channel_exposure"]["impressions"].sum() for r in (enforced, unenforced)]
    assert shown[0] < shown[1]


def test_same_seed_same_parquet_other_seed_other_world(tmp_path: Path) -> None:
    config = tiny_config(
        n_listings=500, days=7, label_budget=200, full_evaluation_every_days=3, fresh_item_days=2
    )
    other = tiny_config(n_listings=500, days=7, label_budget=200, seed=8)
    paths = []
    for run, cfg, strategies in (("a", config, None), ("b", config, None), ("c", other, [])):
        out = tmp_path / run
        write_simulation(simulate(cfg, strategies=strategies), out)
        paths.append(out)
    for sub in ("data/tables", "ground_truth"):
        for file in sorted((paths[0] / sub).glob("*.parquet")):
            a = pd.read_parquet(file)
            b = pd.read_parquet(paths[1] / sub / file.name)
            pd.testing.assert_frame_equal(a, b, obj=file.name)
    assert (paths[0] / "ground_truth/defects.yaml").read_text() == (
        paths[1] / "ground_truth/defects.yaml"
    ).read_text()
    a = pd.read_parquet(paths[0] / "data/tables/listings.parquet")
    c = pd.read_parquet(paths[2] / "data/tables/listings.parquet")
    assert not a["title"].equals(c["title"])
    decisions = pd.read_parquet(paths[0] / "data/tables/strategy_decisions.parquet")
    assert len(decisions) > 0
    runs = pd.read_parquet(paths[0] / "ground_truth/enforcement_runs.parquet")
    assert runs["full"].tolist() == [True, False, False, True, False, False]
    evaluated = runs["n_evaluated"].tolist()
    assert evaluated[5] < evaluated[3]  # night 6 sees only young items, night 4 all


@pytest.mark.parametrize("policy", list(Policy))
def test_every_policy_has_violations_and_labels(enforced: SimulationResult, policy: Policy) -> None:
    items = enforced.ground_truth.items
    assert items[f"violates_{policy.value}"].sum() > 20
    labels = enforced.tables["audit_labels"]
    assert (labels["policy"] == policy.value).sum() >= 5
