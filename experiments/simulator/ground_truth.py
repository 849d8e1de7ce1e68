"""The hidden truth of a simulated marketplace, kept apart from the contract tables.

`items`: one row per listing, video, live session and seller with the true violation per
policy (`violates_<policy>`), its probability (`p_<policy>`) and the hidden factors behind
it. `sellers`: the latent seller traits. `defects`: every planted strategy defect (and the
known natural imperfections), with the slice that concentrates it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from experiments.simulator.categories import LISTING_POLICIES, NEW_CATEGORY
from experiments.simulator.exposure import ENTITY_CODES
from experiments.simulator.policies import EMERGING_CATEGORIES, ENTITY_POLICIES
from experiments.simulator.text import Wording
from experiments.simulator.world import World
from features.vocabulary import Entity, Policy

_WORDING = np.asarray([w.name.lower() for w in Wording], dtype=object)


def items_frame(world: World) -> pd.DataFrame:
    """Truth and hidden factors of every item of every entity."""
    parts = [_entity_frame(world, e) for e in ENTITY_CODES]
    return pd.concat(parts, ignore_index=True)


def _entity_frame(world: World, entity: Entity) -> pd.DataFrame:
    items = world.items(entity)
    h = items.hidden
    sh = world.sellers.hidden
    n = items.n
    seller_ids = world.sellers.table["seller_id"].to_numpy(dtype=object)
    df: dict[str, Any] = {
        "entity": pd.Series([entity.value] * n, dtype="str"),
        "item_id": pd.Series(items.table.iloc[:, 0].to_numpy(dtype=object), dtype="str"),
        "seller_id": pd.Series(seller_ids[items.seller_idx], dtype="str"),
        "created_at": items.created_us.astype("datetime64[us]"),
    }
    relevant = set(ENTITY_POLICIES[entity])
    for j, policy in enumerate(Policy):
        df[f"violates_{policy.value}"] = items.violates[:, j]
        df[f"p_{policy.value}"] = np.where(policy in relevant, items.p[:, j], np.nan)
    df["relevant_policies"] = pd.Series(
        [",".join(p.value for p in ENTITY_POLICIES[entity])] * n, dtype="str"
    )
    df["seller_is_bad_actor"] = sh["is_bad_actor"][items.seller_idx]
    df["seller_propensity"] = sh["propensity"][items.seller_idx]
    nan = np.full(n, np.nan)
    none = pd.array([None] * n, dtype="boolean")
    blank = pd.Series([None] * n, dtype="str")
    if entity is Entity.LISTING:
        scheme = h["scheme"]
        for j, policy in enumerate(LISTING_POLICIES):
            df[f"scheme_{policy.value}"] = pd.array(scheme[:, j], dtype="boolean")
        df["scheme_engagement_fraud"] = none
        df["category"] = pd.Series(world.listings.table["category"].to_numpy(), dtype="str")
        df["wording_counterfeit"] = pd.Series(_WORDING[h["wording_counterfeit"]], dtype="str")
        df["wording_misleading_claim"] = pd.Series(
            _WORDING[h["wording_misleading_claim"]], dtype="str"
        )
        df["wording_prohibited_item"] = pd.Series(
            _WORDING[h["wording_prohibited_item"]], dtype="str"
        )
        df["emerging_pattern"] = pd.array(h["emerging_pattern"], dtype="boolean")
        df["new_category"] = pd.array(h["new_category"], dtype="boolean")
        df["honest_lexicon_phrase"] = pd.array(h["honest_lexicon_phrase"], dtype="boolean")
        df["price_ratio_latent"] = h["price_ratio_true"]
        df["discount_depth"] = h["discount_depth"]
        df["appeal"] = h["appeal"]
        df["linked_listing_id"] = blank
        df["creator_fraud_prone"] = none
    elif entity in (Entity.VIDEO, Entity.LIVE):
        scheme = h["scheme"]
        for policy in LISTING_POLICIES:
            df[f"scheme_{policy.value}"] = none
        df["scheme_counterfeit"] = pd.array(scheme[:, 0], dtype="boolean")
        df["scheme_misleading_claim"] = pd.array(scheme[:, 1], dtype="boolean")
        df["scheme_engagement_fraud"] = pd.array(scheme[:, 2], dtype="boolean")
        df["category"] = pd.Series(
            world.listings.table["category"].to_numpy()[h["listing_idx"]], dtype="str"
        )
        df["wording_counterfeit"] = pd.Series(_WORDING[h["wording_counterfeit"]], dtype="str")
        df["wording_misleading_claim"] = pd.Series(
            _WORDING[h["wording_misleading_claim"]], dtype="str"
        )
        df["wording_prohibited_item"] = blank
        df["emerging_pattern"] = pd.array(h["emerging_pattern"], dtype="boolean")
        df["new_category"] = pd.array(h["new_category"], dtype="boolean")
        df["honest_lexicon_phrase"] = none
        df["price_ratio_latent"] = nan
        df["discount_depth"] = nan
        df["appeal"] = h["reach"]
        df["linked_listing_id"] = pd.Series(
            world.listings.table["listing_id"].to_numpy()[h["listing_idx"]], dtype="str"
        )
        df["creator_fraud_prone"] = pd.array(
            world.creator_hidden["fraud_prone"][h["creator_idx"]], dtype="boolean"
        )
    else:
        for policy in Policy:
            df[f"scheme_{policy.value}"] = none
        for col in (
            "category",
            "wording_counterfeit",
            "wording_misleading_claim",
            "wording_prohibited_item",
            "linked_listing_id",
        ):
            df[col] = blank
        for col in (
            "emerging_pattern",
            "new_category",
            "honest_lexicon_phrase",
            "creator_fraud_prone",
        ):
            df[col] = none
        df["price_ratio_latent"] = nan
        df["discount_depth"] = nan
        df["appeal"] = nan
    return pd.DataFrame(df)


def sellers_frame(world: World) -> pd.DataFrame:
    """Latent seller traits: bad-actor flag, propensity, quality, specialties."""
    s = world.sellers
    h = s.hidden
    df: dict[str, Any] = {
        "seller_id": s.table["seller_id"],
        "is_bad_actor": h["is_bad_actor"],
        "propensity": h["propensity"],
        "quality": h["quality"],
        "ads_buyer": h["ads_buyer"],
        "activity": h["activity"],
        "listing_count": np.bincount(world.listings.seller_idx, minlength=s.n),
    }
    for j, policy in enumerate(LISTING_POLICIES):
        df[f"specialty_{policy.value}"] = h["specialty"][:, j]
    return pd.DataFrame(df)


def _p(feature: str, op: str, value: Any) -> dict[str, Any]:
    return {"feature": feature, "op": op, "value": value}


def defects(world: World) -> dict[str, Any]:
    """The planted defects and the known natural imperfections, as YAML-ready data."""
    cfg = world.config
    launch = cfg.start + timedelta(days=cfg.new_category_launch_day)
    emerging = cfg.start + timedelta(days=cfg.emerging_pattern_day)
    planted = [
        _irrelevant_clause(),
        _threshold_too_low(),
        _coverage_gap(),
        _channel_bug(),
        _stale_rule(emerging),
        _stale_rule_video(emerging),
        _uncovered_category(launch),
    ]
    return {"planted": planted, "known_imperfections": _imperfections()}


def _listing_channels() -> list[str]:
    # A new list per defect: YAML would write a shared one as an anchor and aliases.
    return ["shop_tab", "campaigns", "shop_ads", "affiliate"]


def _irrelevant_clause() -> dict[str, Any]:
    return {
        "id": "irrelevant-clause",
        "strategy": "listing-prohibited-items@v2",
        "kind": "irrelevant_clause",
        "entity": "listing",
        "policy": "prohibited_item",
        "channels": _listing_channels(),
        "effect": "fp",
        "clause": "condition.any[1]",
        "slice": [_p("listing_category", "==", "outdoor_gear"), _p("listing_price", "<", 45)],
        "description": (
            "The `any` branch added during a knife crackdown blocks every outdoor_gear "
            "listing under $45, almost all of them honest."
        ),
        "fix": "drop_predicate: remove condition.any[1]",
    }


def _threshold_too_low() -> dict[str, Any]:
    return {
        "id": "threshold-too-low",
        "strategy": "campaign-deep-discount@v1",
        "kind": "threshold_too_low",
        "entity": "listing",
        "policy": "fake_discount",
        "channels": ["campaigns"],
        "effect": "fp",
        "slice": [
            _p("listing_discount_depth", ">=", 0.35),
            _p("listing_discount_depth", "<", 0.6),
        ],
        "description": (
            "A 35% discount threshold limits ordinary clearance and seasonal discounts; "
            "inflated strike-through prices sit at 60-85%."
        ),
        "fix": "threshold: listing_discount_depth >= 0.6",
    }


def _coverage_gap() -> dict[str, Any]:
    return {
        "id": "coverage-gap",
        "strategy": "listing-counterfeit-shared-image@v1",
        "kind": "coverage_gap",
        "entity": "listing",
        "policy": "counterfeit",
        "channels": _listing_channels(),
        "effect": "fn",
        "slice": [_p("listing_category", "==", "perfume")],
        "description": (
            "Counterfeit rings reuse stock images in perfume (the category with the most "
            "counterfeit listings) too, but the rule only lists bags, watches and sneakers."
        ),
        "fix": "add_predicate: add perfume (and eyewear, jewelry) to the category list",
    }


def _channel_bug() -> dict[str, Any]:
    return {
        "id": "channel-bug",
        "strategy": "listing-counterfeit-terms-affiliate@v1",
        "kind": "channel_bug",
        "entity": "listing",
        "policy": "counterfeit",
        "channels": ["affiliate"],
        "effect": "fp",
        "slice": [_p("listing_price_to_category_median", ">=", 0.6)],
        "description": (
            "The affiliate copy of listing-counterfeit-terms@v3 has 6.0 instead of 0.6 as "
            "its price threshold, so it blocks normally priced branded listings whose "
            "text merely mentions AAA batteries or 'inspired by'."
        ),
        "fix": "threshold: listing_price_to_category_median < 0.6",
    }


def _stale_rule(emerging: datetime) -> dict[str, Any]:
    return {
        "id": "stale-rule",
        "strategy": "listing-health-claims@v2",
        "kind": "stale_rule",
        "entity": "listing",
        "policy": "misleading_claim",
        "channels": _listing_channels(),
        "effect": "fn",
        "period": {"from": emerging.isoformat()},
        "slice": [
            _p("listing_category", "in", list(EMERGING_CATEGORIES)),
            _p("listing_claim_term_count", "==", 0),
        ],
        "description": (
            "From the emerging date, weight-loss sellers switch to new wording (GLP-1 "
            "effect, ozempic-like, metabolic reset) that no lexicon term matches; the "
            "rule's recall on misleading claims in these categories collapses."
        ),
        "fix": "score_gate / add_predicate: catch the new wording with a model-score gate",
    }


def _stale_rule_video(emerging: datetime) -> dict[str, Any]:
    return {
        "id": "stale-rule-video",
        "strategy": "video-health-claims@v1",
        "kind": "stale_rule",
        "entity": "video",
        "policy": "misleading_claim",
        "channels": ["video", "affiliate"],
        "effect": "fn",
        "period": {"from": emerging.isoformat()},
        "slice": [
            _p("linked_listing_category", "in", list(EMERGING_CATEGORIES)),
            _p("video_claim_term_count", "==", 0),
        ],
        "description": "The same late claim wording in video captions escapes the video rule.",
        "fix": "score_gate: add an any-branch on p_misleading_claim",
    }


def _uncovered_category(launch: datetime) -> dict[str, Any]:
    return {
        "id": "uncovered-category",
        "strategy": None,
        "kind": "uncovered_category",
        "entity": "listing",
        "policy": "counterfeit",
        "channels": _listing_channels(),
        "effect": "fn",
        "period": {"from": launch.isoformat()},
        "slice": [_p("listing_category", "==", NEW_CATEGORY)],
        "description": (
            f"{NEW_CATEGORY} opens mid-period with a high counterfeit rate (proxy cards, "
            "custom reprints) described in words no lexicon or strategy covers."
        ),
        "fix": "new_strategy: counterfeit rule scoped to the new category",
    }


def _imperfections() -> list[dict[str, Any]]:
    return [
        {
            "id": "honest-lexicon-terms",
            "strategy": "listing-prohibited-items@v2",
            "kind": "natural_imperfection",
            "entity": "listing",
            "policy": "prohibited_item",
            "effect": "fp",
            "slice": [_p("listing_category", "in", ["eyewear", "smoking_accessories"])],
            "description": "'prescription lenses', 'nicotine-free': lexicon hits on honest goods.",
        },
        {
            "id": "viral-videos",
            "strategy": "video-view-spike@v2",
            "kind": "natural_imperfection",
            "entity": "video",
            "policy": "engagement_fraud",
            "effect": "fp",
            "slice": [_p("video_like_rate", ">=", 0.03)],
            "description": "Honest viral videos spike like bought views but keep their likes.",
        },
        {
            "id": "obfuscated-wording",
            "strategy": "listing-counterfeit-terms@v3",
            "kind": "natural_imperfection",
            "entity": "listing",
            "policy": "counterfeit",
            "effect": "fn",
            "slice": [_p("listing_counterfeit_term_count", "==", 0)],
            "description": "Counterfeiters write 'rep', '1to1', 'mirror-grade': no lexicon hit.",
        },
    ]
