"""Video features: claim text in the caption and engagement anomalies over the video's life."""

from __future__ import annotations

import numpy as np

from features.columns import Columns, days_between, ratio
from features.schema import Feature, FeatureSet
from features.text import encode, text_signals

VIDEO_VERSION = 1
#: Dense text columns of the caption.
VIDEO_TEXT_DIMS = 4


def engagement_features(entity: str, viewers: str) -> tuple[Feature, ...]:
    """Engagement features of a video or live session (named `{entity}_...`)."""
    return (
        Feature(
            f"{entity}_impressions_total",
            "numeric",
            f"Impressions of the {viewers} over its life before the cutoff, all channels.",
            "views",
        ),
        Feature(
            f"{entity}_{'views' if entity == 'video' else 'viewers'}_per_follower",
            "numeric",
            f"Lifetime impressions of the {viewers} / (creator followers + 1).",
            "views/follower",
        ),
        Feature(
            f"{entity}_like_rate",
            "numeric",
            "Likes per impression over its life (empty without impressions).",
            "likes/view",
        ),
        Feature(
            f"{entity}_comment_rate",
            "numeric",
            "Comments per impression over its life (empty without impressions).",
            "comments/view",
        ),
        Feature(
            f"{entity}_share_rate",
            "numeric",
            "Shares per impression over its life (empty without impressions).",
            "shares/view",
        ),
        Feature(
            f"{entity}_click_rate",
            "numeric",
            "Clicks per impression over its life (empty without impressions).",
            "clicks/view",
        ),
        Feature(
            f"{entity}_view_spike_ratio",
            "numeric",
            "Highest daily impressions / mean daily impressions over the days it was shown "
            "(empty when never shown).",
            "ratio",
        ),
        Feature(
            f"{entity}_active_days",
            "numeric",
            "Days with recorded impressions before the cutoff.",
            "days",
        ),
    )


def text_features(entity: str, field: str, dims: int) -> tuple[Feature, ...]:
    """Lexicon, length and hashed-text features of one text field (named `{entity}_...`)."""
    return (
        Feature(
            f"{entity}_counterfeit_term_count",
            "numeric",
            f"Counterfeit lexicon hits in the {field}.",
            "hits",
        ),
        Feature(
            f"{entity}_claim_term_count",
            "numeric",
            f"Misleading-claim lexicon hits in the {field}.",
            "hits",
        ),
        Feature(
            f"{entity}_prohibited_term_count",
            "numeric",
            f"Prohibited-item lexicon hits in the {field}.",
            "hits",
        ),
        Feature(
            f"{entity}_text_length",
            "numeric",
            f"Characters in the normalised {field}.",
            "characters",
        ),
        *(
            Feature(
                f"{entity}_text_hash_{k}",
                "numeric",
                f"Dense text signal {k} of the {field} (same hashing pipeline as listings).",
            )
            for k in range(dims)
        ),
    )


VIDEO = FeatureSet(
    name="video",
    entity="video",
    join_key="video_id",
    version=VIDEO_VERSION,
    description="The shoppable video itself: caption claims, length, age and engagement.",
    features=(
        *text_features("video", "caption and transcript", VIDEO_TEXT_DIMS),
        Feature("video_duration_seconds", "numeric", "Length of the video.", "s"),
        Feature("video_age_days", "numeric", "Days since the video was posted.", "days"),
        *engagement_features("video", "video"),
    ),
)


def engagement_columns(ctx: Columns, entity: str) -> Columns:
    """Engagement ratios from `activity.*` totals and `creator.follower_count`."""
    impressions = ctx["activity.impressions_total"]
    days = ctx["activity.active_days"]
    mean_daily = ratio(impressions, days, when_zero=np.nan)
    per_follower = "views" if entity == "video" else "viewers"
    return {
        f"{entity}_impressions_total": impressions,
        f"{entity}_{per_follower}_per_follower": impressions
        / (ctx["creator.follower_count"] + 1.0),
        f"{entity}_like_rate": ratio(ctx["activity.likes_total"], impressions, when_zero=np.nan),
        f"{entity}_comment_rate": ratio(
            ctx["activity.comments_total"], impressions, when_zero=np.nan
        ),
        f"{entity}_share_rate": ratio(ctx["activity.shares_total"], impressions, when_zero=np.nan),
        f"{entity}_click_rate": ratio(ctx["activity.clicks_total"], impressions, when_zero=np.nan),
        f"{entity}_view_spike_ratio": ratio(
            ctx["activity.max_daily_impressions"], mean_daily, when_zero=np.nan
        ),
        f"{entity}_active_days": days,
    }


def video_columns(ctx: Columns, *, as_of: np.datetime64) -> Columns:
    """The video set from raw video columns plus `activity.*` and `creator.*` context."""
    out = text_signals(encode(ctx["caption"]), prefix="video", n_dims=VIDEO_TEXT_DIMS)
    out["video_duration_seconds"] = ctx["duration_seconds"]
    out["video_age_days"] = days_between(as_of, ctx["created_at"])
    out.update(engagement_columns(ctx, "video"))
    return out
