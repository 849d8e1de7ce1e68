"""Backtests: apply any strategy version to past days' feature frames and measure what it hits.

Pure functions over frames. For each day D the strategy sees the frame built `as_of` D's
midnight (data strictly before D) and acts on D's traffic: hits are (day, item, channel) units,
exposure affected is that day's traffic of the hit items in the hit channels. Overlap with other
strategies is measured on the same units, so two rules overlap only where they act on the same
item in the same channel on the same day.

Exposure is observed traffic: items a live strategy already blocked show little or none (the
usual selection problem), so for a version that was active the affected exposure is a floor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd

from features.vocabulary import Action, Entity
from governance.evaluator import EvaluationError, FeatureType, FrameEvaluator, Mask, expand_hits
from governance.strategy import Strategy

#: Traffic measures of channel_exposure summed over affected units.
EXPOSURE_MEASURES: tuple[str, ...] = ("impressions", "clicks", "orders", "gmv")
_UNIT = ["day", "item_id", "channel"]
#: A day key of `frames_by_day`: a date, datetime or pd.Timestamp (normalised to midnight).
DayT = TypeVar("DayT", bound=date)
_ACTION_STRENGTH = {Action.DEMOTE: 1, Action.LIMIT_EXPOSURE: 1, Action.BLOCK: 2}


@dataclass(frozen=True)
class BacktestResult:
    """What one strategy version would have done over a run of days."""

    strategy: Strategy
    days: tuple[pd.Timestamp, ...]
    #: day, item_id, channel: every unit the strategy hits.
    hits: pd.DataFrame
    #: day, channel, items_hit, new_items, impressions, clicks, orders, gmv, and the channel's
    #: total impressions / gmv that day with the affected shares.
    daily: pd.DataFrame
    #: channel, item_days, items, the exposure measures and shares over the whole period.
    channels: pd.DataFrame
    #: one row per other strategy: sizes, intersection, Jaccard, containments, flags.
    overlap: pd.DataFrame
    #: other strategies that could not be evaluated on these frames, with the reason.
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def redundant(self) -> list[str]:
        """Other strategies that already hit (nearly) everything this one hits, as strongly."""
        return [str(r) for r in self.overlap.loc[self.overlap["redundant"], "strategy"]]

    @property
    def conflicting(self) -> list[str]:
        """Other strategies acting differently on a material share of the same units."""
        return [str(r) for r in self.overlap.loc[self.overlap["conflicting"], "strategy"]]


def _as_day(day: pd.Timestamp | datetime | date) -> pd.Timestamp:
    ts = pd.Timestamp(day)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.normalize().as_unit("us")


def daily_hits(
    strategies: Sequence[Strategy],
    frames_by_day: Mapping[DayT, pd.DataFrame],
    *,
    feature_types: Mapping[str, FeatureType] | None = None,
    skip_errors: bool = False,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Hits of same-entity strategies on each day's frame: (strategy, day, item_id, channel).

    Strategies share predicate masks within a day. With `skip_errors`, a strategy that cannot be
    evaluated (say it gates on a model score the frames lack) is dropped and reported instead.
    """
    strategies = list(strategies)
    entities = {s.entity for s in strategies}
    if len(entities) > 1:
        raise ValueError(
            f"daily_hits needs strategies of one entity, got {sorted(e.value for e in entities)}"
        )
    for day, frame in frames_by_day.items():
        if "item_id" not in frame.columns:
            raise EvaluationError(
                f"the frame of {_as_day(day).date()} has no `item_id` column; pass frames from "
                "features.build.build_frames"
            )
    return _compute_daily_hits(strategies, frames_by_day, feature_types, skip_errors)


