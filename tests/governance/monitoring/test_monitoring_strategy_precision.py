from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from governance.monitoring.strategy_precision import strategy_precision
from governance.monitoring.tables import STRATEGY_PRECISION, check_frame


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
