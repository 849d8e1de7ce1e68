"""Objective status per day and channel, and burn-rate alerts on the error budgets.

Outcomes still due are accounted for: a day's bad events are divided by the share expected
to have arrived (its completeness for the metric's outcome kind), and days less complete than
`min_completeness` are left out of every window (they count neither events nor budget), so a
young day neither hides an incident nor raises one on a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd

from governance.monitoring.objectives import (
    METRIC_KIND,
    METRIC_PARTS,
    BurnRule,
    Objective,
    ObjectiveSet,
    default_rules,
)
from governance.monitoring.tables import OBJECTIVE_STATUS, conform, empty_frame
from governance.monitoring.trust import DelayModel
from governance.monitoring.vocabulary import ALL, Severity

_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}  # critical first


def _dispersion(k: npt.NDArray[np.float64], n: npt.NDArray[np.float64]) -> float:
    """Quasi-Poisson dispersion of daily counts `k` on exposures `n` (>= 1).

    Outcomes cluster on items (one bad listing draws many complaints), so daily counts vary
    more than Poisson; the Pearson statistic at the series' own rate measures by how much. The
    largest 5% of residuals are left out so an incident does not hide itself.
    """
    ok = n > 0
    if ok.sum() < 5 or k[ok].sum() <= 0:
        return 1.0
    rate = k[ok].sum() / n[ok].sum()
    mu = rate * n[ok]
    r2 = (k[ok] - mu) ** 2 / np.maximum(mu, 1e-9)
    r2 = np.sort(r2)[: max(int(np.ceil(0.95 * len(r2))), 1)]
    return float(max(r2.mean(), 1.0))


@dataclass(frozen=True)
class BurnConfig:
    """Settings a burn-rate run used (carried into reports)."""

    min_completeness: float = 0.5
    alpha: float = 0.001
    min_events: int = 5


def daily_channel_counts(base: pd.DataFrame, *, as_of: date) -> pd.DataFrame:
    """Daily sums per channel and for `all`, every day from the first to `as_of` - 1."""
    cols = [
        "orders",
        "gmv",
        "complaints",
        "returns",
        "refund_usd",
        "refunds",
        "reviews",
        "low_stars",
    ]
    if not len(base):
        return pd.DataFrame(columns=["day", "channel", *cols])
    b = base.assign(day=pd.to_datetime(base["day"]).dt.normalize())
    per = b.dropna(subset=["channel"]).groupby(["day", "channel"], as_index=False)[cols].sum()
    overall = b.groupby("day", as_index=False)[cols].sum().assign(channel=ALL)
    both = pd.concat([per, overall], ignore_index=True)
    days = pd.date_range(b["day"].min(), pd.Timestamp(as_of) - pd.Timedelta(days=1), freq="D")
    grid = pd.MultiIndex.from_product(
        [days, sorted(both["channel"].unique())], names=["day", "channel"]
    )
    return both.set_index(["day", "channel"]).reindex(grid, fill_value=0).reset_index()


def objective_status(
    base: pd.DataFrame,
    delays: DelayModel,
    objectives: ObjectiveSet,
    *,
    as_of: date,
    config: BurnConfig | None = None,
    rules: tuple[BurnRule, ...] | None = None,
) -> pd.DataFrame:
    """Table `objective_status`: each objective's value, budget spent and burn rates per day."""
    config = config or BurnConfig()
    rules = rules or default_rules(objectives.window_days)
    if not 0 < config.min_completeness <= 1:
        raise ValueError("min_completeness must be in (0, 1]")
    daily = daily_channel_counts(base, as_of=as_of)
    parts = [
        _one_objective(daily[daily["channel"] == o.channel], o, delays, objectives, config, rules)
        for o in objectives.expanded()
    ]
    parts = [p for p in parts if len(p)]
    if not parts:
        return empty_frame(OBJECTIVE_STATUS)
    return conform(pd.concat(parts, ignore_index=True), OBJECTIVE_STATUS)


def _rolling(x: npt.NDArray[np.float64], w: int) -> npt.NDArray[np.float64]:
    c = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(1, len(x) + 1)
    return np.asarray(c[idx] - c[np.maximum(idx - w, 0)], dtype=np.float64)


def _one_objective(
    daily: pd.DataFrame,
    objective: Objective,
    delays: DelayModel,
    objectives: ObjectiveSet,
    config: BurnConfig,
    rules: tuple[BurnRule, ...],
) -> pd.DataFrame:
    from scipy.stats import poisson

    if not len(daily):
        return pd.DataFrame()
    d = daily.sort_values("day").reset_index(drop=True)
    num_col, den_col, scale = METRIC_PARTS[objective.metric]
    end = d["day"].max() + pd.Timedelta(days=1)
    age = (end - d["day"]).dt.days.to_numpy(dtype=float) - 0.5
    comp = delays.completeness(METRIC_KIND[objective.metric], age)
    usable = comp >= config.min_completeness
    bad = np.where(usable, d[num_col].to_numpy(dtype=float) / np.maximum(comp, 1e-9), 0.0)
    allowed = np.where(usable, objective.target / scale * d[den_col].to_numpy(dtype=float), 0.0)

    def burn(w: int) -> npt.NDArray[np.float64]:
        a = _rolling(allowed, w)
        out: npt.NDArray[np.float64] = np.divide(
            _rolling(bad, w), a, out=np.full(len(a), np.nan), where=a > 0
        )
        return out

    # events in count units: refunds in USD are converted at the mean refund of the series
    unit = 1.0
    if num_col == "refund_usd":
        n_refunds = float(d["refunds"].sum())
        unit = float(d["refund_usd"].sum()) / n_refunds if n_refunds > 0 else 1.0
    phi = _dispersion(
        np.where(usable, d[num_col].to_numpy(dtype=float) / unit, 0.0),
        np.where(usable, d[den_col].to_numpy(dtype=float), 0.0),
    )
    firing: list[str | None] = [None] * len(d)
    burns: dict[int, npt.NDArray[np.float64]] = {}
    for rule in sorted(rules, key=lambda r: _SEVERITY_RANK[r.severity], reverse=True):
        long_b = burns.setdefault(rule.long_days, burn(rule.long_days))
        short_b = burns.setdefault(rule.short_days, burn(rule.short_days))
        events = _rolling(bad, rule.long_days)
        hit = usable & (long_b >= rule.burn) & (short_b >= rule.burn)
        # evidence that the rate is above target at all: a one-sided quasi-Poisson test
        k = events / unit / phi
        expected = _rolling(allowed, rule.long_days) / unit / phi
        p = poisson.sf(np.ceil(k) - 1, np.maximum(expected, 1e-9))
        hit &= (events / unit >= config.min_events) & (p < config.alpha)
        for i in np.flatnonzero(hit):
            firing[i] = rule.severity.value  # later rules are more severe
    short, mid, long = sorted({r.long_days for r in rules})[:3]
    den = d[den_col].to_numpy(dtype=float)
    value = np.divide(
        scale * np.where(usable, bad, np.nan), den, out=np.full(len(d), np.nan), where=den > 0
    )
    return pd.DataFrame(
        {
            "day": d["day"],
            "channel": objective.channel,
            "metric": objective.metric.value,
            "target": objective.target,
            "owner": objective.owner,
            "value": value,
            "completeness": comp,
            "budget_spent": burn(objectives.window_days),
            "burn_short": burns.get(short, burn(short)),
            "burn_mid": burns.get(mid, burn(mid)),
            "burn_long": burns.get(long, burn(long)),
            "events_long": _rolling(bad, long),
            "firing": firing,
        }
    )
