"""Evaluator: vectorized masks match hand-computed and row-by-row answers; type checks explain."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.vocabulary import Entity
from governance.evaluator import (
    HIT_COLUMNS,
    EvaluationError,
    FeatureType,
    FrameEvaluator,
    check_condition,
    check_strategy,
    evaluate_condition,
    evaluate_strategies,
    evaluate_strategy,
    infer_feature_types,
    strategy_masks,
)
from governance.strategy import (
    AllOf,
    AnyOf,
    Condition,
    Not,
    Predicate,
    Strategy,
    parse_strategy,
)

TYPES: dict[str, FeatureType] = {
    "price": "numeric",
    "count": "numeric",
    "category": "categorical",
    "branded": "boolean",
    "official": "boolean",
}


def _frame() -> pd.DataFrame:
    """Six rows; row 1 is missing everywhere a column can be missing."""
    return pd.DataFrame(
        {
            "item_id": pd.Series(["i0", "i1", "i2", "i3", "i4", "i5"], dtype="str"),
            "price": [10.0, np.nan, 25.0, 5.0, 100.0, 25.0],
            "count": pd.array([0, None, 2, 1, 5, 3], dtype="Int64"),
            "category": pd.Series(["bags", None, "shoes", "watches", "bags", "toys"], dtype="str"),
            "branded": pd.array([True, None, False, True, False, True], dtype="boolean"),
            "official": [False, False, True, False, True, False],
        }
    )


def _p(feature: str, op: str, value: Any = None) -> Predicate:
    if isinstance(value, list):
        value = tuple(value)
    return Predicate.model_validate({"feature": feature, "op": op, "value": value})


def _rows(mask: np.ndarray) -> list[int]:
    return [int(i) for i in np.flatnonzero(mask)]


@pytest.mark.parametrize(
    ("predicate", "expected"),
    [
        (_p("price", "<", 25), [0, 3]),
        (_p("price", "<=", 25), [0, 2, 3, 5]),
        (_p("price", ">", 25), [4]),
        (_p("price", ">=", 25.0), [2, 4, 5]),
        (_p("price", "==", 25), [2, 5]),
        (_p("price", "!=", 25), [0, 3, 4]),  # the missing row 1 is not "!= 25"
        (_p("price", "in", [5, 100]), [3, 4]),
        (_p("price", "not_in", [5, 100]), [0, 2, 5]),
        (_p("price", "is_null"), [1]),
        (_p("price", "not_null"), [0, 2, 3, 4, 5]),
        (_p("count", ">=", 2), [2, 4, 5]),
        (_p("count", "!=", 0), [2, 3, 4, 5]),
        (_p("count", "is_null"), [1]),
        (_p("category", "==", "bags"), [0, 4]),
        (_p("category", "!=", "bags"), [2, 3, 5]),
        (_p("category", "in", ["watches", "toys", "never-seen"]), [3, 5]),
        (_p("category", "not_in", ["bags", "shoes"]), [3, 5]),
        (_p("category", "==", "never-seen"), []),
        (_p("category", "!=", "never-seen"), [0, 2, 3, 4, 5]),
        (_p("category", "is_null"), [1]),
        (_p("branded", "==", True), [0, 3, 5]),
        (_p("branded", "!=", True), [2, 4]),
        (_p("branded", "==", False), [2, 4]),
        (_p("branded", "is_null"), [1]),
        (_p("official", "==", True), [2, 4]),
        (_p("official", "in", [False]), [0, 1, 3, 5]),
    ],
)
def test_predicates_match_hand_computed_rows(predicate: Predicate, expected: list[int]) -> None:
    assert _rows(evaluate_condition(predicate, _frame())) == expected
    assert _rows(evaluate_condition(predicate, _frame(), feature_types=TYPES)) == expected


def test_groups_combine_and_not_includes_missing() -> None:
    df = _frame()
    condition = AllOf(
        all=(
            _p("price", ">=", 10),
            AnyOf(any=(_p("category", "==", "bags"), _p("count", ">", 2))),
        )
    )
    assert _rows(evaluate_condition(condition, df)) == [0, 4, 5]
    # NOT of a comparison is true where the value is missing: the comparison was false there.
    assert _rows(evaluate_condition(Not(not_=_p("price", ">", 20)), df)) == [0, 1, 3]
    assert _rows(evaluate_condition(Not(not_=condition), df)) == [1, 2, 3]


@pytest.mark.parametrize(
    "category",
    [
        pd.Series(["bags", None, "shoes"], dtype="str"),
        pd.Series(["bags", None, "shoes"], dtype=object),
        pd.Series(["bags", None, "shoes"], dtype="category"),
        pd.Series(["bags", None, "shoes"], dtype="string[pyarrow]"),
    ],
)
def test_categorical_dtypes_behave_alike(category: pd.Series) -> None:
    df = pd.DataFrame({"item_id": ["a", "b", "c"], "category": category})
    assert infer_feature_types(df) == {"category": "categorical"}
    assert _rows(evaluate_condition(_p("category", "!=", "bags"), df)) == [2]
    assert _rows(evaluate_condition(_p("category", "not_in", ["shoes"]), df)) == [0]
    assert _rows(evaluate_condition(_p("category", "is_null"), df)) == [1]


def test_infer_feature_types() -> None:
    assert infer_feature_types(_frame()) == TYPES


# -- type checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("predicate", "path", "fragment"),
    [
        (_p("prise", ">", 1), "condition.feature", "did you mean price?"),
        (_p("category", "<", "bags"), "condition.op", "compares order"),
        (_p("price", ">", "10"), "condition.value", "write a number without quotes"),
        (_p("price", "==", True), "condition.value", "is boolean"),
        (_p("category", "==", 3), "condition.value", "quote it to compare as text"),
        (_p("category", "==", False), "condition.value", "YAML reads yes/no"),
        (_p("branded", "==", 1), "condition.value", "write true or false"),
        (_p("branded", ">", True), "condition.op", "compares order"),
        (_p("price", "in", ["1"]), "condition.value", "the value ['1'] is text"),
    ],
)
def test_type_checks_name_the_field_and_the_fix(
    predicate: Predicate, path: str, fragment: str
) -> None:
    problems = check_condition(predicate, TYPES)
    assert len(problems) == 1, problems
    got_path, message = problems[0]
    assert fragment in message
    assert got_path == path


def test_type_checks_find_every_problem_in_a_nested_condition() -> None:
    condition = AllOf(
        all=(
            _p("price", ">", 1),
            AnyOf(any=(_p("colour", "==", "red"), Not(not_=_p("category", ">=", "a")))),
        )
    )
    problems = dict(check_condition(condition, TYPES))
    assert set(problems) == {"condition.all[1].any[0].feature", "condition.all[1].any[1].not.op"}
    assert "unknown feature 'colour'" in problems["condition.all[1].any[0].feature"]
    assert check_condition(_p("price", "is_null"), TYPES) == []


def test_check_strategy_accepts_model_score_gates_and_names_the_entity() -> None:
    s = _strategy(AllOf(all=(_p("p_counterfeit", ">=", 0.8), _p("p_anything", ">", 0.5))))
    problems = check_strategy(s, TYPES, source="x.yaml")
    assert [p.path for p in problems] == ["condition.all[1].feature"]
    assert problems[0].source == "x.yaml"
    assert "model-score gates are" in problems[0].message
    assert "(entity listing)" in problems[0].message


# -- evaluation errors ---------------------------------------------------------------------


def test_evaluation_refuses_what_it_cannot_answer() -> None:
    df = _frame()
    with pytest.raises(EvaluationError, match="did you mean price"):
        evaluate_condition(_p("prices", ">", 1), df)
    with pytest.raises(EvaluationError, match="no model-score column 'p_counterfeit'"):
        evaluate_condition(_p("p_counterfeit", ">", 0.5), df)
    with pytest.raises(EvaluationError, match="compares order"):
        evaluate_condition(_p("category", ">", "a"), df)
    with pytest.raises(EvaluationError, match="declared categorical"):
        evaluate_condition(_p("price", "is_null"), df, feature_types={"price": "categorical"})
    with pytest.raises(EvaluationError, match="strategy listing-rule@v1"):
        evaluate_strategy(_strategy(_p("nope", "is_null")), df)
    with pytest.raises(EvaluationError, match="no `item_id` column"):
        evaluate_strategy(_strategy(_p("price", "is_null")), df.drop(columns="item_id"))


# -- strategies ----------------------------------------------------------------------------


def _strategy(
    condition: Condition,
    *,
    sid: str = "listing-rule",
    version: int = 1,
    entity: str = "listing",
    channels: tuple[str, ...] = ("shop_tab", "campaigns"),
    action: str = "block",
) -> Strategy:
    return Strategy.model_validate(
        {
            "id": sid,
            "version": version,
            "name": "Test rule",
            "owner": "tests",
            "description": "A rule for tests.",
            "entity": entity,
            "policy": "counterfeit",
            "channels": channels,
            "action": action,
            "status": "active",
            "condition": condition,
        }
    )


def test_evaluate_strategy_expands_hits_to_channels() -> None:
    hits = evaluate_strategy(_strategy(_p("price", ">=", 25)), _frame())
    assert list(hits.columns) == list(HIT_COLUMNS)
    assert list(zip(hits["item_id"], hits["channel"], strict=True)) == [
        ("i2", "shop_tab"),
        ("i2", "campaigns"),
        ("i4", "shop_tab"),
        ("i4", "campaigns"),
        ("i5", "shop_tab"),
        ("i5", "campaigns"),
    ]
    assert set(hits["strategy_id"]) == {"listing-rule"}
    assert hits["strategy_version"].dtype == "int64"
    assert set(hits["action"]) == {"block"} and set(hits["policy"]) == {"counterfeit"}
    empty = evaluate_strategy(_strategy(_p("price", ">", 1e9)), _frame())
    assert empty.empty and list(empty.columns) == list(HIT_COLUMNS)


def test_many_strategies_share_predicate_masks() -> None:
    shared = _p("price", ">=", 10)
    a = _strategy(AllOf(all=(shared, _p("category", "==", "bags"))), sid="a")
    b = _strategy(AnyOf(any=(shared, _p("count", ">", 4))), sid="b")
    c = _strategy(AllOf(all=(shared, _p("category", "==", "bags"))), sid="c", version=2)
    video = _strategy(_p("views", ">", 1), sid="v", entity="video", channels=("video",))
    df = _frame()
    evaluator = FrameEvaluator(df)
    masks = strategy_masks([a, b, c], df, evaluator=evaluator)
    assert evaluator.n_evaluated_ == 3  # price>=10, category==bags, count>4: each once
    assert _rows(masks["a@v1"]) == [0, 4] and _rows(masks["b@v1"]) == [0, 2, 4, 5]
    assert masks["a@v1"] is masks["c@v2"]
    video_frame = pd.DataFrame({"item_id": ["v1", "v2"], "views": [0, 5]})
    hits = evaluate_strategies([a, b, c, video], {Entity.LISTING: df, Entity.VIDEO: video_frame})
    separate = pd.concat(
        [evaluate_strategy(s, df) for s in (a, b, c)] + [evaluate_strategy(video, video_frame)],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(hits, separate)
    with pytest.raises(EvaluationError, match="no feature frame for entity video"):
        evaluate_strategies([video], {Entity.LISTING: df})


def test_cached_masks_cannot_be_corrupted_by_callers() -> None:
    evaluator = FrameEvaluator(_frame())
    mask = evaluator.mask(_p("price", ">", 1))
    with pytest.raises(ValueError):
        mask[0] = False
    assert evaluator.mask(_p("price", ">", 1)) is mask


def test_typed_cache_keys_keep_true_and_one_apart() -> None:
    df = pd.DataFrame({"item_id": ["a", "b"], "n": [1.0, 2.0], "flag": [True, False]})
    evaluator = FrameEvaluator(df)
    assert _rows(evaluator.mask(_p("flag", "==", True))) == [0]
    with pytest.raises(EvaluationError, match="write true or false"):
        evaluator.mask(_p("flag", "==", 1))


# -- against a slow row-by-row reference ----------------------------------------------------


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _reference(condition: Condition, row: dict[str, object]) -> bool:
    if isinstance(condition, AllOf):
        return all(_reference(c, row) for c in condition.all)
    if isinstance(condition, AnyOf):
        return any(_reference(c, row) for c in condition.any)
    if isinstance(condition, Not):
        return not _reference(condition.not_, row)
    value = row[condition.feature]
    op, target = condition.op, condition.value
    if op == "is_null":
        return _missing(value)
    if op == "not_null":
        return not _missing(value)
    if _missing(value):
        return False
    assert value is not None
    if op == "in":
        assert isinstance(target, tuple)
        return value in target
    if op == "not_in":
        assert isinstance(target, tuple)
        return value not in target
    compare = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
    }[op]
    return bool(compare(value, target))


def _random_frame(seed: int, n: int = 80) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    price = rng.choice([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0], size=n)
    price[rng.random(n) < 0.2] = np.nan
    count = pd.array(rng.integers(0, 4, size=n), dtype="Int64")
    count[rng.random(n) < 0.2] = pd.NA
    category = rng.choice(np.array(["a", "b", "c"], dtype=object), size=n)
    category[rng.random(n) < 0.2] = None
    branded = pd.array(rng.random(n) < 0.5, dtype="boolean")
    branded[rng.random(n) < 0.2] = pd.NA
    return pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(n)],
            "price": price,
            "count": count,
            "category": pd.Series(category, dtype="str"),
            "branded": branded,
            "official": rng.random(n) < 0.3,
        }
    )


_NUMBERS = st.sampled_from([-1, 0, 0.5, 1, 2, 3, 2.5])
_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "price": _NUMBERS,
    "count": _NUMBERS,
    "category": st.sampled_from(["a", "b", "c", "zz"]),
    "branded": st.booleans(),
    "official": st.booleans(),
}


@st.composite
def _typed_predicates(draw: st.DrawFn) -> Predicate:
    feature = draw(st.sampled_from(sorted(_VALUES)))
    ops = ["==", "!=", "in", "not_in", "is_null", "not_null"]
    if TYPES[feature] == "numeric":
        ops += ["<", "<=", ">", ">="]
    op = draw(st.sampled_from(ops))
    if op in ("is_null", "not_null"):
        return _p(feature, op)
    if op in ("in", "not_in"):
        return _p(feature, op, draw(st.lists(_VALUES[feature], min_size=1, max_size=3)))
    return _p(feature, op, draw(_VALUES[feature]))


def _groups(children: st.SearchStrategy[Condition]) -> st.SearchStrategy[Condition]:
    members = st.lists(children, min_size=1, max_size=3).map(tuple)
    return st.one_of(
        members.map(lambda m: AllOf(all=m)),
        members.map(lambda m: AnyOf(any=m)),
        children.map(lambda c: Not(not_=c)),
    )


_FRAMES = {seed: _random_frame(seed) for seed in range(3)}


@settings(max_examples=150, deadline=None)
@given(st.recursive(_typed_predicates(), _groups, max_leaves=6), st.sampled_from(sorted(_FRAMES)))
def test_vectorized_matches_row_by_row_reference(condition: Condition, seed: int) -> None:
    df = _FRAMES[seed]
    got = evaluate_condition(condition, df, feature_types=TYPES)
    rows = df.astype(object).to_dict("records")
    expected = np.array([_reference(condition, row) for row in rows], dtype=bool)
    np.testing.assert_array_equal(got, expected)
    assert check_condition(condition, TYPES) == []


def test_yaml_strategy_on_a_frame_end_to_end() -> None:
    s = parse_strategy(
        """
id: cheap-bags
version: 1
name: Demote cheap unbranded bags
owner: tests
description: Cheap bags without a brand.
entity: listing
policy: counterfeit
channels: [shop_ads]
action: demote
status: shadow
condition:
  all:
    - {feature: category, op: in, value: [bags, watches]}
    - {feature: price, op: "<", value: 50}
    - not: {feature: branded, op: "==", value: false}
"""
    )
    hits = evaluate_strategy(s, _frame(), feature_types=TYPES)
    assert hits["item_id"].tolist() == ["i0", "i3"]
    assert hits["channel"].tolist() == ["shop_ads", "shop_ads"]
