from __future__ import annotations

from datetime import date

import pandas as pd

from governance.monitoring.launch import launch_coverage, new_categories
from governance.monitoring.tables import LAUNCH_COVERAGE, check_frame
from tests.governance.experiments.factories import make_registry


def _tables() -> dict[str, pd.DataFrame]:
    listings = pd.DataFrame(
        {
            "listing_id": ["L1", "L2", "L3", "L4"],
            "category": ["bags", "cards", "cards", "cards"],
            "created_at": pd.to_datetime(["2026-01-05", "2026-02-02", "2026-02-03", "2026-02-04"]),
        }
    )
    exposure = pd.DataFrame(
        {
            "entity": "listing",
            "item_id": ["L1", "L2", "L3", "L2"],
            "channel": ["campaigns", "campaigns", "campaigns", "shop_tab"],
            "impressions": [100, 50, 30, 20],
        }
    )
    decisions = pd.DataFrame(
        {
            "entity": ["listing", "listing"],
            "item_id": ["L2", "L4"],
            "channel": ["campaigns", "campaigns"],
            "strategy_id": ["campaign-deep-discount", "campaign-deep-discount"],
        }
    )
    empty_videos = pd.DataFrame(
        {"video_id": pd.Series(dtype=str), "listing_id": pd.Series(dtype=str)}
    )
    empty_lives = pd.DataFrame(
        {"live_id": pd.Series(dtype=str), "listing_id": pd.Series(dtype=str)}
    )
    return {
        "listings": listings,
        "videos": empty_videos,
        "live_sessions": empty_lives,
        "channel_exposure": exposure,
        "strategy_decisions": decisions,
    }


def test_a_new_category_is_found_after_the_reference_weeks() -> None:
    assert new_categories(_tables()["listings"], after=date(2026, 1, 19)) == ["cards"]


def test_coverage_names_who_could_act_who_did_and_the_gaps() -> None:
    table = launch_coverage(_tables(), list(make_registry()), categories=["cards"])
    assert check_frame(table, LAUNCH_COVERAGE) == []
    cells = table.set_index(["policy", "channel"])
    campaigns = cells.loc[("fake_discount", "campaigns")]
    assert campaigns["items_shown"] == 2 and campaigns["impressions"] == 80
    assert campaigns["strategies_firing"] == "campaign-deep-discount"
    # L2 shown and actioned, L3 shown only, L4 actioned before it was ever shown
    assert campaigns["items_actioned"] == 2 and campaigns["actioned_share"] == 2 / 3
    shop_tab = cells.loc[("fake_discount", "shop_tab")]
    assert shop_tab["strategies"] == "" and shop_tab["actioned_share"] == 0  # a gap


def test_a_launched_category_is_watched_from_its_first_listing() -> None:
    from governance.monitoring.launch import launch_watches

    listings = _tables()["listings"]
    (watch,) = launch_watches(listings, after=date(2026, 1, 19), days=28)
    assert watch.category == "cards" and watch.since == date(2026, 2, 2)
    assert watch.active(date(2026, 3, 2)) and not watch.active(date(2026, 3, 3))
    assert launch_watches(listings, after=date(2026, 2, 3), days=28) == []


def test_launch_risk_ranks_the_new_category_among_the_established_ones() -> None:
    from governance.monitoring.launch import launch_risk
    from governance.monitoring.tables import LAUNCH_RISK

    tables = _tables()
    shoes = pd.DataFrame(
        {"listing_id": ["L5"], "category": ["shoes"], "created_at": pd.to_datetime(["2026-01-06"])}
    )
    tables["listings"] = pd.concat([tables["listings"], shoes], ignore_index=True)
    scores = pd.DataFrame(
        {
            "entity": "listing",
            "item_id": ["L1", "L2", "L3", "L4", "L5", "L2"],
            "policy": ["any"] * 5 + ["counterfeit"],
            "p": [0.1, 0.5, 0.7, 0.3, 0.6, 0.9],
        }
    )
    risk = launch_risk(tables, scores, categories=["cards"]).set_index("policy")
    assert check_frame(risk.reset_index(), LAUNCH_RISK) == []
    anyv = risk.loc["any"]
    assert anyv["items"] == 3 and anyv["mean_probability"] == 0.5
    assert anyv["established"] == 2 and anyv["established_median"] == 0.35
    assert anyv["riskiest_established"] == "shoes" and anyv["rank"] == 2
    alone = risk.loc["counterfeit"]  # no established category was scored by this model
    assert alone["established"] == 0 and pd.isna(alone["established_median"])
    assert alone["rank"] == 1
    assert len(launch_risk(tables, scores, categories=[])) == 0