def _compute_daily_hits(
    strategies: list[Strategy],
    frames_by_day: Mapping[DayT, pd.DataFrame],
    feature_types: Mapping[str, FeatureType] | None,
    skip_errors: bool,
) -> tuple[pd.DataFrame, dict[str, str]]:
    skipped: dict[str, str] = {}
    parts: list[tuple[pd.Index, Mask, list[str]]] = []
    part_keys: list[tuple[str, np.datetime64]] = []
    for raw_day in sorted(frames_by_day, key=_as_day):
        day = _as_day(raw_day)
        evaluator = FrameEvaluator(frames_by_day[raw_day], feature_types=feature_types)
        for strategy in strategies:
            if strategy.ref in skipped:
                continue
            try:
                mask = evaluator.mask(strategy.condition)
            except EvaluationError as err:
                if not skip_errors:
                    message = f"strategy {strategy.ref} on {day.date()}: {err}"
                    raise EvaluationError(message) from err
                skipped[strategy.ref] = str(err)
                continue
            parts.append((evaluator.item_ids, mask, [c.value for c in strategy.channels]))
            part_keys.append((strategy.ref, day.to_datetime64()))
    part, items, channels = expand_hits(parts)
    refs = pd.Index([ref for ref, _ in part_keys], dtype="str")
    days = np.asarray([d for _, d in part_keys], dtype="datetime64[us]")
    hits = pd.DataFrame(
        {
            "strategy": refs.take(part),
            "day": days[part] if len(days) else np.zeros(0, dtype="datetime64[us]"),
            "item_id": items,
            "channel": channels,
        }
    )
    return hits, skipped


def entity_exposure(tables: Mapping[str, pd.DataFrame], entity: Entity) -> pd.DataFrame:
    """Daily traffic of `entity`'s items: item_id, channel, day and the exposure measures.

    Sellers have no traffic of their own: a seller's exposure is the sum over its listings and the
    videos and live sessions that promote them.
    """
    exposure = tables["channel_exposure"]
    keep = ["item_id", "channel", "day", *EXPOSURE_MEASURES]
    if entity != Entity.SELLER:
        return exposure.loc[exposure["entity"] == entity.value, keep].reset_index(drop=True)
    listings = tables["listings"][["listing_id", "seller_id"]]
    seller_of = dict(zip(listings["listing_id"], listings["seller_id"], strict=True))
    owners: list[pd.DataFrame] = [
        pd.DataFrame(
            {
                "entity": "listing",
                "item_id": listings["listing_id"],
                "seller_id": listings["seller_id"],
            }
        )
    ]
    for name, key, kind in (("videos", "video_id", "video"), ("live_sessions", "live_id", "live")):
        if name in tables:
            df = tables[name]
            owners.append(
                pd.DataFrame(
                    {
                        "entity": kind,
                        "item_id": df[key],
                        "seller_id": df["listing_id"].map(seller_of),
                    }
                )
            )
    owner = pd.concat(owners, ignore_index=True).astype({"entity": "str", "item_id": "str"})
    merged = exposure.merge(owner, on=["entity", "item_id"], how="inner")
    out = (
        merged.groupby(["seller_id", "channel", "day"], as_index=False, observed=True)[
            list(EXPOSURE_MEASURES)
        ]
        .sum()
        .rename(columns={"seller_id": "item_id"})
    )
    return out[keep]


def backtest_strategy(
    strategy: Strategy,
    *,
    frames_by_day: Mapping[DayT, pd.DataFrame],
    exposure: pd.DataFrame,
    others: Iterable[Strategy] = (),
    feature_types: Mapping[str, FeatureType] | None = None,
    containment_threshold: float = 0.95,
    conflict_min_share: float = 0.05,
) -> BacktestResult:
    """Backtest one version on day-indexed frames of its entity against daily `exposure`.

    `exposure` holds item_id, channel, day and the exposure measures for the strategy's entity
    (see `entity_exposure`). `others` (same entity; other ids or versions) are compared by
    overlap: `redundant` when at least `containment_threshold` of this strategy's units are hit
    by the other with the same or a stronger action, `conflicting` when the actions differ on at
    least `conflict_min_share` of either strategy's units.
    """
    if not frames_by_day:
        raise ValueError("frames_by_day is empty; pass at least one day's feature frame")
    missing = [c for c in ("item_id", "channel", "day", *EXPOSURE_MEASURES) if c not in exposure]
    if missing:
        raise ValueError(
            f"exposure lacks column(s) {missing}; pass entity_exposure(tables, entity)"
        )
    if not 0 < containment_threshold <= 1 or not 0 <= conflict_min_share <= 1:
        raise ValueError("containment_threshold must be in (0, 1] and conflict_min_share in [0, 1]")
    comparable = [o for o in others if o.entity == strategy.entity and o.ref != strategy.ref]
    all_hits, skipped = daily_hits(
        [strategy, *comparable], frames_by_day, feature_types=feature_types, skip_errors=True
    )
    if strategy.ref in skipped:
        raise EvaluationError(f"strategy {strategy.ref}: {skipped.pop(strategy.ref)}")
    days = tuple(sorted(_as_day(d) for d in frames_by_day))
    exposure = exposure.assign(day=pd.to_datetime(exposure["day"]).astype("datetime64[us]"))
    exposure = exposure.loc[exposure["day"].isin(days)]
    hits = all_hits.loc[all_hits["strategy"] == strategy.ref, _UNIT].reset_index(drop=True)
    daily = _compute_daily(strategy, hits, exposure, days)
    channels = _compute_channels(strategy, hits, exposure)
    overlap = _compute_overlap(
        strategy,
        all_hits,
        [o for o in comparable if o.ref not in skipped],
        containment_threshold=containment_threshold,
        conflict_min_share=conflict_min_share,
    )
    return BacktestResult(
        strategy=strategy,
        days=days,
        hits=hits,
        daily=daily,
        channels=channels,
        overlap=overlap,
        skipped=skipped,
    )


