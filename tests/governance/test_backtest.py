"""Backtests on hand-made frames: hits per day and channel, exposure affected, overlap flags."""

from __future__ import annotations

import sys
import types
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.vocabulary import Entity
from governance.backtest import (
    backtest_strategy,
    daily_hits,
    entity_exposure,
    write_backtest,
)
from governance.evaluator import EvaluationError
from governance.registry import strategies_dir, write_version
from governance.strategy import Strategy
from govrisk import build_app

D1, D2, D3 = (pd.Timestamp(f"2024-03-0{d}") for d in (1, 2, 3))


def _strategy(
    sid: str,
    condition: dict[str, Any],
    *,
    action: str = "block",
    channels: tuple[str, ...] = ("shop_tab", "campaigns"),
    entity: str = "listing",
    status: str = "active",
) -> Strategy:
    return Strategy.model_validate(
        {
            "id": sid,
            "version": 1,
            "name": f"Rule {sid}",
            "owner": "tests",
            "description": "A rule.",
            "entity": entity,
            "policy": "counterfeit",
            "channels": channels,
            "action": action,
            "status": status,
            "condition": condition,
        }
    )


def _changed(strategy: Strategy, **changes: Any) -> Strategy:
    fields = {name: getattr(strategy, name) for name in Strategy.model_fields}
    return Strategy.model_validate({**fields, **changes})


def _frame(rows: list[tuple[str, float, str]]) -> pd.DataFrame:
    ids, prices, categories = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "item_id": pd.Series(ids, dtype="str"),
            "price": np.asarray(prices, dtype="float64"),
            "category": pd.Series(categories, dtype="str"),
        }
    )


FRAMES = {
    D1: _frame([("i1", 12, "bags"), ("i2", 7, "shoes")]),
    D2: _frame([("i1", 12, "bags"), ("i2", 7, "shoes"), ("i3", 20, "toys")]),
    D3: _frame([("i1", 3, "bags"), ("i2", 7, "shoes"), ("i3", 20, "toys")]),
}
A = _strategy("a", {"feature": "price", "op": ">=", "value": 10})
B = _strategy("b", {"feature": "price", "op": ">=", "value": 5})
C = _strategy(
    "c",
    {"feature": "category", "op": "==", "value": "bags"},
    action="demote",
    channels=("shop_tab",),
)
SCORED = _strategy("d", {"feature": "p_counterfeit", "op": ">", "value": 0.9})
VIDEO = _strategy(
    "e", {"feature": "views", "op": ">", "value": 1}, entity="video", channels=("video",)
)


def _exposure() -> pd.DataFrame:
    rows = [
        (D1, "i1", "shop_tab", 100, 50.0),
        (D1, "i1", "campaigns", 10, 0.0),
        (D1, "i2", "shop_tab", 200, 80.0),
        (D2, "i3", "shop_tab", 30, 5.0),
        (D3, "i3", "campaigns", 40, 10.0),
        (D3, "i1", "shop_tab", 500, 100.0),
        (pd.Timestamp("2024-02-01"), "i1", "shop_tab", 9999, 9999.0),  # outside the replay
    ]
    df = pd.DataFrame(rows, columns=["day", "item_id", "channel", "impressions", "gmv"])
    df["clicks"] = df["impressions"] // 10
    df["orders"] = 0
    df["day"] = df["day"].astype("datetime64[us]")
    return df


def test_daily_hits_and_exposure_affected() -> None:
    result = backtest_strategy(A, frames_by_day=FRAMES, exposure=_exposure())
    assert result.days == (D1, D2, D3)
    assert sorted(map(tuple, result.hits[["day", "item_id"]].drop_duplicates().to_numpy())) == [
        (D1, "i1"),
        (D2, "i1"),
        (D2, "i3"),
        (D3, "i3"),
    ]
    daily = result.daily.set_index(["day", "channel"])
    expected = {
        # day, channel: items_hit, new_items, impressions, gmv, impressions_share
        (D1, "shop_tab"): (1, 1, 100, 50.0, 100 / 300),
        (D1, "campaigns"): (1, 1, 10, 0.0, 1.0),
        (D2, "shop_tab"): (2, 1, 30, 5.0, 1.0),
        (D2, "campaigns"): (2, 1, 0, 0.0, 0.0),
        (D3, "shop_tab"): (1, 0, 0, 0.0, 0.0),
        (D3, "campaigns"): (1, 0, 40, 10.0, 1.0),
    }
    assert len(daily) == len(expected)
    for key, (items, new, impressions, gmv, share) in expected.items():
        row = daily.loc[key]
        assert (row["items_hit"], row["new_items"], row["impressions"]) == (items, new, impressions)
        assert row["gmv"] == pytest.approx(gmv)
        assert row["impressions_share"] == pytest.approx(share)
    channels = result.channels.set_index("channel")
    assert channels.loc["shop_tab", "item_days"] == 4 and channels.loc["shop_tab", "items"] == 2
    assert channels.loc["shop_tab", "impressions"] == 130
    assert channels.loc["shop_tab", "impressions_share"] == pytest.approx(130 / 830)
    assert channels.loc["campaigns", "gmv"] == pytest.approx(10.0)
    assert channels.loc["campaigns", "gmv_share"] == pytest.approx(1.0)
    assert result.daily["items_hit"].dtype == "int64"


