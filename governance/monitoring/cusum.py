"""Sequential category tests: a change-point CUSUM on the outcomes each category receives.

The window test of `shift.py` counts outcomes on their sale day, which needs them to have
arrived and shares an outcome among its item's earlier sales, smearing a surge into the days
before it. This test counts outcomes on the day they arrive instead (complete as soon as the
day is over) and predicts them from the category's orders: on day t a category expects
`rate * sum_d orders(t - d) * P(delay = d)` outcomes of a kind. A rise of the sale-side rate
to `shift_ratio` x the baseline from an unknown day in the last `run_days` makes arrivals
ramp up as that day's outcomes come in; the statistic is the largest log-likelihood ratio of
that ramp over the change day (Page's CUSUM, maximised over the change point), with the
baseline rate of the `baseline_days` before the run integrated out under a gamma prior worth
`prior_events` events at the rate of all categories together, divided by the baseline's
over-dispersion. It fires at `threshold` (`watch_threshold` on a watched category: one a PM
declared, or launched recently), and as in `shift.py` it must still fire with the items with
most arrivals in the run left out, so one viral item does not raise a category alert.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd

from governance.monitoring.alerts import alert_row, episodes
from governance.monitoring.burn import _dispersion
from governance.monitoring.objectives import WatchedCategory
from governance.monitoring.tables import ALERTS, conform, empty_frame
from governance.monitoring.trust import DelayModel
from governance.monitoring.vocabulary import ALL, AlertKind, Severity, TrustMetric

#: Metrics tested per category and the outcome kind whose arrivals they count.
CUSUM_METRICS: dict[TrustMetric, str] = {
    TrustMetric.COMPLAINTS_PER_1K_ORDERS: "complaint",
    TrustMetric.RETURNS_PER_1K_ORDERS: "return",
}
_NOT_CATEGORIES = ("unknown", "seller")


@dataclass(frozen=True)
class CusumConfig:
    """Settings of the sequential category tests (carried into reports)."""

    run_days: int = 10
    baseline_days: int = 28
    min_baseline_days: int = 14
    shift_ratio: float = 3.0
    threshold: float = 4.0
    #: The threshold on a watched category (a few series: a lower bar adds few false alarms).
    watch_threshold: float = 2.5
    min_baseline_events: float = 3.0
    #: Strength, in events, of the prior that a category's baseline rate is the rate of all
    #: categories together (empirical Bayes shrinkage of small categories' baselines).
    prior_events: float = 10.0
    drop_top_items: int = 2


@dataclass(frozen=True)
class _Series:
    """One category's daily orders `orders`, outcome arrivals `x` and the delay pmf."""

    days: pd.DatetimeIndex
    orders: npt.NDArray[np.float64]
    x: npt.NDArray[np.float64]
    pmf: npt.NDArray[np.float64]

    @property
    def e(self) -> npt.NDArray[np.float64]:
        """Arrivals expected per day at rate 1."""
        return arrival_exposure(self.orders, self.pmf)

    def onset(self, first: int, last: int) -> npt.NDArray[np.float64]:
        """(changes, days) arrivals at rate 1 from sales on or after each day in
        [first, last], over days [first, last]."""
        out = np.zeros((last - first + 1, last - first + 1))
        for j, tau in enumerate(range(first, last + 1)):
            masked = np.where(np.arange(len(self.orders)) >= tau, self.orders, 0.0)
            out[j] = arrival_exposure(masked[: last + 1], self.pmf)[first:]
        return out


