"""Fitting: honest time split, determinism, out-of-fold coverage, categoricals, skips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.dataset import EntityData, training_set, week_start
from training.fit import (
    HOLDOUT_FOLD,
    FittedTarget,
    TargetSkipped,
    fit_target,
    oof_frame,
    time_split,
)
from training.spec import CalibrationSpec, LabelSpec, LightGBMSpec, SplitSpec

LGB = LightGBMSpec(num_threads=1, num_boost_round=150, num_leaves=15, seed=3)
SPLIT = SplitSpec(test_weeks=2, validation_weeks=1, cv_folds=3)


def _fit(entity_data: EntityData, policy: str = "any", **overrides: object) -> FittedTarget:
    ts = training_set(entity_data, policy)
    kwargs: dict[str, object] = {
        "lightgbm": LGB,
        "split": SPLIT,
        "calibration": CalibrationSpec(),
        "labels": LabelSpec(min_positives=10),
        **overrides,
    }
    return fit_target(ts, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def fitted(entity_data: EntityData) -> FittedTarget:
    return _fit(entity_data)


def test_time_split_parts_are_disjoint_and_ordered(fitted: FittedTarget) -> None:
    split = fitted.split
    times = fitted.training_set.meta["reviewed_at"]
    parts = [split.train, split.validation, split.test]
    together = np.concatenate(parts)
    assert len(together) == len(set(together.tolist())) == len(times)
    assert times.iloc[split.train].max() < times.iloc[split.validation].min()
    assert times.iloc[split.validation].max() < times.iloc[split.test].min()
    test_weeks = week_start(times.iloc[split.test]).unique()
    assert len(test_weeks) == SPLIT.test_weeks
    assert week_start(times.iloc[split.validation]).nunique() == 1


def test_cv_folds_are_contiguous_blocks_of_weeks(fitted: FittedTarget) -> None:
    split = fitted.split
    weeks = week_start(fitted.training_set.meta["reviewed_at"])
    assert (split.fold[split.test] == HOLDOUT_FOLD).all()
    period = split.training_period
    folds = split.fold[period]
    assert sorted(set(folds.tolist())) == list(range(SPLIT.cv_folds))
    # Sorted by time, fold numbers never go down: every block is contiguous in time.
    assert (np.diff(folds) >= 0).all()
    # A week never straddles two blocks.
    per_week = pd.Series(folds).groupby(weeks.iloc[period].to_numpy()).nunique()
    assert (per_week == 1).all()


def test_validation_fraction_split(entity_data: EntityData) -> None:
    ts = training_set(entity_data, "any")
    split = time_split(
        ts.meta["reviewed_at"],
        spec=SplitSpec(validation_weeks=None, validation_fraction=0.25, cv_folds=3),
    )
    times = ts.meta["reviewed_at"]
    assert times.iloc[split.train].max() < times.iloc[split.validation].min()
    share = len(split.validation) / (len(split.train) + len(split.validation))
    assert 0.15 < share < 0.35


def test_same_spec_data_and_seed_give_the_same_model(
    entity_data: EntityData, fitted: FittedTarget
) -> None:
    again = _fit(entity_data)
    assert again.model_text == fitted.model_text
    np.testing.assert_array_equal(again.oof_p, fitted.oof_p)
    other_seed = _fit(
        entity_data, lightgbm=LGB.model_copy(update={"seed": 4, "feature_fraction": 0.7})
    )
    assert other_seed.model_text != fitted.model_text


def test_out_of_fold_predictions_cover_every_labeled_item(
    entity_data: EntityData, fitted: FittedTarget
) -> None:
    oof = oof_frame(fitted)
    labeled = entity_data.labels.loc[entity_data.labels["policy"] == "any", "item_id"]
    assert set(oof["item_id"]) == set(labeled)
    assert oof["item_id"].is_unique
    assert oof["oof_p"].between(0, 1).all() and oof["oof_p"].notna().all()
    assert list(oof.columns[:5]) == ["entity", "item_id", "policy", "oof_p", "oof_margin"]
    assert set(oof.loc[oof["split"] == "test", "fold"]) == {HOLDOUT_FOLD}
    assert (oof["policy"] == "any").all() and (oof["entity"] == "listing").all()


def test_holdout_predictions_come_from_the_registered_model(fitted: FittedTarget) -> None:
    test = fitted.split.test
    X = fitted.training_set.X.iloc[test]
    np.testing.assert_allclose(fitted.predict_proba(X), fitted.oof_p[test], atol=1e-12)


def test_categoricals_are_lightgbm_categoricals(fitted: FittedTarget) -> None:
    assert fitted.encoder.categorical == ["listing_category", "seller_verification"]
    assert fitted.feature_names[:2] == ["listing_category", "seller_verification"]
    # LightGBM writes the categorical feature indices and uses categorical splits.
    assert "[categorical_feature: 0,1]" in fitted.model_text
    assert fitted.booster.dump_model()["feature_infos"]["listing_category"]["values"]


def test_early_stopping_keeps_fewer_rounds_than_allowed(fitted: FittedTarget) -> None:
    assert 1 <= fitted.best_iteration < LGB.num_boost_round
    assert fitted.booster.num_trees() == fitted.best_iteration


def test_learns_the_signal(fitted: FittedTarget) -> None:
    from training.evaluate import roc_auc

    test = fitted.split.test
    ts = fitted.training_set
    assert roc_auc(ts.y[test].astype(float), fitted.oof_p[test], weight=ts.weight[test]) > 0.6


def test_too_few_positives_skips(entity_data: EntityData) -> None:
    with pytest.raises(TargetSkipped, match="min_positives=100000"):
        _fit(entity_data, labels=LabelSpec(min_positives=100_000))


def test_too_few_weeks_skips(entity_data: EntityData) -> None:
    with pytest.raises(TargetSkipped, match="weeks"):
        _fit(entity_data, split=SplitSpec(test_weeks=30))


def test_period_subsets_keep_both_copies_of_expected_labels_with_unit_mean_weights() -> None:
    from training.fit import _PeriodDataset

    rng = np.random.default_rng(0)
    X = rng.normal(size=(8, 2))
    y = np.array([0, 1, 0.25, 0, 1, 0.5, 0, 1])
    w = np.array([1.0, 2.0, 4.0, 1.0, 1.0, 2.0, 3.0, 1.0])
    binned = _PeriodDataset(
        X,
        y,
        w,
        params={"verbosity": -1, "min_data_in_bin": 1, "feature_pre_filter": False},
        feature_names=["a", "b"],
        categorical_indices=[],
    )
    part = binned.subset(np.array([1, 2, 5]))
    # Rows 2 and 5 carry expected labels: a violating and a clean copy each.
    assert part.num_data() == 5
    labels = part.get_field("label")
    weights = part.get_field("weight")
    mean = w[[1, 2, 5]].mean()
    expected = {
        (1.0, 2.0 / mean),
        (1.0, 4.0 * 0.25 / mean),
        (1.0, 2.0 * 0.5 / mean),
        (0.0, 4.0 * 0.75 / mean),
        (0.0, 2.0 * 0.5 / mean),
    }
    got = {(float(a), round(float(b), 5)) for a, b in zip(labels, weights, strict=True)}
    assert got == {(a, round(b, 5)) for a, b in expected}
    # All-ones weights still replace the parent's unscaled weights.
    ones = binned.subset(np.array([6]))  # weight 3 in the parent
    np.testing.assert_allclose(ones.get_field("weight"), [1.0])


def test_the_population_shift_undoes_what_trimmed_weights_do_to_calibration(
    entity_data: EntityData,
) -> None:
    """Weights trimmed hard (max 1.05) follow the label mix, mostly flagged items: the map
    over-predicts on the population until the shift moves it to the untrimmed weights."""
    ts = training_set(entity_data, "counterfeit", max_weight=1.05)
    assert ts.design_weight is not None and ts.design_weight.max() > 1.4 * ts.weight.max()
    gaps = {}
    for sd in (None, 1.0):
        fit = fit_target(
            ts,
            lightgbm=LGB,
            split=SPLIT,
            calibration=CalibrationSpec(population_shift_sd=sd),
            labels=LabelSpec(min_positives=10),
        )
        period = fit.split.training_period
        w = ts.design_weight[period]
        gaps[sd] = float(np.average(fit.oof_p[period] - ts.y[period], weights=w))
        assert (fit.population_shift == 0.0) == (sd is None)
    assert gaps[None] > 0.005  # over-predicts on the population without the shift
    assert abs(gaps[1.0]) < gaps[None] / 5
