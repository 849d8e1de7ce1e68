"""Strategy health over time: hits per day, strategy and channel against the items that could
be hit, overturns, and decay / surge tests on the hit rate.

A strategy acts each night on what was published since the night before, so its hit rate is
hits per 1,000 items of its entity published the day before (seller rules re-read every
seller each night: per 1,000 sellers registered so far). Decay (a rule that stops matching
because sellers changed their wording or a deployment broke it) is a recent hit rate far below
its baseline; a surge (a broken clause, a flood) is far above. Each is a Poisson test of the
recent hits against the baseline rate times the recent items, with a Bonferroni share of the
daily false-alarm budget per strategy x channel, and a minimum ratio so tiny shifts never page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import numpy as np
import numpy.typing as npt
import pandas as pd

from governance.monitoring.tables import STRATEGY_HEALTH, conform, empty_frame
from governance.monitoring.trust import check_relations

INPUT_TABLES = ("strategy_decisions", "listings", "videos", "live_sessions", "sellers")

_HITS = """
WITH published AS (
    SELECT 'listing' AS entity, date_trunc('day', created_at) AS day, count(*) AS n
    FROM listings GROUP BY ALL
    UNION ALL SELECT 'video', date_trunc('day', created_at), count(*) FROM videos GROUP BY ALL
    UNION ALL SELECT 'live', date_trunc('day', started_at), count(*) FROM live_sessions
    GROUP BY ALL
), hits AS (
    SELECT date_trunc('day', decided_at) AS day, strategy_id, channel, entity,
           max(strategy_version) AS strategy_version, count(*) AS hits,
           count(lifted_at) AS lifted
    FROM strategy_decisions WHERE decided_at < $as_of GROUP BY ALL
), pairs AS (
    SELECT strategy_id, channel, entity, min(day) AS first_day FROM hits GROUP BY ALL
), grid AS (
    SELECT p.strategy_id, p.channel, p.entity, CAST(g.day AS TIMESTAMP) AS day
    FROM pairs p,
         generate_series(p.first_day, $as_of - INTERVAL 1 DAY, INTERVAL 1 DAY) AS g(day)
)
SELECT g.day, g.strategy_id,
       COALESCE(h.strategy_version,
                max(h.strategy_version) OVER (PARTITION BY g.strategy_id, g.channel
                                              ORDER BY g.day ROWS UNBOUNDED PRECEDING),
                1) AS strategy_version,
       g.channel, g.entity, COALESCE(h.hits, 0) AS hits, COALESCE(h.lifted, 0) AS lifted,
       CASE WHEN g.entity = 'seller'
            THEN (SELECT count(*) FROM sellers s WHERE s.registered_at < g.day)
            ELSE COALESCE(pub.n, 0) END AS new_items
FROM grid g
LEFT JOIN hits h
  ON h.day = g.day AND h.strategy_id = g.strategy_id AND h.channel = g.channel
LEFT JOIN published pub ON pub.entity = g.entity AND pub.day = g.day - INTERVAL 1 DAY
ORDER BY g.strategy_id, g.channel, g.day
"""


@dataclass(frozen=True)
class DecayConfig:
    """Settings of the decay and surge tests (carried into reports)."""

    baseline_days: int = 14
    recent_days: int = 5
    decay_ratio: float = 0.4
    surge_ratio: float = 3.0
    family_alpha: float = 0.01
    min_baseline_hits: int = 10


def compute_strategy_health(con: duckdb.DuckDBPyConnection, *, as_of: date) -> pd.DataFrame:
    """Table `strategy_health` from the decisions and item tables registered on `con`."""
    check_relations(con, INPUT_TABLES)
    sql = _HITS.replace("$as_of", f"TIMESTAMP '{pd.Timestamp(as_of)}'")
    df = con.execute(sql).df()
    if not len(df):
        return empty_frame(STRATEGY_HEALTH)
    new = df["new_items"].to_numpy(dtype=float)
    hits = df["hits"].to_numpy(dtype=float)
    df["hits_per_1k_new_items"] = np.divide(
        1000 * hits, new, out=np.full(len(df), np.nan), where=new > 0
    )
    df["overturn_rate"] = np.divide(
        df["lifted"].to_numpy(dtype=float), hits, out=np.full(len(df), np.nan), where=hits > 0
    )
    return conform(df, STRATEGY_HEALTH)


def _rolling(x: npt.NDArray[np.float64], w: int) -> npt.NDArray[np.float64]:
    c = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(1, len(x) + 1)
    return np.asarray(c[idx] - c[np.maximum(idx - w, 0)], dtype=np.float64)


def _lagged(x: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.float64]:
    """`x` shifted `k` places later, zeros first."""
    return np.concatenate([np.zeros(min(k, len(x))), x[: max(len(x) - k, 0)]])


def hit_rate_tests(health: pd.DataFrame, config: DecayConfig | None = None) -> pd.DataFrame:
    """Per day, strategy and channel: recent vs baseline hit rate, the ratio, the p-values of
    decay and surge, and which (if any) fires. Columns: day, strategy_id, channel,
    recent_hits, expected_hits, ratio, p_decay, p_surge, firing (`decay`, `surge` or None)."""
    from scipy.stats import poisson

    config = config or DecayConfig()
    if not len(health):
        return pd.DataFrame(
            columns=[
                "day",
                "strategy_id",
                "channel",
                "recent_hits",
                "expected_hits",
                "ratio",
                "p_decay",
                "p_surge",
                "firing",
            ]
        )
    n_tests = max(health.groupby(["strategy_id", "channel"]).ngroups, 1)
    alpha = config.family_alpha / n_tests
    out = []
    for (sid, channel), g in health.groupby(["strategy_id", "channel"], sort=True):
        g = g.sort_values("day")
        h = g["hits"].to_numpy(dtype=float)
        n = g["new_items"].to_numpy(dtype=float)
        r, b = config.recent_days, config.baseline_days
        recent_h, recent_n = _rolling(h, r), _rolling(n, r)
        base_h = _lagged(_rolling(h, b), r)
        base_n = _lagged(_rolling(n, b), r)
        full = np.arange(len(h)) >= r + b - 1
        rate = np.divide(base_h, base_n, out=np.zeros(len(h)), where=base_n > 0)
        expected = rate * recent_n
        ratio = np.divide(recent_h, expected, out=np.full(len(h), np.nan), where=expected > 0)
        p_decay = poisson.cdf(recent_h, np.maximum(expected, 1e-9))
        p_surge = poisson.sf(recent_h - 1, np.maximum(expected, 1e-9))
        ok = full & (base_h >= config.min_baseline_hits)
        decay = ok & (p_decay < alpha) & (ratio <= config.decay_ratio)
        surge = ok & (p_surge < alpha) & (ratio >= config.surge_ratio)
        firing = pd.Series(None, index=range(len(h)), dtype=object)
        firing[decay] = "decay"
        firing[surge & ~decay] = "surge"
        out.append(
            pd.DataFrame(
                {
                    "day": g["day"].to_numpy(),
                    "strategy_id": sid,
                    "channel": channel,
                    "recent_hits": recent_h,
                    "expected_hits": expected,
                    "ratio": ratio,
                    "p_decay": p_decay,
                    "p_surge": p_surge,
                    "firing": firing.to_numpy(),
                }
            )
        )
    return pd.concat(out, ignore_index=True)