def arrival_exposure(
    orders: npt.NDArray[np.float64], pmf: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """(days,) orders convolved with the delay pmf: outcomes expected per day at rate 1."""
    return np.asarray(np.convolve(orders, pmf)[: len(orders)], dtype=np.float64)


def change_point_llr(
    x: npt.NDArray[np.float64],
    expected: npt.NDArray[np.float64],
    onset: npt.NDArray[np.float64],
    *,
    ratio: float,
    prior_events: float = 0.0,
    prior_rate: float = 1.0,
) -> float:
    """Largest log-likelihood ratio, over the change day, of a sale-side rate `ratio` x the
    baseline from that day on, against no change. The baseline rate is integrated out under a
    gamma prior worth `prior_events` events at `prior_rate` (0: flat, the test is then
    conditional on the total count), so a few baseline events are enough.

    `x` (days,) are arrivals over the baseline and the run, `expected` (days,) their means at
    rate 1, `onset` (changes, days) the part of those means from sales on or after each
    candidate change day: after a change the mean is `expected + (ratio - 1) * onset`, so the
    alternative ramps up as the changed sales' outcomes arrive.
    """
    lift = (ratio - 1.0) * onset
    share = np.divide(lift, expected, out=np.zeros_like(lift), where=expected > 0)
    prior_exposure = prior_events / max(prior_rate, 1e-12)
    exposure = max(float(expected.sum()) + prior_exposure, 1e-12)
    total = np.log1p(lift.sum(axis=1) / exposure)
    llr = (x * np.log1p(share)).sum(axis=1) - (x.sum() + prior_events) * total
    return float(max(llr.max(initial=0.0), 0.0))


def _pmf(delays: DelayModel, kind: str) -> npt.NDArray[np.float64]:
    cdf = delays.cdf.get(kind)
    if cdf is None or not len(cdf):
        return np.array([1.0])
    return np.asarray(np.diff(cdf), dtype=np.float64)


def _series(
    orders: pd.DataFrame,
    arrivals: pd.DataFrame,
    category: str | None,
    pmf: npt.NDArray[np.float64],
) -> _Series:
    """The daily series of one category (None: all together)."""
    if category is not None:
        orders = orders[orders["category"] == category]
        arrivals = arrivals[arrivals["category"] == category]
    o = orders.groupby("day")["orders"].sum()
    a = arrivals.groupby("day")["n"].sum()
    days = pd.DatetimeIndex(o.index.sort_values())
    o_arr = o.reindex(days, fill_value=0).to_numpy(dtype=float)
    return _Series(
        days=days, orders=o_arr, x=a.reindex(days, fill_value=0).to_numpy(dtype=float), pmf=pmf
    )


def _statistic(
    s: _Series,
    end: int,
    config: CusumConfig,
    *,
    pooled_rate: float,
) -> tuple[float, float, float] | None:
    """(statistic at day `end`, observed and expected arrivals over the run), or None without
    enough baseline."""
    run0 = end - config.run_days + 1
    b0 = max(run0 - config.baseline_days, 0)
    if run0 - b0 < config.min_baseline_days:
        return None
    e = s.e[b0 : end + 1]
    x = s.x[b0 : end + 1]
    nb = run0 - b0
    if x[:nb].sum() < config.min_baseline_events or e[:nb].sum() <= 0:
        return None
    onset = np.zeros((config.run_days, len(e)))
    onset[:, nb:] = s.onset(run0, end)
    llr = change_point_llr(
        x,
        e,
        onset,
        ratio=config.shift_ratio,
        prior_events=config.prior_events,
        prior_rate=pooled_rate,
    )
    rate = x[:nb].sum() / e[:nb].sum()
    phi = _dispersion(x[:nb], e[:nb])
    return llr / phi, float(x[nb:].sum()), float(rate * e[nb:].sum())


def _pooled_rates(s: _Series, config: CusumConfig) -> npt.NDArray[np.float64]:
    """(days,) the rate of all categories together over each day's baseline window."""
    e = s.e
    out = np.ones(len(s.days))
    for end in range(len(s.days)):
        run0 = end - config.run_days + 1
        b0 = max(run0 - config.baseline_days, 0)
        if run0 > b0 and e[b0:run0].sum() > 0:
            out[end] = max(float(s.x[b0:run0].sum() / e[b0:run0].sum()), 1e-9)
    return out


def _top_items(
    arrivals: pd.DataFrame, days: pd.DatetimeIndex, end: int, config: CusumConfig
) -> list[object]:
    """The `drop_top_items` items of one category with most arrivals in the run to `end`."""
    run = days[max(end - config.run_days + 1, 0) : end + 1]
    a = arrivals[arrivals["day"].isin(run)]
    return list(a.groupby("item_id")["n"].sum().nlargest(config.drop_top_items).index)


def _without_items(
    s: _Series, arrivals: pd.DataFrame, item_orders: pd.DataFrame, items: list[object]
) -> _Series:
    """One category's series with `items` left out whole: their arrivals and their orders
    (so the rest of the category is tested against what the rest's own orders predict)."""
    a = arrivals[arrivals["item_id"].isin(items)].groupby("day")["n"].sum()
    o = item_orders[item_orders["item_id"].isin(items)].groupby("day")["orders"].sum()
    return _Series(
        days=s.days,
        orders=np.maximum(s.orders - o.reindex(s.days, fill_value=0).to_numpy(dtype=float), 0.0),
        x=np.maximum(s.x - a.reindex(s.days, fill_value=0).to_numpy(dtype=float), 0.0),
        pmf=s.pmf,
    )


def category_cusum_tests(
    base: pd.DataFrame,
    arrivals: pd.DataFrame,
    delays: DelayModel,
    *,
    as_of: date,
    item_orders: pd.DataFrame,
    config: CusumConfig | None = None,
    watched: Collection[WatchedCategory] = (),
) -> pd.DataFrame:
    """Per day, category and metric: the CUSUM statistic at that day, observed and expected
    arrivals over the run, the threshold (lower on the days a `watched` category's watch
    covers) and whether it fires. `base` holds daily orders by sale day (`day`, `category`,
    `orders`), `arrivals` outcomes by arrival day (`day`, `category`, `item_id`, `kind`,
    `n`), `item_orders` the orders of items with outcomes (`day`, `category`, `item_id`,
    `orders`)."""
    config = config or CusumConfig()
    cols = [
        *("day", "category", "metric", "statistic", "observed", "expected", "ratio"),
        *("threshold", "watched", "firing"),
    ]
    if not len(base):
        return pd.DataFrame(columns=cols)
    end = pd.Timestamp(as_of) - pd.Timedelta(days=1)
    b = base.assign(day=pd.to_datetime(base["day"]).dt.normalize())
    days = pd.date_range(b["day"].min(), end, freq="D")
    orders = (
        b.groupby(["category", "day"])["orders"]
        .sum()
        .reindex(pd.MultiIndex.from_product([b["category"].unique(), days]), fill_value=0)
        .rename_axis(["category", "day"])
        .reset_index()
    )
    a = arrivals.assign(day=pd.to_datetime(arrivals["day"]).dt.normalize())
    io = item_orders.assign(day=pd.to_datetime(item_orders["day"]).dt.normalize())
    rows = []
    for metric, kind in CUSUM_METRICS.items():
        pmf = _pmf(delays, kind)
        of_kind = a[(a["kind"] == kind) & (a["day"] <= end)]
        categories = sorted(set(orders["category"]) - set(_NOT_CATEGORIES))
        in_categories = orders["category"].isin(categories)
        pooled = _pooled_rates(_series(orders[in_categories], of_kind, None, pmf), config)
        for cat in categories:
            watches = [w for w in watched if w.category == cat]
            own = _CategoryData(
                _series(orders, of_kind, cat, pmf),
                of_kind[of_kind["category"] == cat],
                io[io["category"] == cat],
            )
            rows.extend(_category_rows(own, cat, metric, pooled, config, watches))
    return pd.DataFrame(rows, columns=cols) if rows else pd.DataFrame(columns=cols)


@dataclass(frozen=True)
class _CategoryData:
    """One category's daily series, its arrivals per item and its items' orders."""

    series: _Series
    arrivals: pd.DataFrame
    item_orders: pd.DataFrame


def _category_rows(
    data: _CategoryData,
    category: str,
    metric: TrustMetric,
    pooled: npt.NDArray[np.float64],
    config: CusumConfig,
    watches: list[WatchedCategory],
) -> list[dict[str, object]]:
    s = data.series
    rows: list[dict[str, object]] = []
    for i, day in enumerate(s.days):
        watched = any(w.active(day.date()) for w in watches)
        threshold = config.watch_threshold if watched else config.threshold
        got = _statistic(s, i, config, pooled_rate=float(pooled[i]))
        if got is None:
            continue
        stat, observed, expected = got
        fire = stat >= threshold
        if fire and config.drop_top_items:
            top = _top_items(data.arrivals, s.days, i, config)
            rest = _without_items(s, data.arrivals, data.item_orders, top)
            kept = _statistic(rest, i, config, pooled_rate=float(pooled[i]))
            fire = kept is not None and kept[0] >= threshold
        rows.append(
            {
                "day": day,
                "category": category,
                "metric": metric.value,
                "statistic": stat,
                "observed": observed,
                "expected": expected,
                "ratio": observed / expected if expected > 0 else float("nan"),
                "threshold": threshold,
                "watched": watched,
                "firing": bool(fire),
            }
        )
    return rows


def cusum_alerts(
    tests: pd.DataFrame,
    owners: dict[str, str],
    *,
    config: CusumConfig,
    watch_owners: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Alerts from the sequential category tests. `owners` maps a metric to who answers for
    it (the `all`-channel objective's owner), `watch_owners` a watched category to the owner
    its watch names (before the metric's)."""
    watch_owners = watch_owners or {}
    if not len(tests):
        return empty_frame(ALERTS)
    firing = tests[tests["firing"].astype(bool)]
    rows = []
    for (cat, metric), g in firing.groupby(["category", "metric"], sort=True):
        for ep in episodes(g):
            first = ep.rows.iloc[0]
            kind = CUSUM_METRICS[TrustMetric(str(metric))]
            watched = bool(first["watched"])
            rows.append(
                alert_row(
                    AlertKind.TRUST_CUSUM,
                    ep,
                    severity=Severity.HIGH if first["ratio"] >= 3 else Severity.MEDIUM,
                    title=f"{cat}: {kind}s arriving {first['ratio']:.1f}x what orders predict",
                    metric=metric,
                    category=cat,
                    id_strategy=ALL + f"|{cat}",
                    owner=watch_owners.get(str(cat)) or owners.get(str(metric), "trust-ops"),
                    value=float(ep.rows["statistic"].max()),
                    threshold=float(first["threshold"]),
                    evidence=(
                        f"{kind}s in category {cat}: {first['observed']:.0f} arrived in the "
                        f"{config.run_days} days to {ep.first_day:%Y-%m-%d} where the "
                        f"category's orders and the {config.baseline_days} days before "
                        f"predict {first['expected']:.1f} (ratio {first['ratio']:.1f}); CUSUM "
                        f"for a {config.shift_ratio:g}x rise {first['statistic']:.1f} >= "
                        f"{first['threshold']:g}"
                        f"{' (a watched category)' if watched else ''}, also without the "
                        f"{config.drop_top_items} items with most."
                    ),
                )
            )
    return conform(pd.DataFrame(rows), ALERTS) if rows else empty_frame(ALERTS)
