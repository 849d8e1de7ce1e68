"""The catalogue: every name strategies and the simulator rely on exists with its meaning."""

from __future__ import annotations

import pytest

from features.catalog import (
    FRAMES,
    all_feature_names,
    describe,
    feature_descriptions,
    feature_names,
    feature_set_versions,
    feature_types,
)
from features.vocabulary import ENTITY_CHANNELS, Entity

# Names the brief fixes (the simulator's strategies and the audit reference them).
REQUIRED = {
    Entity.LISTING: {
        "listing_category": "categorical",
        "listing_price": "numeric",
        "listing_price_to_category_median": "numeric",
        "listing_discount_depth": "numeric",
        "listing_counterfeit_term_count": "numeric",
        "listing_claim_term_count": "numeric",
        "listing_prohibited_term_count": "numeric",
        "listing_has_brand": "boolean",
        "listing_age_days": "numeric",
        "listing_image_shared_sellers": "numeric",
        "seller_tenure_days": "numeric",
        "seller_verification": "categorical",
        "seller_is_official_store": "boolean",
        "seller_complaint_rate_30d": "numeric",
        "seller_return_rate_30d": "numeric",
        "seller_appeal_count_90d": "numeric",
        "seller_enforcement_count_90d": "numeric",
        "seller_listing_count_30d": "numeric",
        "exposure_impressions_7d": "numeric",
        "strategy_hit_count": "numeric",
    },
    Entity.VIDEO: {
        "video_claim_term_count": "numeric",
        "video_counterfeit_term_count": "numeric",
        "video_views_per_follower": "numeric",
        "video_like_rate": "numeric",
        "video_comment_rate": "numeric",
        "video_share_rate": "numeric",
        "video_view_spike_ratio": "numeric",
        "video_age_days": "numeric",
        "creator_follower_count": "numeric",
        "creator_tenure_days": "numeric",
        "creator_verified": "boolean",
        "linked_listing_counterfeit_term_count": "numeric",
        "linked_listing_price_to_category_median": "numeric",
        "linked_listing_category": "categorical",
        "seller_tenure_days": "numeric",
    },
    Entity.LIVE: {
        "live_claim_term_count": "numeric",
        "live_counterfeit_term_count": "numeric",
        "live_viewers_per_follower": "numeric",
        "live_like_rate": "numeric",
        "live_comment_rate": "numeric",
        "live_duration_minutes": "numeric",
        "creator_verified": "boolean",
        "linked_listing_category": "categorical",
        "seller_complaint_rate_30d": "numeric",
    },
    Entity.SELLER: {
        "seller_tenure_days": "numeric",
        "seller_listing_count_total": "numeric",
        "seller_share_high_risk_categories": "numeric",
        "seller_complaint_rate_30d": "numeric",
    },
}


@pytest.mark.parametrize("entity", list(Entity))
def test_required_names_exist_with_their_kinds(entity: Entity) -> None:
    types = feature_types(entity)
    for name, kind in REQUIRED[entity].items():
        assert types.get(name) == kind, name


def test_rolling_windows_exposure_and_hits_per_channel() -> None:
    names = set(feature_names(Entity.LISTING))
    for what in ("complaint", "return", "refund", "appeal"):
        for days in (7, 30, 90):
            assert f"seller_{what}_rate_{days}d" in names
    for entity in (Entity.LISTING, Entity.VIDEO, Entity.LIVE):
        names = set(feature_names(entity))
        for channel in ENTITY_CHANNELS[entity]:
            assert f"exposure_impressions_7d_{channel.value}" in names
            assert f"strategy_hit_count_{channel.value}" in names


def test_at_least_sixty_features_and_unique_columns_per_frame() -> None:
    assert len(all_feature_names()) >= 60
    for entity in Entity:
        names = feature_names(entity)
        assert len(names) == len(set(names))
        assert "item_id" not in names


def test_descriptions_units_and_versions() -> None:
    descriptions = feature_descriptions(Entity.LISTING)
    assert descriptions["listing_price"].endswith("[USD]")
    assert describe(Entity.VIDEO, "linked_listing_price").description.startswith("Linked listing:")
    versions = feature_set_versions()
    assert {"listing", "seller", "creator", "video", "live", "listing_activity"} <= set(versions)
    assert all(v >= 1 for v in versions.values())
    assert set(FRAMES) == set(Entity)
    with pytest.raises(KeyError, match="no feature"):
        describe(Entity.LISTING, "nope")
