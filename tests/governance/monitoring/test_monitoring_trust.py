from __future__ import annotations

import pandas as pd
import pytest

from governance.monitoring.tables import TRUST_METRICS, check_frame
from governance.monitoring.trust import compute_trust_metrics
from tests.governance.monitoring.world import connect, end_of, make_tables


@pytest.fixture(scope="module")
def result():  # type: ignore[no-untyped-def]
    tables = make_tables(seed=1)
    return tables, compute_trust_metrics(connect(tables), as_of=end_of())


def test_table_matches_declaration(result) -> None:  # type: ignore[no-untyped-def]
    _, r = result
    assert check_frame(r.metrics, TRUST_METRICS) == []
    assert list(r.metrics.columns) == TRUST_METRICS.column_names
    assert not r.metrics.duplicated(list(TRUST_METRICS.key)).any()


def test_counts_add_up_to_the_tables(result) -> None:  # type: ignore[no-untyped-def]
    tables, r = result
    m = r.metrics
    weeks = m[(m["grain"] == "week") & (m["channel"] == "all") & (m["dimension"] == "none")]
    assert weeks["orders"].sum() == tables["channel_exposure"]["orders"].sum()
    n_complaints = (tables["outcomes"]["kind"] == "complaint").sum()
    assert weeks["complaints"].sum() == pytest.approx(n_complaints)
    shop = m[(m["grain"] == "day") & (m["channel"] == "shop_tab") & (m["dimension"] == "category")]
    per_channel = m[
        (m["grain"] == "day") & (m["channel"] == "shop_tab") & (m["dimension"] == "none")
    ]
    assert shop["complaints"].sum() == pytest.approx(per_channel["complaints"].sum())


def test_rates_and_intervals_are_consistent(result) -> None:  # type: ignore[no-untyped-def]
    _, r = result
    m = r.metrics.dropna(subset=["complaints_per_1k_orders"])
    expected = 1000 * m["complaints"] / m["orders"]
    assert (m["complaints_per_1k_orders"] - expected).abs().max() < 1e-9
    assert (m["complaints_per_1k_low"] <= m["complaints_per_1k_orders"] + 1e-12).all()
    assert (m["complaints_per_1k_high"] >= m["complaints_per_1k_orders"]).all()
    nps = r.metrics.dropna(subset=["nps"])
    assert ((nps["nps_low"] <= nps["nps"]) & (nps["nps"] <= nps["nps_high"])).all()
    assert r.metrics["low_star_share"].dropna().between(0, 1).all()


def test_recent_days_are_still_filling_in(result) -> None:  # type: ignore[no-untyped-def]
    _, r = result
    day = r.metrics[(r.metrics["grain"] == "day") & (r.metrics["channel"] == "all")]
    day = day[day["dimension"] == "none"].sort_values("period_start")
    assert bool(day["mature"].iloc[0]) and not bool(day["mature"].iloc[-1])
    assert day["completeness"].iloc[-1] < day["completeness"].iloc[0]
    assert day["completeness"].is_monotonic_decreasing


def test_outcome_without_channel_counts_only_overall() -> None:
    tables = make_tables(n_listings=6, n_days=14, seed=2, complaint_rate=0.0)
    extra = pd.DataFrame(
        [
            {
                "outcome_id": "x",
                "entity": "listing",
                "item_id": "l0",
                "seller_id": "s0",
                "channel": None,
                "kind": "complaint",
                "occurred_at": pd.Timestamp("2026-01-07 10:00"),
                "value": None,
            }
        ]
    )
    tables["outcomes"] = pd.concat([tables["outcomes"], extra], ignore_index=True)
    m = compute_trust_metrics(connect(tables), as_of=end_of(14)).metrics
    week = m[(m["grain"] == "week") & (m["dimension"] == "none")]
    assert week.loc[week["channel"] == "all", "complaints"].sum() == 1
    assert week.loc[week["channel"] != "all", "complaints"].sum() == 0


def test_missing_table_is_named() -> None:
    tables = make_tables(n_listings=4, n_days=7)
    del tables["outcomes"]
    with pytest.raises(KeyError, match="outcomes"):
        compute_trust_metrics(connect(tables), as_of=end_of(7))
