"""Real data: the public e-commerce first-purchase fraud set."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments import SPECS_DIR
from experiments.audit_eval.estimates import estimate_errors
from experiments.audit_eval.lists import candidate_pools, cleanlab_lists, list_quality
from features.vocabulary import Entity, Policy
from governance.audit.estimators import LabelDraws
from governance.audit.metrics import strategy_metrics
from governance.audit.population import Population
from governance.audit.sampling import audit_sample
from governance.strategy import Strategy

#: Plausible fraud rules written as strategies over the BYO features of the fraud spec.
FRAUD_RULES: dict[str, dict[str, Any]] = {
    "instant-checkout": {
        "name": "Block purchases made within a minute of signup",
        "condition": {"all": [{"feature": "seconds_signup_to_purchase", "op": "<", "value": 60}]},
    },
    "shared-device": {
        "name": "Hold purchases from a device already used by another account",
        "condition": {"all": [{"feature": "device_shared_count", "op": ">=", "value": 1}]},
    },
    "shared-ip": {
        "name": "Hold purchases from an IP already used by another account",
        "condition": {"all": [{"feature": "ip_shared_count", "op": ">=", "value": 1}]},
    },
    "new-account-high-value": {
        "name": "Review high-value purchases from accounts younger than a day",
        "condition": {
            "all": [
                {"feature": "seconds_signup_to_purchase", "op": "<", "value": 86400},
                {"feature": "purchase_value", "op": ">=", "value": 60},
            ]
        },
    },
}


def fraud_strategies() -> list[Strategy]:
    """The fraud rules as strategies (purchases stand in as the `listing` entity)."""
    from governance.strategy import strategy_from_dict

    out = []
    for rid, rule in FRAUD_RULES.items():
        out.append(
            strategy_from_dict(
                {
                    "id": rid,
                    "version": 1,
                    "name": rule["name"],
                    "owner": "payments-risk",
                    "description": "A first-purchase fraud rule audited on public data.",
                    "entity": "listing",
                    "policy": "engagement_fraud",
                    "channels": ["shop_tab"],
                    "action": "block",
                    "status": "active",
                    "condition": rule["condition"],
                },
                source=f"fraud rule {rid}",
            )
        )
    return out


def _crossfit_lightgbm(
    X: pd.DataFrame, y: np.ndarray, labeled: np.ndarray, *, seed: int, folds: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities for every row (mean of fold models) and out-of-fold ones for labeled rows."""
    import lightgbm as lgb

    Xc = X.copy()
    for c in Xc.columns:
        if not pd.api.types.is_numeric_dtype(Xc[c]):
            Xc[c] = Xc[c].astype("category")
    idx = np.flatnonzero(labeled)
    rng = np.random.default_rng(seed)
    fold = rng.integers(0, folds, len(idx))
    params = {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 20,
        "feature_fraction": 0.8,
        "lambda_l2": 1.0,
        "num_threads": 2,
        "verbose": -1,
        "seed": seed,
        "deterministic": True,
    }
    full = np.zeros(len(X))
    oof = np.full(len(X), np.nan)
    for k in range(folds):
        tr, te = idx[fold != k], idx[fold == k]
        booster = lgb.train(params, lgb.Dataset(Xc.iloc[tr], label=y[tr]), num_boost_round=150)
        oof[te] = np.asarray(booster.predict(Xc.iloc[te]), dtype=np.float64)
        full += np.asarray(booster.predict(Xc), dtype=np.float64) / folds
    return full, oof


