"""Closed vocabularies of monitoring: grains, slice dimensions, seller tiers, alert kinds."""

from __future__ import annotations

from enum import StrEnum


class Grain(StrEnum):
    """Length of the period one trust-metric row covers."""

    DAY = "day"
    WEEK = "week"


class Dimension(StrEnum):
    """What a trust-metric row is sliced by within its channel (`none`: the whole channel)."""

    NONE = "none"
    CATEGORY = "category"
    SELLER_TIER = "seller_tier"


class SellerTier(StrEnum):
    """Seller tier: official brand store, else the identity verification level."""

    OFFICIAL = "official"
    BUSINESS = "business"
    BASIC = "basic"
    NONE = "none"


class TrustMetric(StrEnum):
    """Trust metrics a channel objective can be set on (columns of `trust_metrics`)."""

    COMPLAINTS_PER_1K_ORDERS = "complaints_per_1k_orders"
    RETURNS_PER_1K_ORDERS = "returns_per_1k_orders"
    REFUND_PER_GMV = "refund_per_gmv"
    LOW_STAR_SHARE = "low_star_share"


class AlertKind(StrEnum):
    """What an alert is about."""

    BURN_RATE = "burn_rate"
    TRUST_SHIFT = "trust_shift"
    TRUST_CUSUM = "trust_cusum"
    STRATEGY_DECAY = "strategy_decay"
    STRATEGY_SURGE = "strategy_surge"
    STRATEGY_OVERTURN = "strategy_overturn"
    FEATURE_DRIFT = "feature_drift"
    PREDICTION_DRIFT = "prediction_drift"


class Severity(StrEnum):
    """How urgent an alert is; maps onto escalation priorities of the review service."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


#: The pseudo-value of a slice column on a row that is not sliced by it.
ALL = "all"
