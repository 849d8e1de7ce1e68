"""Per-unit sums from the contract tables: every unit counted once, sums add up to the tables."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from features.loader import load_tables
from governance.experiments.assignment import assign
from governance.experiments.unit_data import item_units, unit_metrics
from governance.experiments.vocabulary import Arm, RandomisationUnit
from tests.governance.experiments.factories import make_experiment

START, END = datetime(2026, 1, 15), datetime(2026, 1, 26)


@pytest.fixture(scope="module")
def tables(market_dir: Path) -> dict[str, pd.DataFrame]:
    return load_tables(
        market_dir, ["listings", "videos", "live_sessions", "channel_exposure", "outcomes"]
    )


def test_items_map_to_their_listing_seller(tables: dict[str, pd.DataFrame]) -> None:
    units = item_units(tables, RandomisationUnit.SELLER)
    assert len(units) == sum(len(tables[t]) for t in ("listings", "videos", "live_sessions"))
    video = tables["videos"].iloc[0]
    seller = tables["listings"].set_index("listing_id").loc[video["listing_id"], "seller_id"]
    row = units[(units["entity"] == "video") & (units["item_id"] == video["video_id"])]
    assert row["unit_id"].item() == seller


@pytest.mark.parametrize("unit", list(RandomisationUnit))
def test_sums_match_the_tables(tables: dict[str, pd.DataFrame], unit: RandomisationUnit) -> None:
    experiment = make_experiment(
        start=START, end=END, channels=[], traffic_share=1.0, unit=unit.value, pre_period_days=7
    )
    units = unit_metrics(tables, experiment)
    assert units["unit_id"].is_unique
    assert set(units["arm"]) <= {Arm.CONTROL.value, Arm.TREATMENT.value}
    day = pd.to_datetime(tables["channel_exposure"]["day"])
    window = tables["channel_exposure"][(day >= START) & (day < END)]
    assert units["gmv"].sum() == pytest.approx(window["gmv"].sum())
    assert units["impressions"].sum() == window["impressions"].sum()
    pre = tables["channel_exposure"][(day >= datetime(2026, 1, 8)) & (day < START)]
    assert units["pre_orders"].sum() == pre["orders"].sum()
    expected = assign(experiment.id, units["unit_id"], traffic_share=1.0)
    assert (units["arm"].to_numpy() == expected).all()


def test_channels_and_share_filter(tables: dict[str, pd.DataFrame]) -> None:
    every = unit_metrics(
        tables, make_experiment(start=START, end=END, channels=[], traffic_share=1.0)
    )
    campaigns = unit_metrics(tables, make_experiment(start=START, end=END, traffic_share=1.0))
    assert campaigns["impressions"].sum() < every["impressions"].sum()
    half = unit_metrics(tables, make_experiment(start=START, end=END, traffic_share=0.5))
    assert len(half) < len(every)
    assert set(half["unit_id"]) <= set(every["unit_id"])
