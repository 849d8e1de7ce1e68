"""The starter strategy set: valid, feature names from the shared list, all channels covered."""

from __future__ import annotations

from experiments.simulator.strategy_set import active, starter_strategies
from features.vocabulary import Channel, StrategyStatus
from governance.evaluator import check_strategy
from governance.registry import StrategyRegistry, catalog_feature_types

#: Feature names every feature build provides (the shared list in the project brief).
_BRIEF_FEATURES = {
    "listing_category",
    "listing_price",
    "listing_price_to_category_median",
    "listing_discount_depth",
    "listing_counterfeit_term_count",
    "listing_claim_term_count",
    "listing_prohibited_term_count",
    "listing_has_brand",
    "listing_age_days",
    "listing_image_shared_sellers",
    "seller_tenure_days",
    "seller_verification",
    "seller_is_official_store",
    "seller_complaint_rate_30d",
    "seller_return_rate_30d",
    "seller_appeal_count_90d",
    "seller_enforcement_count_90d",
    "seller_listing_count_30d",
    "exposure_impressions_7d",
    "strategy_hit_count",
    "video_claim_term_count",
    "video_counterfeit_term_count",
    "video_views_per_follower",
    "video_like_rate",
    "video_comment_rate",
    "video_share_rate",
    "video_view_spike_ratio",
    "video_age_days",
    "creator_follower_count",
    "creator_tenure_days",
    "creator_verified",
    "live_claim_term_count",
    "live_counterfeit_term_count",
    "live_viewers_per_follower",
    "live_like_rate",
    "live_comment_rate",
    "live_duration_minutes",
    "seller_listing_count_total",
    "seller_share_high_risk_categories",
}


def test_starter_set_is_valid_and_covers_every_channel() -> None:
    strategies = starter_strategies()
    registry = StrategyRegistry(strategies)
    acting = active(strategies)
    assert len(acting) >= 15
    assert {c for s in acting for c in s.channels} == set(Channel)
    assert any(s.status == StrategyStatus.RETIRED for s in strategies)
    assert any(s.status == StrategyStatus.SHADOW for s in strategies)
    types = catalog_feature_types()
    for strategy in registry:
        assert check_strategy(strategy, types[strategy.entity], include_scores=False) == []
        for feature in strategy.features:
            base = feature.removeprefix("linked_")
            assert (
                feature in _BRIEF_FEATURES
                or base in _BRIEF_FEATURES
                or (base.startswith("listing_") and base in _BRIEF_FEATURES)
            ), (strategy.ref, feature)
