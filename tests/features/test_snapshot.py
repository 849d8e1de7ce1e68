"""Snapshot lookups: keyed rows, zero-filled counts for absent keys, Parquet round trip."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from features.snapshot import FeatureSnapshot, Lookup, TableInfo


def _lookup() -> Lookup:
    table = pa.table(
        {
            "a": ["x", "y", "x"],
            "b": ["1", "1", "2"],
            "count": [3.0, 4.0, 5.0],
            "rate": [0.5, None, 0.25],
            "flag": [True, False, True],
            "name": ["one", None, "three"],
        }
    )
    return Lookup(table, TableInfo(key=("a", "b"), zero_fill=frozenset({"count"})))


def test_take_by_composite_key_with_absent_and_missing_keys() -> None:
    keys = [
        np.array(["y", "x", "z", None], dtype=object),
        np.array(["1", "2", "1", "1"], dtype=object),
    ]
    got = _lookup().take(keys, "p")
    assert got["p.count"].tolist() == [4.0, 5.0, 0.0, 0.0]
    assert np.isnan(got["p.rate"][[0, 2, 3]]).all() and got["p.rate"][1] == 0.25
    assert got["p.flag"].tolist() == [False, True, False, False]
    assert got["p.name"].tolist() == [None, "three", None, None]
    assert set(got) == {"p.count", "p.rate", "p.flag", "p.name"}


def test_many_keys_take_the_vectorised_path_and_agree() -> None:
    lookup = _lookup()
    a = np.array(["x", "y", "q"] * 30, dtype=object)
    b = np.array(["2", "1", "1"] * 30, dtype=object)
    many = lookup.take([a, b], "p")
    few = lookup.take([a[:3], b[:3]], "p")
    for name in many:
        assert many[name][:3].tolist() == few[name].tolist() or name == "p.rate"
    assert many["p.count"][:3].tolist() == [5.0, 4.0, 0.0]


def test_write_and_load_round_trip(tmp_path: Path) -> None:
    table = pa.table({"category": ["b", "a", "a"], "price": [3.0, 2.0, 1.0]})
    snapshot = FeatureSnapshot(
        as_of=datetime(2025, 3, 1),
        tables={"category_prices": table},
        infos={"category_prices": TableInfo(key=("category", "price"))},
        versions={"listing": 1},
    )
    snapshot.write(tmp_path)
    loaded = FeatureSnapshot.load(tmp_path)
    assert loaded.as_of == np.datetime64("2025-03-01T00:00:00", "us")
    assert loaded.versions == {"listing": 1}
    assert loaded.table("category_prices").equals(table)
    prices = loaded.category_prices()
    assert prices["a"].tolist() == [1.0, 2.0] and prices["b"].tolist() == [3.0]