def test_overlap_flags_redundant_and_conflicting_strategies() -> None:
    result = backtest_strategy(
        A, frames_by_day=FRAMES, exposure=_exposure(), others=[A, B, C, SCORED, VIDEO]
    )
    overlap = result.overlap.set_index("strategy")
    assert set(overlap.index) == {"b@v1", "c@v1"}  # itself and other entities are not compared
    b, c = overlap.loc["b@v1"], overlap.loc["c@v1"]
    assert (b["n_self"], b["n_other"], b["n_both"]) == (8, 14, 8)
    assert b["jaccard"] == pytest.approx(8 / 14)
    assert b["self_in_other"] == pytest.approx(1.0)
    assert bool(b["redundant"]) and not bool(b["conflicting"])
    assert (c["n_other"], c["n_both"]) == (3, 2)
    assert c["self_in_other"] == pytest.approx(2 / 8)
    assert c["other_in_self"] == pytest.approx(2 / 3)
    assert bool(c["conflicting"]) and not bool(c["redundant"])
    assert result.redundant == ["b@v1"] and result.conflicting == ["c@v1"]
    assert list(result.skipped) == ["d@v1"]
    assert "p_counterfeit" in result.skipped["d@v1"]


def test_a_weaker_superset_is_not_redundant_and_thresholds_apply() -> None:
    demoting_b = _changed(B, action="demote")
    result = backtest_strategy(A, frames_by_day=FRAMES, exposure=_exposure(), others=[demoting_b])
    row = result.overlap.iloc[0]
    assert not row["redundant"]  # B only demotes what A blocks
    assert row["conflicting"]
    strict = backtest_strategy(
        A, frames_by_day=FRAMES, exposure=_exposure(), others=[C], conflict_min_share=0.9
    )
    assert not strict.overlap.iloc[0]["conflicting"]


def test_the_tested_strategy_must_be_evaluable() -> None:
    with pytest.raises(EvaluationError, match="no model-score column 'p_counterfeit'"):
        backtest_strategy(SCORED, frames_by_day=FRAMES, exposure=_exposure())
    with pytest.raises(ValueError, match="frames_by_day is empty"):
        backtest_strategy(A, frames_by_day={}, exposure=_exposure())
    with pytest.raises(ValueError, match="exposure lacks column"):
        backtest_strategy(A, frames_by_day=FRAMES, exposure=_exposure().drop(columns="gmv"))


def test_daily_hits_accepts_dates_and_skips_on_request() -> None:
    frames = {datetime(2024, 3, 1, 0, 0): FRAMES[D1], D2.date(): FRAMES[D2]}
    hits, skipped = daily_hits([A, C, SCORED], frames, skip_errors=True)
    assert set(hits["day"]) == {D1, D2}
    assert hits["day"].dtype == "datetime64[us]"
    assert hits.groupby("strategy").size().to_dict() == {"a@v1": 6, "c@v1": 2}
    assert list(skipped) == ["d@v1"]
    with pytest.raises(EvaluationError, match="strategy d@v1 on 2024-03-01"):
        daily_hits([SCORED], frames)
    with pytest.raises(ValueError, match="one entity"):
        daily_hits([A, VIDEO], frames)


