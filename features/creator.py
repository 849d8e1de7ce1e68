"""Creator features: profile and history of the affiliate behind a video or live session."""

from __future__ import annotations

import numpy as np

from features.columns import Columns, days_between
from features.schema import Feature, FeatureSet
from features.snapshot import TableInfo

CREATOR_VERSION = 1

CREATOR = FeatureSet(
    name="creator",
    entity="creator",
    join_key="creator_id",
    version=CREATOR_VERSION,
    description="The affiliate creator behind a video or live session: profile and history.",
    features=(
        Feature(
            "creator_follower_count",
            "numeric",
            "Creator's followers at the registration snapshot.",
            "accounts",
        ),
        Feature(
            "creator_tenure_days", "numeric", "Days since the creator account was created.", "days"
        ),
        Feature("creator_verified", "boolean", "The creator's identity is verified."),
        Feature("creator_region", "categorical", "Creator's home region code."),
        Feature(
            "creator_video_count_30d",
            "numeric",
            "Videos the creator posted in the 30 days before the cutoff.",
            "videos",
        ),
        Feature(
            "creator_live_count_30d",
            "numeric",
            "Live sessions the creator started in the 30 days before the cutoff.",
            "sessions",
        ),
        Feature(
            "creator_content_count_total",
            "numeric",
            "Videos and live sessions the creator published before the cutoff.",
            "items",
        ),
        Feature(
            "creator_enforcement_count_90d",
            "numeric",
            "Strategy decisions on the creator's videos and lives in the last 90 days.",
            "decisions",
        ),
        Feature(
            "creator_complaint_rate_90d",
            "numeric",
            "Complaints per order on the creator's content over 90 days (0 without orders).",
            "complaints/order",
        ),
        Feature(
            "creator_distinct_sellers_90d",
            "numeric",
            "Distinct sellers whose listings the creator promoted in the last 90 days.",
            "sellers",
        ),
        Feature(
            "creator_linked_counterfeit_share",
            "numeric",
            "Share of the creator's content linking a listing with a counterfeit lexicon term.",
            "share",
        ),
        Feature(
            "creator_impressions_30d",
            "numeric",
            "Impressions of the creator's videos and lives over the 30 days before the cutoff.",
            "views",
        ),
        Feature(
            "creator_like_rate_30d",
            "numeric",
            "Likes per impression on the creator's content over 30 days (empty without views).",
            "likes/view",
        ),
    ),
)

_COMPUTED = {"creator_tenure_days", "creator_verified", "creator_region", "creator_follower_count"}
_PASS_THROUGH = [f.name for f in CREATOR.features if f.name not in _COMPUTED]
_EMPTY_WHEN_UNKNOWN = {"creator_linked_counterfeit_share", "creator_like_rate_30d"}
#: Snapshot table layout: a creator missing from it has zero counts.
CREATORS_INFO = TableInfo(
    key=("creator_id",),
    zero_fill=frozenset(n for n in _PASS_THROUGH if n not in _EMPTY_WHEN_UNKNOWN),
)


def creator_columns(ctx: Columns, *, as_of: np.datetime64) -> Columns:
    """The creator set for the creators looked up as `creator.*` in `ctx`."""
    out: Columns = {
        "creator_follower_count": ctx["creator.follower_count"],
        "creator_tenure_days": days_between(as_of, ctx["creator.registered_at"]),
        "creator_verified": ctx["creator.verified"],
        "creator_region": ctx["creator.region"],
    }
    for name in _PASS_THROUGH:
        out[name] = ctx[f"creator.{name}"]
    return out


def content_sql() -> str:
    """SELECT of `content`: every video and live session with its creator and listing."""
    return """
SELECT 'video' AS entity, video_id AS item_id, creator_id, listing_id, created_at FROM videos
UNION ALL
SELECT 'live', live_id, creator_id, listing_id, started_at FROM live_sessions"""


def creators_sql(as_of: str) -> str:
    """SELECT of the creators snapshot table (reads content, exp_item, listing_items and the
    cut views)."""

    def since(column: str, days: int) -> str:
        return f"{column} >= {as_of} - INTERVAL {days} DAY"

    return f"""
WITH cc AS (
  SELECT ct.creator_id,
    count(*) FILTER (WHERE ct.entity = 'video' AND {since("ct.created_at", 30)}) AS videos_30d,
    count(*) FILTER (WHERE ct.entity = 'live' AND {since("ct.created_at", 30)}) AS lives_30d,
    count(*) AS content_total,
    count(DISTINCT li.seller_id) FILTER (WHERE {since("ct.created_at", 90)}) AS sellers_90d,
    count(*) FILTER (WHERE li.counterfeit_term_count > 0) AS n_counterfeit,
    count(li.listing_id) AS n_linked
  FROM content ct LEFT JOIN listing_items li ON li.listing_id = ct.listing_id
  GROUP BY ct.creator_id
), ce AS (
  SELECT ct.creator_id, sum(e.orders_90d) AS orders_90d, sum(e.impressions_30d) AS impressions_30d,
    sum(e.likes_30d) AS likes_30d
  FROM content ct JOIN exp_item e ON e.entity = ct.entity AND e.item_id = ct.item_id
  GROUP BY ct.creator_id
), cd AS (
  SELECT ct.creator_id, count(*) FILTER (WHERE {since("d.decided_at", 90)}) AS enforcement_90d
  FROM decisions d JOIN content ct ON ct.entity = d.entity AND ct.item_id = d.item_id
  GROUP BY ct.creator_id
), co AS (
  SELECT ct.creator_id,
    count(*) FILTER (WHERE o.kind = 'complaint' AND {since("o.occurred_at", 90)}) AS complaints_90d
  FROM outcomes o JOIN content ct ON ct.entity = o.entity AND ct.item_id = o.item_id
  GROUP BY ct.creator_id
)
SELECT c.creator_id, c.registered_at, c.region, CAST(c.follower_count AS DOUBLE) AS follower_count,
  c.verified,
  CAST(coalesce(cc.videos_30d, 0) AS DOUBLE) AS creator_video_count_30d,
  CAST(coalesce(cc.lives_30d, 0) AS DOUBLE) AS creator_live_count_30d,
  CAST(coalesce(cc.content_total, 0) AS DOUBLE) AS creator_content_count_total,
  CAST(coalesce(cd.enforcement_90d, 0) AS DOUBLE) AS creator_enforcement_count_90d,
  CASE WHEN coalesce(ce.orders_90d, 0) > 0
    THEN CAST(coalesce(co.complaints_90d, 0) AS DOUBLE) / ce.orders_90d ELSE 0.0 END
    AS creator_complaint_rate_90d,
  CAST(coalesce(cc.sellers_90d, 0) AS DOUBLE) AS creator_distinct_sellers_90d,
  CASE WHEN cc.n_linked > 0 THEN CAST(cc.n_counterfeit AS DOUBLE) / cc.n_linked END
    AS creator_linked_counterfeit_share,
  CAST(coalesce(ce.impressions_30d, 0) AS DOUBLE) AS creator_impressions_30d,
  CASE WHEN ce.impressions_30d > 0 THEN ce.likes_30d / ce.impressions_30d END
    AS creator_like_rate_30d
FROM creators c
LEFT JOIN cc ON cc.creator_id = c.creator_id
LEFT JOIN ce ON ce.creator_id = c.creator_id
LEFT JOIN cd ON cd.creator_id = c.creator_id
LEFT JOIN co ON co.creator_id = c.creator_id"""
