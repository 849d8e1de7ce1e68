"""Seller features: profile, rolling trust rates, enforcement history and listing portfolio.

Rates over orders use the orders of every item the seller owns (listings, and videos and lives
linked to them) and are 0 when there were no orders. Means of non-integer values are summed in
fixed point so the result does not depend on row order or thread count.
"""

from __future__ import annotations

import numpy as np

from features.columns import Columns, days_between
from features.schema import Feature, FeatureSet
from features.snapshot import TableInfo

SELLER_VERSION = 1
_WINDOWS = (7, 30, 90)


def _rate_features() -> list[Feature]:
    out = []
    for what, unit in (
        ("complaint", "complaints/order"),
        ("return", "returns/order"),
        ("refund", "refunds/order"),
    ):
        for days in _WINDOWS:
            out.append(
                Feature(
                    f"seller_{what}_rate_{days}d",
                    "numeric",
                    f"{what.capitalize()}s per order on the seller's items over the {days} days "
                    "before the cutoff (0 without orders).",
                    unit,
                )
            )
    for days in _WINDOWS:
        out.append(
            Feature(
                f"seller_appeal_rate_{days}d",
                "numeric",
                f"Seller appeals per enforcement decision over the {days} days before the cutoff "
                "(0 without decisions).",
                "appeals/decision",
            )
        )
    return out


SELLER = FeatureSet(
    name="seller",
    entity="seller",
    join_key="seller_id",
    version=SELLER_VERSION,
    description="The seller behind an item: profile, trust outcomes, enforcement and portfolio.",
    features=(
        Feature(
            "seller_tenure_days", "numeric", "Days since the seller account was created.", "days"
        ),
        Feature("seller_verification", "categorical", "Identity verification level of the seller."),
        Feature(
            "seller_is_official_store", "boolean", "The seller is a brand-operated official store."
        ),
        Feature("seller_region", "categorical", "Seller's home region code."),
        *_rate_features(),
        Feature(
            "seller_appeal_count_90d",
            "numeric",
            "Appeals the seller filed in the 90 days before the cutoff.",
            "appeals",
        ),
        *(
            Feature(
                f"seller_enforcement_count_{days}d",
                "numeric",
                f"Strategy decisions on the seller's items in the {days} days before the cutoff.",
                "decisions",
            )
            for days in _WINDOWS
        ),
        Feature(
            "seller_enforcement_lifted_share_90d",
            "numeric",
            "Share of the last 90 days' decisions on the seller's items lifted on appeal "
            "(empty without decisions).",
            "share",
        ),
        Feature(
            "seller_active_hit_count",
            "numeric",
            "Strategy decisions in force on the seller's items at the cutoff.",
            "decisions",
        ),
        Feature(
            "seller_orders_30d",
            "numeric",
            "Orders on the seller's items over the 30 days before the cutoff.",
            "orders",
        ),
        Feature(
            "seller_gmv_30d",
            "numeric",
            "Gross merchandise value of the seller's items over the 30 days before the cutoff.",
            "USD",
        ),
        Feature(
            "seller_rating_mean_90d",
            "numeric",
            "Mean review rating of the seller's items over 90 days (empty without reviews).",
            "stars (1-5)",
        ),
        Feature(
            "seller_rating_trend",
            "numeric",
            "Mean rating of the last 30 days minus that of the 60 days before them "
            "(negative = worsening; empty when either window has no review).",
            "stars",
            signed=True,
        ),
        Feature(
            "seller_review_count_90d",
            "numeric",
            "Reviews of the seller's items in the 90 days before the cutoff.",
            "reviews",
        ),
        Feature(
            "seller_nps_mean_90d",
            "numeric",
            "Mean NPS answer about the seller's items over 90 days (empty without answers).",
            "score (0-10)",
        ),
        *(
            Feature(
                f"seller_listing_count_{days}d",
                "numeric",
                f"Listings the seller published in the {days} days before the cutoff.",
                "listings",
            )
            for days in (7, 30)
        ),
        Feature(
            "seller_listing_count_total",
            "numeric",
            "Listings the seller published before the cutoff.",
            "listings",
        ),
        Feature(
            "seller_category_count",
            "numeric",
            "Distinct categories the seller lists in.",
            "categories",
        ),
        Feature(
            "seller_share_high_risk_categories",
            "numeric",
            "Share of the seller's listings in high-risk categories (risk prior above 1.5x the "
            "marketplace rate).",
            "share",
        ),
        Feature(
            "seller_gmv_share_high_risk_categories_90d",
            "numeric",
            "Share of the seller's 90-day GMV from high-risk categories (empty without GMV).",
            "share",
        ),
        Feature(
            "seller_discount_depth_mean",
            "numeric",
            "Mean discount depth of the seller's listings.",
            "share",
        ),
        Feature(
            "seller_price_to_category_median_median",
            "numeric",
            "Median over the seller's listings of price / category median price.",
            "ratio",
        ),
        Feature(
            "seller_counterfeit_listing_share",
            "numeric",
            "Share of the seller's listings whose text has a counterfeit lexicon term.",
            "share",
        ),
        Feature(
            "seller_claim_listing_share",
            "numeric",
            "Share of the seller's listings whose text has a misleading-claim lexicon term.",
            "share",
        ),
        Feature(
            "seller_prohibited_listing_share",
            "numeric",
            "Share of the seller's listings whose text has a prohibited-item lexicon term.",
            "share",
        ),
        Feature(
            "seller_image_shared_listing_share",
            "numeric",
            "Share of the seller's listings whose image cluster other sellers also use.",
            "share",
        ),
        Feature(
            "seller_cross_border_share",
            "numeric",
            "Share of the seller's listings shipping from outside the seller's region.",
            "share",
        ),
        Feature(
            "seller_creator_count_90d",
            "numeric",
            "Distinct creators who promoted the seller's listings in the last 90 days.",
            "creators",
        ),
    ),
)

