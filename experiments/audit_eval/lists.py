"""Ranked likely-error lists against the truth, and the cleanlab baseline."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.vocabulary import Entity, Policy
from governance.audit.population import Population


def _labeled(pop: Population, labels: pd.DataFrame) -> np.ndarray:
    lab = labels[
        (labels["entity"].astype(str) == pop.entity.value)
        & (labels["policy"].astype(str) == pop.policy.value)
    ]
    return np.isin(pop.item_ids.astype(str), lab["item_id"].astype(str).to_numpy())


def candidate_pools(
    populations: Mapping[tuple[Entity, Policy], Population],
    truth: Mapping[tuple[Entity, Policy], np.ndarray],
    labels: pd.DataFrame,
) -> pd.DataFrame:
    """Every unlabeled unit with its role (actioned or shown-uncaught), truth and exposure."""
    parts = []
    for key, pop in populations.items():
        act = pop.any_actioned.any(axis=1)
        shown = pop.impressions.sum(axis=1)
        unl = ~_labeled(pop, labels)
        parts.append(
            pd.DataFrame(
                {
                    "entity": pop.entity.value,
                    "item_id": pop.item_ids.astype(str),
                    "policy": pop.policy.value,
                    "actioned": act,
                    "shown": shown,
                    "violating": truth[key],
                    "p": pop.p_model,
                    "unlabeled": unl,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def list_quality(flags: pd.DataFrame, pool: pd.DataFrame, *, k: int) -> dict[str, float]:
    """precision@k of the FP and FN lists, their base rates and violating views in the top k."""
    key = ["entity", "item_id", "policy"]
    truth = pool.set_index(key)
    out: dict[str, float] = {}
    for kind, name in (("likely_false_positive", "fp"), ("likely_false_negative", "fn")):
        top = flags[flags["kind"] == kind].head(k)  # the file's order is the ranking
        idx = pd.MultiIndex.from_frame(top[key].astype(str))
        v = truth.reindex(idx)["violating"].to_numpy(dtype=bool)
        shown = truth.reindex(idx)["shown"].to_numpy(dtype=float)
        hits = ~v if name == "fp" else v
        out[f"{name}_precision_at_k"] = float(hits.mean()) if len(hits) else math.nan
        if name == "fn":
            out["fn_violating_views_at_k"] = float(shown[v].sum())
    fp_pool = pool[pool["actioned"] & pool["unlabeled"]]
    fn_pool = pool[~pool["actioned"] & (pool["shown"] > 0) & pool["unlabeled"]]
    out["fp_base_rate"] = float((~fp_pool["violating"]).mean()) if len(fp_pool) else math.nan
    out["fn_base_rate"] = float(fn_pool["violating"].mean()) if len(fn_pool) else math.nan
    return out


def cleanlab_lists(pool: pd.DataFrame, oof: pd.DataFrame | None, *, k: int) -> dict[str, float]:
    """The same measures for `cleanlab.filter.find_label_issues` on (given = actioned, p)."""
    from cleanlab.filter import find_label_issues

    df = pool[pool["unlabeled"]].copy()
    if oof is not None and len(oof):
        o = oof.drop_duplicates(["entity", "item_id", "policy"]).set_index(
            ["entity", "item_id", "policy"]
        )["oof_p"]
        at = o.reindex(pd.MultiIndex.from_frame(df[["entity", "item_id", "policy"]]))
        df["p"] = np.where(at.notna().to_numpy(), at.to_numpy(dtype=float), df["p"])
    scores = []
    for _, grp in df.groupby(["entity", "policy"], sort=False):
        given = grp["actioned"].to_numpy(dtype=np.int64)
        if given.min() == given.max():
            continue
        p = np.clip(grp["p"].to_numpy(dtype=float), 1e-6, 1 - 1e-6)
        probs = np.column_stack([1 - p, p])
        ranked = find_label_issues(
            labels=given,
            pred_probs=probs,
            return_indices_ranked_by="self_confidence",
            n_jobs=1,
        )
        sub = grp.iloc[ranked].copy()
        # Self-confidence: probability of the given label; lower = more likely an issue.
        sub["score"] = probs[ranked, given[ranked]]
        scores.append(sub)
    if not scores:
        return {
            "fp_precision_at_k": math.nan,
            "fn_precision_at_k": math.nan,
            "fn_violating_views_at_k": 0.0,
        }
    issues = pd.concat(scores).sort_values("score")
    fp = issues[issues["actioned"]].head(k)
    fn = issues[~issues["actioned"]].head(k)
    return {
        "fp_precision_at_k": float((~fp["violating"]).mean()) if len(fp) else math.nan,
        "fn_precision_at_k": float(fn["violating"].mean()) if len(fn) else math.nan,
        "fn_violating_views_at_k": float(fn.loc[fn["violating"], "shown"].sum()),
    }
