"""Optional hyperparameter search with Optuna: bounded trials, scored on the validation weeks.

Each trial trains on the train weeks with early stopping on the validation weeks and is scored by
weighted PR-AUC on those same weeks; the holdout is never looked at. The caller records each
trial (the pipeline logs it as a nested MLflow run) through `on_trial`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.dataset import TrainingSet
from training.evaluate import pr_auc
from training.fit import TimeSplit, encoder_for, train_booster
from training.spec import LightGBMSpec, OptunaSpec

log = logging.getLogger(__name__)

#: Callback receiving (trial number, suggested parameters, validation PR-AUC, rounds kept).
TrialCallback = Callable[[int, dict[str, Any], float, int], None]


@dataclass(frozen=True)
class SearchResult:
    """Best parameters found (overrides of the spec's LightGBM params) and how many trials ran."""

    best_params: dict[str, Any]
    best_value: float
    n_trials: int


def _suggest(trial: Any) -> dict[str, Any]:
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        "num_leaves": trial.suggest_int("num_leaves", 8, 128, log=True),
        "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 5, 200, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30.0, log=True),
        "cat_smooth": trial.suggest_float("cat_smooth", 1.0, 50.0, log=True),
    }


def search_params(
    ts: TrainingSet,
    tsplit: TimeSplit,
    *,
    lightgbm: LightGBMSpec,
    optuna_spec: OptunaSpec,
    on_trial: TrialCallback | None = None,
) -> SearchResult:
    """Run at most `optuna_spec.n_trials` trials (and `timeout_seconds`); returns the best."""
    import optuna

    tr, va = tsplit.train, tsplit.validation
    if ts.y[va].min() == ts.y[va].max():
        log.warning("validation weeks hold one class only; skipping the search")
        return SearchResult({}, float("nan"), 0)
    encoder = encoder_for(ts).fit(ts.X.iloc[tsplit.training_period])
    X = encoder.transform(ts.X)
    base = lightgbm.params()
    w_tr = ts.weight[tr] / ts.weight[tr].mean()
    w_va = ts.weight[va] / ts.weight[va].mean()

    def objective(trial: Any) -> float:
        suggested = _suggest(trial)
        booster, best = train_booster(
            X[tr],
            ts.y[tr],
            w_tr,
            params={**base, **suggested},
            feature_names=encoder.feature_names_,
            categorical_indices=encoder.categorical_indices_,
            num_boost_round=lightgbm.num_boost_round,
            valid=(X[va], ts.y[va], w_va),
            early_stopping_rounds=lightgbm.early_stopping_rounds,
        )
        margin = np.asarray(booster.predict(X[va], raw_score=True, num_iteration=best))
        value = pr_auc(ts.y[va].astype(np.float64), margin, weight=w_va)
        trial.set_user_attr("best_iteration", best)
        if on_trial is not None:
            on_trial(trial.number, suggested, value, best)
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=optuna_spec.seed)
    )
    study.optimize(objective, n_trials=optuna_spec.n_trials, timeout=optuna_spec.timeout_seconds)
    return SearchResult(dict(study.best_params), float(study.best_value), len(study.trials))
