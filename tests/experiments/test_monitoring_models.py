from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments.monitoring_models import (
    StandInModel,
    any_violation,
    stand_in_predictions,
    true_strategy_precision,
)


def _items(n: int = 4000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-(rng.normal(size=n) * 2 - 3)))
    frame = pd.DataFrame(
        {"entity": "listing", "item_id": [f"L{i}" for i in range(n)], "p_counterfeit": p}
    )
    for policy in ("engagement_fraud", "fake_discount", "low_quality", "misleading_claim"):
        frame[f"p_{policy}"] = np.nan  # not relevant to listings here
    frame["p_prohibited_item"] = np.nan
    return frame


def test_stand_in_model_is_calibrated_but_noisy() -> None:
    items = _items()
    preds = stand_in_predictions(items, StandInModel(), seed=1)
    assert set(preds["policy"]) == {"counterfeit", "any"}  # and the any-violation model
    anyv = preds[preds["policy"] == "any"]
    preds = preds[preds["policy"] == "counterfeit"]
    assert len(preds) == len(anyv) == len(items) and preds["p"].between(0, 1).all()
    p_true = items["p_counterfeit"].to_numpy()
    p = preds["p"].to_numpy()
    top = p >= 0.5
    assert abs(p[top].mean() - p_true[top].mean()) < 0.08  # calibrated where it flags
    assert np.corrcoef(p, p_true)[0, 1] < 0.99  # but not the truth itself


def test_a_stale_model_is_overconfident() -> None:
    items = _items()
    fresh = stand_in_predictions(items, StandInModel(), seed=1)["p"]
    stale = stand_in_predictions(items, StandInModel(stale_shift=1.0), seed=1)["p"]
    assert len(fresh) == len(stale) == 2 * len(items)
    assert (stale >= fresh).all() and stale.mean() > fresh.mean()


def test_the_any_violation_model_reads_every_policy_of_the_entity() -> None:
    items = _items(3000, seed=2)
    items["p_low_quality"] = items["p_counterfeit"].to_numpy()[::-1]
    preds = stand_in_predictions(items, StandInModel(noise=0.0, train_items=3000), seed=3)
    p_any = preds.loc[preds["policy"] == "any", "p"].to_numpy()
    p_true = 1 - (1 - items["p_counterfeit"]) * (1 - items["p_low_quality"])
    assert np.corrcoef(p_any, p_true)[0, 1] > 0.95
    assert abs(p_any.mean() - p_true.mean()) < 0.02


def test_truth_of_the_any_violation_and_of_each_strategy_week() -> None:
    items = pd.DataFrame(
        {
            "entity": ["listing", "listing", "listing", "video"],
            "item_id": ["L1", "L2", "L3", "V1"],
            "p_counterfeit": [0.9, 0.2, 0.5, 0.4],
            "violates_counterfeit": [True, False, False, False],
            "p_low_quality": [0.1, 0.7, 0.5, np.nan],
            "violates_low_quality": [False, True, False, np.nan],
        }
    )
    anyv = any_violation(items).set_index("item_id")["violates"]
    assert anyv.to_dict() == {"L1": True, "L2": True, "L3": False, "V1": False}
    decisions = pd.DataFrame(
        {
            "strategy_id": ["cf", "cf", "cf", "lq"],
            "entity": "listing",
            "item_id": ["L1", "L2", "L1", "L2"],
            "decided_at": pd.to_datetime(["2026-01-05", "2026-01-06", "2026-01-20", "2026-01-14"]),
        }
    )
    truth = true_strategy_precision(decisions, {"cf": "counterfeit", "lq": "low_quality"}, items)
    rows = {(r.strategy_id, f"{r.week_start:%m-%d}"): r for r in truth.itertuples()}
    assert set(rows) == {("cf", "01-05"), ("lq", "01-12")}  # L1's repeat is not a new item
    assert rows[("cf", "01-05")].precision_true == 0.5  # L1 violates, L2 does not
    assert rows[("cf", "01-05")].precision_p_true == pytest.approx(0.55)
    assert rows[("lq", "01-12")].precision_true == 1.0
