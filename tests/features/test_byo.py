"""Bring your own data: a spec maps a user's CSV/Parquet tables to features, with clear errors."""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from features.byo import SpecError, build_dataset, feature_set, load_spec, parse_spec

SPEC: dict[str, object] = {
    "name": "shop_orders",
    "entity": "order",
    "rows": {
        "path": "orders.csv",
        "id": "order_id",
        "time": "bought",
        "label": "fraud",
        "columns": {
            "order_id": "categorical",
            "signup": {"type": "timestamp", "format": "%m/%d/%Y %H:%M"},
            "bought": {"type": "timestamp", "format": "%m/%d/%Y %H:%M"},
            "amount": "numeric",
            "device": "categorical",
            "ip": "numeric",
            "member": "boolean",
            "note": "text",
            "fraud": "numeric",
        },
    },
    "lookups": {
        "ip_country": {
            "path": "ranges.parquet",
            "columns": {"lo": "numeric", "hi": "numeric", "country": "categorical"},
        }
    },
    "features": [
        {"name": "signup_seconds", "kind": "time_between", "start": "signup", "end": "bought"},
        {"name": "device_seen", "kind": "prior_count", "column": "device"},
        {
            "name": "country",
            "kind": "range_lookup",
            "column": "ip",
            "table": "ip_country",
            "lower": "lo",
            "upper": "hi",
            "value": "country",
        },
        {"name": "hour", "kind": "hour_of_day", "column": "bought"},
        {"name": "weekday", "kind": "day_of_week", "column": "bought"},
        {"name": "amount", "kind": "column", "column": "amount", "unit": "USD"},
        {"name": "member", "kind": "column", "column": "member"},
        {"name": "note", "kind": "text", "column": "note", "dims": 2},
    ],
}

CSV = """\
order_id,signup,bought,amount,device,ip,member,note,fraud
o1,1/5/2025 10:00,1/5/2025 10:00,10,d1,5.5,true,Replica watch 1:1,1
o2,1/1/2025 08:00,1/6/2025 09:30,20,d1,15,false,,0
o3,1/2/2025 00:00,1/6/2025 09:30,30,d1,25,false,miracle cure!,1
o4,1/3/2025 00:00,1/7/2025 23:15,40,d2,100,,plain,0
o5,1/3/2025 00:00,2/1/2025 12:00,50,,7,true,late,0
"""


def _write(tmp_path: Path, csv: str = CSV) -> Path:
    (tmp_path / "orders.csv").write_text(csv)
    pd.DataFrame(
        {"lo": [0.0, 10.0, 20.0], "hi": [9.0, 19.0, 20.0], "country": ["AA", "BB", "CC"]}
    ).to_parquet(tmp_path / "ranges.parquet")
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC))
    return spec_path


def test_builds_the_declared_features(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path))
    ds = build_dataset(spec, base_dir=tmp_path, threads=1)
    f = ds.frame.set_index("item_id")
    assert list(f.index) == ["o1", "o2", "o3", "o4", "o5"]  # ordered by time, then id
    assert list(ds.frame.columns[:3]) == ["item_id", "event_time", "label"]
    assert f["signup_seconds"].tolist() == [0.0, 437400.0, 379800.0, 429300.0, 2548800.0]
    # o2 and o3 share d1 at the same instant: neither counts the other (strictly earlier only).
    assert f["device_seen"].tolist()[:4] == [0.0, 1.0, 1.0, 0.0]
    assert np.isnan(f.loc["o5", "device_seen"])  # missing device: no count
    # 25 and 100 fall after the last range's upper bound: no country.
    assert f["country"].fillna("-").tolist() == ["AA", "BB", "-", "-", "AA"]
    assert f["hour"].tolist() == [10.0, 9.0, 9.0, 23.0, 12.0]
    assert f.loc["o1", "weekday"] == 6.0  # 2025-01-05 is a Sunday
    assert f["member"].tolist() == [True, False, False, False, True]
    assert f.loc["o1", "note_counterfeit_term_count"] == 2.0
    assert f.loc["o3", "note_claim_term_count"] == 2.0
    assert f.loc["o2", "note_text_length"] == 0.0
    assert f["label"].tolist() == [1.0, 0.0, 1.0, 0.0, 0.0]
    names = [x.name for x in feature_set(spec).features]
    assert list(ds.frame.columns[3:]) == names
    assert "note_text_hash_1" in names and "note_text_hash_2" not in names
    assert set(ds.digests) == {"rows", "ip_country"}


def test_as_of_keeps_rows_strictly_before_it(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path))
    ds = build_dataset(spec, base_dir=tmp_path, as_of=datetime(2025, 1, 7), threads=1)
    assert ds.frame["item_id"].tolist() == ["o1", "o2", "o3"]


