"""The synthetic generator: contract-valid, seeded, with the shapes the features need."""

from __future__ import annotations

import pandas as pd

from features.contract import find_problems, find_reference_problems
from features.tables import TABLES
from tests.factories import make_tables


def test_tables_conform_to_the_contract() -> None:
    tables = make_tables(300, seed=2)
    assert set(tables) == set(TABLES)
    for name, df in tables.items():
        assert find_problems(name, df) == [], name
        assert len(df) > 0, name
    assert find_reference_problems(tables) == []


def test_same_seed_same_tables_other_seed_other_tables() -> None:
    a, b, c = make_tables(80, seed=1), make_tables(80, seed=1), make_tables(80, seed=2)
    for name in TABLES:
        pd.testing.assert_frame_equal(a[name], b[name])
    assert not a["listings"]["title"].equals(c["listings"]["title"])


def test_shared_images_lexicon_text_and_lifted_decisions() -> None:
    tables = make_tables(400, seed=3)
    listings = tables["listings"]
    sellers_per_image = listings.groupby("image_hash")["seller_id"].nunique()
    assert (sellers_per_image > 1).any()
    assert listings["title"].str.contains("replica|dupe|miracle|nicotine|1:1|aaa").any()
    assert tables["strategy_decisions"]["lifted_at"].notna().any()