def replay_days(tables: Mapping[str, pd.DataFrame], days: int) -> list[pd.Timestamp]:
    """The last `days` days of `channel_exposure` (refused when it holds none)."""
    observed = sorted(tables["channel_exposure"]["day"].unique())
    replay = [pd.Timestamp(d) for d in observed[-days:]]
    if not replay:
        raise ValueError("channel_exposure is empty: there is no history to replay")
    return replay


def backtest_tables(
    strategy: Strategy,
    tables: Mapping[str, pd.DataFrame],
    *,
    days: int,
    others: Iterable[Strategy] = (),
    on_day: Callable[[pd.Timestamp], None] | None = None,
) -> BacktestResult:
    """Backtest one version on the last `days` days of the contract tables: its entity's frame
    built as of each day (point in time), against the observed exposure; `others` as in
    `backtest_strategy`. `on_day` is called after each day's frame is built (progress)."""
    from features.build import build_frames

    frames_by_day = {}
    for day in replay_days(tables, days):
        frames = build_frames(tables, as_of=day.to_pydatetime(), entities=(strategy.entity,))
        frames_by_day[day] = frames[strategy.entity]
        if on_day is not None:
            on_day(day)
    return backtest_strategy(
        strategy,
        frames_by_day=frames_by_day,
        exposure=entity_exposure(tables, strategy.entity),
        others=others,
    )


