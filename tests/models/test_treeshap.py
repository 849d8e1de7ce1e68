"""Exact TreeSHAP: equality with LightGBM `pred_contrib` / shap, routing edge cases, additivity."""

from __future__ import annotations

import re
from functools import cache

import lightgbm as lgb
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from models import treeshap
from models._treeshap_kernels import ZERO_THRESHOLD

TOLERANCE = 1e-6
_BASE_PARAMS = {
    "objective": "binary",
    "num_threads": 1,
    "deterministic": True,
    "force_col_wise": True,
    "verbose": -1,
    "seed": 0,
}


def make_data(
    n: int = 600, *, seed: int = 0, n_numeric: int = 6, n_categorical: int = 2
) -> tuple[NDArray[np.float64], NDArray[np.int64], list[int]]:
    """Numeric features with NaNs and many exact zeros, integer-coded categoricals, a target."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_numeric + n_categorical))
    X[rng.random(n) < 0.15, 0] = np.nan
    X[rng.random(n) < 0.3, 1] = 0.0
    X[rng.random(n) < 0.1, 2] = np.nan
    categorical = list(range(n_numeric, n_numeric + n_categorical))
    for j, cardinality in zip(categorical, (6, 40), strict=False):
        X[:, j] = rng.integers(0, cardinality, size=n)
    filled = np.nan_to_num(X)
    logit = (
        filled[:, 0]
        - filled[:, 1] ** 2
        + np.sin(2 * filled[:, 2])
        + filled[:, 3] * filled[:, 4]
        + np.isnan(X[:, 0])
    )
    if n_categorical > 0:
        logit += X[:, categorical[0]] % 3 == 0
    if n_categorical > 1:
        logit -= X[:, categorical[1]] > 25
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return X, y, categorical


def train(
    X: NDArray[np.float64],
    y: NDArray[np.int64] | NDArray[np.float64],
    *,
    rounds: int = 30,
    categorical: list[int] | None = None,
    **params: object,
) -> lgb.Booster:
    """A small seeded single-threaded LightGBM model (binary unless `objective` says otherwise)."""
    dataset = lgb.Dataset(X, y, categorical_feature=categorical or "auto", free_raw_data=False)
    merged = {**_BASE_PARAMS, "num_leaves": 15, "min_data_in_leaf": 5, **params}
    return lgb.train(merged, dataset, num_boost_round=rounds)


@cache
def standard_model() -> lgb.Booster:
    X, y, categorical = make_data()
    return train(X, y, categorical=categorical, cat_smooth=1, min_data_per_group=5)


@cache
def zero_as_missing_model() -> lgb.Booster:
    X, y, _ = make_data(seed=1, n_categorical=0)
    return train(X, y, zero_as_missing=True)


def reference(booster: lgb.Booster, X: NDArray[np.float64]) -> NDArray[np.float64]:
    """LightGBM's own TreeSHAP, single-threaded."""
    return np.asarray(booster.predict(X, pred_contrib=True, num_threads=1), dtype=np.float64)


def assert_matches_lightgbm(booster: lgb.Booster, X: NDArray[np.float64]) -> None:
    ensemble = treeshap.parse_model(booster.model_to_string())
    expected = reference(booster, X)
    values = treeshap.shap_values(ensemble, X)
    np.testing.assert_allclose(values, expected[:, :-1], rtol=0, atol=TOLERANCE)
    assert ensemble.expected_value == pytest.approx(expected[0, -1], abs=1e-12)
    raw = booster.predict(X, raw_score=True, num_threads=1)
    np.testing.assert_array_equal(treeshap.predict_raw(ensemble, X), raw)


