"""A tiny seeded marketplace in the data contract for monitoring tests."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

START = date(2026, 1, 5)


def make_tables(
    *,
    n_listings: int = 40,
    n_days: int = 42,
    seed: int = 0,
    complaint_rate: float = 0.02,
    incident: tuple[str, int, float] | None = None,
    category_incident: tuple[str, int, float] | None = None,
) -> dict[str, pd.DataFrame]:
    """Contract tables; `incident` = (channel, first day index, complaint rate from then),
    `category_incident` the same for a category across channels."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(START)
    sellers = pd.DataFrame(
        {
            "seller_id": ["s0", "s1", "s2"],
            "registered_at": [t0 - pd.Timedelta(days=100)] * 3,
            "region": ["r1"] * 3,
            "verification": ["none", "basic", "business"],
            "is_official_store": [False, False, True],
        }
    )
    listings = pd.DataFrame(
        {
            "listing_id": [f"l{i}" for i in range(n_listings)],
            "seller_id": [f"s{i % 3}" for i in range(n_listings)],
            "created_at": [
                t0 + pd.Timedelta(days=int(i * n_days / n_listings)) for i in range(n_listings)
            ],
            "category": ["bags" if i % 2 else "perfume" for i in range(n_listings)],
            "brand": [None] * n_listings,
            "title": ["t"] * n_listings,
            "description": ["d"] * n_listings,
            "price": rng.uniform(10, 50, n_listings).round(2),
            "list_price": rng.uniform(50, 60, n_listings).round(2),
            "image_hash": ["h"] * n_listings,
            "ships_from": ["r1"] * n_listings,
        }
    )
    exp_rows = []
    out_rows = []
    for d in range(n_days):
        day = t0 + pd.Timedelta(days=d)
        for i in range(n_listings):
            for channel in ("shop_tab", "affiliate"):
                orders = int(rng.poisson(3))
                clicks = orders + int(rng.poisson(10))
                exp_rows.append(
                    ("listing", f"l{i}", channel, day, 100, clicks, orders, 20.0 * orders)
                )
                rate = complaint_rate
                if incident is not None and channel == incident[0] and d >= incident[1]:
                    rate = incident[2]
                category = "bags" if i % 2 else "perfume"
                if category_incident is not None and category == category_incident[0]:
                    rate = category_incident[2] if d >= category_incident[1] else rate
                for _ in range(orders):
                    if rng.random() < rate:
                        at = day + pd.Timedelta(hours=float(12 + rng.exponential(48)))
                        out_rows.append((f"l{i}", f"s{i % 3}", channel, "complaint", at, None))
                    if rng.random() < 0.1:
                        at = day + pd.Timedelta(hours=float(12 + rng.exponential(72)))
                        stars = float(rng.integers(1, 6))
                        out_rows.append((f"l{i}", f"s{i % 3}", channel, "review", at, stars))
    exposure = pd.DataFrame(
        exp_rows,
        columns=["entity", "item_id", "channel", "day", "impressions", "clicks", "orders", "gmv"],
    )
    for col in ("likes", "comments", "shares"):
        exposure[col] = 0
    end = t0 + pd.Timedelta(days=n_days)
    outcomes = pd.DataFrame(
        out_rows,
        columns=["item_id", "seller_id", "channel", "kind", "occurred_at", "value"],
    )
    outcomes.insert(0, "entity", "listing")
    outcomes = outcomes[outcomes["occurred_at"] < end].reset_index(drop=True)
    outcomes.insert(0, "outcome_id", [f"o{i}" for i in range(len(outcomes))])
    empty_videos = pd.DataFrame(
        {c: pd.Series(dtype=object) for c in ("video_id", "creator_id", "listing_id", "caption")}
    ).assign(created_at=pd.Series(dtype="datetime64[us]"))
    empty_lives = pd.DataFrame(
        {c: pd.Series(dtype=object) for c in ("live_id", "creator_id", "listing_id", "title")}
    ).assign(started_at=pd.Series(dtype="datetime64[us]"))
    return {
        "sellers": sellers,
        "listings": listings,
        "videos": empty_videos,
        "live_sessions": empty_lives,
        "channel_exposure": exposure,
        "outcomes": outcomes,
    }


def end_of(n_days: int = 42) -> date:
    """The first day after a world of `n_days`."""
    return START + timedelta(days=n_days)


