"""Suggestions applied in the simulator: projected against realised changes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from features.vocabulary import StrategyStatus
from governance.strategy import Strategy


def _pairs(decisions: pd.DataFrame, ref: str) -> pd.DataFrame:
    sid, _, ver = ref.partition("@v")
    d = decisions[
        (decisions["strategy_id"].astype(str) == sid)
        & (decisions["strategy_version"].astype(int) == int(ver))
    ]
    return d[["entity", "item_id", "channel"]].astype(str).drop_duplicates()


def _pair_truth(pairs: pd.DataFrame, items: pd.DataFrame, policy: str) -> np.ndarray:
    t = items.drop_duplicates(["entity", "item_id"]).set_index(["entity", "item_id"])
    idx = pd.MultiIndex.from_frame(pairs[["entity", "item_id"]])
    return t[f"violates_{policy}"].reindex(idx).fillna(False).to_numpy(dtype=bool)


def realised_delta(
    base_decisions: pd.DataFrame,
    new_decisions: pd.DataFrame,
    *,
    base_ref: str | None,
    new_strategy: Strategy,
    items: pd.DataFrame,
    other_refs: Sequence[str] = (),
) -> tuple[float, float]:
    """Realised ΔFP and ΔFN in (item, channel) decisions between two simulated worlds."""
    policy = new_strategy.policy.value
    new_pairs = _pairs(new_decisions, new_strategy.ref)
    if base_ref is None:
        # A new strategy counts only where no other strategy of the policy acted.
        others = pd.concat([_pairs(new_decisions, r) for r in other_refs]) if other_refs else None
        if others is not None and len(others):
            merged = new_pairs.merge(others.drop_duplicates(), how="left", indicator=True)
            new_pairs = merged[merged["_merge"] == "left_only"].drop(columns="_merge")
        base_pairs = new_pairs.iloc[:0]
    else:
        base_pairs = _pairs(base_decisions, base_ref)
    v_new = _pair_truth(new_pairs, items, policy)
    v_base = _pair_truth(base_pairs, items, policy)
    d_fp = float((~v_new).sum() - (~v_base).sum())
    d_fn = float(-(v_new.sum() - v_base.sum()))
    return d_fp, d_fn


def pick_suggestions(suggestions: pd.DataFrame, n: int) -> pd.DataFrame:
    """The top-ranked suggestion of each of the first `n` distinct strategies.

    Changes gating on a model score are skipped: the simulator's nightly enforcement has no
    model, so it cannot apply them.
    """
    s = suggestions[~suggestions["proposed_yaml"].str.contains("feature: p_", regex=False)]
    s = s.sort_values("rank")
    return s.drop_duplicates("strategy_id").head(n).reset_index(drop=True)


def apply_suggestion(
    strategies: Sequence[Strategy], suggestion: Mapping[str, Any] | pd.Series
) -> tuple[list[Strategy], Strategy, str | None]:
    """The strategy set with the suggestion active in place of its base version."""
    from governance.strategy import parse_strategy, with_status

    proposed = with_status(parse_strategy(str(suggestion["proposed_yaml"])), StrategyStatus.ACTIVE)
    base_version = suggestion["base_version"]
    base_ref = None
    out: list[Strategy] = []
    for s in strategies:
        if (
            base_version is not None
            and not pd.isna(base_version)
            and s.id == proposed.id
            and s.status == StrategyStatus.ACTIVE
        ):
            base_ref = s.ref
            out.append(with_status(s, StrategyStatus.RETIRED))
        else:
            out.append(s)
    out.append(proposed)
    return out, proposed, base_ref