def edge_rows(booster: lgb.Booster, n_features: int) -> NDArray[np.float64]:
    """Rows sitting on and next to every threshold, plus zeros, NaN, infinities, odd categories."""
    text = booster.model_to_string()
    thresholds = sorted(
        {
            float(v)
            for line in re.findall(r"^threshold=(.*)$", text, flags=re.MULTILINE)
            for v in line.split()
        }
    )
    specials = [
        0.0,
        -0.0,
        np.nan,
        np.inf,
        -np.inf,
        1e-36,
        -1e-36,
        ZERO_THRESHOLD,
        -ZERO_THRESHOLD,
        -0.5,
        -1.0,
        2.5,
        39.0,
        40.0,
        1000.0,
        1e10,
        -1e10,
    ]
    values = [*specials]
    for t in thresholds:
        values += [t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf)]
    rng = np.random.default_rng(7)
    rows = rng.choice(np.asarray(values), size=(len(values) * 3, n_features))
    for j in range(n_features):  # every value in every column at least once
        rows[: len(values), j] = values
    return rows


def test_matches_lightgbm_with_nan_and_categorical_splits() -> None:
    booster = standard_model()
    X, _, _ = make_data(n=300, seed=3)
    assert re.search(r"^num_cat=[1-9]", booster.model_to_string(), flags=re.MULTILINE)
    assert_matches_lightgbm(booster, X)


def test_matches_lightgbm_on_thresholds_specials_and_unseen_categories() -> None:
    booster = standard_model()
    assert_matches_lightgbm(booster, edge_rows(booster, booster.num_feature()))


def test_matches_lightgbm_with_zero_as_missing() -> None:
    booster = zero_as_missing_model()
    assert re.search(r"decision_type=.*\b(4|6)\b", booster.model_to_string())  # Zero missing type
    X, _, _ = make_data(n=200, seed=4, n_categorical=0)
    assert_matches_lightgbm(booster, np.vstack([X, edge_rows(booster, X.shape[1])]))


@pytest.mark.filterwarnings("ignore:LightGBM binary classifier:UserWarning")
def test_matches_shap_tree_explainer() -> None:
    shap = pytest.importorskip("shap")
    booster = standard_model()
    X, _, _ = make_data(n=100, seed=5)
    explainer = shap.TreeExplainer(booster)
    expected = np.asarray(explainer.shap_values(X))
    values = treeshap.shap_values(treeshap.parse_model(booster.model_to_string()), X)
    np.testing.assert_allclose(values, expected, rtol=0, atol=TOLERANCE)
    assert float(np.ravel(explainer.expected_value)[0]) == pytest.approx(
        treeshap.parse_model(booster.model_to_string()).expected_value, abs=1e-12
    )


def test_regression_objective() -> None:
    X, y, categorical = make_data(seed=17)
    target = np.nan_to_num(X[:, 0]) * 3 + y
    booster = train(X, target, categorical=categorical, objective="regression")
    assert_matches_lightgbm(booster, X[:100])


def test_depth_one_trees() -> None:
    X, y, categorical = make_data(seed=6)
    booster = train(X, y, categorical=categorical, num_leaves=2, rounds=20)
    assert treeshap.parse_model(booster.model_to_string()).max_path_features == 1
    assert_matches_lightgbm(booster, X[:100])


def test_repeated_features_and_deep_paths() -> None:
    rng = np.random.default_rng(8)
    X = rng.normal(size=(2000, 3))
    X[rng.random(2000) < 0.1, 1] = np.nan
    y = (np.sin(3 * X[:, 0]) + np.cos(2 * np.nan_to_num(X[:, 1])) > 0.3).astype(np.int64)
    booster = train(X, y, num_leaves=63, min_data_in_leaf=3, rounds=15)
    ensemble = treeshap.parse_model(booster.model_to_string())
    depths = re.findall(r"^num_leaves=(\d+)", booster.model_to_string(), flags=re.MULTILINE)
    assert max(int(d) for d in depths) > 20  # long paths over only 3 features: merged repeats
    assert ensemble.tree_info[:, 2].max() >= 4
    assert_matches_lightgbm(booster, np.vstack([X[:300], edge_rows(booster, 3)[:200]]))


