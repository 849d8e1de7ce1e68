"""Planted incidents: they change what they say from their start day, and nothing else."""

from __future__ import annotations

import pandas as pd
import pytest

from experiments.simulator import simulate
from experiments.simulator.config import Incident
from tests.experiments.worlds import tiny_config

_CFG = {"n_listings": 1_500, "days": 14, "label_budget": 100}


def _complaints_by_day(tables: dict[str, pd.DataFrame], channel: str) -> pd.Series:
    o = tables["outcomes"]
    o = o[(o["kind"] == "complaint") & (o["channel"] == channel)]
    return o.groupby(o["occurred_at"].dt.floor("D")).size()


def test_complaint_surge_starts_on_its_day_in_its_channel() -> None:
    plain = simulate(tiny_config(**_CFG), strategies=[])
    surge = Incident(kind="complaint_surge", start_day=7, channel="shop_tab", factor=5.0)
    planted = simulate(tiny_config(**_CFG, incidents=(surge,)), strategies=[])
    start = pd.Timestamp(plain.config.start) + pd.Timedelta(days=7)
    late = start + pd.Timedelta(days=3)
    before = _complaints_by_day(plain.tables, "shop_tab")
    after = _complaints_by_day(planted.tables, "shop_tab")
    assert after[after.index >= late].sum() > 2.5 * before[before.index >= late].sum()
    # complaints of orders before the start are the same draws
    assert after[after.index < start].sum() == before[before.index < start].sum()
    other_plain = _complaints_by_day(plain.tables, "campaigns")
    other = _complaints_by_day(planted.tables, "campaigns")
    assert other.sum() == other_plain.sum()
    pd.testing.assert_frame_equal(plain.tables["listings"], planted.tables["listings"])


@pytest.mark.slow
def test_strategy_outage_stops_its_decisions() -> None:
    outage = Incident(kind="strategy_outage", start_day=7, strategy_id="listing-prohibited-items")
    planted = simulate(tiny_config(**_CFG, incidents=(outage,)))
    start = pd.Timestamp(planted.config.start) + pd.Timedelta(days=7)
    d = planted.tables["strategy_decisions"]
    hits = d[d["strategy_id"] == "listing-prohibited-items"]
    assert len(hits) and (hits["decided_at"] < start).all()
    assert (d["decided_at"] >= start).any()  # the others go on


@pytest.mark.slow
def test_strategy_overmatch_adds_honest_items_that_get_overturned() -> None:
    sid = "listing-counterfeit-terms"
    plain = simulate(tiny_config(**_CFG))
    broken = Incident(kind="strategy_overmatch", start_day=7, strategy_id=sid, share=0.2)
    planted = simulate(tiny_config(**_CFG, incidents=(broken,)))
    start = pd.Timestamp(planted.config.start) + pd.Timedelta(days=7)

    def hits(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
        d = tables["strategy_decisions"]
        return d[d["strategy_id"] == sid].drop_duplicates("item_id")

    before, after = hits(plain.tables), hits(planted.tables)
    early = before["decided_at"] < start
    assert set(after.loc[after["decided_at"] < start, "item_id"]) == set(
        before.loc[early, "item_id"]
    )
    late = after[after["decided_at"] >= start]
    assert len(late) > 2 * (~early).sum()
    lifted = late["lifted_at"].notna().mean()
    assert lifted > 2 * max(before.loc[~early, "lifted_at"].notna().mean(), 0.02)
