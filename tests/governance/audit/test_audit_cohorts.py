"""Tests of the cohort checks: decayed strategy hits and new uncovered segments."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from governance.audit.cohorts import (
    HitHistory,
    age_effect,
    categorical_levels,
    decay_slices,
    new_segment_slices,
)
from governance.evaluator import evaluate_condition
from governance.strategy import AllOf, Predicate

N = 6000
CATEGORIES = np.array([f"c{i}" for i in range(10)], dtype=object)


def _items(seed: int) -> tuple[np.random.Generator, npt.NDArray[np.float64], pd.DataFrame]:
    rng = np.random.default_rng(seed)
    age = rng.uniform(0.0, 56.0, N)
    X = pd.DataFrame(
        {
            "category": pd.Series(rng.choice(CATEGORIES, N), dtype="str"),
            "region": pd.Series(rng.choice(["eu", "us", "apac"], N), dtype="str"),
            "age_days": age,
            "price": rng.lognormal(3, 1, N),
        }
    )
    return rng, age, X


def _rule(
    rng: np.random.Generator,
    X: pd.DataFrame,
    age: npt.NDArray[np.float64],
    *,
    rate: float,
    late_rate: float,
    cats: tuple[str, ...] | None = None,
    cut: float = 20.0,
) -> HitHistory:
    in_scope = np.ones(N, dtype=bool) if cats is None else X["category"].isin(cats).to_numpy()
    p = np.where(age < cut, late_rate, rate) * in_scope
    return HitHistory(rng.random(N) < p, age, np.ones(N))


def test_a_rule_whose_hits_fell_on_recent_items_of_its_categories_gets_a_decay_slice() -> None:
    rng, age, X = _items(0)
    stale = _rule(rng, X, age, rate=0.12, late_rate=0.02, cats=("c1", "c2"))
    others = [_rule(rng, X, age, rate=0.05, late_rate=0.05) for _ in range(3)]
    found = decay_slices(stale, categorical_levels(X), others, age_feature="age_days")
    assert len(found) == 1
    s = found[0]
    assert s.kind == "decay"
    by_feature = {str(p["feature"]): p for p in s.predicates}
    assert by_feature["category"]["value"] == ["c1", "c2"]
    assert (
        by_feature["age_days"]["op"] == "<"
        and 14 <= float(str(by_feature["age_days"]["value"])) <= 21
    )
    # The predicates select exactly the slice's units.
    frame = X.assign(item_id=[f"i{i}" for i in range(N)])
    cond = AllOf(all=tuple(Predicate.model_validate(p) for p in s.predicates))
    assert (evaluate_condition(cond, frame) == s.mask).all()
    assert "[decay]" in s.description and "c1" in s.description


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_rule_with_a_steady_catch_rate_gets_no_decay_slice(seed: int) -> None:
    rng, age, X = _items(seed)
    steady = _rule(rng, X, age, rate=0.08, late_rate=0.08, cats=("c1", "c2", "c3"))
    others = [_rule(rng, X, age, rate=0.05, late_rate=0.05) for _ in range(3)]
    assert decay_slices(steady, categorical_levels(X), others, age_feature="age_days") == []


def test_a_drop_every_strategy_shows_for_young_items_is_the_age_effect_not_decay() -> None:
    rng, age, X = _items(4)
    young_less = _rule(rng, X, age, rate=0.10, late_rate=0.04, cats=("c1", "c2"))
    others = [_rule(rng, X, age, rate=0.10, late_rate=0.04) for _ in range(3)]
    assert age_effect(others, 21.0) == pytest.approx(0.4, abs=0.08)
    assert decay_slices(young_less, categorical_levels(X), others, age_feature="age_days") == []
    # Against strategies without that age effect, the same drop is decay.
    steady = [_rule(rng, X, age, rate=0.10, late_rate=0.10) for _ in range(3)]
    assert len(decay_slices(young_less, categorical_levels(X), steady, age_feature="age_days"))


def test_fewer_hits_where_the_model_sees_less_risk_is_not_decay() -> None:
    rng, age, X = _items(5)
    late = age < 20
    risk = np.where(late, 0.02, 0.12)
    hits = rng.random(N) < np.where(late, 0.02, 0.12) * X["category"].isin(["c1"]).to_numpy()
    others = [_rule(rng, X, age, rate=0.05, late_rate=0.05) for _ in range(3)]
    found = decay_slices(
        HitHistory(hits, age, risk), categorical_levels(X), others, age_feature="age_days"
    )
    assert found == []


def test_a_category_launched_mid_period_without_hits_is_a_new_segment() -> None:
    rng, age, X = _items(6)
    new = X["category"].to_numpy() == "c9"
    age = np.where(new, age / 2, age)  # c9 opened halfway through
    hits = (rng.random(N) < 0.05) & ~new
    found = new_segment_slices(hits, age, categorical_levels(X))
    assert [s.predicates for s in found] == [({"feature": "category", "op": "==", "value": "c9"},)]
    assert (found[0].mask == new).all()
    # Covered by the strategies: not reported.
    covered = hits | (new & (rng.random(N) < 0.05))
    assert new_segment_slices(covered, age, categorical_levels(X)) == []
    # A level whose first item came only a little later (a few late sellers) is not new.
    late_start = X["category"].to_numpy() == "c8"
    shifted = np.where(late_start, age * 0.85, age)
    uncovered = hits & ~late_start
    found = new_segment_slices(uncovered, shifted, categorical_levels(X))
    assert [s.predicates[0]["value"] for s in found] == ["c9"]
    found = new_segment_slices(uncovered, shifted, categorical_levels(X), min_gap_share=0.0)
    assert sorted(str(s.predicates[0]["value"]) for s in found) == ["c8", "c9"]
    # The same category spread over the whole period is not new.
    assert new_segment_slices(hits, np.where(new, age * 2, age), categorical_levels(X)) == []


def test_categorical_levels_skip_numbers_flags_and_high_cardinality() -> None:
    _, _, X = _items(7)
    X = X.assign(flag=X["price"] > 20, ident=[f"x{i}" for i in range(N)])
    assert set(categorical_levels(X)) == {"category", "region"}