def test_overriding_a_table_path(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path))
    elsewhere = tmp_path / "sub"
    elsewhere.mkdir()
    (tmp_path / "orders.csv").rename(elsewhere / "o.csv")
    with pytest.raises(SpecError, match=r"rows\.path: file not found"):
        build_dataset(spec, base_dir=tmp_path)
    ds = build_dataset(spec, base_dir=tmp_path, overrides={"rows": elsewhere / "o.csv"})
    assert len(ds.frame) == 5
    with pytest.raises(SpecError, match="no table called 'nope'"):
        build_dataset(spec, base_dir=tmp_path, overrides={"nope": elsewhere / "o.csv"})


def _spec_with(**changes: object) -> dict[str, object]:
    spec = copy.deepcopy(SPEC)
    for path, value in changes.items():
        node: object = spec
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]  # type: ignore[index]
        if isinstance(node, list):
            node[int(keys[-1])] = value
        else:
            node[keys[-1]] = value  # type: ignore[index]
    return spec


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"features__1__column": "devise"},
            r"features\[1\] \(device_seen\): unknown column 'devise'",
        ),
        ({"rows__columns__amount": "money"}, r"rows\.columns\.amount.*'numeric'"),
        ({"features__0__kind": "duration"}, r"features\.0: Input tag 'duration'"),
        ({"features__5__colum": "amount"}, r"features\.5\.column.*colum"),
        ({"features__2__table": "geo"}, r"unknown lookup table 'geo'"),
        ({"features__2__value": "nation"}, r"value column 'nation' is not declared"),
        ({"features__3__column": "amount"}, r"column 'amount' is numeric, needs timestamp"),
        ({"features__6__name": "amount"}, r"feature name 'amount' is used twice"),
        ({"rows__label": "note"}, r"rows\.label: column 'note' is text"),
        ({"name": "Shop Orders"}, r"name: String should match pattern"),
    ],
)
def test_spec_errors_name_the_field(changes: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(_spec_with(**changes))


@pytest.mark.parametrize(
    ("governance", "message"),
    [
        ({"entity": "listing", "policy": "fraud"}, r"governance\.policy: Input should be"),
        ({"entity": "video", "policy": "counterfeit", "channel": "shop_tab"}, "not a video ch"),
        ({"entity": "listing", "policy": "counterfeit", "value": "hour_x"}, "not a numeric"),
        (
            {"entity": "listing", "policy": "counterfeit", "channel_column": "amount"},
            r"governance\.channel_column: column 'amount' is numeric, needs categorical",
        ),
    ],
)
def test_governance_errors_name_the_field(governance: dict[str, str], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec({**SPEC, "governance": governance})


def test_channel_column_is_checked_and_kept(tmp_path: Path) -> None:
    raw = {**SPEC, "governance": {"entity": "listing", "policy": "counterfeit"}}
    raw["governance"]["channel_column"] = "device"  # type: ignore[index]
    _write(tmp_path)
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match=r"rows\.columns\.device: every row needs one of"):
        build_dataset(load_spec(tmp_path / "spec.yaml"), base_dir=tmp_path)


def test_data_errors_name_the_column_and_examples(tmp_path: Path) -> None:
    spec = load_spec(
        _write(
            tmp_path, CSV.replace(",10,d1,", ",ten,d1,").replace("1/6/2025 09:30", "2025-01-06", 1)
        )
    )
    with pytest.raises(SpecError) as err:
        build_dataset(spec, base_dir=tmp_path)
    text = str(err.value)
    assert "rows.columns.amount: 1 value(s) are not numeric (e.g. 'ten')" in text
    assert "rows.columns.bought: 1 value(s) are not timestamp with format '%m/%d/%Y %H:%M'" in text


def test_missing_columns_and_duplicate_ids(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, CSV.replace("member,", "membership,")))
    with pytest.raises(SpecError, match=r"rows\.columns\.member: no such column in orders\.csv"):
        build_dataset(spec, base_dir=tmp_path)
    spec = load_spec(_write(tmp_path, CSV.replace("o2,", "o1,")))
    with pytest.raises(SpecError, match=r"rows: 1 row\(s\) with duplicate id"):
        build_dataset(spec, base_dir=tmp_path)
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "absent.yaml")


REPO = Path(__file__).resolve().parents[2]
FRAUD = REPO.parent / "shared" / "data" / "ecommerce_fraud"


@pytest.mark.skipif(not (FRAUD / "fraud_data.csv.gz").exists(), reason="fraud data not present")
def test_the_ecommerce_fraud_spec_on_the_real_data() -> None:
    spec = load_spec(REPO / "experiments" / "specs" / "ecommerce_fraud.yaml")
    ds = build_dataset(spec, base_dir=REPO, threads=2)
    frame = ds.frame
    assert len(frame) == 30_189  # the partial copy's documented size
    assert frame["label"].mean() == pytest.approx(0.095, abs=0.001)
    assert frame["ip_country"].isna().mean() == pytest.approx(0.245, abs=0.01)
    assert (frame["seconds_signup_to_purchase"] >= 0).all()
    assert frame["device_shared_count"].max() > 0
    assert set(frame["source"].unique()) == {"SEO", "Ads", "Direct"}