#: Profile columns of the sellers snapshot table (the rest are features).
PROFILE = ("registered_at", "region", "verification", "is_official_store")
_PASS_THROUGH = [
    f.name
    for f in SELLER.features
    if f.name
    not in {
        "seller_tenure_days",
        "seller_verification",
        "seller_is_official_store",
        "seller_region",
    }
]
_EMPTY_WHEN_UNKNOWN = frozenset(
    {
        "seller_enforcement_lifted_share_90d",
        "seller_rating_mean_90d",
        "seller_rating_trend",
        "seller_nps_mean_90d",
        "seller_share_high_risk_categories",
        "seller_gmv_share_high_risk_categories_90d",
        "seller_discount_depth_mean",
        "seller_price_to_category_median_median",
        "seller_counterfeit_listing_share",
        "seller_claim_listing_share",
        "seller_prohibited_listing_share",
        "seller_image_shared_listing_share",
        "seller_cross_border_share",
    }
)
#: Snapshot table layout: a seller missing from it has zero counts and rates.
SELLERS_INFO = TableInfo(
    key=("seller_id",),
    zero_fill=frozenset(n for n in _PASS_THROUGH if n not in _EMPTY_WHEN_UNKNOWN),
)


def seller_columns(ctx: Columns, *, as_of: np.datetime64) -> Columns:
    """The seller set for the sellers looked up as `seller.*` in `ctx`."""
    out: Columns = {
        "seller_tenure_days": days_between(as_of, ctx["seller.registered_at"]),
        "seller_verification": ctx["seller.verification"],
        "seller_is_official_store": ctx["seller.is_official_store"],
        "seller_region": ctx["seller.region"],
    }
    for name in _PASS_THROUGH:
        out[name] = ctx[f"seller.{name}"]
    return out


def _div(num: str, den: str, *, when_zero: str) -> str:
    return f"CASE WHEN {den} > 0 THEN {num} / {den} ELSE {when_zero} END"


def _c(expr: str) -> str:
    return f"coalesce({expr}, 0)"


def sellers_sql(as_of: str) -> str:
    """SELECT of the sellers snapshot table (reads seller_profiles, item_seller, exp_item,
    snap_categories, listing_items, content and the cut views)."""
    ctes = ", ".join(
        [
            _ORDERS_CTE,
            _outcomes_cte(as_of),
            _decisions_cte(as_of),
            _listings_cte(as_of),
            _creators_cte(as_of),
        ]
    )
    body = ",\n  ".join(
        [
            "p.seller_id",
            "p.registered_at",
            "p.region",
            "p.verification",
            "p.is_official_store",
            *_trust_columns(),
            *_portfolio_columns(),
        ]
    )
    return f"""
WITH {ctes}
SELECT
  {body}
FROM seller_profiles p
LEFT JOIN ord ON ord.seller_id = p.seller_id
LEFT JOIN oc ON oc.seller_id = p.seller_id
LEFT JOIN dc ON dc.seller_id = p.seller_id
LEFT JOIN li ON li.seller_id = p.seller_id
LEFT JOIN cr ON cr.seller_id = p.seller_id"""


def _since(as_of: str, column: str, days: int) -> str:
    return f"{column} >= {as_of} - INTERVAL {days} DAY"


