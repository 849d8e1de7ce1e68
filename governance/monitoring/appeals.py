"""Appeals and overturns of each strategy, week by week, and a test for a rising overturn rate.

A strategy's unit is an item it actioned (in any channel), dated by its first decision on the
item. The item was **appealed** when the audit holds an appeal review of it on the strategy's
policy given after that decision (the contract's `appeal` outcomes carry no policy; the
appeal reviews in `audit_labels` do), and **overturned** when the strategy's decision on it
was lifted (an upheld appeal). Both rates are per actioned item.

Overturns arrive days after the decision (appeal, then review), so a recent week's rate is
still filling in. The test therefore counts only overturns within `horizon_days` of the
decision and compares items old enough to have had them: those first actioned in the
`recent_days` ending `horizon_days` before the day against the `baseline_days` before. Under
an unchanged rate the recent overturns are binomial given the total (the conditional test of
two rates), so a one-sided exact test holds its level at any count; the false-alarm budget is
split across strategies (Bonferroni, as the hit-rate tests), and a minimum ratio and count keep
small rises from paging.

The same test runs on overturns per item the strategy could act on (the items published the
night before, as the hit rates count them): wrongful blocks per new item, which rise when a
broken clause adds honest hits even while the rate per decision is too noisy to tell (a
strategy's few baseline overturns limit that test). A surge of hits whose overturns do not
rise is a flood of violators; with them, a rule gone wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd

from governance.monitoring.tables import STRATEGY_APPEALS, conform, empty_frame

#: Audit design of appeal reviews.
_APPEAL = "appeal"
_TEST_COLUMNS = [
    "day",
    "strategy_id",
    "recent_items",
    "recent_overturned",
    "baseline_items",
    "baseline_overturned",
    "ratio",
    "p_rise",
    "recent_new_items",
    "baseline_new_items",
    "ratio_per_new_item",
    "p_rise_per_new_item",
    "firing",
]


@dataclass(frozen=True)
class OverturnConfig:
    """Settings of the overturn-rate test (carried into reports)."""

    horizon_days: int = 5
    recent_days: int = 7
    baseline_days: int = 21
    rise_ratio: float = 2.0
    min_overturns: int = 5
    family_alpha: float = 0.01
    confidence: float = 0.95


def actioned_items(
    decisions: pd.DataFrame,
    labels: pd.DataFrame | None,
    policies: Mapping[str, str],
    *,
    as_of: date,
) -> pd.DataFrame:
    """One row per strategy and item it actioned before `as_of`: strategy_id, entity,
    item_id, decided_at (first decision), lifted_at (first lift before `as_of`, else NaT),
    appealed_at (first appeal review of the strategy's policy after the decision, before
    `as_of`, else NaT). `policies` maps strategy id -> policy; a strategy not in it matches
    appeal reviews of any policy."""
    needed = ("strategy_id", "entity", "item_id", "decided_at", "lifted_at")
    missing = [c for c in needed if c not in decisions.columns]
    if missing:
        raise KeyError(f"strategy_decisions lacks columns {missing}")
    cutoff = pd.Timestamp(as_of)
    d = decisions[pd.to_datetime(decisions["decided_at"]) < cutoff]
    lifted = pd.to_datetime(d["lifted_at"])
    d = d.assign(
        decided_at=pd.to_datetime(d["decided_at"]), lifted_at=lifted.where(lifted < cutoff)
    )
    items = d.groupby(["strategy_id", "entity", "item_id"], as_index=False).agg(
        decided_at=("decided_at", "min"), lifted_at=("lifted_at", "min")
    )
    items["appealed_at"] = pd.NaT
    if labels is None or not len(items):
        return items
    a = labels[labels["sampling"] == _APPEAL]
    a = a.assign(reviewed_at=pd.to_datetime(a["reviewed_at"]))
    a = a[a["reviewed_at"] < cutoff][["entity", "item_id", "policy", "reviewed_at"]]
    m = items.reset_index().merge(a, on=["entity", "item_id"])
    own = m["strategy_id"].map(policies)
    m = m[(own.isna() | (own == m["policy"])) & (m["reviewed_at"] >= m["decided_at"])]
    first = m.groupby("index")["reviewed_at"].min()
    items["appealed_at"] = pd.to_datetime(pd.Series(items.index, index=items.index).map(first))
    return items


def strategy_appeals(
    items: pd.DataFrame, *, as_of: date, config: OverturnConfig | None = None
) -> pd.DataFrame:
    """Table `strategy_appeals` from `actioned_items`: per strategy and week of its first
    decisions, the appeal and overturn rates with exact (Clopper-Pearson) intervals."""
    from scipy.stats import beta

    config = config or OverturnConfig()
    if not len(items):
        return empty_frame(STRATEGY_APPEALS)
    week = items["decided_at"].dt.to_period("W-SUN").dt.start_time
    g = (
        items.assign(
            week_start=week,
            appealed=items["appealed_at"].notna(),
            overturned=items["lifted_at"].notna(),
        )
        .groupby(["week_start", "strategy_id"], as_index=False)
        .agg(
            items_actioned=("item_id", "size"),
            appeals=("appealed", "sum"),
            overturned=("overturned", "sum"),
        )
    )
    n = g["items_actioned"].to_numpy(dtype=float)
    k = g["overturned"].to_numpy(dtype=float)
    tail = (1 - config.confidence) / 2
    g["appeal_rate"] = g["appeals"] / n
    g["overturn_rate"] = k / n
    g["overturn_rate_low"] = np.where(k > 0, beta.ppf(tail, k, n - k + 1), 0.0)
    g["overturn_rate_high"] = np.where(k < n, beta.ppf(1 - tail, k + 1, n - k), 1.0)
    g["overturned_share_of_appeals"] = np.divide(
        k, g["appeals"], out=np.full(len(g), np.nan), where=g["appeals"].to_numpy() > 0
    )
    last_decision = g["week_start"] + pd.Timedelta(days=7)
    g["complete"] = last_decision + pd.Timedelta(days=config.horizon_days) <= pd.Timestamp(as_of)
    g["confidence"] = config.confidence
    return conform(g, STRATEGY_APPEALS)


def _window_sum(x: npt.NDArray[np.float64], width: int, end_lag: int) -> npt.NDArray[np.float64]:
    """For each day t, the sum of x over days [t - end_lag - width + 1, t - end_lag]."""
    c = np.concatenate([[0.0], np.cumsum(x)])
    t = np.arange(len(x))
    hi = np.clip(t - end_lag + 1, 0, len(x))
    lo = np.clip(t - end_lag - width + 1, 0, len(x))
    return np.asarray(c[hi] - c[lo], dtype=np.float64)


def _rise_test(
    k: npt.NDArray[np.float64], n: npt.NDArray[np.float64], config: OverturnConfig
) -> dict[str, npt.NDArray[np.float64]]:
    """Per day: overturns `k` and exposure `n` (per decision day) of the recent and baseline
    windows, the ratio of their rates and the conditional binomial p-value of a rise."""
    from scipy.stats import binom

    r, b, h = config.recent_days, config.baseline_days, config.horizon_days
    n_r, k_r = _window_sum(n, r, h), _window_sum(k, r, h)
    n_b, k_b = _window_sum(n, b, h + r), _window_sum(k, b, h + r)
    share = np.divide(n_r, n_r + n_b, out=np.zeros(len(n)), where=n_r + n_b > 0)
    total = k_r + k_b
    p = np.where(total > 0, binom.sf(k_r - 1, total, share), 1.0)
    # the baseline rate with half an overturn added, so a clean baseline is not zero
    base = np.divide(k_b + 0.5, n_b, out=np.full(len(n), np.nan), where=n_b > 0)
    ratio = np.divide(
        np.divide(k_r, n_r, out=np.zeros(len(n)), where=n_r > 0),
        base,
        out=np.full(len(n), np.nan),
        where=np.isfinite(base) & (n_r > 0),
    )
    return {"n_r": n_r, "k_r": k_r, "n_b": n_b, "k_b": k_b, "ratio": ratio, "p": p}


def overturn_tests(
    items: pd.DataFrame,
    *,
    as_of: date,
    new_items: pd.DataFrame | None = None,
    config: OverturnConfig | None = None,
) -> pd.DataFrame:
    """Per day and strategy: items and overturns (within the horizon) of the recent and
    baseline windows, the ratio of their overturn rates and the p-value of a rise; with
    `new_items` (day, strategy_id, new_items: the items the strategy could act on that
    night, as in `strategy_health`), the same for overturns per new item. `firing` is `rate`
    (overturns per actioned item rose), `per_new_item` (per item that could be hit: more
    wrongful blocks, from more hits or a worse rate) or None. A day t counts the items first
    actioned in the `recent_days` ending `horizon_days` before t (whose overturns within the
    horizon are all known by t)."""
    config = config or OverturnConfig()
    if not len(items):
        return pd.DataFrame(columns=_TEST_COLUMNS)
    horizon = pd.Timedelta(days=config.horizon_days)
    it = items.assign(
        day=items["decided_at"].dt.normalize(),
        k=(items["lifted_at"].notna() & (items["lifted_at"] < items["decided_at"] + horizon)),
    )
    days = pd.date_range(it["day"].min(), pd.Timestamp(as_of), freq="D")
    per_new = None
    if new_items is not None and len(new_items):
        per_new = new_items.assign(day=pd.to_datetime(new_items["day"])).pivot_table(
            index="day", columns="strategy_id", values="new_items", aggfunc="max"
        )
    n_tests = max(it["strategy_id"].nunique(), 1) * (1 if per_new is None else 2)
    alpha = config.family_alpha / n_tests
    warm = (
        np.arange(len(days)) >= config.horizon_days + config.recent_days + config.baseline_days - 1
    )
    out = []
    for sid, g in it.groupby("strategy_id", sort=True):
        per = g.groupby("day").agg(n=("item_id", "size"), k=("k", "sum")).reindex(days)
        k = per["k"].fillna(0).to_numpy(dtype=float)
        rate = _rise_test(k, per["n"].fillna(0).to_numpy(dtype=float), config)
        fires_rate = _fires(rate, warm, alpha, config)
        cols: dict[str, object] = {
            "day": days,
            "strategy_id": sid,
            "recent_items": rate["n_r"],
            "recent_overturned": rate["k_r"],
            "baseline_items": rate["n_b"],
            "baseline_overturned": rate["k_b"],
            "ratio": rate["ratio"],
            "p_rise": rate["p"],
            "recent_new_items": np.nan,
            "baseline_new_items": np.nan,
            "ratio_per_new_item": np.nan,
            "p_rise_per_new_item": np.nan,
        }
        fires_new = np.zeros(len(days), dtype=bool)
        if per_new is not None and sid in per_new.columns:
            exposure = per_new[sid].reindex(days).fillna(0).to_numpy(dtype=float)
            new = _rise_test(k, exposure, config)
            fires_new = _fires(new, warm, alpha, config)
            cols.update(
                recent_new_items=new["n_r"],
                baseline_new_items=new["n_b"],
                ratio_per_new_item=new["ratio"],
                p_rise_per_new_item=new["p"],
            )
        firing = [
            "rate" if a else ("per_new_item" if b else None)
            for a, b in zip(fires_rate, fires_new, strict=True)
        ]
        cols["firing"] = pd.Series(firing, dtype=object)
        out.append(pd.DataFrame(cols))
    return pd.concat(out, ignore_index=True)


def _fires(
    test: dict[str, npt.NDArray[np.float64]],
    warm: npt.NDArray[np.bool_],
    alpha: float,
    config: OverturnConfig,
) -> npt.NDArray[np.bool_]:
    return np.asarray(
        warm
        & (test["p"] < alpha)
        & (test["k_r"] >= config.min_overturns)
        & (np.nan_to_num(test["ratio"]) >= config.rise_ratio),
        dtype=bool,
    )