def test_deep_paths_use_more_quadrature_nodes() -> None:
    rng = np.random.default_rng(9)
    X = rng.normal(size=(3000, 24))
    y = (X[:, :12].sum(axis=1) + X[:, 12:].prod(axis=1) > 0).astype(np.int64)
    booster = train(X, y, num_leaves=48, min_data_in_leaf=2, rounds=8, max_bin=15)
    ensemble = treeshap.parse_model(booster.model_to_string())
    assert ensemble.max_path_features > 8  # needs more than 4 quadrature nodes
    assert ensemble.tree_info[:, 2].max() >= 8
    assert_matches_lightgbm(booster, X[:200])


def single_leaf_tree(value: float, count: int) -> str:
    return (
        f"num_leaves=1\nnum_cat=0\nsplit_feature=\nsplit_gain=\nthreshold=\ndecision_type=\n"
        f"left_child=\nright_child=\nleaf_value={value!r}\nleaf_weight=\nleaf_count={count}\n"
        f"internal_value=\ninternal_weight=\ninternal_count=\nis_linear=0\nshrinkage=1\n\n\n"
    )


def with_single_leaf_trees(text: str) -> str:
    """The model with two constant trees spliced in (LightGBM loads them without tree_sizes)."""
    header, rest = text.split("Tree=0\n", 1)
    header = re.sub(r"^tree_sizes=.*\n", "", header, flags=re.MULTILINE)
    trees, tail = rest.split("end of trees", 1)
    blocks = re.split(r"^Tree=\d+\n", trees, flags=re.MULTILINE)
    blocks.insert(1, single_leaf_tree(0.125, 600))
    blocks.append(single_leaf_tree(-0.0625, 600))
    body = "".join(f"Tree={i}\n{block}" for i, block in enumerate(blocks))
    return f"{header}{body}end of trees{tail}"


def test_single_leaf_trees() -> None:
    text = with_single_leaf_trees(standard_model().model_to_string())
    booster = lgb.Booster(model_str=text)
    assert booster.num_trees() == standard_model().num_trees() + 2
    X, _, _ = make_data(n=100, seed=10)
    assert_matches_lightgbm(booster, X)


def test_model_of_only_single_leaf_trees() -> None:
    X, y, _ = make_data(n=100, seed=11, n_categorical=0)
    booster = train(X, y, min_data_in_leaf=80, rounds=3)
    ensemble = treeshap.parse_model(booster.model_to_string())
    assert ensemble.node_int.shape[0] == 0
    values = treeshap.shap_values(ensemble, X)
    assert not values.any()
    assert_matches_lightgbm(booster, X)


def test_additivity_on_raw_score() -> None:
    booster = standard_model()
    X, _, _ = make_data(n=200, seed=12)
    ensemble = treeshap.parse_model(booster.model_to_string())
    total = treeshap.shap_values(ensemble, X).sum(axis=1) + ensemble.expected_value
    np.testing.assert_allclose(total, booster.predict(X, raw_score=True), rtol=0, atol=1e-9)


def test_threads_give_identical_values() -> None:
    booster = standard_model()
    X, _, _ = make_data(n=400, seed=13)
    ensemble = treeshap.parse_model(booster.model_to_string())
    one = treeshap.shap_values(ensemble, X, n_threads=1)
    np.testing.assert_array_equal(treeshap.shap_values(ensemble, X, n_threads=3), one)


def test_read_only_and_strided_inputs_share_one_compiled_kernel() -> None:
    from models import _treeshap_kernels

    ensemble = treeshap.parse_model(standard_model().model_to_string())
    X, _, _ = make_data(n=40, seed=16)
    expected = treeshap.shap_values(ensemble, X)
    frozen = X.copy()
    frozen.flags.writeable = False
    np.testing.assert_array_equal(treeshap.shap_values(ensemble, frozen), expected)
    np.testing.assert_array_equal(treeshap.shap_values(ensemble, np.asfortranarray(X)), expected)
    np.testing.assert_array_equal(treeshap.shap_values(ensemble, X[::-1])[::-1], expected)
    assert len(getattr(_treeshap_kernels.shap_rows, "signatures")) == 1  # noqa: B009