#: Orders and GMV per seller over its items' exposure rows.
_ORDERS_CTE = """ord AS (
  SELECT s.seller_id,
    sum(e.orders_7d) AS orders_7d, sum(e.orders_30d) AS orders_30d,
    sum(e.orders_90d) AS orders_90d, sum(e.gmv_cents_30d) AS gmv_cents_30d,
    sum(e.gmv_cents_90d) AS gmv_cents_90d,
    coalesce(sum(e.gmv_cents_90d) FILTER (WHERE c.is_high_risk), 0) AS gmv_cents_90d_high
  FROM item_seller s
  JOIN exp_item e ON e.entity = s.entity AND e.item_id = s.item_id
  LEFT JOIN snap_categories c ON c.category = s.category
  GROUP BY s.seller_id
)"""


def _outcomes_cte(as_of: str) -> str:
    """Outcome counts per window and fixed-point rating and NPS sums per seller."""
    outcome_counts = []
    for kind in ("complaint", "return", "refund", "appeal"):
        for days in _WINDOWS:
            outcome_counts.append(
                f"count(*) FILTER (WHERE kind = '{kind}' AND "
                f"{_since(as_of, 'occurred_at', days)}) AS {kind}_{days}d"
            )
    recent = f"kind = 'review' AND value IS NOT NULL AND {_since(as_of, 'occurred_at', 30)}"
    earlier = (
        f"kind = 'review' AND value IS NOT NULL AND {_since(as_of, 'occurred_at', 90)} "
        f"AND NOT ({_since(as_of, 'occurred_at', 30)})"
    )
    all90 = f"kind = 'review' AND value IS NOT NULL AND {_since(as_of, 'occurred_at', 90)}"
    nps = f"kind = 'nps' AND value IS NOT NULL AND {_since(as_of, 'occurred_at', 90)}"

    def milli(where: str) -> str:
        return f"sum(CAST(round(value * 1000) AS BIGINT)) FILTER (WHERE {where})"

    return f"""oc AS (
  SELECT seller_id,
    {", ".join(outcome_counts)},
    {milli(recent)} AS r30_milli, count(*) FILTER (WHERE {recent}) AS r30_n,
    {milli(earlier)} AS rprev_milli, count(*) FILTER (WHERE {earlier}) AS rprev_n,
    {milli(all90)} AS r90_milli, count(*) FILTER (WHERE {all90}) AS r90_n,
    {milli(nps)} AS nps_milli, count(*) FILTER (WHERE {nps}) AS nps_n
  FROM outcomes
  GROUP BY seller_id
)"""


def _decisions_cte(as_of: str) -> str:
    """Enforcement decisions on the seller's items: per window, lifted and still active."""
    decided = {days: _since(as_of, "d.decided_at", days) for days in _WINDOWS}
    return f"""dc AS (
  SELECT s.seller_id,
    count(*) FILTER (WHERE {decided[7]}) AS enf_7d,
    count(*) FILTER (WHERE {decided[30]}) AS enf_30d,
    count(*) FILTER (WHERE {decided[90]}) AS enf_90d,
    count(*) FILTER (WHERE {decided[90]} AND d.lifted_at < {as_of}) AS lifted_90d,
    count(*) FILTER (WHERE d.lifted_at IS NULL OR d.lifted_at >= {as_of}) AS active
  FROM decisions d
  JOIN item_seller s ON s.entity = d.entity AND s.item_id = d.item_id
  GROUP BY s.seller_id
)"""


def _listings_cte(as_of: str) -> str:
    """The seller's listing portfolio: counts, categories, prices and risk signals."""
    return f"""li AS (
  SELECT li.seller_id,
    count(*) AS n_total,
    count(*) FILTER (WHERE {_since(as_of, "li.created_at", 7)}) AS n7,
    count(*) FILTER (WHERE {_since(as_of, "li.created_at", 30)}) AS n30,
    count(DISTINCT li.category) AS n_categories,
    count(*) FILTER (WHERE c.is_high_risk) AS n_high,
    sum(CAST(round(li.discount_depth * 1000000) AS BIGINT)) AS discount_micro,
    median(li.price_to_category_median) AS price_ratio_median,
    count(*) FILTER (WHERE li.counterfeit_term_count > 0) AS n_counterfeit,
    count(*) FILTER (WHERE li.claim_term_count > 0) AS n_claim,
    count(*) FILTER (WHERE li.prohibited_term_count > 0) AS n_prohibited,
    count(*) FILTER (WHERE li.image_shared_sellers > 0) AS n_image_shared,
    count(*) FILTER (WHERE li.ships_cross_border) AS n_cross_border
  FROM listing_items li
  LEFT JOIN snap_categories c ON c.category = li.category
  GROUP BY li.seller_id
)"""


