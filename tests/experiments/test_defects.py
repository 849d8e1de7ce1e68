"""The planted strategy defects really produce the false positives / negatives they claim."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from experiments.simulator import SimulationResult
from experiments.simulator.categories import NEW_CATEGORY
from experiments.simulator.policies import EMERGING_CATEGORIES
from features.catalog import feature_types
from features.vocabulary import Entity


@pytest.fixture(scope="module")
def listings(enforced: SimulationResult) -> pd.DataFrame:
    """Listings with their truth and world-level price signals."""
    items = enforced.ground_truth.items
    truth = items[items["entity"] == "listing"].drop(columns=["entity", "seller_id", "category"])
    df = enforced.tables["listings"].merge(
        truth, left_on="listing_id", right_on="item_id", suffixes=("", "_truth")
    )
    median = df.groupby("category")["price"].transform("median")
    return df.assign(ratio=df["price"] / median, depth=1 - df["price"] / df["list_price"])


def _hit(enforced: SimulationResult, strategy_id: str) -> set[str]:
    dec = enforced.tables["strategy_decisions"]
    return set(dec.loc[dec["strategy_id"] == strategy_id, "item_id"])


def _precision(df: pd.DataFrame, hit: set[str], mask: pd.Series, policy: str) -> float:
    chosen = df["listing_id"].isin(hit) & mask
    assert chosen.sum() >= 8, "too few decisions in the slice to measure"
    return float(df.loc[chosen, f"violates_{policy}"].mean())


def test_defects_are_listed_with_valid_slices(enforced: SimulationResult) -> None:
    defects = enforced.ground_truth.defects
    kinds = {d["kind"] for d in defects["planted"]}
    assert kinds >= {
        "irrelevant_clause",
        "threshold_too_low",
        "coverage_gap",
        "channel_bug",
        "stale_rule",
        "uncovered_category",
    }
    refs = {s.ref for s in enforced.strategies}
    for defect in defects["planted"] + defects["known_imperfections"]:
        assert defect["strategy"] is None or defect["strategy"] in refs, defect["id"]
        entity = Entity(defect["entity"])
        names = feature_types(entity)
        for predicate in defect["slice"]:
            assert predicate["feature"] in names, (defect["id"], predicate)
        if defect["kind"] != "natural_imperfection":
            assert defect["effect"] in ("fp", "fn")


def test_irrelevant_clause_concentrates_false_positives(
    enforced: SimulationResult, listings: pd.DataFrame
) -> None:
    hit = _hit(enforced, "listing-prohibited-items")
    in_slice = (listings["category"] == "outdoor_gear") & (listings["price"] < 45)
    inside = _precision(listings, hit, in_slice, "prohibited_item")
    outside = _precision(listings, hit, ~in_slice, "prohibited_item")
    assert inside < 0.2 and inside < 0.5 * outside, (inside, outside)


def test_threshold_too_low_flags_ordinary_discounts(
    enforced: SimulationResult, listings: pd.DataFrame
) -> None:
    hit = _hit(enforced, "campaign-deep-discount")
    in_slice = (listings["depth"] >= 0.35) & (listings["depth"] < 0.6)
    inside = _precision(listings, hit, in_slice, "fake_discount")
    above = _precision(listings, hit, listings["depth"] >= 0.6, "fake_discount")
    assert inside < 0.1 and above > 0.4, (inside, above)


def test_channel_bug_only_in_the_affiliate_copy(
    enforced: SimulationResult, listings: pd.DataFrame
) -> None:
    copy = _hit(enforced, "listing-counterfeit-terms-affiliate")
    main = _hit(enforced, "listing-counterfeit-terms")
    normal_price = listings["ratio"] >= 0.6
    bugged = _precision(listings, copy, normal_price, "counterfeit")
    reference = _precision(listings, main, listings["ratio"] > 0, "counterfeit")
    assert bugged < 0.5 * reference, (bugged, reference)
    dec = enforced.tables["strategy_decisions"]
    channels = set(dec.loc[dec["strategy_id"] == "listing-counterfeit-terms-affiliate", "channel"])
    assert channels == {"affiliate"}


def test_coverage_gap_misses_perfume_counterfeits(
    enforced: SimulationResult, listings: pd.DataFrame
) -> None:
    hit = listings["listing_id"].isin(_hit(enforced, "listing-counterfeit-shared-image"))
    fake = listings["violates_counterfeit"]
    perfume = fake & (listings["category"] == "perfume")
    bags = fake & listings["category"].isin(["bags", "watches", "sneakers"])
    assert perfume.sum() >= 20
    assert hit[perfume].mean() == 0.0
    assert hit[bags].mean() > 0.1


def test_stale_rule_misses_the_late_wording(
    enforced: SimulationResult, listings: pd.DataFrame
) -> None:
    cfg = enforced.config
    start = datetime.combine(cfg.start_date, datetime.min.time())
    late = listings["created_at"] >= start + pd.Timedelta(days=cfg.emerging_pattern_day)
    health = listings["category"].isin(EMERGING_CATEGORIES)
    claims = listings["violates_misleading_claim"] & health
    hit = listings["listing_id"].isin(_hit(enforced, "listing-health-claims"))
    early_recall = hit[claims & ~late].mean()
    late_recall = hit[claims & late].mean()
    assert (claims & late).sum() >= 15
    assert late_recall < 0.6 * early_recall, (early_recall, late_recall)
    assert (listings.loc[claims & late, "wording_misleading_claim"] == "novel").mean() > 0.4


def test_new_category_has_uncaught_counterfeits(
    enforced: SimulationResult, listings: pd.DataFrame
) -> None:
    policy = {s.id: s.policy.value for s in enforced.strategies}
    dec = enforced.tables["strategy_decisions"]
    counterfeit_hits = set(dec.loc[dec["strategy_id"].map(policy) == "counterfeit", "item_id"])
    new = listings["violates_counterfeit"] & (listings["category"] == NEW_CATEGORY)
    assert new.sum() >= 15
    assert not listings.loc[new, "listing_id"].isin(counterfeit_hits).any()
