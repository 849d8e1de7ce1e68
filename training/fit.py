"""Fit one target: time-based split, LightGBM with early stopping, out-of-fold predictions.

The split (all times are label review times, cut at UTC week starts):

- **holdout** (test): the last `split.test_weeks` weeks. Never seen by training, early stopping,
  the hyperparameter search or the calibration map.
- **validation**: the last `split.validation_weeks` weeks before the holdout (or the last
  `split.validation_fraction` of that period); only used for early stopping and the search.
- **train**: everything earlier.

The model that is evaluated and registered is trained on *train*, early-stopped on *validation*.

Out-of-fold predictions cover every labeled row. The training period (train + validation) is cut
into `split.cv_folds` contiguous blocks of whole weeks (blocked cross-validation); each block is
predicted by a model trained on the other blocks with the main model's number of rounds, so the
block's own rows are never seen, though later weeks may be. Holdout rows are predicted by the
main model, which only saw the past (fold -1). The calibration map is fitted on the training
period's out-of-fold margins and applied to every prediction, so holdout probabilities are
calibrated without touching holdout labels. The map is fitted with the (trimmed) training weights,
then shifted in log-odds so its mean matches the population under the untrimmed inverse-inclusion
weights (`calibration.population_shift_sd`): trimmed weights follow the label mix, mostly
strategy-flagged and often violating, and would over-predict on the live population.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.calibration import Calibration
from models.encoding import FeatureEncoder
from training.calibrate import choose_method, fit_calibration, population_shift
from training.dataset import TrainingSet, week_start
from training.evaluate import expand_labels
from training.spec import CalibrationSpec, LabelSpec, LightGBMSpec, SplitSpec

log = logging.getLogger(__name__)

#: Fold number of holdout rows in out-of-fold predictions.
HOLDOUT_FOLD = -1


class TargetSkipped(Exception):
    """A target without enough labels to train or evaluate; the message says what is short."""


@dataclass(frozen=True)
class TimeSplit:
    """Row positions of each part of a time-based split, and each row's out-of-fold block."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    fold: np.ndarray
    boundaries: dict[str, str]

    @property
    def training_period(self) -> np.ndarray:
        """Positions of train and validation rows together."""
        return np.sort(np.concatenate([self.train, self.validation]))

    def part(self) -> np.ndarray:
        """Per-row name of the part: train, validation or test."""
        out = np.empty(len(self.fold), dtype=object)
        out[self.train] = "train"
        out[self.validation] = "validation"
        out[self.test] = "test"
        return out


