"""Live-session features: claim text in the title, duration so far and engagement anomalies.

A session still running at the cutoff (or whose end is not known yet, online) counts as
ongoing and its duration runs to the cutoff, so a later end time never leaks in.
"""

from __future__ import annotations

import numpy as np

from features.columns import Columns, days_between
from features.schema import Feature, FeatureSet
from features.text import encode, text_signals
from features.video import engagement_columns, engagement_features, text_features

LIVE_VERSION = 1
#: Dense text columns of the session title.
LIVE_TEXT_DIMS = 4

LIVE = FeatureSet(
    name="live",
    entity="live",
    join_key="live_id",
    version=LIVE_VERSION,
    description="The live session itself: title claims, duration, timing and engagement.",
    features=(
        *text_features("live", "session title and pinned claims", LIVE_TEXT_DIMS),
        Feature(
            "live_duration_minutes",
            "numeric",
            "Minutes from the start to the end, or to the cutoff if still running.",
            "min",
        ),
        Feature("live_is_ongoing", "boolean", "The session had not ended by the cutoff."),
        Feature("live_age_days", "numeric", "Days since the session started.", "days"),
        Feature("live_start_hour", "numeric", "Hour of day the session started (UTC).", "h"),
        *engagement_features("live", "session"),
    ),
)


def live_columns(ctx: Columns, *, as_of: np.datetime64) -> Columns:
    """The live set from raw session columns plus `activity.*` and `creator.*` context."""
    started = np.asarray(ctx["started_at"], dtype="datetime64[us]")
    ended = np.asarray(ctx["ended_at"], dtype="datetime64[us]")
    ongoing = np.isnat(ended) | (ended >= as_of)
    end = np.where(ongoing, as_of, ended)
    out = text_signals(encode(ctx["title"]), prefix="live", n_dims=LIVE_TEXT_DIMS)
    out["live_duration_minutes"] = days_between(end, started) * 1440.0
    out["live_is_ongoing"] = ongoing
    out["live_age_days"] = days_between(as_of, started)
    hours = (started - started.astype("datetime64[D]")).astype("timedelta64[h]").astype(np.int64)
    out["live_start_hour"] = np.where(np.isnat(started), np.nan, hours.astype(np.float64))
    out.update(engagement_columns(ctx, "live"))
    return out
