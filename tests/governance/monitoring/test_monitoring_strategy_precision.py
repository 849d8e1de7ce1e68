from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from governance.monitoring.strategy_precision import (
    expected_strategy_precision,
    strategy_precision,
)
from governance.monitoring.tables import (
    STRATEGY_EXPECTED_PRECISION,
    STRATEGY_PRECISION,
    check_frame,
)


def _world(seed: int = 0, n: int = 400) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """One strategy actioning `n` listings over two weeks, 60% truly violating; a stratified
    sample of 100 labelled with known inclusion probability, plus appeals that must not count."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"L{i}" for i in range(n)])
    truth = rng.random(n) < 0.6
    decided = pd.Timestamp("2026-01-05") + pd.to_timedelta(rng.integers(0, 14, n), unit="D")
    decisions = pd.DataFrame(
        {
            "entity": "listing",
            "item_id": ids,
            "strategy_id": "cf",
            "decided_at": decided,
            "channel": "shop_tab",
        }
    )
    drawn = rng.choice(n, 100, replace=False)
    labels = pd.DataFrame(
        {
            "entity": "listing",
            "item_id": ids[drawn],
            "policy": "counterfeit",
            "verdict": np.where(truth[drawn], "violating", "not_violating"),
            "sampling": "strategy_flagged",
            "inclusion_probability": 100 / n,
        }
    )
    appeals = labels.head(30).assign(sampling="appeal", verdict="not_violating")
    return pd.concat([labels, appeals], ignore_index=True), decisions, truth


def test_weekly_precision_covers_the_truth() -> None:
    covered = []
    for seed in range(10):
        labels, decisions, truth = _world(seed)
        table = strategy_precision(labels, decisions, {"cf": "counterfeit"}, flip_rate=0.0)
        assert check_frame(table, STRATEGY_PRECISION) == []
        assert list(table["week_start"].dt.day_name().unique()) == ["Monday"]
        assert table["labels"].sum() == 100  # appeals left out
        week = decisions["decided_at"].dt.to_period("W-SUN").dt.start_time
        for _, r in table.iterrows():
            true = truth[(week == r["week_start"]).to_numpy()].mean()
            covered.append(r["precision_low"] <= true <= r["precision_high"])
    assert np.mean(covered) >= 0.85


def test_reviewer_flips_are_corrected() -> None:
    labels, decisions, truth = _world(1)
    raw = strategy_precision(labels, decisions, {"cf": "counterfeit"}, flip_rate=0.0)
    corrected = strategy_precision(labels, decisions, {"cf": "counterfeit"}, flip_rate=0.1)
    # a 60% share is pulled further from one half once 10% flips are assumed
    assert (corrected["precision"] > raw["precision"]).all()
    with pytest.raises(ValueError, match="flip_rate"):
        strategy_precision(labels, decisions, {"cf": "counterfeit"}, flip_rate=0.5)


def test_no_labels_of_the_strategy_gives_an_empty_table() -> None:
    labels, decisions, _ = _world(2)
    table = strategy_precision(labels, decisions, {"other": "counterfeit"}, flip_rate=0.0)
    assert len(table) == 0 and list(table.columns) == STRATEGY_PRECISION.column_names


def test_label_free_precision_is_the_mean_probability_of_each_weeks_actioned_items() -> None:
    labels, decisions, truth = _world(3)
    n = len(decisions)
    rng = np.random.default_rng(3)
    p = np.clip(np.where(truth, 0.8, 0.3) + rng.normal(0, 0.05, n), 0.01, 0.99)
    predictions = pd.DataFrame(
        {"entity": "listing", "item_id": decisions["item_id"], "policy": "counterfeit", "p": p}
    )
    # another policy's score and an unscored item must not count; a later repeat decision on
    # an item belongs to the week of the first one
    noise = predictions.head(50).assign(policy="low_quality", p=0.0)
    scored = pd.concat([predictions.iloc[1:], noise], ignore_index=True)
    repeat = decisions.head(20).assign(decided_at=pd.Timestamp("2026-02-16"))
    table = expected_strategy_precision(
        pd.concat([decisions, repeat], ignore_index=True), scored, {"cf": "counterfeit"}
    )
    assert check_frame(table, STRATEGY_EXPECTED_PRECISION) == []
    week = decisions["decided_at"].dt.to_period("W-SUN").dt.start_time
    assert list(table["week_start"]) == sorted(week.unique())
    assert table["actioned"].sum() == n and table["scored"].sum() == n - 1
    for _, r in table.iterrows():
        in_week = (week == r["week_start"]).to_numpy() & (np.arange(n) > 0)
        assert r["expected_precision"] == pytest.approx(p[in_week].mean())
        sd = np.sqrt((p[in_week] * (1 - p[in_week])).sum()) / in_week.sum()
        assert r["expected_precision_sd"] == pytest.approx(sd)


def test_label_free_precision_tracks_the_realised_precision_of_a_calibrated_model() -> None:
    within = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        _, decisions, _ = _world(seed)
        p = rng.beta(4, 2, len(decisions))
        y = rng.random(len(decisions)) < p  # the outcomes of a calibrated model's items
        predictions = pd.DataFrame(
            {"entity": "listing", "item_id": decisions["item_id"], "policy": "counterfeit", "p": p}
        )
        table = expected_strategy_precision(decisions, predictions, {"cf": "counterfeit"})
        week = decisions["decided_at"].dt.to_period("W-SUN").dt.start_time
        for _, r in table.iterrows():
            real = y[(week == r["week_start"]).to_numpy()].mean()
            within.append(abs(real - r["expected_precision"]) <= 2 * r["expected_precision_sd"])
    assert 0.9 <= np.mean(within) <= 1.0


def test_no_decisions_of_the_strategies_gives_an_empty_label_free_table() -> None:
    _, decisions, _ = _world(4)
    preds = pd.DataFrame({"entity": [], "item_id": [], "policy": [], "p": []})
    table = expected_strategy_precision(decisions, preds, {"other": "counterfeit"})
    assert len(table) == 0 and list(table.columns) == STRATEGY_EXPECTED_PRECISION.column_names