@dataclass(frozen=True)
class FittedTarget:
    """A trained, calibrated model for one target plus everything needed to judge it."""

    training_set: TrainingSet
    split: TimeSplit
    encoder: FeatureEncoder
    booster: lgb.Booster
    model_text: str
    best_iteration: int
    params: dict[str, Any]
    calibration: Calibration
    calibration_method: str
    oof_margin: np.ndarray
    oof_p: np.ndarray
    #: Log-odds shift that moved the calibration map from the label mix to the population.
    population_shift: float = 0.0

    @property
    def feature_names(self) -> list[str]:
        """Model input columns in matrix order."""
        return self.encoder.feature_names_

    def predict_margin(self, X: pd.DataFrame) -> np.ndarray:
        """Raw margins (log-odds) of the registered model for a raw feature frame."""
        return np.asarray(self.booster.predict(self.encoder.transform(X), raw_score=True))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities for a raw feature frame."""
        return self.calibration.apply(self.predict_margin(X))


def time_split(reviewed_at: pd.Series, *, spec: SplitSpec) -> TimeSplit:
    """Cut rows into train / validation / holdout by week of review, and blocks for CV."""
    if reviewed_at.isna().any():
        raise ValueError("reviewed_at has missing values; every label needs a review time")
    weeks = week_start(reviewed_at.reset_index(drop=True))
    distinct = np.sort(weeks.unique())
    if len(distinct) < spec.test_weeks + 2:
        raise TargetSkipped(
            f"labels span {len(distinct)} week(s); split.test_weeks={spec.test_weeks} needs at "
            f"least {spec.test_weeks + 2} (test, validation and training weeks)"
        )
    test_start = distinct[-spec.test_weeks]
    is_test = (weeks >= test_start).to_numpy()
    period_weeks = distinct[: -spec.test_weeks]
    if spec.validation_weeks is not None:
        if len(period_weeks) <= spec.validation_weeks:
            raise TargetSkipped(
                f"only {len(period_weeks)} week(s) before the holdout; "
                f"split.validation_weeks={spec.validation_weeks} leaves none to train on"
            )
        val_start = pd.Timestamp(period_weeks[-spec.validation_weeks])
        times = weeks
    else:
        fraction = float(spec.validation_fraction or 0.2)
        period_times = reviewed_at.reset_index(drop=True)[~is_test]
        val_start = pd.Timestamp(period_times.quantile(1.0 - fraction))
        times = reviewed_at.reset_index(drop=True)
    is_val = (~is_test) & (times >= val_start).to_numpy()
    is_train = ~is_test & ~is_val
    if not is_train.any() or not is_val.any():
        raise TargetSkipped("the split leaves no training or no validation rows; adjust split")
    fold = np.full(len(weeks), HOLDOUT_FOLD, dtype=np.int64)
    fold[~is_test] = _blocked_folds(weeks[~is_test], n_folds=spec.cv_folds)
    boundaries = {
        "train_start": str(reviewed_at[is_train].min()),
        "validation_start": str(val_start),
        "test_start": str(pd.Timestamp(test_start)),
        "test_end": str(reviewed_at.max()),
    }
    return TimeSplit(
        train=np.flatnonzero(is_train),
        validation=np.flatnonzero(is_val),
        test=np.flatnonzero(is_test),
        fold=fold,
        boundaries=boundaries,
    )


def random_split(n_rows: int, *, spec: SplitSpec) -> TimeSplit:
    """Seeded random holdout, validation and CV folds, for labels without a time order."""
    rng = np.random.default_rng(spec.seed)
    is_test = rng.random(n_rows) < spec.test_fraction
    is_val = ~is_test & (rng.random(n_rows) < (spec.validation_fraction or 0.2))
    is_train = ~is_test & ~is_val
    if not is_train.any() or not is_val.any() or not is_test.any():
        raise TargetSkipped(
            f"{n_rows} label(s) leave no training, validation or holdout rows; add labels"
        )
    fold = np.full(n_rows, HOLDOUT_FOLD, dtype=np.int64)
    fold[~is_test] = rng.integers(0, spec.cv_folds, int((~is_test).sum()))
    return TimeSplit(
        train=np.flatnonzero(is_train),
        validation=np.flatnonzero(is_val),
        test=np.flatnonzero(is_test),
        fold=fold,
        boundaries={
            "by": "random",
            "test_fraction": str(spec.test_fraction),
            "seed": str(spec.seed),
        },
    )


def split_labels(ts: TrainingSet, *, spec: SplitSpec) -> TimeSplit:
    """The split the spec asks for: by review time, or at random (`split.by`)."""
    if spec.by == "random":
        return random_split(len(ts), spec=spec)
    return time_split(ts.meta["reviewed_at"], spec=spec)


def _blocked_folds(weeks: pd.Series, *, n_folds: int) -> np.ndarray:
    """Contiguous blocks of whole weeks with about equal label counts."""
    distinct, counts = np.unique(weeks.to_numpy(), return_counts=True)
    k = min(n_folds, len(distinct))
    share = np.cumsum(counts) / counts.sum()
    # Week i goes to the block holding the middle of its share of labels.
    middle = share - counts / counts.sum() / 2.0
    block_of_week = np.minimum((middle * k).astype(np.int64), k - 1)
    lookup = dict(zip(distinct, block_of_week, strict=True))
    return np.array([lookup[w] for w in weeks.to_numpy()], dtype=np.int64)


def encoder_for(ts: TrainingSet) -> FeatureEncoder:
    """An unfitted encoder declaring the target's categorical and numeric features."""
    categorical = [n for n, k in ts.feature_types.items() if k == "categorical"]
    numeric = [n for n, k in ts.feature_types.items() if k != "categorical"]
    return FeatureEncoder(categorical=categorical, numeric=numeric)