def connect(tables: dict[str, pd.DataFrame]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with each table as a relation of its name."""
    con = duckdb.connect()
    for name, df in tables.items():
        con.register(f"_df_{name}", df)
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM _df_{name}")
    return con


#: Strategies of the monitor directory: id -> (channels it acts in, items actioned per week,
#: of those appealed, of those lifted on appeal), weeks from START.
STRATEGIES: dict[str, tuple[tuple[str, ...], list[int], list[int], list[int]]] = {
    "listing-fake-discount": (
        ("affiliate", "shop_tab"),
        [40, 52, 48, 30],
        [8, 6, 9, 3],
        [5, 2, 4, 1],
    ),
    "listing-counterfeit-terms-shop": (("shop_tab",), [20, 25, 22, 18], [2, 1, 3, 0], [1, 0, 2, 0]),
}


def actioned_items() -> pd.DataFrame:
    """`governance.monitoring.appeals.actioned_items` of `STRATEGIES`: items decided on the
    weeks' Mondays, appealed the day after, lifted two days after."""
    rows = []
    for sid, (_, actioned, appealed, lifted) in STRATEGIES.items():
        for w, (n, a, k) in enumerate(zip(actioned, appealed, lifted, strict=True)):
            day = pd.Timestamp(START) + pd.Timedelta(weeks=w)
            for i in range(n):
                rows.append(
                    (
                        sid,
                        "listing",
                        f"{sid}-{w}-{i}",
                        day,
                        day + pd.Timedelta(days=2) if i < k else pd.NaT,
                        day + pd.Timedelta(days=1) if i < a else pd.NaT,
                    )
                )
    columns = ["strategy_id", "entity", "item_id", "decided_at", "lifted_at", "appealed_at"]
    return pd.DataFrame(rows, columns=columns)


def strategy_health() -> pd.DataFrame:
    """Table `strategy_health` of `STRATEGIES`: one day of hits per week and channel."""
    from governance.monitoring.tables import STRATEGY_HEALTH, conform

    rows = [
        {
            "day": pd.Timestamp(START) + pd.Timedelta(weeks=w),
            "strategy_id": sid,
            "strategy_version": 1,
            "channel": channel,
            "entity": "listing",
            "hits": n,
            "lifted": k,
            "new_items": 100,
            "hits_per_1k_new_items": 10.0 * n,
            "overturn_rate": k / n,
        }
        for sid, (channels, actioned, _, lifted) in STRATEGIES.items()
        for channel in channels
        for w, (n, k) in enumerate(zip(actioned, lifted, strict=True))
    ]
    return conform(pd.DataFrame(rows), STRATEGY_HEALTH)


def model_predictions(
    *, n_per_week: int = 400, weeks: int = 4, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(predictions, published) of two listing models over `weeks` weeks from START: the
    counterfeit model's probabilities shift up in the last week, the fake-discount model's
    stay put."""
    rng = np.random.default_rng(seed)
    ids = [f"p{i}" for i in range(n_per_week * weeks)]
    week = np.repeat(np.arange(weeks), n_per_week)
    published = pd.DataFrame(
        {
            "entity": "listing",
            "item_id": ids,
            "published_at": pd.Timestamp(START)
            + pd.to_timedelta(week * 7 + rng.integers(0, 7, len(ids)), unit="D"),
        }
    )
    counterfeit = rng.beta(1, 30, len(ids)) + np.where(week == weeks - 1, 0.006, 0.0)
    predictions = pd.concat(
        [
            pd.DataFrame({"entity": "listing", "item_id": ids, "policy": policy, "p": p})
            for policy, p in (
                ("counterfeit", counterfeit.clip(0, 1)),
                ("fake_discount", rng.beta(2, 20, len(ids))),
            )
        ],
        ignore_index=True,
    )
    return predictions, published


def write_monitor_dir(out: Path) -> None:
    """A `govrisk monitor` output directory (trust, objectives, burn-rate alerts, strategy
    health and appeals of `STRATEGIES`, prediction drift of `model_predictions`) of a world
    with an affiliate complaint flood from day 14 of 28."""
    from governance.monitoring.alerts import burn_alerts
    from governance.monitoring.appeals import strategy_appeals
    from governance.monitoring.burn import objective_status
    from governance.monitoring.drift import prediction_drift
    from governance.monitoring.objectives import default_rules, load_objectives
    from governance.monitoring.trust import compute_trust_metrics

    tables = make_tables(n_listings=20, n_days=28, seed=5, incident=("affiliate", 14, 0.3))
    trust = compute_trust_metrics(connect(tables), as_of=end_of(28))
    objectives = load_objectives()
    status = objective_status(trust.base, trust.delays, objectives, as_of=end_of(28))
    alerts = burn_alerts(status, trust.base, default_rules(objectives.window_days))
    out.mkdir()
    trust.metrics.to_parquet(out / "trust_metrics.parquet")
    status.to_parquet(out / "objective_status.parquet")
    alerts.to_parquet(out / "alerts.parquet")
    strategy_health().to_parquet(out / "strategy_health.parquet")
    appeals = strategy_appeals(actioned_items(), as_of=end_of(28))
    appeals.to_parquet(out / "strategy_appeals.parquet")
    predictions, published = model_predictions()
    drift = prediction_drift(duckdb.connect(), predictions, published)
    drift.to_parquet(out / "prediction_drift.parquet")
