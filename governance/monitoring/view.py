"""What the monitoring page shows for one channel, read from a `govrisk monitor` output dir."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from features.tables import TableSpec
from features.vocabulary import Channel, values
from governance.monitoring.tables import (
    ALERTS,
    LAUNCH_COVERAGE,
    LAUNCH_RISK,
    MODEL_PRECISION,
    OBJECTIVE_STATUS,
    PREDICTION_DRIFT,
    STRATEGY_APPEALS,
    STRATEGY_EXPECTED_PRECISION,
    STRATEGY_HEALTH,
    STRATEGY_PRECISION,
    TRUST_METRICS,
    VIOLATIVE_VIEW_RATE,
    check_frame,
)
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
    #: Outcomes behind the value (complaints, returns or NPS answers; 0: none recorded).
    events: float = 0.0


@dataclass(frozen=True)
class AppealsGrid:
    """Appeals and overturns of strategies (rows, busiest first) by week of their decisions
    (columns); a cell is None when the strategy actioned nothing that week."""

    weeks: list[str]
    confidence: float
    strategies: list[tuple[str, list[dict[str, object] | None]]]


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
    view_rates: list[dict[str, object]] = field(default_factory=list)
    strategy_precision: list[dict[str, object]] = field(default_factory=list)
    launch_gaps: list[dict[str, object]] = field(default_factory=list)
    launch_risk: list[dict[str, object]] = field(default_factory=list)
    appeals: AppealsGrid | None = None
    prediction_drift: list[dict[str, object]] = field(default_factory=list)
    model_precision: list[dict[str, object]] = field(default_factory=list)
    available: bool = True


def _read(monitor_dir: Path, name: str) -> pd.DataFrame | None:
    path = monitor_dir / f"{name}.parquet"
    return pd.read_parquet(path) if path.exists() else None


def _num(x: object) -> float | None:
    v = float(x) if x is not None else float("nan")  # type: ignore[arg-type]
    return None if v != v else v


#: The trust_metrics column that counts the outcomes behind a rate.
_OUTCOME_OF = {
    "complaints_per_1k_orders": "complaints",
    "returns_per_1k_orders": "returns",
    "refund_per_gmv": "refund_usd",
}


def interval_level(confidence: object) -> str:
    """An interval's confidence as the page prints it: `95%`, `90%`, `99.5%`."""
    value = _num(confidence)
    return "–" if value is None else f"{100 * value:.3g}%"


