"""What the monitoring page shows for one channel, read from a `govrisk monitor` output dir."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features.vocabulary import Channel, values
from governance.monitoring.tables import ALERTS, OBJECTIVE_STATUS, TRUST_METRICS, check_frame
from governance.monitoring.vocabulary import ALL, Dimension, Grain
from governance.review.errors import InvalidInputError


@dataclass(frozen=True)
class WeekPoint:
    """One week of one trust metric with its interval."""

    week: str
    value: float | None
    low: float | None
    high: float | None
    mature: bool
    orders: int


@dataclass(frozen=True)
class ChannelView:
    """Weekly trust of one channel, its objectives, alerts and worst categories."""

    channel: str
    channels: list[str]
    complaints: list[WeekPoint] = field(default_factory=list)
    returns: list[WeekPoint] = field(default_factory=list)
    nps: list[WeekPoint] = field(default_factory=list)
    objectives: list[dict[str, object]] = field(default_factory=list)
    alerts: list[dict[str, object]] = field(default_factory=list)
    categories: list[dict[str, object]] = field(default_factory=list)
    available: bool = True


def _read(monitor_dir: Path, name: str) -> pd.DataFrame | None:
    path = monitor_dir / f"{name}.parquet"
    return pd.read_parquet(path) if path.exists() else None


def _num(x: object) -> float | None:
    v = float(x) if x is not None else float("nan")  # type: ignore[arg-type]
    return None if v != v else v


def channel_view(monitor_dir: Path | None, channel: str = ALL) -> ChannelView:
    """The page's content; `available` is False when there is no monitoring output."""
    channels = [ALL, *values(Channel)]
    if channel not in channels:
        raise InvalidInputError(f"channel must be one of {channels}")
    trust = _read(monitor_dir, TRUST_METRICS.name) if monitor_dir else None
    if trust is None or check_frame(trust, TRUST_METRICS):
        return ChannelView(channel=channel, channels=channels, available=False)
    week = trust[(trust["grain"] == Grain.WEEK) & (trust["channel"] == channel)]
    whole = week[week["dimension"] == Dimension.NONE].sort_values("period_start")

    def points(col: str, low: str | None, high: str | None) -> list[WeekPoint]:
        return [
            WeekPoint(
                week=f"{pd.Timestamp(r['period_start']):%m-%d}",
                value=_num(r[col]),
                low=_num(r[low]) if low else None,
                high=_num(r[high]) if high else None,
                mature=bool(r["mature"]),
                orders=int(r["orders"]),
            )
            for _, r in whole.iterrows()
        ]

    mature = week[week["mature"] & (week["dimension"] == Dimension.CATEGORY)]
    last = mature["period_start"].max() if len(mature) else None
    cats = mature[mature["period_start"] == last].sort_values(
        "complaints_per_1k_orders", ascending=False
    )
    status = _read(monitor_dir, OBJECTIVE_STATUS.name) if monitor_dir else None
    objectives: list[dict[str, object]] = []
    if status is not None and not check_frame(status, OBJECTIVE_STATUS):
        s = status[status["channel"] == channel].dropna(subset=["value", "budget_spent"])
        for _, r in s.sort_values("day").groupby("metric").tail(1).iterrows():
            objectives.append(
                {
                    "metric": r["metric"],
                    "target": float(r["target"]),
                    "owner": r["owner"],
                    "day": f"{pd.Timestamp(r['day']):%Y-%m-%d}",
                    "budget_spent": _num(r["budget_spent"]),
                    "burn": _num(r["burn_short"]),
                }
            )
    alerts_df = _read(monitor_dir, ALERTS.name) if monitor_dir else None
    alerts: list[dict[str, object]] = []
    if alerts_df is not None and not check_frame(alerts_df, ALERTS):
        a = alerts_df if channel == ALL else alerts_df[alerts_df["channel"].isin([channel, ALL])]
        alerts = [{str(k): v for k, v in r.items()} for r in a.to_dict("records")]
    return ChannelView(
        channel=channel,
        channels=channels,
        complaints=points(
            "complaints_per_1k_orders", "complaints_per_1k_low", "complaints_per_1k_high"
        ),
        returns=points("returns_per_1k_orders", "returns_per_1k_low", "returns_per_1k_high"),
        nps=points("nps", "nps_low", "nps_high"),
        objectives=objectives,
        alerts=alerts,
        categories=[
            {
                "category": r["segment"],
                "orders": int(r["orders"]),
                "complaints": _num(r["complaints_per_1k_orders"]),
                "returns": _num(r["returns_per_1k_orders"]),
                "low_star": _num(r["low_star_share"]),
            }
            for _, r in cats.head(10).iterrows()
        ],
    )
