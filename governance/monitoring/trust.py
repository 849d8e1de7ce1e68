"""Trust metrics per period, channel and slice, computed in DuckDB over the contract tables.

Every outcome is attributed to the sale (or click, for NPS) it most likely follows: the latest
day, at or before the outcome, on which its item had orders (clicks) in its channel (an ASOF
join). Rates then divide outcomes by the orders of the same days, so an incident shows on the
days its sales happened, and recent days are still filling in: each period carries the share
of its outcomes expected to have arrived, from the delay distribution of older sales.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import duckdb
import numpy as np
import numpy.typing as npt
import pandas as pd

from features.vocabulary import OutcomeKind
from governance.monitoring.tables import TRUST_METRICS, conform
from governance.monitoring.vocabulary import ALL, Dimension

#: Contract tables (DuckDB relations of the same name) trust metrics read.
INPUT_TABLES = ("sellers", "listings", "videos", "live_sessions", "channel_exposure", "outcomes")
#: Outcome kinds that follow an order (their rates are per order), and NPS (per click).
DELAYED_KINDS = (
    OutcomeKind.COMPLAINT,
    OutcomeKind.RETURN,
    OutcomeKind.REFUND,
    OutcomeKind.REVIEW,
    OutcomeKind.NPS,
)
_Z = 1.959963984540054
_MAX_DELAY_DAYS = 60


@dataclass(frozen=True)
class DelayModel:
    """Empirical delay from sale to outcome per kind: `cdf[kind][k]` = P(delay <= k days)."""

    cdf: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    n: dict[str, int] = field(default_factory=dict)

    def completeness(self, kind: str, age_days: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Expected share of a sale's `kind` outcomes arrived `age_days` after it (1 if unknown)."""
        age = np.asarray(age_days, dtype=np.float64)
        cdf = self.cdf.get(kind)
        if cdf is None or not len(cdf):
            return np.ones_like(age)
        grid = np.arange(len(cdf), dtype=np.float64)
        return np.asarray(np.interp(age, grid, cdf, left=0.0, right=1.0), dtype=np.float64)

    def pmf_frame(self, floor: float = 1e-4) -> pd.DataFrame:
        """Columns kind, d, p: P(delay in [d, d + 1) days), never below `floor` (so an outcome
        later than any seen can still be attributed)."""
        rows = []
        for kind, cdf in self.cdf.items():
            pmf = np.diff(cdf)
            for d, p in enumerate(pmf):
                rows.append((kind, d, max(float(p), floor)))
        for kind in DELAYED_KINDS:
            if kind.value not in self.cdf:
                rows.extend((kind.value, d, 1.0) for d in range(_MAX_DELAY_DAYS + 1))
        return pd.DataFrame(rows, columns=["kind", "d", "p"])

    def quantile_days(self, kind: str, q: float) -> float:
        """Days by which a share `q` of a sale's `kind` outcomes arrive."""
        cdf = self.cdf.get(kind)
        if cdf is None or not len(cdf):
            return 0.0
        return float(np.searchsorted(cdf, q))


@dataclass(frozen=True)
class TrustResult:
    """Trust metrics (table `trust_metrics`) and the delay model behind their maturity."""

    metrics: pd.DataFrame
    delays: DelayModel
    #: Daily base counts per (day, channel, category, seller_tier) the objectives reuse.
    base: pd.DataFrame
    #: Complaints and returns per (day, category, item_id), for concentration checks.
    item_outcomes: pd.DataFrame
    #: Complaints and returns per arrival day, category and item (`day`, `category`,
    #: `item_id`, `kind`, `n`), for the sequential tests.
    arrivals: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: Orders per sale day, category and item (`day`, `category`, `item_id`, `orders`) of the
    #: items with complaints or returns: the sequential tests leave an item out whole.
    item_orders: pd.DataFrame = field(default_factory=pd.DataFrame)