def measured_metrics(trust: pd.DataFrame) -> dict[str, bool]:
    """Per outcome rate, whether any outcome of its kind was recorded anywhere in the data:
    a rate of a kind never recorded is unknown, not zero."""
    overall = trust[(trust["channel"] == ALL) & (trust["dimension"] == Dimension.NONE)]
    return {metric: bool(overall[kind].sum() > 0) for metric, kind in _OUTCOME_OF.items()}


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

    def points(col: str, low: str | None, high: str | None, events: str) -> list[WeekPoint]:
        return [
            WeekPoint(
                week=f"{pd.Timestamp(r['period_start']):%m-%d}",
                value=_num(r[col]),
                low=_num(r[low]) if low else None,
                high=_num(r[high]) if high else None,
                mature=bool(r["mature"]),
                orders=int(r["orders"]),
                events=float(r[events]),
            )
            for _, r in whole.iterrows()
        ]

    measured = measured_metrics(trust)
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
            ok = measured.get(str(r["metric"]), True)
            objectives.append(
                {
                    "metric": r["metric"],
                    "target": float(r["target"]),
                    "owner": r["owner"],
                    "day": f"{pd.Timestamp(r['day']):%Y-%m-%d}",
                    # no outcome of the kind recorded anywhere: unmeasured, not within budget
                    "budget_spent": _num(r["budget_spent"]) if ok else None,
                    "burn": _num(r["burn_short"]) if ok else None,
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
        view_rates=_view_rates(monitor_dir, channel),
        strategy_precision=_strategy_precision(monitor_dir),
        launch_gaps=_launch_gaps(monitor_dir, channel),
        launch_risk=_launch_risk(monitor_dir),
        appeals=_strategy_appeals(monitor_dir, channel),
        prediction_drift=_prediction_drift(monitor_dir),
        model_precision=_model_precision(monitor_dir),
        complaints=points(
            "complaints_per_1k_orders",
            "complaints_per_1k_low",
            "complaints_per_1k_high",
            "complaints",
        ),
        returns=points(
            "returns_per_1k_orders", "returns_per_1k_low", "returns_per_1k_high", "returns"
        ),
        nps=points("nps", "nps_low", "nps_high", "nps_responses"),
        objectives=objectives,
        alerts=alerts,
        categories=[
            {
                "category": r["segment"],
                "orders": int(r["orders"]),
                # a rate of a kind never recorded in the data is unknown, not zero
                "complaints": _num(r["complaints_per_1k_orders"])
                if measured["complaints_per_1k_orders"]
                else None,
                "returns": _num(r["returns_per_1k_orders"])
                if measured["returns_per_1k_orders"]
                else None,
                "low_star": _num(r["low_star_share"]),
            }
            for _, r in cats.head(10).iterrows()
        ],
    )


def _view_rates(monitor_dir: Path | None, channel: str) -> list[dict[str, object]]:
    """Violative view rate per policy of the channel (all channels: each on its own row)."""
    vvr = _valid(monitor_dir, VIOLATIVE_VIEW_RATE) if monitor_dir is not None else None
    if vvr is None:
        return []
    rows = vvr if channel == ALL else vvr[vvr["channel"] == channel]
    return [
        {
            "policy": r["policy"],
            "channel": r["channel"],
            "vvr": float(r["vvr"]),
            "low": _num(r["vvr_low"]),
            "high": _num(r["vvr_high"]),
            "model": float(r["vvr_model"]),
            "labels": int(r["labels"]),
            "level": interval_level(r["confidence"]),
        }
        for _, r in rows.sort_values(["channel", "policy"]).iterrows()
    ]


def _strategy_precision(monitor_dir: Path | None) -> list[dict[str, object]]:
    """Each strategy's precision over its latest labelled week, beside the precision its
    model expects there without labels (when the monitor ran with predictions)."""
    df = _valid(monitor_dir, STRATEGY_PRECISION) if monitor_dir is not None else None
    if df is None or not len(df):
        return []
    latest = df.sort_values("week_start").groupby("strategy_id").tail(1)
    expected = _valid(monitor_dir, STRATEGY_EXPECTED_PRECISION) if monitor_dir else None
    if expected is not None:
        cols = ["strategy_id", "week_start", "expected_precision", "expected_precision_sd"]
        latest = latest.merge(expected[cols], on=["strategy_id", "week_start"], how="left")
    return [
        {
            "strategy_id": r["strategy_id"],
            "week": f"{pd.Timestamp(r['week_start']):%Y-%m-%d}",
            "labels": int(r["labels"]),
            "precision": float(r["precision"]),
            "low": _num(r["precision_low"]),
            "high": _num(r["precision_high"]),
            "expected": _num(r.get("expected_precision")),
            "expected_sd": _num(r.get("expected_precision_sd")),
            "level": interval_level(r["confidence"]),
        }
        for _, r in latest.sort_values("precision").iterrows()
    ]


def _launch_gaps(monitor_dir: Path | None, channel: str) -> list[dict[str, object]]:
    """Cells of the launch watch where no strategy actioned the new category's items."""
    df = _valid(monitor_dir, LAUNCH_COVERAGE) if monitor_dir is not None else None
    if df is None or not len(df):
        return []
    rows = df[df["strategies_firing"] == ""]
    rows = rows if channel == ALL else rows[rows["channel"] == channel]
    return [
        {
            "category": r["category"],
            "policy": r["policy"],
            "channel": r["channel"],
            "items_shown": int(r["items_shown"]),
            "strategies": r["strategies"] or "none",
        }
        for _, r in rows.sort_values(["category", "channel", "policy"]).iterrows()
    ]


def _launch_risk(monitor_dir: Path | None) -> list[dict[str, object]]:
    """Each launched category's risk under each model beside the established categories'."""
    df = _valid(monitor_dir, LAUNCH_RISK) if monitor_dir is not None else None
    if df is None or not len(df):
        return []
    return [
        {
            "category": r["category"],
            "model": f"{r['entity']} {r['policy']}",
            "scored": int(r["items"]),  # not "items": templates read that as dict.items
            "mean": float(r["mean_probability"]),
            "median": _num(r["established_median"]),
            "max": _num(r["established_max"]),
            "riskiest": r["riskiest_established"],
            "rank": int(r["rank"]),
            "of": int(r["established"]) + 1,
        }
        for _, r in df.sort_values(["category", "rank", "entity", "policy"]).iterrows()
    ]


#: Weeks of appeals and prediction drift the page shows (the latest ones).
RECENT_WEEKS = 8


def _recent(df: pd.DataFrame, week_column: str) -> pd.DataFrame:
    """Rows of the latest `RECENT_WEEKS` weeks of `df`."""
    weeks = pd.to_datetime(df[week_column])
    return df[weeks > weeks.max() - pd.Timedelta(weeks=RECENT_WEEKS)]


def _strategy_appeals(monitor_dir: Path | None, channel: str) -> AppealsGrid | None:
    """Appeal and overturn rates per week of the strategies acting in the channel (all
    strategies for every channel, or when `strategy_health` does not say who acts where)."""
    df = _valid(monitor_dir, STRATEGY_APPEALS) if monitor_dir is not None else None
    if df is None or not len(df):
        return None
    health = _valid(monitor_dir, STRATEGY_HEALTH) if monitor_dir is not None else None
    if channel != ALL and health is not None and len(health):
        acting = health.loc[(health["channel"] == channel) & (health["hits"] > 0), "strategy_id"]
        df = df[df["strategy_id"].isin(set(acting))]
    if not len(df):
        return None
    df = _recent(df, "week_start").assign(
        week=lambda d: pd.to_datetime(d["week_start"]).dt.strftime("%Y-%m-%d")
    )
    weeks = sorted(df["week"].unique())
    busiest = df.groupby("strategy_id")["items_actioned"].sum().sort_index()
    order = busiest.sort_values(ascending=False, kind="stable").index
    cells: dict[str, dict[str, dict[str, object] | None]] = {
        str(sid): dict.fromkeys(weeks) for sid in order
    }
    for r in df.to_dict("records"):
        cells[str(r["strategy_id"])][str(r["week"])] = {
            "items_actioned": int(r["items_actioned"]),
            "appeals": int(r["appeals"]),
            "overturned": int(r["overturned"]),
            "appeal_rate": float(r["appeal_rate"]),
            "overturn_rate": float(r["overturn_rate"]),
            "low": _num(r["overturn_rate_low"]),
            "high": _num(r["overturn_rate_high"]),
            "complete": bool(r["complete"]),
        }
    return AppealsGrid(
        weeks=weeks,
        confidence=float(df["confidence"].iloc[0]),
        strategies=[(sid, list(by_week.values())) for sid, by_week in cells.items()],
    )


def _prediction_drift(monitor_dir: Path | None) -> list[dict[str, object]]:
    """Each model's weekly PSI against its reference weeks, with the PSI its alert fires
    above in the run that wrote it (`alert_threshold`)."""
    df = _valid(monitor_dir, PREDICTION_DRIFT) if monitor_dir is not None else None
    if df is None or not len(df):
        return []
    rows = []
    for _, r in (
        _recent(df, "week_start").sort_values(["entity", "policy", "week_start"]).iterrows()
    ):
        threshold = float(r["alert_threshold"])
        rows.append(
            {
                "model": f"{r['entity']} {r['policy']}",
                "week": f"{pd.Timestamp(r['week_start']):%Y-%m-%d}",
                "n_week": int(r["n_week"]),
                "n_reference": int(r["n_reference"]),
                "psi": float(r["psi"]),
                "threshold": threshold,
                "drifted": float(r["psi"]) > threshold,
                "mean_reference": float(r["mean_reference"]),
                "mean_week": float(r["mean_week"]),
            }
        )
    return rows


def _model_precision(monitor_dir: Path | None) -> list[dict[str, object]]:
    """Each model's items flagged at its operating point and the precision its calibrated
    probabilities expect there, without labels."""
    df = _valid(monitor_dir, MODEL_PRECISION) if monitor_dir is not None else None
    if df is None or not len(df):
        return []
    return [
        {
            "model": f"{r['entity']} {r['policy']}",
            "threshold": float(r["threshold"]),
            "scored": int(r["items"]),
            "flagged": int(r["flagged"]),
            "expected": _num(r["expected_precision"]),
            "expected_sd": _num(r["expected_precision_sd"]),
            "labelled": _num(r["labelled_precision"]),
            "low": _num(r["labelled_low"]),
            "high": _num(r["labelled_high"]),
            "labels": int(r["labels_flagged"]),
            "level": interval_level(r["confidence"]),
        }
        for _, r in df.sort_values(["entity", "policy"]).iterrows()
    ]


@dataclass(frozen=True)
class GaugeFamily:
    """One monitoring gauge and its labelled values, for the service's /metrics."""

    name: str
    help: str
    labels: tuple[str, ...]
    samples: list[tuple[tuple[str, ...], float]] = field(default_factory=list)


#: Trust metrics exported per channel: column of `trust_metrics` -> gauge label value.
_GAUGE_METRICS = (
    "complaints_per_1k_orders",
    "returns_per_1k_orders",
    "refund_per_gmv",
    "low_star_share",
    "nps",
)


def monitoring_gauges(monitor_dir: Path | None) -> list[GaugeFamily]:
    """The current monitoring values of a `govrisk monitor` output dir as gauges: trust per
    channel (latest mature week), budget spent per objective, alerts firing on the last
    monitored day, violative view rates, each strategy's overturn rate (latest complete week)
    and each model's prediction PSI (latest week); empty without output."""
    if monitor_dir is None:
        return []
    trust = _valid(monitor_dir, TRUST_METRICS)
    measured = measured_metrics(trust) if trust is not None else {}
    return [
        f
        for f in (
            _trust_gauges(trust, measured),
            _budget_gauges(_valid(monitor_dir, OBJECTIVE_STATUS), measured),
            _alert_gauges(_valid(monitor_dir, ALERTS), _valid(monitor_dir, OBJECTIVE_STATUS)),
            _vvr_gauges(_valid(monitor_dir, VIOLATIVE_VIEW_RATE)),
            _overturn_gauges(_valid(monitor_dir, STRATEGY_APPEALS)),
            _prediction_psi_gauges(_valid(monitor_dir, PREDICTION_DRIFT)),
        )
        if f is not None
    ]


def _valid(monitor_dir: Path, spec: TableSpec) -> pd.DataFrame | None:
    df = _read(monitor_dir, spec.name)
    return df if df is not None and not check_frame(df, spec) else None


def _trust_gauges(trust: pd.DataFrame | None, measured: dict[str, bool]) -> GaugeFamily | None:
    if trust is None:
        return None
    week = trust[
        (trust["grain"] == Grain.WEEK) & (trust["dimension"] == Dimension.NONE) & trust["mature"]
    ]
    last = week[week["period_start"] == week["period_start"].max()]
    family = GaugeFamily(
        "govrisk_monitor_trust",
        "Trust metric per channel over the latest mature week.",
        ("channel", "metric"),
    )
    for _, r in last.iterrows():
        for metric in _GAUGE_METRICS:
            value = _num(r[metric]) if measured.get(metric, True) else None
            if value is not None:
                family.samples.append(((str(r["channel"]), metric), value))
    return family


def _budget_gauges(status: pd.DataFrame | None, measured: dict[str, bool]) -> GaugeFamily | None:
    """Budget spent per objective; an objective whose outcomes were never recorded has none."""
    if status is None:
        return None
    s = status.dropna(subset=["budget_spent"]).sort_values("day")
    s = s[[measured.get(str(m), True) for m in s["metric"]]]
    family = GaugeFamily(
        "govrisk_monitor_budget_spent",
        "Share of the objective's error budget spent over its window (1 = all).",
        ("channel", "metric"),
    )
    for _, r in s.groupby(["channel", "metric"]).tail(1).iterrows():
        family.samples.append(((str(r["channel"]), str(r["metric"])), float(r["budget_spent"])))
    return family


def _alert_gauges(alerts: pd.DataFrame | None, status: pd.DataFrame | None) -> GaugeFamily | None:
    if alerts is None:
        return None
    last_day = pd.to_datetime(status["day"]).max() if status is not None and len(status) else None
    firing = alerts if last_day is None else alerts[pd.to_datetime(alerts["last_day"]) >= last_day]
    family = GaugeFamily(
        "govrisk_monitor_alerts_firing",
        "Alerts still firing on the last monitored day.",
        ("channel", "kind", "severity"),
    )
    counts = firing.groupby(["channel", "kind", "severity"], as_index=False).size()
    for r in counts.itertuples(index=False):
        family.samples.append(((str(r.channel), str(r.kind), str(r.severity)), float(r[3])))
    return family


def _vvr_gauges(vvr: pd.DataFrame | None) -> GaugeFamily | None:
    if vvr is None:
        return None
    family = GaugeFamily(
        "govrisk_monitor_violative_view_rate",
        "Share of the channel's impressions on items violating the policy (estimate, low, high).",
        ("channel", "policy", "bound"),
    )
    for _, r in vvr.iterrows():
        for bound, col in (("estimate", "vvr"), ("low", "vvr_low"), ("high", "vvr_high")):
            value = _num(r[col])
            if value is not None:
                family.samples.append(((str(r["channel"]), str(r["policy"]), bound), value))
    return family


def _overturn_gauges(appeals: pd.DataFrame | None) -> GaugeFamily | None:
    if appeals is None:
        return None
    done = appeals[appeals["complete"]].sort_values("week_start")
    family = GaugeFamily(
        "govrisk_monitor_strategy_overturn_rate",
        "Share of the strategy's actioned items lifted on appeal, latest complete week.",
        ("strategy",),
    )
    for _, r in done.groupby("strategy_id").tail(1).iterrows():
        family.samples.append(((str(r["strategy_id"]),), float(r["overturn_rate"])))
    return family


def _prediction_psi_gauges(drift: pd.DataFrame | None) -> GaugeFamily | None:
    if drift is None:
        return None
    family = GaugeFamily(
        "govrisk_monitor_prediction_psi",
        "Population stability of the model's probabilities, latest week against the reference.",
        ("entity", "policy"),
    )
    latest = drift.sort_values("week_start").groupby(["entity", "policy"]).tail(1)
    for _, r in latest.iterrows():
        family.samples.append(((str(r["entity"]), str(r["policy"])), float(r["psi"])))
    return family
