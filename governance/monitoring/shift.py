"""Category shifts: a category's complaint or return rate jumping above its own baseline.

Channel objectives cannot see a surge confined to one category (it moves its channel's rate
by a fraction), and categories differ too much for one target. So each category (across
channels) is tested against itself: the last `recent_days` usable days against the
`baseline_days` before them, a one-sided quasi-Poisson test with the family-wise false-alarm
budget split (Bonferroni) across categories x metrics, and a minimum ratio. Days still filling
in are corrected and left out as for the burn rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd

from governance.monitoring.alerts import alert_row, episodes
from governance.monitoring.burn import _dispersion
from governance.monitoring.objectives import METRIC_KIND
from governance.monitoring.tables import ALERTS, conform, empty_frame
from governance.monitoring.trust import DelayModel
from governance.monitoring.vocabulary import ALL, AlertKind, Severity, TrustMetric

#: Metrics tested per category: numerator and denominator columns of the base counts.
SHIFT_METRICS: dict[TrustMetric, tuple[str, str]] = {
    TrustMetric.COMPLAINTS_PER_1K_ORDERS: ("complaints", "orders"),
    TrustMetric.RETURNS_PER_1K_ORDERS: ("returns", "orders"),
}


@dataclass(frozen=True)
class ShiftConfig:
    """Settings of the category shift tests (carried into reports)."""

    recent_days: int = 5
    baseline_days: int = 21
    min_ratio: float = 2.0
    family_alpha: float = 0.01
    min_events: float = 8.0
    min_completeness: float = 0.5
    #: A shift many items share, not one item's burst (a viral video): the test must still
    #: pass with this many items with most recent events left out.
    drop_top_items: int = 2


def _rolling(x: npt.NDArray[np.float64], w: int) -> npt.NDArray[np.float64]:
    c = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(1, len(x) + 1)
    return np.asarray(c[idx] - c[np.maximum(idx - w, 0)], dtype=np.float64)


def _without_top_items(
    items: pd.DataFrame,
    category: str,
    column: str,
    rec_n: npt.NDArray[np.float64],
    expected: npt.NDArray[np.float64],
    fire: npt.NDArray[np.bool_],
    days: pd.DatetimeIndex,
    alpha: float,
    config: ShiftConfig,
) -> npt.NDArray[np.bool_]:
    """On the days `fire` holds: does the test still pass with the `drop_top_items` items
    with most events in the recent window left out?"""
    from scipy.stats import poisson

    it = items[items["category"] == category]
    day = pd.to_datetime(it["day"]).dt.normalize()
    out = np.zeros(len(fire), dtype=bool)
    for i in np.flatnonzero(fire):
        end = pd.Timestamp(days[int(i)])
        window = it[(day > end - pd.Timedelta(days=config.recent_days)) & (day <= end)]
        top = window.groupby("item_id")[column].sum().nlargest(config.drop_top_items).sum()
        rest = rec_n[i] - float(top)
        p = float(poisson.sf(np.ceil(rest) - 1, max(expected[i], 1e-9)))
        out[i] = p < alpha and rest >= config.min_ratio * expected[i]
    return out


def category_shift_tests(
    base: pd.DataFrame,
    delays: DelayModel,
    *,
    as_of: date,
    item_outcomes: pd.DataFrame | None = None,
    config: ShiftConfig | None = None,
) -> pd.DataFrame:
    """Per day, category and metric: recent and expected events, ratio, p-value, firing
    (`item_outcomes` from the trust result enables the single-item guard)."""
    from scipy.stats import poisson

    config = config or ShiftConfig()
    cols = ["day", "category", "metric", "recent", "expected", "ratio", "p", "firing"]
    if not len(base):
        return pd.DataFrame(columns=cols)
    b = base.assign(day=pd.to_datetime(base["day"]).dt.normalize())
    per = b.groupby(["category", "day"], as_index=False)[["orders", "complaints", "returns"]].sum()
    days = pd.date_range(b["day"].min(), pd.Timestamp(as_of) - pd.Timedelta(days=1), freq="D")
    categories = sorted(c for c in per["category"].unique() if c not in ("unknown", "seller"))
    alpha = config.family_alpha / max(len(categories) * len(SHIFT_METRICS), 1)
    end = pd.Timestamp(as_of)
    age = (end - days).days.to_numpy(dtype=float) - 0.5
    out = []
    for metric, (num_col, den_col) in SHIFT_METRICS.items():
        comp = delays.completeness(METRIC_KIND[metric], age)
        usable = comp >= config.min_completeness
        for cat in categories:
            g = (
                per.loc[per["category"] == cat, ["day", num_col, den_col]]
                .set_index("day")
                .reindex(days, fill_value=0)
            )
            num = np.where(usable, g[num_col].to_numpy(dtype=float) / np.maximum(comp, 1e-9), 0)
            den = np.where(usable, g[den_col].to_numpy(dtype=float), 0.0)
            r, w = config.recent_days, config.baseline_days
            rec_n, rec_d = _rolling(num, r), _rolling(den, r)
            base_n = np.concatenate([np.zeros(r), _rolling(num, w)[:-r]])[: len(num)]
            base_d = np.concatenate([np.zeros(r), _rolling(den, w)[:-r]])[: len(num)]
            rate = np.divide(base_n, base_d, out=np.zeros(len(num)), where=base_d > 0)
            expected = rate * rec_d
            phi = _dispersion(g[num_col].to_numpy(dtype=float), g[den_col].to_numpy(dtype=float))
            p = poisson.sf(np.ceil(rec_n / phi) - 1, np.maximum(expected / phi, 1e-9))
            ratio = np.divide(rec_n, expected, out=np.full(len(num), np.nan), where=expected > 0)
            ok = (np.arange(len(num)) >= r + w - 1) & usable & (base_n >= config.min_events)
            fire = ok & (rec_n >= config.min_events) & (p < alpha) & (ratio >= config.min_ratio)
            if item_outcomes is not None and fire.any():
                fire &= _without_top_items(
                    item_outcomes, cat, num_col, rec_n, expected, fire, days, alpha, config
                )
            out.append(
                pd.DataFrame(
                    {
                        "day": days,
                        "category": cat,
                        "metric": metric.value,
                        "recent": rec_n,
                        "expected": expected,
                        "ratio": ratio,
                        "p": p,
                        "firing": fire,
                    }
                )
            )
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols)


def shift_alerts(
    tests: pd.DataFrame, base: pd.DataFrame, owners: dict[str, str], *, config: ShiftConfig
) -> pd.DataFrame:
    """Alerts from the category shift tests; evidence names the channel with most excess.
    `owners` maps a metric to who answers for it (the `all`-channel objective's owner)."""
    firing = tests[tests["firing"].astype(bool)]
    rows = []
    for (cat, metric), g in firing.groupby(["category", "metric"], sort=True):
        for ep in episodes(g):
            first = ep.rows.iloc[0]
            peak = float(ep.rows["ratio"].max())
            num_col = SHIFT_METRICS[TrustMetric(str(metric))][0]
            day = pd.to_datetime(base["day"])
            window = (day > ep.first_day - pd.Timedelta(days=config.recent_days)) & (
                day <= ep.first_day
            )
            by_channel = base[window & (base["category"] == cat)].groupby("channel")[num_col].sum()
            channel_text = ", ".join(
                f"{c} {v:.0f}" for c, v in by_channel.sort_values(ascending=False).head(3).items()
            )
            rows.append(
                alert_row(
                    AlertKind.TRUST_SHIFT,
                    ep,
                    severity=Severity.HIGH if peak >= 3 else Severity.MEDIUM,
                    title=f"{cat}: {metric} {first['ratio']:.1f}x its baseline",
                    metric=metric,
                    category=cat,
                    id_strategy=ALL + f"|{cat}",
                    owner=owners.get(str(metric), "trust-ops"),
                    value=peak,
                    threshold=config.min_ratio,
                    evidence=(
                        f"{metric} in category {cat}: {first['recent']:.0f} in the "
                        f"{config.recent_days} days to {ep.first_day:%Y-%m-%d} where the "
                        f"{config.baseline_days} days before predict {first['expected']:.1f} "
                        f"(ratio {first['ratio']:.1f}, p {first['p']:.1e}); by channel: "
                        f"{channel_text or 'none'}."
                    ),
                )
            )
    return conform(pd.DataFrame(rows), ALERTS) if rows else empty_frame(ALERTS)
