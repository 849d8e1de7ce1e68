from __future__ import annotations

import pandas as pd

from governance.monitoring.shift import ShiftConfig, category_shift_tests, shift_alerts
from governance.monitoring.tables import ALERTS, check_frame
from governance.monitoring.trust import compute_trust_metrics
from tests.governance.monitoring.world import START, connect, end_of, make_tables


def _alerts(category_incident: tuple[str, int, float] | None, seed: int = 7) -> pd.DataFrame:
    tables = make_tables(n_listings=40, n_days=42, seed=seed, category_incident=category_incident)
    trust = compute_trust_metrics(connect(tables), as_of=end_of(42))
    cfg = ShiftConfig()
    tests = category_shift_tests(
        trust.base, trust.delays, as_of=end_of(42), item_outcomes=trust.item_outcomes, config=cfg
    )
    return shift_alerts(tests, trust.base, {"complaints_per_1k_orders": "ops"}, config=cfg)


def test_category_surge_is_alerted_on_its_category() -> None:
    alerts = _alerts(("bags", 28, 0.08))
    assert check_frame(alerts, ALERTS) == []
    assert set(alerts["category"]) == {"bags"}
    first = alerts["first_day"].min()
    assert 0 <= (first - pd.Timestamp(START)).days - 28 <= 5
    assert alerts["owner"].iloc[0] == "ops"


def test_no_shift_without_incident() -> None:
    assert len(_alerts(None)) == 0