def write_backtest(result: BacktestResult, out_dir: Path | str) -> list[Path]:
    """Write a backtest's hits, daily, channels and overlap tables as Parquet; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"backtest_{result.strategy.ref}"
    paths = []
    for name in ("hits", "daily", "channels", "overlap"):
        path = out_dir / f"{stem}_{name}.parquet"
        getattr(result, name).to_parquet(path, index=False)
        paths.append(path)
    return paths


def _affected(hits: pd.DataFrame, exposure: pd.DataFrame) -> pd.DataFrame:
    measures = exposure[[*_UNIT, *EXPOSURE_MEASURES]]
    merged = hits.merge(measures, on=_UNIT, how="left")
    merged[list(EXPOSURE_MEASURES)] = merged[list(EXPOSURE_MEASURES)].fillna(0)
    return merged


def _compute_daily(
    strategy: Strategy,
    hits: pd.DataFrame,
    exposure: pd.DataFrame,
    days: tuple[pd.Timestamp, ...],
) -> pd.DataFrame:
    channels = [c.value for c in strategy.channels]
    grid = pd.MultiIndex.from_product([list(days), channels], names=["day", "channel"])
    first_day = hits.groupby(["item_id", "channel"])["day"].transform("min")
    affected = _affected(hits.assign(new=hits["day"] == first_day), exposure)
    grouped = affected.groupby(["day", "channel"])
    daily = pd.DataFrame(
        {
            "items_hit": grouped.size(),
            "new_items": grouped["new"].sum(),
            **{m: grouped[m].sum() for m in EXPOSURE_MEASURES},
        }
    ).reindex(grid, fill_value=0)
    totals = (
        exposure.loc[exposure["channel"].isin(channels)]
        .groupby(["day", "channel"])[["impressions", "gmv"]]
        .sum()
        .rename(columns={"impressions": "channel_impressions", "gmv": "channel_gmv"})
        .reindex(grid, fill_value=0)
    )
    daily = daily.join(totals).reset_index()
    daily["impressions_share"] = _share(daily["impressions"], daily["channel_impressions"])
    daily["gmv_share"] = _share(daily["gmv"], daily["channel_gmv"])
    daily["channel"] = daily["channel"].astype("str")
    daily["day"] = daily["day"].astype("datetime64[us]")
    for col in ("items_hit", "new_items", "impressions", "clicks", "orders"):
        daily[col] = daily[col].astype("int64")
    daily["gmv"] = daily["gmv"].astype("float64")
    return daily


def _compute_channels(
    strategy: Strategy, hits: pd.DataFrame, exposure: pd.DataFrame
) -> pd.DataFrame:
    channels = [c.value for c in strategy.channels]
    affected = _affected(hits, exposure)
    grouped = affected.groupby("channel")
    out = pd.DataFrame(
        {
            "item_days": grouped.size(),
            "items": grouped["item_id"].nunique(),
            **{m: grouped[m].sum() for m in EXPOSURE_MEASURES},
        }
    ).reindex(channels, fill_value=0)
    totals = (
        exposure.groupby("channel")[["impressions", "gmv"]].sum().reindex(channels, fill_value=0)
    )
    out["impressions_share"] = _share(out["impressions"], totals["impressions"])
    out["gmv_share"] = _share(out["gmv"], totals["gmv"])
    out.index.name = "channel"
    out = out.reset_index()
    out["channel"] = out["channel"].astype("str")
    for col in ("item_days", "items", "impressions", "clicks", "orders"):
        out[col] = out[col].astype("int64")
    out["gmv"] = out["gmv"].astype("float64")
    return out


def _share(part: pd.Series, whole: pd.Series) -> pd.Series:
    whole_values = whole.to_numpy(dtype="float64")
    part_values = part.to_numpy(dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(whole_values > 0, part_values / whole_values, 0.0)
    return pd.Series(share, index=part.index, dtype="float64")


_OVERLAP_COLUMNS = [
    "strategy",
    "status",
    "action",
    "policy",
    "n_self",
    "n_other",
    "n_both",
    "jaccard",
    "self_in_other",
    "other_in_self",
    "redundant",
    "conflicting",
]


def _compute_overlap(
    strategy: Strategy,
    all_hits: pd.DataFrame,
    others: list[Strategy],
    *,
    containment_threshold: float,
    conflict_min_share: float,
) -> pd.DataFrame:
    own = all_hits.loc[all_hits["strategy"] == strategy.ref, _UNIT]
    rest = all_hits.loc[all_hits["strategy"] != strategy.ref]
    n_other = rest.groupby("strategy").size()
    n_both = rest.merge(own, on=_UNIT, how="inner").groupby("strategy").size()
    n_self = len(own)
    rows = []
    for other in others:
        size = int(n_other.get(other.ref, 0))
        both = int(n_both.get(other.ref, 0))
        union = n_self + size - both
        self_in_other = both / n_self if n_self else 0.0
        other_in_self = both / size if size else 0.0
        stronger_or_same = other.action == strategy.action or (
            _ACTION_STRENGTH[other.action] > _ACTION_STRENGTH[strategy.action]
        )
        rows.append(
            {
                "strategy": other.ref,
                "status": other.status.value,
                "action": other.action.value,
                "policy": other.policy.value,
                "n_self": n_self,
                "n_other": size,
                "n_both": both,
                "jaccard": both / union if union else 0.0,
                "self_in_other": self_in_other,
                "other_in_self": other_in_self,
                "redundant": bool(
                    n_self > 0 and self_in_other >= containment_threshold and stronger_or_same
                ),
                "conflicting": bool(
                    both > 0
                    and other.action != strategy.action
                    and max(self_in_other, other_in_self) >= conflict_min_share
                ),
            }
        )
    out = pd.DataFrame(rows, columns=_OVERLAP_COLUMNS)
    out = out.sort_values(["jaccard", "n_both", "strategy"], ascending=[False, False, True])
    out = out.reset_index(drop=True)
    return out.astype(
        {
            "strategy": "str",
            "status": "str",
            "action": "str",
            "policy": "str",
            "n_self": "int64",
            "n_other": "int64",
            "n_both": "int64",
            "jaccard": "float64",
            "self_in_other": "float64",
            "other_in_self": "float64",
            "redundant": "bool",
            "conflicting": "bool",
        }
    )
