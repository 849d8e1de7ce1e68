"""Real data: the public e-commerce first-purchase fraud set."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from experiments import SPECS_DIR
from experiments.audit_eval.estimates import estimate_errors
from experiments.audit_eval.lists import candidate_pools, cleanlab_lists, list_quality
from features.byo import ByoDataset
from features.byo_labels import (
    append_labels,
    draw_random,
    governance_of,
    reveal,
    sample_from_draws,
)
from governance.audit.metrics import strategy_metrics
from governance.audit.population import Population
from governance.audit.sampling import audit_sample
from governance.strategy import Strategy

#: The fraud rules: strategy YAML over the fraud spec's features, read by this evaluation and by
#: `govrisk audit --dataset` alike (docs/byo-walkthrough.md).
FRAUD_RULES_DIR = SPECS_DIR / "ecommerce_fraud_rules"
FRAUD_SPEC = SPECS_DIR / "ecommerce_fraud.yaml"
#: The verdicts are the data's own labels: no reviewer noise to correct.
FRAUD_FLIP_RATE = 0.0


def fraud_strategies() -> list[Strategy]:
    """The active fraud rules of `FRAUD_RULES_DIR` (purchases stand in as listings)."""
    from governance.registry import StrategyRegistry

    return list(StrategyRegistry.load(FRAUD_RULES_DIR).active())


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
        # One thread: on a shared 2-core machine two were slower at this size (3,000-30,000).
        "num_threads": 1,
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


def fraud_estimates(
    dataset: ByoDataset, labels: pd.DataFrame, *, seed: int
) -> tuple[Population, np.ndarray]:
    """The evaluation's audit population for given labels: a cross-fitted LightGBM on the
    `random` labels gives every row's probability (out-of-fold at those labels), taken as
    P(violating) (no calibration) with the production estimators; also its out-of-fold array."""
    frame = dataset.frame
    feats = frame.drop(columns=["item_id", "event_time", "label"])
    y = frame["label"].to_numpy(dtype=float) > 0.5
    random_ids = labels.loc[labels["sampling"] == "random", "item_id"].astype(str)
    first = frame["item_id"].isin(set(random_ids)).to_numpy()
    p_full, p_oof = _crossfit_lightgbm(feats, y.astype(float), first, seed=seed)
    p_full = np.clip(p_full, 1e-4, 1 - 1e-4)
    return _population(dataset, p_full, labels, p_oof), p_oof


def _population(
    dataset: ByoDataset, p: np.ndarray, labels: pd.DataFrame, p_oof: np.ndarray | None = None
) -> Population:
    from governance.audit.byo import byo_population
    from governance.audit.settings import AuditSettings

    oof = None
    if p_oof is not None:
        gov = governance_of(dataset)
        oof = pd.DataFrame(
            {
                "entity": gov.entity.value,
                "item_id": dataset.frame["item_id"].astype(str),
                "policy": gov.policy.value,
                "oof_p": p_oof,
            }
        ).dropna()
    return byo_population(
        dataset,
        fraud_strategies(),
        p,
        labels,
        oof=oof,
        flip_rate=FRAUD_FLIP_RATE,
        calibration="none",
        settings=AuditSettings(),
    )


def draw_fraud_labels(
    dataset: ByoDataset, *, budget: int, seed: int, p: np.ndarray | None = None
) -> pd.DataFrame:
    """Half the budget drawn uniformly; with `p` (a model's probabilities), the other half
    importance-sampled by the audit's `audit_sample` over the population those labels give.
    Verdicts are revealed from the label column."""
    when = datetime(2016, 1, 1)
    labels = reveal(dataset, draw_random(dataset, size=budget // 2, seed=seed), reviewed_at=when)
    if p is None:
        return labels
    pop = _population(dataset, p, labels)
    drawn = audit_sample({(pop.entity, pop.policy): pop}, size=budget // 2, seed=seed)
    drawn["sampling"] = "model_ranked"
    second = reveal(dataset, sample_from_draws(dataset, drawn), reviewed_at=when)
    return append_labels(labels, second)


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

    dataset = build_dataset(load_spec(FRAUD_SPEC), base_dir=base_dir, threads=2)
    y = dataset.frame["label"].to_numpy(dtype=float) > 0.5
    rows = []
    for rep in range(reps):
        first = draw_fraud_labels(dataset, budget=budget, seed=seed + rep)
        model, p_oof = fraud_estimates(dataset, first, seed=seed + rep)
        labels = draw_fraud_labels(dataset, budget=budget, seed=seed + rep, p=model.p_model)
        pop = _population(dataset, model.p_model, labels, p_oof)
        key = (pop.entity, pop.policy)
        est = strategy_metrics({key: pop})
        true = strategy_metrics({key: pop}, truth={key: y})
        err = estimate_errors(est, true)
        flags = rank_flags({key: pop}, labels=labels, list_size=top_k)
        pool = candidate_pools({key: pop}, {key: y}, labels)
        q = list_quality(flags, pool, k=top_k)
        oof_df = pd.DataFrame(
            {
                "entity": pop.entity.value,
                "item_id": pop.item_ids.astype(str),
                "policy": pop.policy.value,
                "oof_p": p_oof,
            }
        ).dropna()
        cl = cleanlab_lists(pool, oof_df, k=top_k)
        for _, r in err.iterrows():
            rows.append(
                {
                    "rep": rep,
                    "strategy": r["strategy"],
                    "labels": len(labels),
                    "precision_err": r["precision_err"],
                    "recall_err": r["recall_err"],
                    "precision_covered": r["precision_covered"],
                    "recall_covered": r["recall_covered"],
                    **q,
                    **{f"cleanlab_{k}": v for k, v in cl.items()},
                }
            )
    return pd.DataFrame(rows)


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
