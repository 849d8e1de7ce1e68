from __future__ import annotations

import numpy as np
import pandas as pd

from experiments.monitoring_models import StandInModel, stand_in_predictions


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
    assert set(preds["policy"]) == {"counterfeit"}
    assert len(preds) == len(items) and preds["p"].between(0, 1).all()
    p_true = items["p_counterfeit"].to_numpy()
    p = preds["p"].to_numpy()
    top = p >= 0.5
    assert abs(p[top].mean() - p_true[top].mean()) < 0.08  # calibrated where it flags
    assert np.corrcoef(p, p_true)[0, 1] < 0.99  # but not the truth itself


def test_a_stale_model_is_overconfident() -> None:
    items = _items()
    fresh = stand_in_predictions(items, StandInModel(), seed=1)["p"]
    stale = stand_in_predictions(items, StandInModel(stale_shift=1.0), seed=1)["p"]
    assert (stale >= fresh).all() and stale.mean() > fresh.mean()
