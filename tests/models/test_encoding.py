"""FeatureEncoder: vocabularies, codes, validation messages, JSON round trip, online path."""

from __future__ import annotations

import json
import math

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.encoding import EncodingError, FeatureEncoder


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "category": pd.Series(["shoes", "bags", None, "bags"], dtype="str"),
            "price": [10.0, np.nan, 3.5, 7.0],
            "terms": pd.Series([0, 2, 1, 0], dtype="int64"),
            "branded": [True, False, True, False],
        }
    )


def _encoder() -> FeatureEncoder:
    return FeatureEncoder(categorical=["category"], numeric=["price", "terms", "branded"])


def test_fit_learns_sorted_vocabulary_and_nullable_columns() -> None:
    encoder = _encoder().fit(_frame())
    assert encoder.categories_ == {"category": ["bags", "shoes"]}
    assert encoder.nullable_ == ["price"]
    assert encoder.feature_names_ == ["category", "price", "terms", "branded"]
    assert encoder.categorical_indices_ == [0]


def test_transform_codes_categories_and_keeps_declared_order() -> None:
    encoder = _encoder().fit(_frame())
    scoring = pd.DataFrame(
        {
            "branded": [True, False],
            "terms": [3, 0],
            "price": [1.0, np.nan],
            "category": pd.Series(["shoes", "never-seen"], dtype="str"),
        }
    )
    X = encoder.transform(scoring)
    assert X.dtype == np.float64
    np.testing.assert_array_equal(X[0], [1.0, 1.0, 3.0, 1.0])
    assert math.isnan(X[1, 0]), "an unseen category encodes as missing"
    assert math.isnan(X[1, 1])
    assert X[1, 3] == 0.0


def test_missing_and_mistyped_columns_are_named() -> None:
    encoder = _encoder().fit(_frame())
    bad = _frame().drop(columns=["terms"]).assign(price=["1", "2", "3", "4"])
    with pytest.raises(EncodingError) as info:
        encoder.transform(bad)
    message = str(info.value)
    assert "'terms' is missing" in message
    assert "'price' must hold numbers" in message
    wrong_category = _frame().assign(category=[1, 2, 3, 4])
    with pytest.raises(EncodingError, match="'category' must hold text"):
        encoder.transform(wrong_category)


def test_row_problems_flag_infinite_and_unexpected_missing_values() -> None:
    encoder = _encoder().fit(_frame())
    frame = _frame().assign(terms=[0.0, np.inf, np.nan, 1.0], price=[np.nan, 1.0, 2.0, -np.inf])
    problems = encoder.row_problems(frame).tolist()
    assert problems[0] == ""  # price is nullable (missing in training)
    assert problems[1] == "terms: infinite value"
    assert problems[2] == "terms: missing (never missing in training)"
    assert problems[3] == "price: infinite value"


def test_explicit_nullable_overrides_learning() -> None:
    encoder = FeatureEncoder(categorical=["category"], numeric=["price", "terms"], nullable=[])
    encoder.fit(_frame())
    assert encoder.nullable_ == []
    with pytest.raises(EncodingError, match="not a declared numeric column"):
        FeatureEncoder(numeric=["price"], nullable=["other"]).fit(_frame())


def test_json_round_trip_gives_the_same_matrix() -> None:
    encoder = _encoder().fit(_frame())
    restored = FeatureEncoder.from_dict(json.loads(json.dumps(encoder.to_dict())))
    np.testing.assert_array_equal(
        restored.transform(_frame()), encoder.transform(_frame()), strict=True
    )
    assert restored.nullable_ == encoder.nullable_
    broken = encoder.to_dict() | {"categories": {"category": ["shoes", "bags"]}}
    with pytest.raises(EncodingError, match="not sorted"):
        FeatureEncoder.from_dict(broken)


def test_unfitted_encoder_refuses_to_transform() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        _encoder().transform(_frame())


