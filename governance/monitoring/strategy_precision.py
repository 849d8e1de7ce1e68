"""Live precision of each strategy, week by week, from the moderators' verdicts, and its
label-free expectation from the models' calibrated probabilities.

The audit's strategy-flagged sample is a probability sample of every actioned (item, policy)
pair (stratified by the strategy that actioned the pair first, each label carrying its
inclusion probability), so the items one strategy actioned in a week that were drawn form a
probability sample of that strategy's week too. Precision is the design-weighted (Hájek)
share of them found violating, with each verdict corrected for reviewer flips, and a
linearised normal interval. Appeal reviews are left out: appeals come mostly from the
wrongly blocked.

**Label-free** (confidence-based performance estimation, as `model_precision` for a model):
if the model of the strategy's policy is calibrated, the expected share of the items a
strategy actioned in a week that violate is the mean of their probabilities, known the day the
decisions are made; its sd treats the items' outcomes as independent Bernoulli draws.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from governance.audit.estimators import interval
from governance.monitoring.tables import (
    STRATEGY_EXPECTED_PRECISION,
    STRATEGY_PRECISION,
    conform,
    empty_frame,
)

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
    first = first_decisions(decisions, policies)
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


def first_decisions(decisions: pd.DataFrame, policies: Mapping[str, str]) -> pd.DataFrame:
    """One row per (strategy, actioned item): its entity, the strategy's policy, its first
    decision on the item and the Monday of that week."""
    d = decisions[decisions["strategy_id"].isin(list(policies))]
    first: pd.DataFrame = d.groupby(["strategy_id", "entity", "item_id"], as_index=False)[
        ["decided_at"]
    ].min()
    first["policy"] = first["strategy_id"].map(policies)
    first["week_start"] = pd.to_datetime(first["decided_at"]).dt.to_period("W-SUN").dt.start_time
    return first


def expected_strategy_precision(
    decisions: pd.DataFrame, predictions: pd.DataFrame, policies: Mapping[str, str]
) -> pd.DataFrame:
    """Table `strategy_expected_precision`: per strategy and week of its decisions, the
    actioned items, those the model of the strategy's policy scored, and the mean of their
    probabilities (the precision expected without labels) with its sd."""
    first = first_decisions(decisions, policies)
    if not len(first):
        return empty_frame(STRATEGY_EXPECTED_PRECISION)
    scores = predictions[["entity", "item_id", "policy", "p"]].drop_duplicates(
        ["entity", "item_id", "policy"], keep="last"
    )
    scored = first.astype({"entity": str, "item_id": str}).merge(
        scores.astype({"entity": str, "item_id": str, "policy": str}),
        on=["entity", "item_id", "policy"],
        how="left",
    )
    p = scored["p"].astype(float)
    scored = scored.assign(n=p.notna(), p=p.fillna(0.0), var=(p * (1 - p)).fillna(0.0))
    g = scored.groupby(["strategy_id", "policy", "week_start"], as_index=False).agg(
        actioned=("item_id", "size"), scored=("n", "sum"), tp=("p", "sum"), var=("var", "sum")
    )
    n = g["scored"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        g["expected_precision"] = np.where(n > 0, g["tp"] / n, np.nan)
        g["expected_precision_sd"] = np.where(n > 0, np.sqrt(g["var"]) / n, np.nan)
    g = g.rename(columns={"tp": "expected_true_positives"})
    return conform(g.sort_values(["strategy_id", "week_start"]), STRATEGY_EXPECTED_PRECISION)