def train_booster(
    X: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
    *,
    params: dict[str, Any],
    feature_names: list[str],
    categorical_indices: list[int],
    num_boost_round: int,
    valid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    early_stopping_rounds: int | None = None,
) -> tuple[lgb.Booster, int]:
    """Train a LightGBM booster; with `valid`, stop early on its weighted log loss.

    Expected labels in (0, 1) train as a violating and a clean copy of the row, weighted by the
    label and its complement. Returns the booster and the number of rounds to keep.
    """
    y, weight, (X,) = expand_labels(y, weight, X)
    train_ds = lgb.Dataset(
        X,
        label=y,
        weight=weight,
        feature_name=feature_names,
        categorical_feature=categorical_indices,
        free_raw_data=True,
        params={"verbosity": -1, "max_bin": params.get("max_bin", 255)},
    )
    callbacks: list[Callable[..., Any]] = []
    valid_sets = []
    if valid is not None:
        Xv, yv, wv = valid
        yv, wv, (Xv,) = expand_labels(yv, wv, Xv)
        valid_sets = [lgb.Dataset(Xv, label=yv, weight=wv, reference=train_ds)]
        if early_stopping_rounds:
            callbacks.append(
                lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False)
            )
    booster = lgb.train(
        params,
        train_ds,
        num_boost_round=num_boost_round,
        valid_sets=valid_sets,
        valid_names=["validation"] if valid_sets else None,
        callbacks=callbacks,
    )
    best = booster.best_iteration if valid is not None and booster.best_iteration > 0 else 0
    return booster, int(best or booster.current_iteration())


def prepare_split(ts: TrainingSet, *, split: SplitSpec, labels: LabelSpec) -> TimeSplit:
    """The target's time split, after checking it has enough labels to train and evaluate.

    Raises TargetSkipped naming what is short.
    """
    name = f"{ts.entity.value}/{ts.policy}"
    if len(ts) == 0:
        raise TargetSkipped(f"{name}: no labels")
    tsplit = split_labels(ts, spec=split)
    period = tsplit.training_period
    n_pos_period = float(ts.y[period].sum())
    if n_pos_period < labels.min_positives:
        raise TargetSkipped(
            f"{name}: {n_pos_period:g} violating label(s) before the holdout; "
            f"labels.min_positives={labels.min_positives}"
        )
    if (ts.y[period] >= 1).all():
        raise TargetSkipped(f"{name}: every training label is violating")
    y_test = ts.y[tsplit.test]
    if y_test.min() == y_test.max():
        widen = "split.test_fraction" if split.by == "random" else "split.test_weeks"
        raise TargetSkipped(f"{name}: the holdout has labels of one class only; widen {widen}")
    return tsplit


