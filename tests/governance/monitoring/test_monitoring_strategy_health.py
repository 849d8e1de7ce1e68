from __future__ import annotations

import numpy as np
import pandas as pd

from governance.monitoring.alerts import strategy_alerts
from governance.monitoring.strategy_health import (
    DecayConfig,
    compute_strategy_health,
    hit_rate_tests,
)
from governance.monitoring.tables import ALERTS, STRATEGY_HEALTH, check_frame
from tests.governance.monitoring.world import START, connect, end_of, make_tables


def _decisions(n_days: int, stop_day: int | None, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(1, n_days):
        rate = 0.0 if stop_day is not None and d >= stop_day else 6.0
        for k in range(int(rng.poisson(rate))):
            rows.append(
                {
                    "decision_id": f"d{d}-{k}",
                    "entity": "listing",
                    "item_id": f"l{k}",
                    "channel": "shop_tab",
                    "strategy_id": "rule-a",
                    "strategy_version": 2,
                    "action": "block",
                    "decided_at": pd.Timestamp(START) + pd.Timedelta(days=d),
                    "lifted_at": pd.NaT if k else pd.Timestamp(START) + pd.Timedelta(days=d + 1),
                }
            )
    return pd.DataFrame(rows)


def _health(stop_day: int | None) -> pd.DataFrame:
    tables = make_tables(n_listings=200, n_days=3, seed=0)  # items only; traffic unused
    listings = tables["listings"]
    listings["created_at"] = [
        pd.Timestamp(START) + pd.Timedelta(hours=int(h)) for h in np.arange(200) * 42 * 24 // 200
    ]
    tables["strategy_decisions"] = _decisions(42, stop_day)
    return compute_strategy_health(connect(tables), as_of=end_of(42))


def test_health_table_counts_hits_and_overturns() -> None:
    h = _health(None)
    assert check_frame(h, STRATEGY_HEALTH) == []
    assert h["hits"].sum() == len(_decisions(42, None))
    assert (h["lifted"] <= h["hits"]).all()
    assert h["new_items"].sum() > 0


def test_decay_fires_after_a_rule_stops_matching() -> None:
    h = _health(stop_day=30)
    tests = hit_rate_tests(h, DecayConfig())
    fired = tests[tests["firing"] == "decay"]
    assert len(fired)
    first = pd.Timestamp(fired["day"].min())
    assert 0 <= (first - pd.Timestamp(START)).days - 30 <= 5
    alerts = strategy_alerts(tests, h, {"rule-a": "team-a"}, default_owner="x")
    assert check_frame(alerts, ALERTS) == []
    assert list(alerts["strategy_id"]) == ["rule-a"]
    assert alerts["owner"].iloc[0] == "team-a"
    assert "rule-a@v2" in alerts["evidence"].iloc[0]


def test_steady_rule_does_not_fire() -> None:
    tests = hit_rate_tests(_health(None), DecayConfig())
    assert tests["firing"].isna().all()