def evaluate_fraud_data(
    base_dir: Path,
    *,
    budget: int = 1_000,
    reps: int = 10,
    top_k: int = 100,
    seed: int = 0,
) -> pd.DataFrame:
    """Audit the fraud rules with `budget` labels (half uniform to train the model, half
    importance-sampled) and score estimates and ranked lists against the full labels."""
    from features.byo import build_dataset, load_spec
    from governance.audit.ranking import rank_flags
    from governance.evaluator import evaluate_condition

    spec = load_spec(SPECS_DIR / "ecommerce_fraud.yaml")
    ds = build_dataset(spec, base_dir=base_dir, threads=2)
    frame = ds.frame
    y = frame["label"].to_numpy(dtype=float) > 0.5
    n = len(frame)
    feats = frame.drop(columns=["item_id", "event_time", "label"])
    strategies = fraud_strategies()
    masks = {s.ref: evaluate_condition(s.condition, frame) for s in strategies}
    rows = []
    for rep in range(reps):
        rng = np.random.default_rng(seed + rep)
        first = rng.random(n) < (budget / 2) / n
        p_full, p_oof = _crossfit_lightgbm(feats, y.astype(float), first, seed=seed + rep)
        p_full = np.clip(p_full, 1e-4, 1 - 1e-4)
        base = _fraud_population(frame, masks, p_full, LabelDraws.empty(), {})
        second = audit_sample(
            {(Entity.LISTING, Policy.ENGAGEMENT_FRAUD): base}, size=budget // 2, seed=seed + rep
        )
        pos2 = pd.Index(frame["item_id"].astype(str)).get_indexer(pd.Index(second["item_id"]))
        pos = np.concatenate([np.flatnonzero(first), pos2])
        pi = np.concatenate(
            [np.full(int(first.sum()), (budget / 2) / n), second["inclusion_probability"]]
        )
        design = np.array(
            ["random"] * int(first.sum()) + ["model_ranked"] * len(pos2), dtype=object
        )
        f_label = np.where(np.isnan(p_oof[pos]), p_full[pos], p_oof[pos])
        draws = LabelDraws(
            pos.astype(np.int64),
            y[pos].astype(float),
            np.ones(len(pos), dtype=np.int64),
            pi,
            design,
            f_label,
        )
        frames_ = {"random": np.ones(n, dtype=bool), "model_ranked": np.ones(n, dtype=bool)}
        pop = _fraud_population(frame, masks, p_full, draws, frames_)
        key = (Entity.LISTING, Policy.ENGAGEMENT_FRAUD)
        est = strategy_metrics({key: pop})
        true = strategy_metrics({key: pop}, truth={key: y})
        err = estimate_errors(est, true)
        labels = pd.DataFrame(
            {
                "entity": "listing",
                "item_id": frame["item_id"].astype(str).to_numpy()[pos],
                "policy": "engagement_fraud",
                "verdict": np.where(y[pos], "violating", "not_violating"),
            }
        )
        flags = rank_flags({key: pop}, labels=labels, list_size=top_k)
        pool = candidate_pools({key: pop}, {key: y}, labels)
        q = list_quality(flags, pool, k=top_k)
        oof_df = pd.DataFrame(
            {
                "entity": "listing",
                "item_id": frame["item_id"].astype(str),
                "policy": "engagement_fraud",
                "oof_p": p_oof,
            }
        ).dropna()
        cl = cleanlab_lists(pool, oof_df, k=top_k)
        for _, r in err.iterrows():
            rows.append(
                {
                    "rep": rep,
                    "strategy": r["strategy"],
                    "labels": len(pos),
                    "precision_err": r["precision_err"],
                    "recall_err": r["recall_err"],
                    "precision_covered": r["precision_covered"],
                    "recall_covered": r["recall_covered"],
                    **q,
                    **{f"cleanlab_{k}": v for k, v in cl.items()},
                }
            )
    return pd.DataFrame(rows)


def _fraud_population(
    frame: pd.DataFrame,
    masks: Mapping[str, np.ndarray],
    p: np.ndarray,
    draws: LabelDraws,
    frames: Mapping[str, np.ndarray],
) -> Population:
    n = len(frame)
    value = frame["purchase_value"].to_numpy(dtype=float)[:, None]
    ones = np.ones((n, 1))
    return Population(
        entity=Entity.LISTING,
        policy=Policy.ENGAGEMENT_FRAUD,
        item_ids=frame["item_id"].astype(str).to_numpy(dtype=object),
        p_model=p,
        f=p,
        channels=("shop_tab",),
        eligible=np.ones((n, 1), dtype=bool),
        impressions=ones,
        gmv=value,
        lost_impressions=ones,
        lost_gmv=value,
        actioned={ref: m[:, None] for ref, m in masks.items()},
        strategy_channels=dict.fromkeys(masks, ("shop_tab",)),
        draws=draws,
        frames=dict(frames),
        flip_rate=0.0,
    )


def fraud_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Rows for the evaluation table from `evaluate_fraud_data`."""
    if not len(df):
        return pd.DataFrame()
    per_rep = df.groupby("rep").first()
    rows = [
        {
            "measure": f"[fraud data] precision abs. error ({int(df['labels'].mean())} labels)",
            "govrisk": f"{df['precision_err'].mean():.3f}",
            "reference": f"coverage {df['precision_covered'].mean():.2f} over "
            f"{df['rep'].nunique()} label draws x {df['strategy'].nunique()} rules",
            "goal": "<= 0.015",
            "met": "yes" if df["precision_err"].mean() <= 0.015 else "NO",
        },
        {
            "measure": "[fraud data] recall abs. error",
            "govrisk": f"{df['recall_err'].mean():.3f}",
            "reference": f"coverage {df['recall_covered'].mean():.2f}",
            "goal": "<= 0.03",
            "met": "yes" if df["recall_err"].mean() <= 0.03 else "NO",
        },
        {
            "measure": "[fraud data] FP list precision@100",
            "govrisk": f"{per_rep['fp_precision_at_k'].mean():.3f}",
            "reference": f"base {per_rep['fp_base_rate'].mean():.3f}; cleanlab "
            f"{per_rep['cleanlab_fp_precision_at_k'].mean():.3f}",
            "goal": ">= 0.90",
            "met": "yes" if per_rep["fp_precision_at_k"].mean() >= 0.9 else "NO",
        },
        {
            "measure": "[fraud data] FN list precision@100",
            "govrisk": f"{per_rep['fn_precision_at_k'].mean():.3f}",
            "reference": f"base {per_rep['fn_base_rate'].mean():.3f}; cleanlab "
            f"{per_rep['cleanlab_fn_precision_at_k'].mean():.3f}",
            "goal": ">= 6x base",
            "met": "yes"
            if per_rep["fn_precision_at_k"].mean() >= 6 * per_rep["fn_base_rate"].mean()
            else "NO",
        },
    ]
    return pd.DataFrame(rows)
