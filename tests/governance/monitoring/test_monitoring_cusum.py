from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from governance.monitoring.cusum import (
    CusumConfig,
    arrival_exposure,
    category_cusum_tests,
    change_point_llr,
    cusum_alerts,
)
from governance.monitoring.objectives import WatchedCategory
from governance.monitoring.tables import ALERTS, check_frame
from governance.monitoring.trust import DelayModel, compute_trust_metrics
from tests.governance.monitoring.world import START, connect, end_of, make_tables

_PMF = np.array([0.0, 0.0, 0.3, 0.3, 0.2, 0.2])


def _onset(orders: np.ndarray, first: int) -> np.ndarray:
    rows = []
    for tau in range(first, len(orders)):
        masked = np.where(np.arange(len(orders)) >= tau, orders, 0.0)
        rows.append(arrival_exposure(masked, _PMF))
    return np.asarray(rows)


def test_llr_grows_with_a_surge_after_the_change() -> None:
    orders = np.full(40, 50.0)
    e = arrival_exposure(orders, _PMF)
    calm = 0.05 * e
    surge = calm.copy()
    surge[32:] *= 3
    onset = _onset(orders, 30)
    assert change_point_llr(np.round(calm), e, onset, ratio=3.0) < 2
    assert change_point_llr(np.round(surge), e, onset, ratio=3.0) > 8


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 20), min_size=20, max_size=20),
    st.floats(0.0, 50.0),
)
def test_llr_is_non_negative_and_zero_without_onset(x: list[int], prior: float) -> None:
    e = arrival_exposure(np.full(20, 30.0), _PMF)
    xs = np.asarray(x, dtype=float)
    with_onset = change_point_llr(xs, e, _onset(np.full(20, 30.0), 10), ratio=2.0)
    assert with_onset >= 0
    none = change_point_llr(xs, e, np.zeros((3, 20)), ratio=2.0, prior_events=prior)
    assert none == 0


def _alerts(
    category_incident: tuple[str, int, float] | None,
    seed: int = 7,
    watches: tuple[WatchedCategory, ...] = (),
) -> pd.DataFrame:
    """Sequential alerts on a 42-day test world, `watches` on the watch list."""
    tables = make_tables(n_listings=40, n_days=42, seed=seed, category_incident=category_incident)
    trust = compute_trust_metrics(connect(tables), as_of=end_of(42))
    cfg = CusumConfig()
    tests = category_cusum_tests(
        trust.base,
        trust.arrivals,
        trust.delays,
        as_of=end_of(42),
        item_orders=trust.item_orders,
        config=cfg,
        watched=watches,
    )
    owners = {w.category: w.owner for w in watches if w.owner}
    return cusum_alerts(tests, {"complaints_per_1k_orders": "ops"}, config=cfg, watch_owners=owners)


def test_category_surge_is_found_by_the_sequential_test() -> None:
    alerts = _alerts(("bags", 28, 0.08))
    assert check_frame(alerts, ALERTS) == []
    assert set(alerts["category"]) == {"bags"}
    assert set(alerts["kind"]) == {"trust_cusum"}
    assert 0 <= (alerts["first_day"].min() - pd.Timestamp(START)).days - 28 <= 7
    assert alerts["owner"].iloc[0] == "ops"


def test_no_sequential_alert_without_incident() -> None:
    assert len(_alerts(None)) == 0


def test_a_watched_category_alerts_at_its_lower_threshold_while_its_watch_lasts() -> None:
    from datetime import timedelta

    # complaints in bags rise from day 28 by less than the default threshold reports
    incident = ("bags", 28, 0.03)
    cfg = CusumConfig()

    def alerts(*watches: WatchedCategory) -> pd.DataFrame:
        return _alerts(incident, 7, watches)

    assert "bags" not in set(alerts()["category"])
    found = alerts(WatchedCategory(category="bags", owner="bags-pm", reason="recall"))
    bags = found[found["category"] == "bags"]
    assert len(bags) == 1
    assert 0 <= (bags["first_day"].iloc[0] - pd.Timestamp(START)).days - 28 <= 7
    assert bags["owner"].iloc[0] == "bags-pm" and bags["threshold"].iloc[0] == cfg.watch_threshold
    assert "a watched category" in bags["evidence"].iloc[0]
    ended = WatchedCategory(category="bags", until=START + timedelta(days=20))
    assert "bags" not in set(alerts(ended)["category"])  # the watch was over by then


def _category_world(
    surge: dict[str, float], seed: int = 3
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, DelayModel]:
    """Daily orders and return arrivals of 12 `bags` items (and 12 `shoes` items, steady) over
    42 days, each item's return rate x `surge[item]` on sales from day 30."""

    rng = np.random.default_rng(seed)
    days = pd.date_range(START, periods=42, freq="D")
    cdf = np.concatenate([[0.0], np.cumsum(_PMF)])
    orders, arrivals = [], []
    for cat in ("bags", "shoes"):
        for k in range(12):
            item = f"{cat}{k}"
            n = rng.poisson(8.0 if k else 30.0, len(days)).astype(float)  # item 0 sells most
            rate = np.where(np.arange(len(days)) >= 30, 0.03 * surge.get(item, 1.0), 0.03)
            x = rng.poisson(arrival_exposure(n * rate, _PMF))
            orders += [
                {"day": d, "category": cat, "item_id": item, "orders": o}
                for d, o in zip(days, n, strict=True)
            ]
            arrivals += [
                {"day": d, "category": cat, "item_id": item, "kind": "return", "n": float(v)}
                for d, v in zip(days, x, strict=True)
                if v
            ]
    item_orders = pd.DataFrame(orders)
    base = item_orders.groupby(["day", "category"])["orders"].sum().reset_index()
    return base, pd.DataFrame(arrivals), item_orders, DelayModel(cdf={"return": cdf})


def test_a_rise_in_one_item_is_not_a_category_rise() -> None:
    cfg = CusumConfig()
    as_of = (pd.Timestamp(START) + pd.Timedelta(days=42)).date()

    def fired(surge: dict[str, float]) -> set[str]:
        base, arrivals, item_orders, delays = _category_world(surge)
        tests = category_cusum_tests(
            base, arrivals, delays, as_of=as_of, item_orders=item_orders, config=cfg
        )
        return set(tests.loc[tests["firing"].astype(bool), "category"])

    assert fired({f"bags{k}": 3.0 for k in range(12)}) == {"bags"}  # every item: the category
    assert fired({"bags0": 8.0}) == set()  # its best seller alone: left out, the rest is calm
    assert fired({}) == set()
