"""Launch watch: which strategies cover a newly launched category, per policy and channel.

A category whose first listing comes after the drift reference weeks is new; for each channel
the category's items were shown in and each policy some strategy enforces on those items'
entities (in any channel), the watch lists
the strategies that could act there (the policy's strategies of the shown entities that run
in the channel) and those that actually actioned the category's items, with the share of
its shown items they actioned. A cell where none fired is a gap a PM should look at.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import pandas as pd

from governance.monitoring.objectives import WatchedCategory
from governance.monitoring.tables import LAUNCH_COVERAGE, LAUNCH_RISK, conform, empty_frame
from governance.strategy import Strategy


def new_categories(listings: pd.DataFrame, *, after: date) -> list[str]:
    """Categories whose first listing was created on or after `after`."""
    first = listings.groupby("category")["created_at"].min()
    return sorted(str(c) for c in first[pd.to_datetime(first) >= pd.Timestamp(after)].index)


def launched_after(tables: dict[str, pd.DataFrame], *, reference_weeks: int) -> date | None:
    """A category first listed on or after this day is new: `reference_weeks` (the drift
    reference) after the first day of exposure; None without exposure."""
    days = pd.to_datetime(tables["channel_exposure"]["day"])
    if not len(days):
        return None
    return (days.min() + pd.Timedelta(weeks=reference_weeks)).date()


def watched_on(tables: dict[str, pd.DataFrame], day: date) -> list[str]:
    """Categories the monitoring settings watch on `day`: the objectives file's watch list
    and the categories launched within `GOVRISK_MONITOR_LAUNCH_WATCH_DAYS` (for the audit,
    which samples them more)."""
    from governance.monitoring.objectives import load_objectives
    from governance.monitoring.settings import get_settings

    settings = get_settings()
    watches = [
        *load_objectives(settings.objectives_path).watch,
        *recent_launch_watches(
            tables, reference_weeks=settings.reference_weeks, days=settings.launch_watch_days
        ),
    ]
    return sorted({w.category for w in watches if w.active(day)})


def launched_categories(tables: dict[str, pd.DataFrame], *, reference_weeks: int) -> list[str]:
    """Categories first listed on or after `launched_after` (none without exposure)."""
    after = launched_after(tables, reference_weeks=reference_weeks)
    if after is None or not len(tables["listings"]):
        return []
    return new_categories(tables["listings"], after=after)


def recent_launch_watches(
    tables: dict[str, pd.DataFrame], *, reference_weeks: int, days: int
) -> list[WatchedCategory]:
    """`launch_watches` of the tables' launched categories (none without exposure)."""
    after = launched_after(tables, reference_weeks=reference_weeks)
    if after is None or not len(tables["listings"]):
        return []
    return launch_watches(tables["listings"], after=after, days=days)


def launch_watches(listings: pd.DataFrame, *, after: date, days: int) -> list[WatchedCategory]:
    """A watch on each category first listed on or after `after`, for `days` from that day."""
    first = pd.to_datetime(listings.groupby("category")["created_at"].min())
    return [
        WatchedCategory(
            category=str(c),
            reason=f"launched {t:%Y-%m-%d}",
            since=t.date(),
            until=t.date() + timedelta(days=days),
        )
        for c, t in first[first >= pd.Timestamp(after)].items()
    ]


def launch_coverage(
    tables: dict[str, pd.DataFrame], strategies: Sequence[Strategy], *, categories: list[str]
) -> pd.DataFrame:
    """Table `launch_coverage`: one row per category, policy and channel its items were
    shown in."""
    if not categories or not strategies:
        return empty_frame(LAUNCH_COVERAGE)
    items = category_items(tables, categories)
    shown = items.merge(
        tables["channel_exposure"][["entity", "item_id", "channel", "impressions"]],
        on=["entity", "item_id"],
    )
    shown = shown[shown["impressions"] > 0]
    hits = items.merge(
        tables["strategy_decisions"][["entity", "item_id", "channel", "strategy_id"]],
        on=["entity", "item_id"],
    )
    # a policy matters for an entity when some strategy enforces it on that entity somewhere
    enforced = {(s.entity.value, s.policy.value) for s in strategies}
    rows = [
        _cell(str(g["category"].iloc[0]), policy, str(g["channel"].iloc[0]), g, hits, strategies)
        for _, g in shown.groupby(["category", "channel"], sort=True)
        for policy in sorted({s.policy.value for s in strategies})
        if any((e, policy) in enforced for e in set(g["entity"]))
    ]
    if not rows:
        return empty_frame(LAUNCH_COVERAGE)
    return conform(pd.DataFrame(rows), LAUNCH_COVERAGE)