def test_empty_batch() -> None:
    ensemble = treeshap.parse_model(standard_model().model_to_string())
    values = treeshap.shap_values(ensemble, np.empty((0, ensemble.n_features)))
    assert values.shape == (0, ensemble.n_features)


def test_top_k_equals_argsort_of_full_values() -> None:
    booster = standard_model()
    X, _, _ = make_data(n=50, seed=14)
    values = treeshap.shap_values(treeshap.parse_model(booster.model_to_string()), X)
    values[0, :4] = [0.5, -0.5, 0.5, 0.0]  # ties in magnitude break towards the lower index
    for k in (1, 3, X.shape[1]):
        indices, top = treeshap.top_k(values, k)
        expected = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(indices, expected)
        np.testing.assert_array_equal(top, np.take_along_axis(values, expected, axis=1))
    indices, _ = treeshap.top_k(values, 2, by="positive")
    np.testing.assert_array_equal(indices, np.argsort(-values, axis=1, kind="stable")[:, :2])


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    shape=st.tuples(st.integers(1, 6), st.integers(1, 12)),
    by=st.sampled_from(["abs", "positive"]),
)
def test_top_k_matches_a_stable_sort(data: st.DataObject, shape: tuple[int, int], by: str) -> None:
    n_rows, n_features = shape
    cells = st.integers(-3, 3).map(float)  # small integers: many ties in value and magnitude
    values = np.asarray(
        data.draw(
            st.lists(
                st.lists(cells, min_size=n_features, max_size=n_features),
                min_size=n_rows,
                max_size=n_rows,
            )
        )
    )
    k = data.draw(st.integers(1, n_features))
    indices, top = treeshap.top_k(values, k, by=by)
    key = -np.abs(values) if by == "abs" else -values
    expected = np.argsort(key, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_array_equal(top, np.take_along_axis(values, expected, axis=1))


@pytest.mark.parametrize(
    ("k", "by", "message"), [(0, "abs", "k must be"), (99, "abs", "k must be"), (2, "x", "by")]
)
def test_top_k_rejects_bad_arguments(k: int, by: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        treeshap.top_k(np.zeros((2, 8)), k, by=by)


def test_rejects_multiclass_linear_and_garbage_models() -> None:
    X, y, _ = make_data(n=300, seed=15, n_categorical=0)
    multiclass = train(X, y % 3 + (X[:, 3] > 1), objective="multiclass", num_class=3, rounds=2)
    with pytest.raises(treeshap.ModelFormatError, match="single-output"):
        treeshap.parse_model(multiclass.model_to_string())
    linear = train(np.nan_to_num(X), y, linear_tree=True, rounds=2)
    with pytest.raises(treeshap.ModelFormatError, match="linear"):
        treeshap.parse_model(linear.model_to_string())
    with pytest.raises(treeshap.ModelFormatError, match="LightGBM text model"):
        treeshap.parse_model("not a model")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_random_rows_match_lightgbm(data: st.DataObject) -> None:
    booster = standard_model()
    n_features = booster.num_feature()
    element = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True, width=64),
        st.floats(min_value=-3, max_value=3),
        st.integers(min_value=-2, max_value=45).map(float),
        st.sampled_from([0.0, -0.0, np.nan, ZERO_THRESHOLD, 1e-40]),
    )
    rows = data.draw(
        st.lists(
            st.lists(element, min_size=n_features, max_size=n_features), min_size=1, max_size=8
        )
    )
    X = np.asarray(rows, dtype=np.float64)
    ensemble = treeshap.parse_model(booster.model_to_string())
    expected = reference(booster, X)
    values = treeshap.shap_values(ensemble, X)
    np.testing.assert_allclose(values, expected[:, :-1], rtol=0, atol=TOLERANCE)
    total = values.sum(axis=1) + ensemble.expected_value
    np.testing.assert_allclose(total, expected.sum(axis=1), rtol=0, atol=1e-9)
