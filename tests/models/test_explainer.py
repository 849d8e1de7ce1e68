"""TreeExplainer: fitting from a Booster or its text, input validation, top-k reasons."""

from __future__ import annotations

from functools import cache

import lightgbm as lgb
import numpy as np
import pytest
from numpy.typing import NDArray

from models.explainer import TopK, TreeExplainer


@cache
def booster() -> lgb.Booster:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    X[rng.random(400) < 0.2, 0] = np.nan
    X[:, 4] = rng.integers(0, 5, size=400)
    y = (np.nan_to_num(X[:, 0]) + X[:, 1] - (X[:, 4] == 2) > 0).astype(np.int64)
    params = {
        "objective": "binary",
        "num_leaves": 8,
        "min_data_in_leaf": 5,
        "num_threads": 1,
        "deterministic": True,
        "verbose": -1,
        "seed": 0,
    }
    dataset = lgb.Dataset(X, y, categorical_feature=[4], feature_name=list("abcde"))
    return lgb.train(params, dataset, num_boost_round=15)


def rows(n: int = 20) -> NDArray[np.float64]:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, 5))
    X[::4, 0] = np.nan
    X[:, 4] = rng.integers(-1, 7, size=n)  # includes a negative and unseen categories
    return X


def test_fit_from_booster_and_text_agree_with_lightgbm() -> None:
    model = booster()
    from_booster = TreeExplainer(n_threads=1).fit(model)
    from_text = TreeExplainer(n_threads=1, warm_up=False).fit(model.model_to_string())
    X = rows()
    expected = np.asarray(model.predict(X, pred_contrib=True, num_threads=1))
    np.testing.assert_allclose(from_booster.shap_values(X), expected[:, :-1], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(from_text.shap_values(X), from_booster.shap_values(X))
    assert from_booster.expected_value_ == pytest.approx(expected[0, -1], abs=1e-12)
    assert from_booster.n_features_in_ == 5
    assert list(from_booster.feature_names_in_) == list("abcde")
    assert from_booster.objective_.startswith("binary")
    assert from_booster.warm_up_seconds_ > 0.0
    assert from_text.warm_up_seconds_ == 0.0


def test_fit_accepts_sklearn_estimator() -> None:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(np.int64)
    estimator = lgb.LGBMClassifier(n_estimators=5, num_leaves=4, n_jobs=1, verbose=-1).fit(X, y)
    explainer = TreeExplainer(n_threads=1, warm_up=False).fit(estimator)  # type: ignore[arg-type]
    expected = np.asarray(estimator.booster_.predict(X, pred_contrib=True, num_threads=1))
    np.testing.assert_allclose(explainer.shap_values(X), expected[:, :-1], rtol=0, atol=1e-6)


def test_predict_raw_is_expected_value_plus_shap_sum() -> None:
    explainer = TreeExplainer(n_threads=1).fit(booster())
    X = rows()
    raw = explainer.predict_raw(X)
    np.testing.assert_array_equal(raw, booster().predict(X, raw_score=True, num_threads=1))
    total = explainer.expected_value_ + explainer.shap_values(X).sum(axis=1)
    np.testing.assert_allclose(total, raw, rtol=0, atol=1e-9)


def test_top_k_returns_the_strongest_exact_values() -> None:
    explainer = TreeExplainer(n_threads=1).fit(booster())
    X = rows()
    full = explainer.shap_values(X)
    result = explainer.top_k(X, 3)
    assert isinstance(result, TopK)
    assert result.indices.shape == result.values.shape == (X.shape[0], 3)
    order = np.argsort(-np.abs(full), axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(result.indices, order)
    np.testing.assert_array_equal(result.values, np.take_along_axis(full, order, axis=1))
    positive = explainer.top_k(X, 2, by="positive")
    assert (positive.values[:, 0] >= positive.values[:, 1]).all()
    assert (positive.values[:, 0] == full.max(axis=1)).all()


@pytest.mark.parametrize(
    ("X", "error", "message"),
    [
        ([[0.0] * 5], TypeError, "numpy.ndarray"),
        (np.zeros((2, 5), dtype=np.float32), TypeError, "float64"),
        (np.zeros(5), ValueError, "reshape"),
        (np.zeros((2, 4)), ValueError, "4 columns but the model expects 5"),
    ],
)
def test_rejects_bad_input(X: object, error: type[Exception], message: str) -> None:
    explainer = TreeExplainer(n_threads=1, warm_up=False).fit(booster())
    with pytest.raises(error, match=message):
        explainer.shap_values(X)  # type: ignore[arg-type]


def test_accepts_non_contiguous_input() -> None:
    explainer = TreeExplainer(n_threads=1, warm_up=False).fit(booster())
    X = np.asfortranarray(rows())
    np.testing.assert_array_equal(explainer.shap_values(X), explainer.shap_values(rows()))


def test_unfitted_and_bad_arguments() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        TreeExplainer().shap_values(rows())
    with pytest.raises(ValueError, match="n_threads"):
        TreeExplainer(n_threads=0).fit(booster())
    with pytest.raises(TypeError, match="lightgbm.Booster"):
        TreeExplainer().fit(42)  # type: ignore[arg-type]
    explainer = TreeExplainer(n_threads=1, warm_up=False).fit(booster())
    with pytest.raises(ValueError, match="k must be"):
        explainer.top_k(rows(), 6)


def test_threads_default_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from features.settings import get_settings

    monkeypatch.setenv("GOVRISK_THREADS", "3")
    get_settings.cache_clear()
    try:
        explainer = TreeExplainer(warm_up=False).fit(booster())
    finally:
        get_settings.cache_clear()
    assert explainer.n_threads_ == 3
    X = np.repeat(rows(), 20, axis=0)
    single = TreeExplainer(n_threads=1, warm_up=False).fit(booster())
    np.testing.assert_array_equal(explainer.shap_values(X), single.shap_values(X))
