"""Data contract validation: each class of bad input fails with a message naming what is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.contract import ContractError, find_problems, validate_table
from features.loader import load_tables, write_tables
from features.tables import TABLES


def _ts(values: list[str]) -> pd.Series:
    return pd.Series(pd.to_datetime(values)).astype("datetime64[us]")


def _valid_tables() -> dict[str, pd.DataFrame]:
    """A tiny, fully valid set of contract tables."""
    sellers = pd.DataFrame(
        {
            "seller_id": ["s1", "s2"],
            "registered_at": _ts(["2025-01-01", "2025-06-01"]),
            "region": ["EU", "SEA"],
            "verification": ["business", "none"],
            "is_official_store": [True, False],
        }
    )
    creators = pd.DataFrame(
        {
            "creator_id": ["c1"],
            "registered_at": _ts(["2025-03-01"]),
            "region": ["EU"],
            "follower_count": np.array([1200], dtype="int64"),
            "verified": [True],
        }
    )
    listings = pd.DataFrame(
        {
            "listing_id": ["l1", "l2", "l3"],
            "seller_id": ["s1", "s2", "s2"],
            "created_at": _ts(["2026-01-05", "2026-01-06", "2026-01-07"]),
            "category": ["bags", "bags", "skincare"],
            "brand": ["Acme", None, None],
            "title": ["Acme tote", "Designer bag replica 1:1", "Miracle cream"],
            "description": ["Leather tote.", "Mirror quality.", "Cures acne overnight."],
            "price": [120.0, 25.0, 9.5],
            "list_price": [120.0, 400.0, 60.0],
            "image_hash": ["h1", "h1", "h2"],
            "ships_from": ["EU", "SEA", "SEA"],
        }
    )
    videos = pd.DataFrame(
        {
            "video_id": ["v1"],
            "creator_id": ["c1"],
            "listing_id": ["l2"],
            "created_at": _ts(["2026-01-08"]),
            "caption": ["Best dupe ever"],
            "duration_seconds": [31.0],
        }
    )
    lives = pd.DataFrame(
        {
            "live_id": ["x1"],
            "creator_id": ["c1"],
            "listing_id": ["l3"],
            "started_at": _ts(["2026-01-09 18:00"]),
            "ended_at": _ts(["2026-01-09 19:00"]),
            "title": ["Skincare live"],
        }
    )
    exposure = pd.DataFrame(
        {
            "entity": ["listing", "video"],
            "item_id": ["l1", "v1"],
            "channel": ["shop_tab", "video"],
            "day": _ts(["2026-01-06", "2026-01-08"]),
            "impressions": np.array([100, 5000], dtype="int64"),
            "clicks": np.array([7, 300], dtype="int64"),
            "orders": np.array([1, 12], dtype="int64"),
            "gmv": [120.0, 300.0],
            "likes": np.array([0, 410], dtype="int64"),
            "comments": np.array([0, 22], dtype="int64"),
            "shares": np.array([0, 9], dtype="int64"),
        }
    )
    decisions = pd.DataFrame(
        {
            "decision_id": ["d1"],
            "entity": ["listing"],
            "item_id": ["l2"],
            "channel": ["shop_tab"],
            "strategy_id": ["listing-counterfeit-terms"],
            "strategy_version": np.array([1], dtype="int64"),
            "action": ["block"],
            "decided_at": _ts(["2026-01-07"]),
            "lifted_at": pd.Series([pd.NaT]).astype("datetime64[us]"),
        }
    )
    labels = pd.DataFrame(
        {
            "label_id": ["a1", "a2"],
            "entity": ["listing", "listing"],
            "item_id": ["l2", "l1"],
            "policy": ["counterfeit", "counterfeit"],
            "verdict": ["violating", "not_violating"],
            "reviewer_id": ["m1", "m2"],
            "reviewed_at": _ts(["2026-01-10", "2026-01-10"]),
            "sampling": ["strategy_flagged", "random"],
            "inclusion_probability": [0.05, 0.001],
        }
    )
    outcomes = pd.DataFrame(
        {
            "outcome_id": ["o1", "o2"],
            "entity": ["listing", "listing"],
            "item_id": ["l1", "l2"],
            "seller_id": ["s1", "s2"],
            "channel": ["shop_tab", None],
            "kind": ["review", "appeal"],
            "occurred_at": _ts(["2026-01-09", "2026-01-08"]),
            "value": [5.0, np.nan],
        }
    )
    return {
        "sellers": sellers,
        "creators": creators,
        "listings": listings,
        "videos": videos,
        "live_sessions": lives,
        "channel_exposure": exposure,
        "strategy_decisions": decisions,
        "audit_labels": labels,
        "outcomes": outcomes,
    }


@pytest.fixture
def tables() -> dict[str, pd.DataFrame]:
    return _valid_tables()


def test_valid_tables_have_no_problems(tables: dict[str, pd.DataFrame]) -> None:
    assert set(tables) == set(TABLES)
    for name, df in tables.items():
        assert find_problems(name, df) == [], name


def test_round_trip_through_parquet(tmp_path: Path, tables: dict[str, pd.DataFrame]) -> None:
    write_tables(tmp_path, tables)
    loaded = load_tables(tmp_path)
    for name, df in tables.items():
        pd.testing.assert_frame_equal(
            loaded[name].reset_index(drop=True), df[TABLES[name].column_names], check_dtype=False
        )


def _message(name: str, df: pd.DataFrame) -> str:
    with pytest.raises(ContractError) as info:
        validate_table(name, df)
    return str(info.value)


def test_missing_column_is_named(tables: dict[str, pd.DataFrame]) -> None:
    msg = _message("listings", tables["listings"].drop(columns=["price"]))
    assert "listings.price: missing column" in msg


def test_wrong_type_is_named_not_coerced(tables: dict[str, pd.DataFrame]) -> None:
    bad = tables["listings"].assign(price=["120", "25", "9.5"])
    msg = _message("listings", bad)
    assert "listings.price: wrong type" in msg and "expected number" in msg
    assert bad["price"].dtype != np.float64  # validation never mutates the caller's frame


def test_duplicate_key_counts_rows_and_gives_examples(tables: dict[str, pd.DataFrame]) -> None:
    df = tables["listings"]
    bad = pd.concat([df, df.iloc[[1]]], ignore_index=True)
    msg = _message("listings", bad)
    assert "listings.listing_id: duplicate key — 2 rows (e.g. l2, l2)" in msg


def test_composite_duplicate_key(tables: dict[str, pd.DataFrame]) -> None:
    df = tables["channel_exposure"]
    bad = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    assert "channel_exposure.entity+item_id+channel+day: duplicate key" in _message(
        "channel_exposure", bad
    )


def test_bad_enum_value(tables: dict[str, pd.DataFrame]) -> None:
    bad = tables["strategy_decisions"].assign(action=["shadowban"])
    msg = _message("strategy_decisions", bad)
    assert "strategy_decisions.action: value not in ['block', 'demote', 'limit_exposure']" in msg
    assert "1 row (e.g. d1)" in msg


def test_null_in_required_column(tables: dict[str, pd.DataFrame]) -> None:
    bad = tables["listings"].assign(title=["a", None, "c"])
    assert "listings.title: missing value (column is not nullable) — 1 row (e.g. l2)" in _message(
        "listings", bad
    )


def test_out_of_range_and_infinite_values(tables: dict[str, pd.DataFrame]) -> None:
    bad = tables["listings"].assign(price=[-1.0, np.inf, 3.0])
    msg = _message("listings", bad)
    assert "value below 0" in msg and "infinite value" in msg
    labels = tables["audit_labels"].assign(inclusion_probability=[1.5, 0.2])
    assert "audit_labels.inclusion_probability: value above 1" in _message("audit_labels", labels)


def test_timezone_aware_timestamps_are_rejected(tables: dict[str, pd.DataFrame]) -> None:
    aware = tables["sellers"]["registered_at"].dt.tz_localize("UTC")
    bad = tables["sellers"].assign(registered_at=aware)
    assert "sellers.registered_at: wrong type" in _message("sellers", bad)


def test_dangling_reference_and_all_problems_reported_together(
    tmp_path: Path, tables: dict[str, pd.DataFrame]
) -> None:
    write_tables(tmp_path, tables)
    bad_listings = tables["listings"].assign(seller_id=["s1", "s9", "s9"])
    bad_listings.to_parquet(tmp_path / "tables" / "listings.parquet")
    tables["videos"].drop(columns=["caption"]).to_parquet(tmp_path / "tables" / "videos.parquet")
    with pytest.raises(ContractError) as info:
        load_tables(tmp_path)
    # the missing column is reported; references are checked once every table is well-formed
    assert "videos.caption: missing column" in str(info.value)
    tables["videos"].to_parquet(tmp_path / "tables" / "videos.parquet")
    with pytest.raises(ContractError) as info:
        load_tables(tmp_path)
    expected = "listings.seller_id: refers to sellers.seller_id values that do not exist — 2 rows"
    assert expected in str(info.value)


def test_missing_table_file(tmp_path: Path) -> None:
    (tmp_path / "tables").mkdir()
    with pytest.raises(ContractError, match="table file not found"):
        load_tables(tmp_path, ["sellers"])


def test_missing_data_directory_is_one_named_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere does not exist"):
        load_tables(tmp_path / "nowhere", ["sellers"])
    with pytest.raises(FileNotFoundError, match="has no tables/ folder"):
        load_tables(tmp_path, ["sellers"])


def test_write_refuses_invalid_tables(tmp_path: Path, tables: dict[str, pd.DataFrame]) -> None:
    tables["sellers"] = tables["sellers"].assign(verification=["gold", "none"])
    with pytest.raises(ContractError, match="sellers.verification"):
        write_tables(tmp_path, tables)
    assert not (tmp_path / "tables").exists()


def test_docs_match_declarations() -> None:
    from features.contract_docs import render_contract_markdown

    docs = Path(__file__).resolve().parents[2] / "docs" / "data-contract.md"
    assert docs.read_text() == render_contract_markdown(), (
        "docs/data-contract.md is stale: run `govrisk data contract`"
    )
