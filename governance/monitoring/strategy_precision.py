"""Live precision of each strategy, week by week, from the moderators' verdicts.

The audit's strategy-flagged sample is a probability sample of every actioned (item, policy)
pair (stratified by the strategy that actioned the pair first, each label carrying its
inclusion probability), so the items one strategy actioned in a week that were drawn form a
probability sample of that strategy's week too. Precision is the design-weighted (Hájek)
share of them found violating, with each verdict corrected for reviewer flips, and a
linearised normal interval. Appeal reviews are left out: appeals come mostly from the
wrongly blocked.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from governance.audit.estimators import interval
from governance.monitoring.tables import STRATEGY_PRECISION, conform, empty_frame

#: Audit designs whose labels estimate a strategy's precision.
_DESIGNS = ("strategy_flagged",)


def strategy_precision(
    labels: pd.DataFrame,
    decisions: pd.DataFrame,
    policies: Mapping[str, str],
    *,
    flip_rate: float,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Table `strategy_precision`: per strategy and week of its decisions, the labelled items,
    the estimated precision and its interval. `policies` maps a strategy id to the policy it
    enforces."""
    if not 0 <= flip_rate < 0.5:
        raise ValueError(f"flip_rate must be in [0, 0.5), got {flip_rate}")
    labelled = _labelled_decisions(labels, decisions, policies)
    if not len(labelled):
        return empty_frame(STRATEGY_PRECISION)
    y = (labelled["verdict"] == "violating").to_numpy(dtype=float)
    labelled = labelled.assign(
        y=(y - flip_rate) / (1 - 2 * flip_rate), w=1.0 / labelled["inclusion_probability"]
    )
    rows = [
        _week_row(
            str(g["strategy_id"].iloc[0]), pd.Timestamp(g["week_start"].iloc[0]), g, confidence
        )
        for _, g in labelled.groupby(["strategy_id", "week_start"], sort=True)
    ]
    return conform(pd.DataFrame(rows), STRATEGY_PRECISION)


def _labelled_decisions(
    labels: pd.DataFrame, decisions: pd.DataFrame, policies: Mapping[str, str]
) -> pd.DataFrame:
    """One row per (strategy, actioned item) with a label of the strategy's policy: the week
    of the strategy's first decision on the item, the verdict and its inclusion probability."""
    d = decisions[decisions["strategy_id"].isin(list(policies))]
    first = d.groupby(["strategy_id", "entity", "item_id"], as_index=False)["decided_at"].min()
    first["policy"] = first["strategy_id"].map(policies)
    first["week_start"] = pd.to_datetime(first["decided_at"]).dt.to_period("W-SUN").dt.start_time
    lab = labels[labels["sampling"].isin(_DESIGNS)]
    lab = lab.drop_duplicates(["entity", "item_id", "policy", "sampling"])
    cols = ["entity", "item_id", "policy", "verdict", "inclusion_probability"]
    out: pd.DataFrame = first.merge(lab[cols], on=["entity", "item_id", "policy"], how="inner")
    return out


def _week_row(
    strategy_id: str, week: pd.Timestamp, g: pd.DataFrame, confidence: float
) -> dict[str, object]:
    w, y = g["w"].to_numpy(dtype=float), g["y"].to_numpy(dtype=float)
    n = len(g)
    p = float((w * y).sum() / w.sum())
    se = (
        float(np.sqrt(n / (n - 1) * np.square(w * (y - p)).sum()) / w.sum())
        if n > 1
        else float("nan")
    )
    low, high = interval(p, se, confidence=confidence, lower=0.0, upper=1.0)
    return {
        "week_start": week,
        "strategy_id": strategy_id,
        "labels": n,
        "violating": int((g["verdict"] == "violating").sum()),
        "precision": float(np.clip(p, 0.0, 1.0)),
        "precision_low": low,
        "precision_high": high,
        "confidence": confidence,
    }