def check_relations(con: duckdb.DuckDBPyConnection, names: tuple[str, ...]) -> None:
    """Raise KeyError naming the missing relations (contract tables) on `con`."""
    have = {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    missing = [n for n in names if n not in have]
    if missing:
        raise KeyError(
            f"tables {missing} are missing; monitoring reads {list(names)} from the data "
            "directory's tables/ (see docs/data-contract.md)"
        )


def compute_trust_metrics(
    con: duckdb.DuckDBPyConnection,
    *,
    as_of: date,
    delay_reference_days: int = 21,
    mature_completeness: float = 0.9,
) -> TrustResult:
    """Trust metrics from the contract tables registered on `con`, for days before `as_of`."""
    check_relations(con, INPUT_TABLES)
    if not 0 < mature_completeness <= 1:
        raise ValueError("mature_completeness must be in (0, 1]")
    return _compute_trust(
        con,
        as_of=as_of,
        delay_reference_days=delay_reference_days,
        mature_completeness=mature_completeness,
    )


_PREPARE = """
CREATE OR REPLACE TEMP TABLE _mon_slices AS
WITH items AS (
    SELECT 'listing' AS entity, listing_id AS item_id, category, seller_id FROM listings
    UNION ALL
    SELECT 'video', v.video_id, l.category, l.seller_id
    FROM videos v JOIN listings l ON v.listing_id = l.listing_id
    UNION ALL
    SELECT 'live', s.live_id, l.category, l.seller_id
    FROM live_sessions s JOIN listings l ON s.listing_id = l.listing_id
    UNION ALL
    SELECT 'seller', seller_id, 'seller', seller_id FROM sellers
)
SELECT i.entity, i.item_id, i.category,
       CASE WHEN s.is_official_store THEN 'official' ELSE s.verification END AS seller_tier
FROM items i LEFT JOIN sellers s ON i.seller_id = s.seller_id;

CREATE OR REPLACE TEMP TABLE _mon_exposure AS
SELECT entity, item_id, channel, CAST(day AS TIMESTAMP) AS day,
       impressions, clicks, orders, gmv
FROM channel_exposure WHERE day < $as_of;

CREATE OR REPLACE TEMP TABLE _mon_outcomes AS
SELECT outcome_id, kind, value, channel, entity, item_id, occurred_at,
       CASE WHEN kind = 'nps' THEN 'click' ELSE 'order' END AS basis
FROM outcomes WHERE kind <> 'appeal' AND occurred_at < $as_of;

CREATE OR REPLACE TEMP TABLE _mon_sales AS
SELECT entity, item_id, channel, day, orders AS n, 'order' AS basis
FROM _mon_exposure WHERE orders > 0
UNION ALL
SELECT entity, item_id, channel, day, clicks, 'click' FROM _mon_exposure WHERE clicks > 0;

CREATE OR REPLACE TEMP TABLE _mon_delays AS
WITH single AS (
    SELECT entity, item_id, channel, basis, min(day) AS day FROM _mon_sales
    GROUP BY ALL HAVING count(*) = 1
)
SELECT o.kind, s.day, least(floor(epoch(o.occurred_at - s.day) / 86400), $max_delay)::INT AS d,
       'single' AS source
FROM _mon_outcomes o JOIN single s
  ON o.entity = s.entity AND o.item_id = s.item_id AND o.channel = s.channel
     AND o.basis = s.basis AND o.occurred_at >= s.day
UNION ALL
SELECT o.kind, s.day, least(floor(epoch(o.occurred_at - s.day) / 86400), $max_delay)::INT,
       'latest'
FROM _mon_outcomes o ASOF JOIN _mon_sales s
  ON o.entity = s.entity AND o.item_id = s.item_id AND o.channel = s.channel
     AND o.basis = s.basis AND o.occurred_at >= s.day;

"""

_BASE = """
CREATE OR REPLACE TEMP TABLE _mon_base AS
WITH e AS (
    SELECT x.day, x.channel, COALESCE(s.category, 'unknown') AS category,
           COALESCE(s.seller_tier, 'unknown') AS seller_tier,
           sum(impressions) AS impressions, sum(orders) AS orders, sum(gmv) AS gmv,
           sum(clicks) AS clicks
    FROM _mon_exposure x LEFT JOIN _mon_slices s ON x.entity = s.entity AND x.item_id = s.item_id
    GROUP BY ALL
), o AS (
    SELECT a.day, a.channel, COALESCE(s.category, 'unknown') AS category,
           COALESCE(s.seller_tier, 'unknown') AS seller_tier,
           COALESCE(sum(share) FILTER (WHERE kind = 'complaint'), 0) AS complaints,
           COALESCE(sum(share) FILTER (WHERE kind = 'return'), 0) AS returns,
           COALESCE(sum(value * share) FILTER (WHERE kind = 'refund'), 0) AS refund_usd,
           COALESCE(sum(share) FILTER (WHERE kind = 'refund'), 0) AS refunds,
           COALESCE(sum(share) FILTER (WHERE kind = 'review'), 0) AS reviews,
           COALESCE(sum(value * share) FILTER (WHERE kind = 'review'), 0) AS rating_sum,
           COALESCE(sum(share) FILTER (WHERE kind = 'review' AND value <= 2), 0) AS low_stars,
           COALESCE(sum(share) FILTER (WHERE kind = 'nps'), 0) AS nps_responses,
           COALESCE(sum(share) FILTER (WHERE kind = 'nps' AND value >= 9), 0) AS promoters,
           COALESCE(sum(share) FILTER (WHERE kind = 'nps' AND value <= 6), 0) AS detractors
    FROM _mon_attributed a
    LEFT JOIN _mon_slices s ON a.entity = s.entity AND a.item_id = s.item_id
    GROUP BY ALL
)
SELECT COALESCE(e.day, o.day) AS day, COALESCE(e.channel, o.channel) AS channel,
       COALESCE(e.category, o.category) AS category,
       COALESCE(e.seller_tier, o.seller_tier) AS seller_tier,
       COALESCE(impressions, 0) AS impressions, COALESCE(orders, 0) AS orders,
       COALESCE(gmv, 0) AS gmv, COALESCE(clicks, 0) AS clicks,
       COALESCE(complaints, 0) AS complaints, COALESCE(returns, 0) AS returns,
       COALESCE(refund_usd, 0) AS refund_usd, COALESCE(refunds, 0) AS refunds,
       COALESCE(reviews, 0) AS reviews,
       COALESCE(rating_sum, 0) AS rating_sum, COALESCE(low_stars, 0) AS low_stars,
       COALESCE(nps_responses, 0) AS nps_responses, COALESCE(promoters, 0) AS promoters,
       COALESCE(detractors, 0) AS detractors
FROM e FULL OUTER JOIN o
  ON e.day = o.day AND e.channel IS NOT DISTINCT FROM o.channel
     AND e.category = o.category AND e.seller_tier = o.seller_tier;
"""

_ITEM_OUTCOMES = """
SELECT a.day, COALESCE(s.category, 'unknown') AS category, a.item_id,
       COALESCE(sum(share) FILTER (WHERE kind = 'complaint'), 0) AS complaints,
       COALESCE(sum(share) FILTER (WHERE kind = 'return'), 0) AS returns
FROM _mon_attributed a
LEFT JOIN _mon_slices s ON a.entity = s.entity AND a.item_id = s.item_id
WHERE kind IN ('complaint', 'return')
GROUP BY ALL
"""

_ARRIVALS = """
SELECT date_trunc('day', o.occurred_at) AS day, COALESCE(s.category, 'unknown') AS category,
       o.item_id, o.kind, count(*)::DOUBLE AS n
FROM _mon_outcomes o
LEFT JOIN _mon_slices s ON o.entity = s.entity AND o.item_id = s.item_id
WHERE o.kind IN ('complaint', 'return')
GROUP BY ALL
"""

_ITEM_ORDERS = """
SELECT x.day, COALESCE(s.category, 'unknown') AS category, x.item_id,
       sum(x.orders)::DOUBLE AS orders
FROM _mon_exposure x
LEFT JOIN _mon_slices s ON x.entity = s.entity AND x.item_id = s.item_id
WHERE x.orders > 0 AND (x.entity, x.item_id) IN (
    SELECT DISTINCT entity, item_id FROM _mon_outcomes WHERE kind IN ('complaint', 'return')
)
GROUP BY ALL
"""

_ATTRIBUTE = """
CREATE OR REPLACE TEMP TABLE _mon_candidates AS
SELECT o.outcome_id, o.kind, o.value, o.channel, o.entity, o.item_id, s.day, s.n * p.p AS w
FROM _mon_outcomes o
JOIN _mon_sales s
  ON o.entity = s.entity AND o.item_id = s.item_id AND o.channel = s.channel
     AND o.basis = s.basis AND s.day <= o.occurred_at
     AND s.day > o.occurred_at - INTERVAL ($max_delay) DAY
JOIN _mon_pmf p
  ON p.kind = o.kind
     AND p.d = least(floor(epoch(o.occurred_at - s.day) / 86400), $max_delay)::INT;

CREATE OR REPLACE TEMP TABLE _mon_attributed AS
SELECT kind, value, channel, entity, item_id, day,
       w / sum(w) OVER (PARTITION BY outcome_id) AS share
FROM _mon_candidates
UNION ALL
SELECT kind, value, channel, entity, item_id, date_trunc('day', occurred_at), 1.0
FROM _mon_outcomes o ANTI JOIN _mon_candidates c ON o.outcome_id = c.outcome_id;
"""

_SUMS = (
    "impressions",
    "orders",
    "gmv",
    "complaints",
    "returns",
    "refund_usd",
    "refunds",
    "reviews",
    "rating_sum",
    "low_stars",
    "nps_responses",
    "promoters",
    "detractors",
)

_ROLLUP = f"""
WITH b AS (
    SELECT 'day' AS grain, day AS period_start, * EXCLUDE (day) FROM _mon_base
    UNION ALL
    SELECT 'week', date_trunc('week', day), * EXCLUDE (day) FROM _mon_base
)
SELECT grain, period_start,
       CASE WHEN GROUPING(channel) = 1 THEN '{ALL}' ELSE channel END AS channel,
       CASE WHEN GROUPING(category) = 0 THEN '{Dimension.CATEGORY}'
            WHEN GROUPING(seller_tier) = 0 THEN '{Dimension.SELLER_TIER}'
            ELSE '{Dimension.NONE}' END AS dimension,
       CASE WHEN GROUPING(category) = 0 THEN category
            WHEN GROUPING(seller_tier) = 0 THEN seller_tier
            ELSE '{ALL}' END AS segment,
       {", ".join(f"sum({c}) AS {c}" for c in _SUMS)}
FROM b
GROUP BY GROUPING SETS (
    (grain, period_start), (grain, period_start, channel),
    (grain, period_start, channel, category), (grain, period_start, channel, seller_tier),
    (grain, period_start, category), (grain, period_start, seller_tier)
)
HAVING NOT (GROUPING(channel) = 0 AND channel IS NULL)
ORDER BY grain, period_start, channel, dimension, segment
"""

_DELAYS = """
WITH n AS (
    SELECT kind, count(*) FILTER (WHERE source = 'single') AS n_single
    FROM _mon_delays WHERE day < $cutoff GROUP BY kind
)
SELECT d.kind, d.d, count(*) AS n
FROM _mon_delays d JOIN n ON d.kind = n.kind
WHERE d.day < $cutoff
  AND d.source = CASE WHEN n.n_single >= $min_single THEN 'single' ELSE 'latest' END
GROUP BY ALL
"""
#: Delays measured on items sold on a single day are unambiguous; with fewer than this many,
#: a kind's delays are measured from each outcome's latest sale instead (shorter than true).
_MIN_SINGLE_SALE_DELAYS = 30


def _delay_model(con: duckdb.DuckDBPyConnection, *, as_of: date, reference_days: int) -> DelayModel:
    cutoff = as_of - timedelta(days=reference_days)
    sql = _DELAYS.replace("$min_single", str(_MIN_SINGLE_SALE_DELAYS))
    hist = con.execute(sql, {"cutoff": cutoff}).df()
    if not len(hist):  # a short period: every sale is recent, measure what there is
        hist = con.execute(sql, {"cutoff": as_of}).df()
    cdf: dict[str, npt.NDArray[np.float64]] = {}
    n: dict[str, int] = {}
    for kind, g in hist.groupby("kind"):
        counts = np.zeros(_MAX_DELAY_DAYS + 1)
        np.add.at(counts, g["d"].to_numpy(dtype=int), g["n"].to_numpy(dtype=float))
        # P(delay <= k) at k = 0, 1, ... days; interpolation puts P(delay <= 0) at 0
        cum = np.concatenate([[0.0], np.cumsum(counts) / counts.sum()])
        cdf[str(kind)] = cum
        n[str(kind)] = int(counts.sum())
    return DelayModel(cdf=cdf, n=n)


def _poisson_interval(
    k: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Exact (Garwood) 95% interval of a Poisson count."""
    from scipy.stats import chi2

    lo = np.where(k > 0, chi2.ppf(0.025, 2 * k) / 2, 0.0)
    hi = chi2.ppf(0.975, 2 * (k + 1)) / 2
    return np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)


def _run(con: duckdb.DuckDBPyConnection, script: str, *, as_of: pd.Timestamp) -> None:
    for statement in script.split(";\n\n"):
        if statement.strip():
            sql = statement.replace("$as_of", f"TIMESTAMP '{as_of}'")
            con.execute(sql.replace("$max_delay", str(_MAX_DELAY_DAYS)))


def _compute_trust(
    con: duckdb.DuckDBPyConnection,
    *,
    as_of: date,
    delay_reference_days: int,
    mature_completeness: float,
) -> TrustResult:
    as_of_ts = pd.Timestamp(as_of)
    _run(con, _PREPARE, as_of=as_of_ts)
    delays = _delay_model(con, as_of=as_of, reference_days=delay_reference_days)
    pmf = delays.pmf_frame()
    con.register("_mon_pmf_df", pmf)
    con.execute("CREATE OR REPLACE TEMP TABLE _mon_pmf AS SELECT * FROM _mon_pmf_df")
    _run(con, _ATTRIBUTE, as_of=as_of_ts)
    _run(con, _BASE, as_of=as_of_ts)
    df = con.execute(_ROLLUP).df()
    base = con.execute("SELECT * FROM _mon_base ORDER BY day, channel, category").df()
    item_outcomes = con.execute(_ITEM_OUTCOMES).df()
    return TrustResult(
        item_outcomes=item_outcomes,
        arrivals=con.execute(_ARRIVALS).df(),
        item_orders=con.execute(_ITEM_ORDERS).df(),
        metrics=_derive(df, delays, as_of=as_of, mature_completeness=mature_completeness),
        delays=delays,
        base=base,
    )


def period_completeness(
    delays: DelayModel, kind: str, period_start: pd.Series, grain_days: pd.Series, *, as_of: date
) -> npt.NDArray[np.float64]:
    """Mean completeness of the days of each period (days at or after `as_of` excluded)."""
    start = pd.to_datetime(period_start).to_numpy(dtype="datetime64[D]")
    end = np.datetime64(as_of, "D")
    out = np.ones(len(start))
    lengths = grain_days.to_numpy(dtype=int)
    for i, (s, length) in enumerate(zip(start, lengths, strict=True)):
        days = s + np.arange(length)
        days = days[days < end]
        if not len(days):
            continue
        age = (end - days).astype(float) - 0.5  # sales spread over the day
        out[i] = float(delays.completeness(kind, age).mean())
    return out


def _derive(
    df: pd.DataFrame, delays: DelayModel, *, as_of: date, mature_completeness: float
) -> pd.DataFrame:
    orders = df["orders"].to_numpy(dtype=float)
    per_k = np.divide(1000.0, orders, out=np.full(len(df), np.nan), where=orders > 0)
    for name, col in (("complaints", "complaints_per_1k"), ("returns", "returns_per_1k")):
        k = df[name].to_numpy(dtype=float)
        lo, hi = _poisson_interval(k)
        df[f"{col}_orders"] = k * per_k
        df[f"{col}_low"] = lo * per_k
        df[f"{col}_high"] = hi * per_k
    gmv = df["gmv"].to_numpy(dtype=float)
    df["refund_per_gmv"] = np.divide(
        df["refund_usd"].to_numpy(dtype=float), gmv, out=np.full(len(df), np.nan), where=gmv > 0
    )
    reviews = df["reviews"].to_numpy(dtype=float)
    df["mean_rating"] = np.divide(
        df["rating_sum"].to_numpy(dtype=float),
        reviews,
        out=np.full(len(df), np.nan),
        where=reviews > 0,
    )
    df["low_star_share"] = np.divide(
        df["low_stars"].to_numpy(dtype=float),
        reviews,
        out=np.full(len(df), np.nan),
        where=reviews > 0,
    )
    n = df["nps_responses"].to_numpy(dtype=float)
    safe = np.where(n > 0, n, 1.0)
    pro = df["promoters"].to_numpy(dtype=float) / safe
    det = df["detractors"].to_numpy(dtype=float) / safe
    nps = pro - det
    # variance of a difference of two multinomial shares
    se = np.sqrt(np.maximum(pro + det - nps**2, 0.0) / safe)
    df["nps"] = np.where(n > 0, 100 * nps, np.nan)
    df["nps_low"] = np.where(n > 0, 100 * np.maximum(nps - _Z * se, -1.0), np.nan)
    df["nps_high"] = np.where(n > 0, 100 * np.minimum(nps + _Z * se, 1.0), np.nan)
    grain_days = df["grain"].map({"day": 1, "week": 7})
    # complaints arrive first, returns and reviews last: the period is as complete as its
    # slowest order outcome
    comp = np.minimum.reduce(
        [
            period_completeness(delays, k, df["period_start"], grain_days, as_of=as_of)
            for k in (OutcomeKind.COMPLAINT, OutcomeKind.RETURN, OutcomeKind.REVIEW)
        ]
    )
    df["completeness"] = np.clip(comp, 0.0, 1.0)
    df["mature"] = df["completeness"] >= mature_completeness
    return conform(df, TRUST_METRICS)