def launch_risk(
    tables: dict[str, pd.DataFrame], scores: pd.DataFrame, *, categories: list[str]
) -> pd.DataFrame:
    """Table `launch_risk`: per launched category and model (`scores`: entity, item_id,
    policy, p, one score per item and model), its items' mean probability beside every
    established category's."""
    if not categories or not len(scores):
        return empty_frame(LAUNCH_RISK)
    every = sorted(str(c) for c in tables["listings"]["category"].dropna().unique())
    items = category_items(tables, every).astype({"entity": str, "item_id": str})
    scored = items.merge(
        scores[["entity", "item_id", "policy", "p"]].astype(
            {"entity": str, "item_id": str, "policy": str}
        ),
        on=["entity", "item_id"],
    )
    means = scored.groupby(["entity", "policy", "category"])["p"].agg(["mean", "size"])
    rows = [
        _risk_row(str(cat), str(entity), str(policy), g.droplevel([0, 1]), categories)
        for (entity, policy), g in means.groupby(level=[0, 1])
        for cat in categories
        if cat in g.index.get_level_values(2)
    ]
    return conform(pd.DataFrame(rows), LAUNCH_RISK) if rows else empty_frame(LAUNCH_RISK)


def _risk_row(
    category: str, entity: str, policy: str, means: pd.DataFrame, launched: list[str]
) -> dict[str, object]:
    """One launched category against the established ones under one model; `means` holds
    each category's items' mean probability (`mean`) and count (`size`)."""
    mean = float(means["mean"].to_numpy()[means.index == category][0])
    size = int(means["size"].to_numpy()[means.index == category][0])
    peers = means.loc[~means.index.isin(launched), "mean"]
    return {
        "category": category,
        "entity": entity,
        "policy": policy,
        "items": size,
        "mean_probability": mean,
        "established": len(peers),
        "established_median": float(peers.median()) if len(peers) else None,
        "established_max": float(peers.max()) if len(peers) else None,
        "riskiest_established": str(peers.idxmax()) if len(peers) else None,
        "rank": int((peers > mean).sum()) + 1,
    }


def category_items(tables: dict[str, pd.DataFrame], categories: list[str]) -> pd.DataFrame:
    """(entity, item_id, category) of every listing, video and live of the categories."""
    listings = tables["listings"]
    own = listings[listings["category"].isin(categories)][["listing_id", "category"]]
    parts = [own.rename(columns={"listing_id": "item_id"}).assign(entity="listing")]
    for table, column, entity in (
        ("videos", "video_id", "video"),
        ("live_sessions", "live_id", "live"),
    ):
        if table not in tables:  # a dataset of listings only
            continue
        linked = tables[table].merge(own, on="listing_id")[[column, "category"]]
        parts.append(linked.rename(columns={column: "item_id"}).assign(entity=entity))
    return pd.concat(parts, ignore_index=True)


def _cell(
    category: str,
    policy: str,
    channel: str,
    shown: pd.DataFrame,
    hits: pd.DataFrame,
    strategies: Sequence[Strategy],
) -> dict[str, object]:
    entities = set(shown["entity"])
    able = sorted(
        {
            s.id
            for s in strategies
            if s.policy.value == policy
            and s.entity.value in entities
            and channel in {c.value for c in s.channels}
        }
    )
    h = hits[
        (hits["category"] == category)
        & (hits["channel"] == channel)
        & hits["strategy_id"].isin(able)
    ]
    n_shown = shown[["entity", "item_id"]].drop_duplicates()
    actioned = h[["entity", "item_id"]].drop_duplicates()
    # an actioned item may never have been shown there (blocked first): count it in the base
    reach = pd.concat([n_shown, actioned]).drop_duplicates()
    return {
        "category": category,
        "policy": policy,
        "channel": channel,
        "items_shown": len(n_shown),
        "impressions": int(shown["impressions"].sum()),
        "strategies": ", ".join(able),
        "strategies_firing": ", ".join(sorted(set(h["strategy_id"]))),
        "items_actioned": len(actioned),
        "actioned_share": len(actioned) / len(reach) if len(reach) else 0.0,
    }
