"""Metrics: agree with scikit-learn, weights act as repeated rows, slices and metric names."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from training.evaluate import (
    METRICS,
    compute_metrics,
    ece,
    metric_key,
    metrics_to_log,
    recall_at_precision,
    slice_metrics,
)


def _data(n: int = 2_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.beta(1, 4, n)
    y = (rng.random(n) < p).astype(float)
    return y, p


def test_unweighted_metrics_match_sklearn() -> None:
    y, p = _data()
    m = compute_metrics(y, p)
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["brier"] == pytest.approx(brier_score_loss(y, p))
    assert m["n"] == len(y) and m["n_positive"] == y.sum()


def test_integer_weights_equal_repeated_rows() -> None:
    y, p = _data(seed=1)
    w = np.random.default_rng(2).integers(1, 5, len(y)).astype(float)
    weighted = compute_metrics(y, p, weight=w)
    k = w.astype(int)
    repeated = compute_metrics(np.repeat(y, k), np.repeat(p, k))
    for name in METRICS:
        assert weighted[name] == pytest.approx(repeated[name], abs=1e-9), name


def test_recall_at_precision_by_hand() -> None:
    y = np.array([1, 1, 0, 1, 0, 0, 1, 0], dtype=float)
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    # Top 2 are both violating (precision 1, recall 0.5); adding a negative drops below 0.9.
    assert recall_at_precision(y, p, precision=0.9) == pytest.approx(0.5)
    assert recall_at_precision(y, p, precision=0.7) == pytest.approx(0.75)
    assert recall_at_precision(1 - y, p, precision=0.99) == 0.0


def test_ece_is_zero_when_bins_match_and_large_when_not() -> None:
    y = np.array([0, 0, 0, 1] * 250, dtype=float)
    assert ece(y, np.full(len(y), 0.25)) == pytest.approx(0.0)
    assert ece(y, np.full(len(y), 0.75)) == pytest.approx(0.5)


def test_undefined_metrics_are_nan_and_not_logged() -> None:
    y = np.zeros(50)
    m = compute_metrics(y, np.full(50, 0.1))
    assert math.isnan(m["pr_auc"]) and math.isnan(m["roc_auc"])
    assert m["brier"] == pytest.approx(0.01)
    table = pd.DataFrame([{"slice": "overall", **m}])
    logged = metrics_to_log(table)
    assert "pr_auc" not in logged and logged["brier"] == pytest.approx(0.01)


def test_slice_metrics_and_small_slices() -> None:
    y, p = _data(600, seed=3)
    slices = pd.DataFrame(
        {
            "position": np.r_[np.arange(0, 300), np.arange(300, 310)],
            "slice": ["channel.shop_tab"] * 300 + ["category.tiny"] * 10,
        }
    )
    table = slice_metrics(y, p, slices, min_labels=30)
    assert list(table["slice"]) == ["overall", "category.tiny", "channel.shop_tab"]
    shop = table.set_index("slice").loc["channel.shop_tab"]
    assert shop["pr_auc"] == pytest.approx(average_precision_score(y[:300], p[:300]))
    tiny = table.set_index("slice").loc["category.tiny"]
    assert tiny["n"] == 10 and math.isnan(tiny["pr_auc"])
    logged = metrics_to_log(table)
    assert "pr_auc__slice__channel.shop_tab" in logged
    assert "n__slice__category.tiny" in logged and "pr_auc__slice__category.tiny" not in logged


def test_metric_keys_are_valid_mlflow_names() -> None:
    from mlflow.utils.validation import _validate_metric_name

    assert metric_key("pr_auc", "channel.shop_tab") == "pr_auc__slice__channel.shop_tab"
    assert metric_key("pr_auc", "overall") == "pr_auc"
    assert metric_key("ece", None, prefix="oof__") == "oof__ece"
    odd = metric_key("pr_auc", "category.home & garden=1")
    assert odd == "pr_auc__slice__category.home _ garden_1"
    for name in (odd, metric_key("pr_auc", "channel.shop_tab")):
        _validate_metric_name(name)
