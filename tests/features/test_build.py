"""Batch build: frame layout follows the declarations; features mean what they say."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from features.build import build_features, build_frames
from features.catalog import feature_names, frame_features
from features.contract import ContractError
from features.vocabulary import Entity
from tests.factories import make_tables

AS_OF = datetime(2025, 3, 1)


def _df(rows: list[dict[str, object]], **dtypes: str) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    for column, dtype in dtypes.items():
        df[column] = df[column].astype(dtype)
    for column in df.columns:
        if df[column].dtype == object and column not in dtypes:
            df[column] = df[column].astype("str")
    return df


def _ts(value: str | None) -> pd.Timestamp:
    return pd.Timestamp(value) if value else pd.NaT


def tiny_world() -> dict[str, pd.DataFrame]:
    """A hand-made marketplace whose features can be worked out by hand (see the tests)."""
    sellers = _df(
        [
            {
                "seller_id": "S1",
                "registered_at": _ts("2024-01-01"),
                "region": "us",
                "verification": "basic",
                "is_official_store": False,
            },
            {
                "seller_id": "S2",
                "registered_at": _ts("2025-01-01"),
                "region": "cn",
                "verification": "none",
                "is_official_store": True,
            },
            {
                "seller_id": "S3",
                "registered_at": _ts("2025-03-05"),
                "region": "us",
                "verification": "none",
                "is_official_store": False,
            },
        ],
        registered_at="datetime64[us]",
    )
    creators = _df(
        [
            {
                "creator_id": "C1",
                "registered_at": _ts("2024-06-01"),
                "region": "us",
                "follower_count": 99,
                "verified": True,
            }
        ],
        registered_at="datetime64[us]",
    )

    def listing(
        i: int,
        seller: str,
        created: str,
        brand: str | None,
        title: str,
        desc: str,
        price: float,
        list_price: float,
        ships: str,
    ) -> dict[str, object]:
        return {
            "listing_id": f"L{i}",
            "seller_id": seller,
            "created_at": _ts(created),
            "category": "bags",
            "brand": brand,
            "title": title,
            "description": desc,
            "price": price,
            "list_price": list_price,
            "image_hash": "img1",
            "ships_from": ships,
        }

    listings = _df(
        [
            listing(1, "S1", "2025-02-01", None, "Replica bag", "1:1 mirror quality", 10, 20, "us"),
            listing(2, "S2", "2025-02-10", "Lumen", "Nice bag", "cure", 20, 5, "us"),
            listing(3, "S1", "2025-02-20", "", "BAG", "", 30, 0, "us"),
            listing(4, "S1", "2025-03-02", None, "late", "late", 1000, 0, "us"),
        ],
        created_at="datetime64[us]",
    )
    listings["brand"] = pd.Series([None, "Lumen", "", None], dtype="str")
    videos = _df(
        [
            {
                "video_id": "V1",
                "creator_id": "C1",
                "listing_id": "L1",
                "created_at": _ts("2025-02-15"),
                "caption": "Miracle cure!",
                "duration_seconds": 30.0,
            }
        ],
        created_at="datetime64[us]",
    )
    lives = _df(
        [
            {
                "live_id": "LV1",
                "creator_id": "C1",
                "listing_id": "L2",
                "started_at": _ts("2025-02-28 23:00"),
                "ended_at": _ts("2025-03-01 01:00"),
                "title": "AAA deals",
            }
        ],
        started_at="datetime64[us]",
        ended_at="datetime64[us]",
    )

    def exp(
        entity: str,
        item: str,
        channel: str,
        day: str,
        imp: int,
        clicks: int = 0,
        orders: int = 0,
        gmv: float = 0.0,
        likes: int = 0,
    ) -> dict[str, object]:
        return {
            "entity": entity,
            "item_id": item,
            "channel": channel,
            "day": _ts(day),
            "impressions": imp,
            "clicks": clicks,
            "orders": orders,
            "gmv": gmv,
            "likes": likes,
            "comments": 0,
            "shares": 0,
        }

    exposure = _df(
        [
            exp("listing", "L1", "shop_tab", "2025-02-28", 100, 10, 2, 40.0),
            exp("listing", "L1", "campaigns", "2025-02-20", 50, 5, 1, 15.0),
            exp("listing", "L1", "shop_tab", "2025-03-01", 999, 99, 9, 999.0),
            exp("video", "V1", "video", "2025-02-26", 10, likes=1),
            exp("video", "V1", "video", "2025-02-27", 30, likes=3),
            exp("video", "V1", "affiliate", "2025-02-27", 0),
        ],
        day="datetime64[us]",
    )

    def dec(
        i: int,
        entity: str,
        item: str,
        channel: str,
        strategy: str,
        decided: str,
        lifted: str | None,
    ) -> dict[str, object]:
        return {
            "decision_id": f"D{i}",
            "entity": entity,
            "item_id": item,
            "channel": channel,
            "strategy_id": strategy,
            "strategy_version": 1,
            "action": "block",
            "decided_at": _ts(decided),
            "lifted_at": _ts(lifted),
        }

    decisions = _df(
        [
            dec(1, "listing", "L1", "shop_tab", "s-a", "2025-02-25", None),
            dec(2, "listing", "L1", "campaigns", "s-a", "2025-02-10", "2025-02-12"),
            dec(3, "listing", "L1", "shop_ads", "s-b", "2025-02-11", "2025-03-10"),
            dec(4, "listing", "L1", "affiliate", "s-a", "2025-03-01", None),
            dec(5, "video", "V1", "video", "s-v", "2025-02-27", None),
        ],
        decided_at="datetime64[us]",
        lifted_at="datetime64[us]",
    )

    def out(
        i: int, item: str, seller: str, kind: str, when: str, value: float | None = None
    ) -> dict[str, object]:
        return {
            "outcome_id": f"O{i}",
            "entity": "listing",
            "item_id": item,
            "seller_id": seller,
            "channel": None,
            "kind": kind,
            "occurred_at": _ts(when),
            "value": value,
        }

    outcomes = _df(
        [
            out(1, "L1", "S1", "complaint", "2025-02-27"),
            out(2, "L1", "S1", "complaint", "2025-03-02"),
            out(3, "L2", "S2", "review", "2025-02-20", 4.0),
            out(4, "L1", "S1", "appeal", "2025-02-13"),
        ],
        occurred_at="datetime64[us]",
        value="float64",
    )
    outcomes["channel"] = pd.Series([None] * 4, dtype="str")
    return {
        "sellers": sellers,
        "creators": creators,
        "listings": listings,
        "videos": videos,
        "live_sessions": lives,
        "channel_exposure": exposure,
        "strategy_decisions": decisions,
        "outcomes": outcomes,
    }


@pytest.fixture(scope="module")
def tiny() -> dict[Entity, pd.DataFrame]:
    frames = build_frames(tiny_world(), as_of=AS_OF, threads=1)
    return {e: f.set_index("item_id") for e, f in frames.items()}


def test_items_are_those_created_before_the_cutoff(tiny: dict[Entity, pd.DataFrame]) -> None:
    assert list(tiny[Entity.LISTING].index) == ["L1", "L2", "L3"]
    assert list(tiny[Entity.SELLER].index) == ["S1", "S2"]
    assert list(tiny[Entity.VIDEO].index) == ["V1"]
    assert list(tiny[Entity.LIVE].index) == ["LV1"]


def test_listing_price_text_and_image_features(tiny: dict[Entity, pd.DataFrame]) -> None:
    f = tiny[Entity.LISTING]
    assert f["listing_price_to_category_median"].tolist() == [0.5, 1.0, 1.5]
    assert f["listing_price_category_percentile"].tolist() == [0.0, 1 / 3, 2 / 3]
    assert f["listing_discount_depth"].tolist() == [0.5, 0.0, 0.0]
    assert f.loc["L1", "listing_list_price_inflation"] == 1.0
    assert f["listing_has_brand"].tolist() == [False, True, False]
    assert f["listing_unofficial_brand_claim"].tolist() == [False, False, False]
    assert f["listing_counterfeit_term_count"].tolist() == [3.0, 0.0, 0.0]
    assert f["listing_claim_term_count"].tolist() == [0.0, 1.0, 0.0]
    assert f["listing_title_uppercase_share"].tolist() == [0.1, 1 / 7, 1.0]
    assert f["listing_image_shared_sellers"].tolist() == [1.0, 1.0, 1.0]
    assert f["listing_image_other_listing_count"].tolist() == [1.0, 2.0, 1.0]
    assert f["listing_ships_cross_border"].tolist() == [False, True, False]
    assert f.loc["L1", "listing_age_days"] == 28.0
    assert f.loc["L1", "listing_category_age_days"] == 28.0
    assert f.loc["L1", "listing_category_listing_count"] == 3.0
    assert f.loc["L1", "listing_category_risk_prior"] == pytest.approx(1 / 3)


def test_listing_exposure_hits_and_outcomes(tiny: dict[Entity, pd.DataFrame]) -> None:
    l1 = tiny[Entity.LISTING].loc["L1"]
    assert l1["exposure_impressions_7d"] == 100.0  # the cutoff's own day is not complete yet
    assert l1["exposure_impressions_7d_shop_tab"] == 100.0
    assert l1["exposure_impressions_7d_campaigns"] == 0.0  # 9 days before the cutoff
    assert l1["exposure_ctr_7d"] == 0.1
    assert l1["exposure_orders_30d"] == 3.0
    assert l1["exposure_gmv_30d"] == 55.0
    assert l1["strategy_hit_count"] == 2.0  # D1 active, D3 lifted only after the cutoff
    assert l1["strategy_hit_count_shop_ads"] == 1.0
    assert l1["strategy_hit_count_affiliate"] == 0.0  # decided at the cutoff: not before it
    assert l1["strategy_hit_strategies"] == 2.0
    assert l1["strategy_lifted_count_90d"] == 1.0
    assert l1["outcome_complaint_count_30d"] == 1.0
    assert l1["outcome_complaint_rate_30d"] == pytest.approx(1 / 3)
    l2 = tiny[Entity.LISTING].loc["L2"]
    assert np.isnan(l2["exposure_ctr_7d"])
    assert l2["outcome_complaint_rate_30d"] == 0.0  # no orders: 0 by definition
    assert l2["outcome_rating_mean_90d"] == 4.0


def test_seller_features(tiny: dict[Entity, pd.DataFrame]) -> None:
    s1 = tiny[Entity.SELLER].loc["S1"]
    assert s1["seller_tenure_days"] == 425.0
    assert s1["seller_complaint_rate_30d"] == pytest.approx(1 / 3)
    assert s1["seller_enforcement_count_90d"] == 4.0  # D1-D3 on L1, D5 on its video
    assert s1["seller_enforcement_lifted_share_90d"] == 0.25
    assert s1["seller_appeal_count_90d"] == 1.0
    assert s1["seller_appeal_rate_90d"] == 0.25
    assert s1["seller_listing_count_total"] == 2.0
    assert s1["seller_counterfeit_listing_share"] == 0.5
    assert s1["seller_creator_count_90d"] == 1.0
    s2 = tiny[Entity.SELLER].loc["S2"]
    assert s2["seller_rating_mean_90d"] == 4.0
    assert np.isnan(s2["seller_rating_trend"])  # no review 30-90 days back
    assert s2["seller_is_official_store"]
    assert tiny[Entity.LISTING].loc["L1", "seller_tenure_days"] == 425.0


def test_video_and_live_features(tiny: dict[Entity, pd.DataFrame]) -> None:
    v = tiny[Entity.VIDEO].loc["V1"]
    assert v["video_claim_term_count"] == 2.0
    assert v["video_impressions_total"] == 40.0
    assert v["video_views_per_follower"] == 0.4
    assert v["video_like_rate"] == 0.1
    assert v["video_view_spike_ratio"] == 1.5
    assert v["strategy_hit_count"] == 1.0
    assert v["linked_listing_counterfeit_term_count"] == 3.0
    assert v["linked_listing_category"] == "bags"
    assert v["linked_strategy_hit_count"] == 2.0
    assert v["seller_tenure_days"] == 425.0
    assert v["creator_tenure_days"] == 273.0
    assert v["creator_verified"]
    live = tiny[Entity.LIVE].loc["LV1"]
    assert live["live_is_ongoing"]
    assert live["live_duration_minutes"] == 60.0  # runs to the cutoff, not to its later end
    assert live["live_counterfeit_term_count"] == 1.0
    assert live["live_start_hour"] == 23.0
    assert live["seller_is_official_store"]  # L2's seller


def test_frames_follow_the_declarations() -> None:
    frames = build_frames(make_tables(120, seed=3), as_of=datetime(2025, 2, 1), threads=1)
    for entity, frame in frames.items():
        assert list(frame.columns) == ["item_id", *feature_names(entity)]
        assert frame["item_id"].is_unique and frame["item_id"].is_monotonic_increasing
        for feature in frame_features(entity):
            dtype = frame[feature.name].dtype
            if feature.kind == "numeric":
                assert dtype == np.float64, feature.name
            elif feature.kind == "boolean":
                assert pd.api.types.is_bool_dtype(dtype), feature.name
            else:
                assert pd.api.types.is_string_dtype(dtype), feature.name


def test_a_cutoff_before_the_data_gives_empty_typed_frames() -> None:
    frames = build_frames(make_tables(40, seed=6), as_of=datetime(2020, 1, 1), threads=1)
    for entity, frame in frames.items():
        assert frame.empty
        assert list(frame.columns) == ["item_id", *feature_names(entity)]
        assert frame["seller_tenure_days"].dtype == np.float64


def test_entities_subset_and_threads_give_the_same_rows() -> None:
    tables = make_tables(120, seed=4)
    full = build_frames(tables, as_of=datetime(2025, 2, 1), threads=2)
    only = build_frames(tables, as_of=datetime(2025, 2, 1), entities=["video"], threads=1)
    assert list(only) == [Entity.VIDEO]
    pd.testing.assert_frame_equal(only[Entity.VIDEO], full[Entity.VIDEO], check_exact=True)


def test_snapshot_holds_every_lookup_table() -> None:
    build = build_features(make_tables(60, seed=5), as_of=datetime(2025, 2, 1), threads=1)
    assert "listings" in build.snapshot.table_names
    assert build.snapshot.table("sellers").num_rows == len(build.frames[Entity.SELLER])


def test_bad_inputs_name_the_table_and_column() -> None:
    tables = tiny_world()
    with pytest.raises(ContractError, match="outcomes: table missing"):
        build_frames({k: v for k, v in tables.items() if k != "outcomes"}, as_of=AS_OF)
    broken = dict(tables, listings=tables["listings"].drop(columns=["price"]))
    with pytest.raises(ContractError, match=r"listings\.price: missing column"):
        build_frames(broken, as_of=AS_OF)
    typed = dict(tables, listings=tables["listings"].assign(price="cheap"))
    with pytest.raises(ContractError, match=r"listings\.price: wrong type"):
        build_frames(typed, as_of=AS_OF)
    with pytest.raises(ValueError, match="unknown entity 'shop'"):
        build_frames(tables, as_of=AS_OF, entities=["shop"])