def fit_target(
    ts: TrainingSet,
    *,
    lightgbm: LightGBMSpec,
    split: SplitSpec,
    calibration: CalibrationSpec,
    labels: LabelSpec | None = None,
    params_override: dict[str, Any] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> FittedTarget:
    """Split, train, early-stop, predict out of fold and calibrate one target."""
    tsplit = prepare_split(ts, split=split, labels=labels or LabelSpec())
    return _compute_fit(
        ts,
        tsplit,
        lightgbm=lightgbm,
        calibration=calibration,
        params_override=params_override or {},
        on_step=on_step or (lambda _msg: None),
    )


def _compute_fit(
    ts: TrainingSet,
    tsplit: TimeSplit,
    *,
    lightgbm: LightGBMSpec,
    calibration: CalibrationSpec,
    params_override: dict[str, Any],
    on_step: Callable[[str], None],
) -> FittedTarget:
    period = tsplit.training_period
    encoder = encoder_for(ts).fit(ts.X.iloc[period])
    X_all = encoder.transform(ts.X)
    params = {**lightgbm.params(), **params_override}
    w = ts.weight
    on_step("main model")
    # Bin the training period once (features only, as the encoder is fitted): the main model,
    # its validation set and every out-of-fold model train on row subsets of it.
    binned = _PeriodDataset(
        X_all[period],
        ts.y[period],
        w[period],
        params=params,
        feature_names=encoder.feature_names_,
        categorical_indices=encoder.categorical_indices_,
    )
    final, model_text, best = _train_main(binned, tsplit, params=params, lightgbm=lightgbm)
    oof_margin = _oof_margins(
        ts, tsplit, X_all, binned, final, params=params, best=best, on_step=on_step
    )
    del binned
    on_step("calibration")
    cal, method, shift = _calibrate(ts, period, oof_margin, calibration=calibration)
    return FittedTarget(
        training_set=ts,
        split=tsplit,
        encoder=encoder,
        booster=final,
        model_text=model_text,
        best_iteration=best,
        params=params,
        calibration=cal,
        calibration_method=method,
        oof_margin=oof_margin,
        oof_p=cal.apply(oof_margin),
        population_shift=shift,
    )


def _train_main(
    binned: _PeriodDataset,
    tsplit: TimeSplit,
    *,
    params: dict[str, Any],
    lightgbm: LightGBMSpec,
) -> tuple[lgb.Booster, str, int]:
    """Train on the train weeks, early-stopping on the validation weeks; returns the booster
    cut at its best iteration, its model text and that iteration."""
    period = tsplit.training_period
    tr = np.searchsorted(period, tsplit.train)
    va = np.searchsorted(period, tsplit.validation)
    callbacks: list[Callable[..., Any]] = []
    if lightgbm.early_stopping_rounds:
        callbacks.append(
            lgb.early_stopping(
                lightgbm.early_stopping_rounds, first_metric_only=True, verbose=False
            )
        )
    booster = lgb.train(
        params,
        binned.subset(tr),
        num_boost_round=lightgbm.num_boost_round,
        valid_sets=[binned.subset(va)],
        valid_names=["validation"],
        callbacks=callbacks,
    )
    best = int(booster.best_iteration or booster.current_iteration())
    model_text = booster.model_to_string(num_iteration=best)
    final = lgb.Booster(model_str=model_text)
    del booster
    return final, model_text, best


def _oof_margins(
    ts: TrainingSet,
    tsplit: TimeSplit,
    X_all: np.ndarray,
    binned: _PeriodDataset,
    final: lgb.Booster,
    *,
    params: dict[str, Any],
    best: int,
    on_step: Callable[[str], None],
) -> np.ndarray:
    """Raw margins: the main model's on the holdout, each fold's model's on its own block of
    the training period (blocked cross-validation); NaN elsewhere."""
    period = tsplit.training_period
    predict_args: dict[str, Any] = {"raw_score": True}
    if params.get("num_threads"):
        predict_args["num_threads"] = int(params["num_threads"])
    oof_margin = np.full(len(ts), np.nan)
    oof_margin[tsplit.test] = final.predict(X_all[tsplit.test], **predict_args)
    folds = np.unique(tsplit.fold[period])
    for k in folds:
        on_step(f"fold {k + 1}/{len(folds)}")
        in_block = tsplit.fold[period] == k
        held = period[in_block]
        rest = np.flatnonzero(~in_block)
        if len(rest) == 0 or ts.y[period[rest]].min() == ts.y[period[rest]].max():
            # A block whose complement has one class only is predicted by the main model.
            oof_margin[held] = final.predict(X_all[held], **predict_args)
            continue
        fold_model = lgb.train(params, binned.subset(rest), num_boost_round=best)
        oof_margin[held] = fold_model.predict(X_all[held], **predict_args)
    return oof_margin


def _calibrate(
    ts: TrainingSet,
    period: np.ndarray,
    oof_margin: np.ndarray,
    *,
    calibration: CalibrationSpec,
) -> tuple[Calibration, str, float]:
    """Fit the calibration on the training period's out-of-fold margins, shifted towards the
    population when the spec asks; returns it with its method and the shift."""
    method = choose_method(
        ts.y[period],
        method=calibration.method,
        isotonic_min_per_class=calibration.isotonic_min_per_class,
    )
    cal = fit_calibration(
        oof_margin[period],
        ts.y[period],
        weight=ts.weight[period],
        method=method,
        isotonic_min_per_class=calibration.isotonic_min_per_class,
    )
    shift = 0.0
    if calibration.population_shift_sd is not None:
        shift, _ = population_shift(
            cal.apply(oof_margin[period]),
            ts.y[period],
            ts.population_weight[period],
            prior_sd=calibration.population_shift_sd,
        )
        cal = cal.shifted(shift)
    return cal, method, shift


class _PeriodDataset:
    """One binned LightGBM dataset over the training period, handing out row subsets.

    Rows with an expected label become a violating and a clean row (see `expand_labels`); a
    subset keeps both copies of its rows and rescales their weights to mean 1 over the subset,
    as a dataset built from those rows alone would be weighted.
    """

    def __init__(
        self,
        X: np.ndarray,
        y: np.ndarray,
        weight: np.ndarray,
        *,
        params: dict[str, Any],
        feature_names: list[str],
        categorical_indices: list[int],
    ) -> None:
        self.weight = np.asarray(weight, dtype=np.float64)
        positions = np.arange(len(y))
        y_rows, w_rows, (X_rows, self.source) = expand_labels(y, self.weight, X, positions)
        self.row_weight = w_rows
        self.dataset = lgb.Dataset(
            X_rows,
            label=y_rows,
            weight=w_rows,
            feature_name=feature_names,
            categorical_feature=categorical_indices,
            free_raw_data=True,
            params=params,
        ).construct()

    def subset(self, positions: np.ndarray) -> lgb.Dataset:
        """The rows of `positions` (sorted indexes into the period) with unit-mean weights."""
        member = np.zeros(len(self.weight), dtype=bool)
        member[positions] = True
        rows = np.flatnonzero(member[self.source])
        part = self.dataset.subset(rows.tolist()).construct()
        mean = float(self.weight[positions].mean()) if len(positions) else 1.0
        weight = self.row_weight[rows] / mean if mean > 0 else self.row_weight[rows]
        # set_field, not set_weight: set_weight ignores all-ones weights and would leave the
        # parent's unscaled weights in place.
        part.set_field("weight", weight.astype(np.float32))
        return part


def oof_frame(fit: FittedTarget) -> pd.DataFrame:
    """Out-of-fold predictions: one row per labeled item of the target.

    Columns: entity, item_id, policy, oof_p (calibrated), oof_margin, fold (-1 = holdout,
    predicted by the registered model), split, label (0/1, or the expected label of a
    partially judged any-violation item), weight, inclusion_probability, reviewed_at.
    """
    ts = fit.training_set
    return pd.DataFrame(
        {
            "entity": pd.array([ts.entity.value] * len(ts), dtype="str"),
            "item_id": ts.meta["item_id"].astype("str").to_numpy(),
            "policy": pd.array([ts.policy] * len(ts), dtype="str"),
            "oof_p": fit.oof_p,
            "oof_margin": fit.oof_margin,
            "fold": fit.split.fold,
            "split": pd.array(fit.split.part(), dtype="str"),
            "label": ts.y.astype("float64"),
            "weight": ts.weight,
            "inclusion_probability": ts.meta["inclusion_probability"].to_numpy(),
            "reviewed_at": ts.meta["reviewed_at"].to_numpy(),
        }
    )
