"""Feature drift: population stability (PSI) of declared features, in DuckDB.

Items are grouped by the week they were published; the first `reference_weeks` weeks are the
reference (what the models were trained on). Numeric features are cut at the reference's
deciles (training bins numeric features by quantile too), categorical and boolean features
by value; missing values are a bin of their own. PSI = sum over bins of
(share_week - share_ref) * ln(share_week / share_ref), shares smoothed by 1e-4.
Bins are assigned with an ASOF join on the edges, so one pass over the long table does every
feature (docs/monitoring.md has the timing on 1M rows x 100 features).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb
import pandas as pd

from features.schema import FeatureKind
from governance.monitoring.tables import FEATURE_DRIFT, PREDICTION_DRIFT, conform, empty_frame

_EPS = 1e-4
_DECILES = [i / 10 for i in range(1, 10)]


@dataclass(frozen=True)
class DriftConfig:
    """Settings of a drift run (carried into reports)."""

    reference_weeks: int = 2
    min_items: int = 100
    psi_medium: float = 0.1
    psi_high: float = 0.25
    #: A feature's missing share moving by at least this much (absolute) can alert alone.
    missing_shift: float = 0.05
    #: False-alarm rate per run across the missing-share tests of every feature and week.
    family_alpha: float = 0.01
    #: With a scoring log (predictions with `scored_at`), prediction drift compares each
    #: item's first score taken within this many days of its publication, so every week's
    #: items are compared at the same age.
    new_item_days: int = 7
    #: Prediction drift leaves out the items published in the first this many days of data
    #: (`data_start`): their windowed features are cut short by the data's start.
    prediction_warmup_days: int = 0


def feature_drift(
    con: duckdb.DuckDBPyConnection,
    frame: str,
    *,
    entity: str,
    kinds: Mapping[str, FeatureKind],
    published_column: str = "published_at",
    config: DriftConfig | None = None,
) -> pd.DataFrame:
    """Table `feature_drift` for relation `frame` on `con`: one row per item with
    `published_column` (timestamp) and the features named in `kinds`."""
    config = config or DriftConfig()
    cols = {r[0] for r in con.execute(f"DESCRIBE {frame}").fetchall()}
    missing = [c for c in (published_column, *kinds) if c not in cols]
    if missing:
        raise KeyError(f"frame {frame!r} lacks columns {missing}; it has {sorted(cols)}")
    if not kinds:
        return empty_frame(FEATURE_DRIFT)
    df = _compute_psi(con, frame, dict(kinds), published_column, config)
    if not len(df):
        return empty_frame(FEATURE_DRIFT)
    df["entity"] = entity
    df["feature_kind"] = df["feature"].map(kinds)
    return conform(df, FEATURE_DRIFT)


def drift_threshold(n_bins: int, n_reference: float, n_week: float, floor: float) -> float:
    """PSI a week must exceed: the conventional level, or three times what sampling noise
    alone gives ((bins - 1) * (1/n_ref + 1/n_week), the PSI's chi-square mean), if larger."""
    noise = (n_bins - 1) * (1.0 / max(n_reference, 1.0) + 1.0 / max(n_week, 1.0))
    return max(floor, 3.0 * noise)


def prediction_drift(
    con: duckdb.DuckDBPyConnection,
    predictions: pd.DataFrame,
    published: pd.DataFrame,
    *,
    config: DriftConfig | None = None,
    data_start: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Table `prediction_drift`: PSI of each model's probabilities (`predictions`: entity,
    item_id, policy, p), items published each week (`published`: entity, item_id,
    published_at) against the reference weeks, binned as `feature_drift` bins a numeric
    feature.

    Scores taken at one time confound drift with age: last week's items are young, and a
    model reading age-dependent features (exposure so far, outcomes so far) scores them
    differently. With a scoring log (column `scored_at`), each item's first score within
    `new_item_days` of its publication is compared instead, and items without one are left
    out. With `data_start`, items published in its first `prediction_warmup_days` are left
    out too, so the reference weeks are the first weeks after that warm-up."""
    config = config or DriftConfig()
    for name, df, cols in (
        ("predictions", predictions, ("entity", "item_id", "policy", "p")),
        ("published", published, ("entity", "item_id", "published_at")),
    ):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise KeyError(f"{name} lacks columns {missing}; it has {sorted(df.columns)}")
    if "scored_at" in predictions.columns:
        predictions = scores_when_new(predictions, published, days=config.new_item_days)
    if data_start is not None and config.prediction_warmup_days:
        warm = pd.Timestamp(data_start) + pd.Timedelta(days=config.prediction_warmup_days)
        published = published[pd.to_datetime(published["published_at"]) >= warm]
    return _compute_prediction_drift(con, predictions, published, config)


def scores_when_new(
    predictions: pd.DataFrame, published: pd.DataFrame, *, days: int
) -> pd.DataFrame:
    """Each item's first score per model, if taken within `days` of its publication."""
    keys = ["entity", "item_id"]
    when = published.assign(
        entity=published["entity"].astype(str), item_id=published["item_id"].astype(str)
    ).drop_duplicates(keys)
    log = predictions.assign(
        entity=predictions["entity"].astype(str), item_id=predictions["item_id"].astype(str)
    ).merge(when[[*keys, "published_at"]], on=keys, how="inner")
    age = pd.to_datetime(log["scored_at"]) - pd.to_datetime(log["published_at"])
    young = log[(age >= pd.Timedelta(0)) & (age <= pd.Timedelta(days=days))]
    first = young.sort_values("scored_at", kind="stable").drop_duplicates(
        [*keys, "policy"], keep="first"
    )
    return first.drop(columns=["scored_at", "published_at"])


def _compute_prediction_drift(
    con: duckdb.DuckDBPyConnection,
    predictions: pd.DataFrame,
    published: pd.DataFrame,
    config: DriftConfig,
) -> pd.DataFrame:
    parts = []
    preds = predictions.assign(
        entity=predictions["entity"].astype(str),
        item_id=predictions["item_id"].astype(str),
        policy=predictions["policy"].astype(str),
    )
    pub = published.assign(
        entity=published["entity"].astype(str), item_id=published["item_id"].astype(str)
    )
    for entity, g in preds.groupby("entity", sort=True):
        wide = g.pivot_table(index="item_id", columns="policy", values="p", aggfunc="mean")
        policies = [str(c) for c in wide.columns]
        # policy names become column names: keep them away from SQL keywords
        wide.columns = [f"p_{c}" for c in policies]
        when = pub[pub["entity"] == entity].drop_duplicates("item_id").set_index("item_id")
        wide = wide.join(when["published_at"], how="inner").reset_index(drop=True)
        if not len(wide):
            continue
        con.register("_prediction_frame", wide)
        kinds: dict[str, FeatureKind] = {f"p_{c}": "numeric" for c in policies}
        df = _compute_psi(con, "_prediction_frame", kinds, "published_at", config)
        con.unregister("_prediction_frame")
        if not len(df):
            continue
        week = pd.to_datetime(wide["published_at"]).dt.to_period("W-SUN").dt.start_time
        scores = wide.drop(columns="published_at")
        ref_end = week.min() + pd.Timedelta(weeks=config.reference_weeks)
        ref_mean = scores[(week < ref_end).to_numpy()].mean()
        means = (
            scores.groupby(week.to_numpy())
            .mean()
            .rename_axis("week_start")
            .reset_index()
            .melt(id_vars="week_start", var_name="feature", value_name="mean_week")
        )
        df = df.assign(week_start=pd.to_datetime(df["week_start"])).merge(
            means, on=["week_start", "feature"], how="left"
        )
        df["entity"] = entity
        df["policy"] = df["feature"].str.removeprefix("p_")
        df["mean_reference"] = df["feature"].map(ref_mean)
        df["alert_threshold"] = [
            drift_threshold(int(b), float(r), float(w), config.psi_medium)
            for b, r, w in zip(df["n_bins"], df["n_reference"], df["n_week"], strict=True)
        ]
        parts.append(df)
    if not parts:
        return empty_frame(PREDICTION_DRIFT)
    return conform(pd.concat(parts, ignore_index=True), PREDICTION_DRIFT)


def _long_sql(frame: str, published: str, names: Sequence[str], cast: str) -> str:
    """One row per (item, feature): week published, feature name, value cast to `cast`."""
    casts = ", ".join(f"CAST({n} AS {cast}) AS {n}" for n in names)
    return (
        f"WITH src AS (SELECT {published}, {casts} FROM {frame}) "
        f"SELECT date_trunc('week', {published}) AS week_start, feature, x "
        f"FROM src UNPIVOT INCLUDE NULLS (x FOR feature IN ({', '.join(names)}))"
    )


def _compute_psi(
    con: duckdb.DuckDBPyConnection,
    frame: str,
    kinds: dict[str, FeatureKind],
    published: str,
    config: DriftConfig,
) -> pd.DataFrame:
    """Per feature and week after the reference: PSI, bins, top bin and missing shares
    (weeks with fewer than `config.min_items` items left out)."""
    numeric = [n for n, k in kinds.items() if k == "numeric"]
    other = [n for n, k in kinds.items() if k != "numeric"]
    sql_first = f"SELECT min(date_trunc('week', {published})) FROM {frame}"
    first = con.execute(sql_first).fetchall()[0][0]
    if first is None:
        return pd.DataFrame()
    ref_end = pd.Timestamp(first) + pd.Timedelta(weeks=config.reference_weeks)
    ref = f"TIMESTAMP '{ref_end}'"
    parts = []
    if numeric:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _drift_num AS "
            + _long_sql(frame, published, numeric, "DOUBLE")
        )
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _drift_edges AS
            SELECT DISTINCT feature, unnest(quantile_disc(x, {_DECILES})) AS lo
            FROM _drift_num WHERE week_start < {ref} AND x IS NOT NULL GROUP BY feature
            """
        )
        parts.append(
            """
            SELECT n.week_start, n.feature,
                   CASE WHEN n.x IS NULL THEN 'missing'
                        WHEN e.lo IS NULL THEN '< ' || CAST(round(first_lo, 4) AS VARCHAR)
                        ELSE '>= ' || CAST(round(e.lo, 4) AS VARCHAR) END AS bin,
                   n.x IS NULL AS is_missing
            FROM _drift_num n
            ASOF LEFT JOIN _drift_edges e ON n.feature = e.feature AND n.x >= e.lo
            LEFT JOIN (SELECT feature, min(lo) AS first_lo FROM _drift_edges GROUP BY feature) f
              ON f.feature = n.feature
            """
        )
    if other:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _drift_cat AS "
            + _long_sql(frame, published, other, "VARCHAR")
        )
        parts.append(
            "SELECT week_start, feature, COALESCE(x, 'missing') AS bin, x IS NULL AS is_missing "
            "FROM _drift_cat"
        )
    binned = " UNION ALL ".join(parts)
    sql = f"""
    WITH b AS ({binned}),
    ref AS (
        SELECT feature, bin, count(*) AS n FROM b WHERE week_start < {ref} GROUP BY ALL
    ),
    ref_tot AS (
        SELECT feature, sum(n) AS total,
               sum(n) FILTER (WHERE bin = 'missing') AS n_missing
        FROM ref GROUP BY feature
    ),
    wk AS (
        SELECT week_start, feature, bin, count(*) AS n FROM b
        WHERE week_start >= {ref} GROUP BY ALL
    ),
    wk_tot AS (
        SELECT week_start, feature, sum(n) AS total,
               sum(n) FILTER (WHERE bin = 'missing') AS n_missing
        FROM wk GROUP BY ALL
    ),
    cells AS (
        SELECT t.week_start, t.feature, bins.bin,
               (COALESCE(r.n, 0) / rt.total + {_EPS}) AS p_ref,
               (COALESCE(w.n, 0) / t.total + {_EPS}) AS p_week
        FROM wk_tot t
        JOIN ref_tot rt ON rt.feature = t.feature
        JOIN (SELECT DISTINCT feature, bin FROM ref UNION SELECT DISTINCT feature, bin FROM wk)
             bins ON bins.feature = t.feature
        LEFT JOIN ref r ON r.feature = t.feature AND r.bin = bins.bin
        LEFT JOIN wk w ON w.week_start = t.week_start AND w.feature = t.feature
                      AND w.bin = bins.bin
    )
    SELECT c.week_start, c.feature,
           sum((p_week - p_ref) * ln(p_week / p_ref)) AS psi, count(*) AS n_bins,
           arg_max(c.bin, abs(p_week - p_ref)) AS top_bin,
           arg_max(p_week - p_ref, abs(p_week - p_ref)) AS top_bin_shift,
           any_value(rt.total) AS n_reference, any_value(t.total) AS n_week,
           COALESCE(any_value(rt.n_missing), 0) / any_value(rt.total) AS missing_reference,
           COALESCE(any_value(t.n_missing), 0) / any_value(t.total) AS missing_week
    FROM cells c
    JOIN ref_tot rt ON rt.feature = c.feature
    JOIN wk_tot t ON t.feature = c.feature AND t.week_start = c.week_start
    GROUP BY c.week_start, c.feature
    ORDER BY c.feature, c.week_start
    """
    df = con.execute(sql).df()
    return df[df["n_week"] >= config.min_items].reset_index(drop=True)