def test_encode_records_matches_transform_and_locates_bad_fields() -> None:
    encoder = _encoder().fit(_frame())
    records = _frame().astype(object).where(_frame().notna(), None).to_dict("records")
    np.testing.assert_array_equal(encoder.encode_records(records), encoder.transform(_frame()))
    with pytest.raises(EncodingError) as info:
        encoder.encode_records(
            [
                {"category": 3, "price": "cheap", "terms": None, "branded": True},
                {"category": "bags", "price": 1.0, "branded": float("inf")},
            ]
        )
    assert info.value.locations == [
        (0, "category", "expected text (a category), got int"),
        (0, "price", "expected a number, got str"),
        (0, "terms", "missing (never missing in training)"),
        (1, "terms", "field required"),
        (1, "branded", "infinite value"),
    ]


def test_unseen_and_missing_categories_route_alike_in_lightgbm() -> None:
    """NaN, a negative code and a code beyond the vocabulary take the same LightGBM branch."""
    rng = np.random.default_rng(0)
    n = 600
    X = np.column_stack([rng.integers(0, 6, n).astype(float), rng.normal(size=n)])
    y = (np.isin(X[:, 0], [1, 4]) | (X[:, 1] > 1)).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "num_threads": 1, "min_data_per_group": 5},
        lgb.Dataset(X, y, categorical_feature=[0]),
        num_boost_round=10,
    )
    probes = [np.nan, -1.0, 6.0, 1000.0]
    rows = np.array([[code, x] for code in probes for x in (-1.0, 0.0, 2.0)])
    raw = booster.predict(rows, raw_score=True).reshape(len(probes), 3)
    for other in raw[1:]:
        np.testing.assert_array_equal(other, raw[0])


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(
        st.tuples(
            st.one_of(st.none(), st.sampled_from(["a", "b", "c", "zz"])),
            st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_online_and_frame_encodings_agree(values: list[tuple[str | None, float | None]]) -> None:
    encoder = FeatureEncoder(categorical=["c"], numeric=["x"], nullable=["x"])
    encoder.fit(pd.DataFrame({"c": pd.Series(["a", "b", "c"], dtype="str"), "x": [0.0] * 3}))
    frame = pd.DataFrame(
        {
            "c": pd.Series([c for c, _ in values], dtype="str"),
            "x": pd.Series([np.nan if x is None else x for _, x in values], dtype="float64"),
        }
    )
    records = [{"c": c, "x": x} for c, x in values]
    np.testing.assert_array_equal(encoder.encode_records(records), encoder.transform(frame))


def test_encode_records_accepts_numpy_scalars_and_text_subclasses() -> None:
    from enum import StrEnum

    class Category(StrEnum):
        BAGS = "bags"

    encoder = _encoder().fit(_frame())
    record = {
        "category": Category.BAGS,
        "price": np.float32(2.5),
        "terms": np.int32(3),
        "branded": np.bool_(True),
    }
    np.testing.assert_array_equal(encoder.encode_records([record]), [[0.0, 2.5, 3.0, 1.0]])


def test_object_and_nullable_columns_with_pd_na_encode_as_missing() -> None:
    encoder = _encoder().fit(_frame())
    frame = pd.DataFrame(
        {
            "category": pd.Series(["bags", pd.NA, None, "shoes"], dtype=object),
            "price": pd.Series([1.5, pd.NA, None, 2], dtype=object),
            "terms": pd.array([1, 2, 3, 4], dtype="Int64"),
            "branded": pd.array([True, pd.NA, False, True], dtype="boolean"),
        }
    )
    matrix = encoder.transform(frame)
    assert np.isnan(matrix[1:3, 0]).all() and matrix[0, 0] == 0.0 and matrix[3, 0] == 1.0
    assert matrix[0, 1] == 1.5 and np.isnan(matrix[1:3, 1]).all() and matrix[3, 1] == 2.0
    assert np.isnan(matrix[1, 3]) and matrix[0, 3] == 1.0
    problems = encoder.row_problems(frame).tolist()
    assert problems == ["", "branded: missing (never missing in training)", "", ""]