def _creators_cte(as_of: str) -> str:
    """Distinct creators promoting the seller's listings in the last 90 days."""
    return f"""cr AS (
  SELECT l.seller_id, count(DISTINCT ct.creator_id) AS creators_90d
  FROM content ct JOIN listings l ON l.listing_id = ct.listing_id
  WHERE {_since(as_of, "ct.created_at", 90)}
  GROUP BY l.seller_id
)"""


def _trust_columns() -> list[str]:
    """Outcome and appeal rates, enforcement, orders, GMV, ratings and NPS."""
    rates = []
    for kind in ("complaint", "return", "refund"):
        for days in _WINDOWS:
            rates.append(
                _div(
                    f"{_c(f'oc.{kind}_{days}d')}::DOUBLE",
                    f"{_c(f'ord.orders_{days}d')}::DOUBLE",
                    when_zero="0.0",
                )
                + f" AS seller_{kind}_rate_{days}d"
            )
    for days in _WINDOWS:
        rates.append(
            _div(
                f"{_c(f'oc.appeal_{days}d')}::DOUBLE",
                f"{_c(f'dc.enf_{days}d')}::DOUBLE",
                when_zero="0.0",
            )
            + f" AS seller_appeal_rate_{days}d"
        )
    enforcement = [
        f"{_c(f'dc.enf_{days}d')}::DOUBLE AS seller_enforcement_count_{days}d" for days in _WINDOWS
    ]
    return [
        *rates,
        f"{_c('oc.appeal_90d')}::DOUBLE AS seller_appeal_count_90d",
        *enforcement,
        _div("dc.lifted_90d::DOUBLE", "dc.enf_90d::DOUBLE", when_zero="NULL")
        + " AS seller_enforcement_lifted_share_90d",
        f"{_c('dc.active')}::DOUBLE AS seller_active_hit_count",
        f"{_c('ord.orders_30d')}::DOUBLE AS seller_orders_30d",
        f"{_c('ord.gmv_cents_30d')}::DOUBLE / 100.0 AS seller_gmv_30d",
        _div("oc.r90_milli::DOUBLE", "oc.r90_n::DOUBLE", when_zero="NULL")
        + " / 1000.0 AS seller_rating_mean_90d",
        "("
        + _div("oc.r30_milli::DOUBLE", "oc.r30_n::DOUBLE", when_zero="NULL")
        + " - "
        + _div("oc.rprev_milli::DOUBLE", "oc.rprev_n::DOUBLE", when_zero="NULL")
        + ") / 1000.0 AS seller_rating_trend",
        f"{_c('oc.r90_n')}::DOUBLE AS seller_review_count_90d",
        _div("oc.nps_milli::DOUBLE", "oc.nps_n::DOUBLE", when_zero="NULL")
        + " / 1000.0 AS seller_nps_mean_90d",
    ]


def _portfolio_columns() -> list[str]:
    """Listing counts and shares, prices, and the creators promoting the seller."""

    def share(count: str, name: str) -> str:
        return _div(f"li.{count}::DOUBLE", "li.n_total::DOUBLE", when_zero="NULL") + f" AS {name}"

    return [
        f"{_c('li.n7')}::DOUBLE AS seller_listing_count_7d",
        f"{_c('li.n30')}::DOUBLE AS seller_listing_count_30d",
        f"{_c('li.n_total')}::DOUBLE AS seller_listing_count_total",
        f"{_c('li.n_categories')}::DOUBLE AS seller_category_count",
        share("n_high", "seller_share_high_risk_categories"),
        _div("ord.gmv_cents_90d_high::DOUBLE", "ord.gmv_cents_90d::DOUBLE", when_zero="NULL")
        + " AS seller_gmv_share_high_risk_categories_90d",
        _div("li.discount_micro::DOUBLE", "li.n_total::DOUBLE", when_zero="NULL")
        + " / 1000000.0 AS seller_discount_depth_mean",
        "li.price_ratio_median AS seller_price_to_category_median_median",
        share("n_counterfeit", "seller_counterfeit_listing_share"),
        share("n_claim", "seller_claim_listing_share"),
        share("n_prohibited", "seller_prohibited_listing_share"),
        share("n_image_shared", "seller_image_shared_listing_share"),
        share("n_cross_border", "seller_cross_border_share"),
        f"{_c('cr.creators_90d')}::DOUBLE AS seller_creator_count_90d",
    ]
