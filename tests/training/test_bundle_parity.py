"""The bundle parity gate on trained targets: float64 ONNX passes, a float32 graph is refused.

The gate (`ModelBundle.check_parity`, |Δp| and |Δraw| <= 1e-5) runs on the holdout plus edge
rows (each feature missing, each categorical unseen) and rows on, just below and just above
every numeric split threshold. Training data here has missing values and the holdout has
categories never seen in training, the cases that used to reject models over a single row.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from models.bundle import ModelBundle, ParityError
from training.dataset import EntityData, TrainingSet, training_set
from training.fit import FittedTarget, fit_target
from training.spec import CalibrationSpec, LabelSpec, LightGBMSpec, SplitSpec

LGB = LightGBMSpec(num_threads=1, num_boost_round=120, num_leaves=31, min_data_in_leaf=5, seed=5)
SPLIT = SplitSpec(test_weeks=2, validation_weeks=1, cv_folds=2)


def _with_gaps(ts: TrainingSet, *, seed: int) -> TrainingSet:
    """`ts` with ~10% of every feature missing and unseen categories in the holdout weeks."""
    rng = np.random.default_rng(seed)
    X = ts.X.copy()
    for col in X.columns:
        if X[col].dtype == bool:
            X[col] = X[col].astype("float64")  # as a built frame holds a nullable flag
        X.loc[rng.random(len(X)) < 0.1, col] = None
    late = ts.meta["reviewed_at"] >= ts.meta["reviewed_at"].quantile(0.85)
    X.loc[late.to_numpy() & (rng.random(len(X)) < 0.3), "listing_category"] = "launched_later"
    return replace(ts, X=X)


def _fit_and_bundle(ts: TrainingSet) -> tuple[FittedTarget, ModelBundle]:
    fit = fit_target(
        ts,
        lightgbm=LGB,
        split=SPLIT,
        calibration=CalibrationSpec(),
        labels=LabelSpec(min_positives=10),
    )
    bundle = ModelBundle.build(
        fit.booster,
        encoder=fit.encoder,
        calibration=fit.calibration,
        features={n: n.replace("_", " ") for n in fit.feature_names},
        metadata={"policy": ts.policy},
    )
    return fit, bundle


@pytest.fixture(scope="module", params=["counterfeit", "fake_discount"])
def fitted(
    request: pytest.FixtureRequest, entity_data: EntityData
) -> tuple[FittedTarget, ModelBundle]:
    ts = _with_gaps(training_set(entity_data, request.param), seed=1)
    return _fit_and_bundle(ts)


def test_trained_models_pass_the_gate_on_gaps_unseen_categories_and_thresholds(
    fitted: tuple[FittedTarget, ModelBundle],
) -> None:
    fit, bundle = fitted
    holdout = fit.training_set.X.iloc[fit.split.test].reset_index(drop=True)
    assert holdout.isna().any().all(), "every feature has missing values in the holdout"
    assert (holdout["listing_category"] == "launched_later").any()
    report = bundle.check_parity(holdout)  # raises ParityError when rejected
    assert report.n_rows > 2 * len(holdout), "edge and threshold rows were added"
    assert report.max_abs_diff_raw <= 1e-9
    assert report.max_abs_diff_probability <= 1e-9


def _float32_splits(bundle: ModelBundle) -> ModelBundle:
    """The same bundle with split thresholds rounded to float32, as a float32 export stores."""
    model = onnx.load_from_string(bundle.onnx_model)
    (node,) = model.graph.node
    (splits,) = [a for a in node.attribute if a.name == "nodes_splits"]
    values = numpy_helper.to_array(splits.t)
    with np.errstate(over="ignore"):  # LightGBM's +-1e300 bounds become +-inf, as in float32
        rounded = values.astype(np.float32).astype(np.float64)
    assert (rounded != values).any(), "some thresholds are not float32 values"
    splits.t.CopyFrom(numpy_helper.from_array(rounded, splits.t.name))
    return ModelBundle(
        onnx_model=model.SerializeToString(),
        model_text=bundle.model_text,
        encoder=bundle.encoder,
        calibration=bundle.calibration,
        features=bundle.features,
        metadata=bundle.metadata,
        threads=1,
    )


def test_a_float32_rounded_graph_is_still_refused(
    fitted: tuple[FittedTarget, ModelBundle],
) -> None:
    fit, bundle = fitted
    broken = _float32_splits(bundle)
    holdout = fit.training_set.X.iloc[fit.split.test].reset_index(drop=True)
    with pytest.raises(ParityError) as info:
        broken.check_parity(holdout)
    assert (info.value.worst["source"] == "threshold").any()