def _tables() -> dict[str, pd.DataFrame]:
    listings = pd.DataFrame(
        {"listing_id": ["i1", "i2", "i3"], "seller_id": ["s1", "s1", "s2"]}, dtype="str"
    )
    videos = pd.DataFrame({"video_id": ["v1"], "listing_id": ["i3"]}, dtype="str")
    exposure = _exposure().assign(entity="listing")
    video_row = pd.DataFrame(
        {
            "entity": ["video"],
            "item_id": ["v1"],
            "channel": ["video"],
            "day": [D1],
            "impressions": [7],
            "clicks": [1],
            "orders": [0],
            "gmv": [3.0],
        }
    )
    exposure = pd.concat([exposure, video_row], ignore_index=True)
    exposure["day"] = exposure["day"].astype("datetime64[us]")
    for col in ("entity", "item_id", "channel"):
        exposure[col] = exposure[col].astype("str")
    return {"listings": listings, "videos": videos, "channel_exposure": exposure}


def test_entity_exposure_filters_entities_and_rolls_up_sellers() -> None:
    tables = _tables()
    listing = entity_exposure(tables, Entity.LISTING)
    assert len(listing) == 7 and set(listing["item_id"]) == {"i1", "i2", "i3"}
    video = entity_exposure(tables, Entity.VIDEO)
    assert video["impressions"].tolist() == [7]
    seller = entity_exposure(tables, Entity.SELLER).set_index(["item_id", "channel", "day"])
    assert seller.loc[("s1", "shop_tab", D1), "impressions"] == 300
    assert seller.loc[("s2", "video", D1), "impressions"] == 7  # the video promotes s2's i3
    assert seller["impressions"].sum() == listing["impressions"].sum() + 7


def test_write_backtest(tmp_path: Path) -> None:
    result = backtest_strategy(A, frames_by_day=FRAMES, exposure=_exposure(), others=[B])
    paths = write_backtest(result, tmp_path / "out")
    assert [p.name for p in paths] == [
        "backtest_a@v1_hits.parquet",
        "backtest_a@v1_daily.parquet",
        "backtest_a@v1_channels.parquet",
        "backtest_a@v1_overlap.parquet",
    ]
    pd.testing.assert_frame_equal(pd.read_parquet(paths[1]), result.daily)


def test_cli_backtest_replays_the_last_days(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for strategy in (A, B, C, _changed(B, id="old", status="retired")):
        write_version(strategy, strategies_dir(tmp_path))
    draft = _changed(A, version=2, status="draft")
    write_version(draft, strategies_dir(tmp_path))
    seen: list[datetime] = []

    def build_frames(
        tables: dict[str, pd.DataFrame], *, as_of: datetime, entities: tuple[Entity, ...]
    ) -> dict[Entity, pd.DataFrame]:
        assert entities == (Entity.LISTING,)
        seen.append(as_of)
        return {Entity.LISTING: FRAMES[pd.Timestamp(as_of)]}

    fake_build = types.ModuleType("features.build")
    fake_build.build_frames = build_frames  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "features.build", fake_build)
    monkeypatch.setattr("features.loader.load_tables", lambda data_dir: _tables())

    out = tmp_path / "bt"
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        build_app(),
        [
            "strategies",
            "backtest",
            "a@v2",
            "--data",
            str(tmp_path),
            "--days",
            "2",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert seen == [D2.to_pydatetime(), D3.to_pydatetime()]
    assert "a@v2 (draft, block) replayed on 2 day(s)" in result.output
    assert "b@v1" in result.output and "redundant" in result.output
    assert "a@v1" in result.output  # the active version of the same id is compared too
    assert "old@v1" not in result.output  # retired versions are not
    assert (out / "backtest_a@v2_overlap.parquet").exists()


def test_a_strategy_that_never_fires_reports_zeros() -> None:
    never = _strategy("never", {"feature": "price", "op": ">", "value": 1e9})
    result = backtest_strategy(never, frames_by_day=FRAMES, exposure=_exposure(), others=[B])
    assert result.hits.empty and list(result.hits.columns) == ["day", "item_id", "channel"]
    assert len(result.daily) == 6 and result.daily["items_hit"].sum() == 0
    assert result.daily["channel_impressions"].sum() == 880
    assert result.channels["items"].tolist() == [0, 0]
    row = result.overlap.iloc[0]
    assert (row["n_self"], row["n_both"], row["jaccard"]) == (0, 0, 0.0)
    assert not row["redundant"] and not row["conflicting"]
    hits, _ = daily_hits([never], FRAMES)
    assert hits.empty and hits["day"].dtype == "datetime64[us]"
    assert str(hits["item_id"].dtype) == "str"
