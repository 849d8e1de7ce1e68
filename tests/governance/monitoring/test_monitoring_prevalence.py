from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.vocabulary import Entity, Policy
from governance.audit.estimators import LabelDraws
from governance.audit.population import Population
from governance.monitoring.prevalence import label_free_precision, violative_view_rate
from governance.monitoring.tables import MODEL_PRECISION, VIOLATIVE_VIEW_RATE, check_frame

KEY = (Entity.LISTING, Policy.COUNTERFEIT)


def _population(
    seed: int, *, bias: float, n: int = 3000, labels: int = 400
) -> tuple[Population, np.ndarray]:
    """Items with true probability p; the model says p * bias; a simple random audit."""
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-(rng.normal(size=n) * 1.5 - 2.5)))
    y = rng.random(n) < p
    shown = rng.lognormal(3, 1, (n, 2))
    drawn = rng.choice(n, labels, replace=False)
    f = np.clip(p * bias, 0, 1)
    draws = LabelDraws(
        position=drawn,
        y_obs=y[drawn].astype(float),
        n_reviews=np.ones(labels, dtype=np.int64),
        inclusion_probability=np.full(labels, labels / n),
        design=np.full(labels, "random", dtype=object),
        f_label=f[drawn],
    )
    pop = Population(
        entity=Entity.LISTING,
        policy=Policy.COUNTERFEIT,
        item_ids=np.array([f"L{i}" for i in range(n)], dtype=object),
        p_model=p,
        f=f,
        channels=("shop_tab", "campaigns"),
        eligible=np.ones((n, 2), dtype=bool),
        impressions=shown,
        gmv=shown / 10,
        lost_impressions=np.zeros((n, 2)),
        lost_gmv=np.zeros((n, 2)),
        actioned={},
        strategy_channels={},
        draws=draws,
        frames={"random": np.ones(n, dtype=bool)},
        flip_rate=1e-6,
    )
    return pop, y


def test_view_rate_interval_covers_the_truth_when_the_model_is_biased() -> None:
    covered = []
    for seed in range(12):
        pop, y = _population(seed, bias=0.5)
        table = violative_view_rate({KEY: pop})
        assert check_frame(table, VIOLATIVE_VIEW_RATE) == []
        truth = (pop.impressions * y[:, None]).sum(axis=0) / pop.impressions.sum(axis=0)
        low, high = table["vvr_low"].to_numpy(), table["vvr_high"].to_numpy()
        covered.extend((low <= truth) & (truth <= high))
        # the labels pull the model's halved rate back toward the truth
        model_err = np.abs(table["vvr_model"].to_numpy() - truth)
        assert (np.abs(table["vvr"].to_numpy() - truth) < model_err).mean() >= 0.5
    assert np.mean(covered) >= 0.85


def test_label_free_precision_is_the_mean_calibrated_probability_of_the_flagged() -> None:
    pop, y = _population(0, bias=1.0, n=20000)
    table = label_free_precision({KEY: pop}, threshold=0.5)
    assert check_frame(table, MODEL_PRECISION) == []
    row = table.iloc[0]
    flagged = pop.p_model >= 0.5
    assert row["flagged"] == flagged.sum()
    assert row["expected_precision"] == pytest.approx(pop.f[flagged].mean())
    assert abs(row["expected_precision"] - y[flagged].mean()) < 0.05


def test_any_violation_models_are_read_from_the_predictions() -> None:
    pop, _ = _population(1, bias=1.0, n=500, labels=50)
    p = np.array([0.2, 0.6, 0.9, 0.7, 0.1])
    predictions = pd.DataFrame(
        {
            "entity": ["video"] * 3 + ["listing"] * 2 + ["video"],
            "item_id": ["V1", "V2", "V3", "L1", "L2", "V1"],
            "policy": ["any"] * 5 + ["counterfeit"],
            "p": [*p, 0.99],
        }
    )
    table = label_free_precision({KEY: pop}, threshold=0.5, predictions=predictions)
    assert check_frame(table, MODEL_PRECISION) == []
    anyv = table[table["policy"] == "any"].set_index("entity")
    assert list(anyv.index) == ["listing", "video"]
    assert anyv.loc["video", "flagged"] == 2 and anyv.loc["video", "items"] == 3
    assert anyv.loc["video", "expected_precision"] == pytest.approx(0.75)
    assert anyv.loc["listing", "expected_precision"] == pytest.approx(0.7)
    sd = np.sqrt(0.6 * 0.4 + 0.9 * 0.1) / 2
    assert anyv.loc["video", "expected_precision_sd"] == pytest.approx(sd)
    # the per-policy model comes from its population, not from the predictions' rows
    assert table[table["policy"] == "counterfeit"]["items"].tolist() == [500]


def test_bad_confidence_and_threshold_are_refused() -> None:
    pop, _ = _population(0, bias=1.0, n=200, labels=20)
    with pytest.raises(ValueError, match="confidence"):
        violative_view_rate({KEY: pop}, confidence=1.5)
    with pytest.raises(ValueError, match="threshold"):
        label_free_precision({KEY: pop}, threshold=0.0)


def test_labelled_precision_covers_the_truth_and_exposes_a_stale_model() -> None:
    """The served probabilities overstate the odds 3x (calibration gone stale); the audit's
    recalibrated f is off the other way. The labelled precision of the flagged items covers
    their realised precision anyway, and the stale expectation falls outside its interval."""
    covered, exposed = [], []
    for seed in range(20):
        pop, y = _population(seed, bias=0.7, n=6000, labels=1200)
        odds = 3 * pop.p_model / (1 - pop.p_model)
        stale = Population(**{**pop.__dict__, "p_model": odds / (1 + odds)})
        row = label_free_precision({KEY: stale}, threshold=0.5).iloc[0]
        assert check_frame(label_free_precision({KEY: stale}, threshold=0.5), MODEL_PRECISION) == []
        truth = y[stale.p_model >= 0.5].mean()
        covered.append(row["labelled_low"] <= truth <= row["labelled_high"])
        exposed.append(not row["labelled_low"] <= row["expected_precision"] <= row["labelled_high"])
        assert 0 < row["labels_flagged"] < 1200
    assert np.mean(covered) >= 0.85
    assert np.mean(exposed) >= 0.8


def test_a_model_without_verdicts_on_its_flagged_items_has_no_labelled_check() -> None:
    pop, _ = _population(0, bias=1.0, n=3000, labels=300)
    unlabelled = pop.p_model.copy()
    unlabelled[pop.draws.position] = 0.0  # every labelled item scores below the threshold
    row = label_free_precision(
        {KEY: Population(**{**pop.__dict__, "p_model": unlabelled})}, threshold=0.5
    ).iloc[0]
    assert row["flagged"] > 0 and row["labels_flagged"] == 0
    assert np.isnan(row["labelled_precision"]) and np.isnan(row["labelled_low"])


def test_no_labelled_check_where_the_verdicts_do_not_reach_the_flagged_items() -> None:
    """Verdicts drawn only from half of the flagged items (a targeted design whose frame is
    that half): the other half keeps the model's own total, so there is no check."""
    pop, _ = _population(1, bias=1.0, n=4000, labels=300)
    flagged = np.flatnonzero(pop.p_model >= 0.5)
    frame = np.zeros(len(pop.p_model), dtype=bool)
    frame[flagged[::2]] = True
    drawn = flagged[::2][:60]
    draws = LabelDraws(
        position=drawn,
        y_obs=np.ones(len(drawn)),
        n_reviews=np.ones(len(drawn), dtype=np.int64),
        inclusion_probability=np.full(len(drawn), len(drawn) / frame.sum()),
        design=np.full(len(drawn), "targeted", dtype=object),
        f_label=pop.f[drawn],
    )
    half = Population(**{**pop.__dict__, "draws": draws, "frames": {"targeted": frame}})
    row = label_free_precision({KEY: half}, threshold=0.5).iloc[0]
    assert row["labels_flagged"] == len(drawn) and np.isnan(row["labelled_precision"])
    whole = frame | (pop.p_model >= 0.5)  # the same verdicts, a frame of every flagged item
    reached = Population(**{**half.__dict__, "frames": {"targeted": whole}})
    assert not np.isnan(
        label_free_precision({KEY: reached}, threshold=0.5).iloc[0]["labelled_precision"]
    )
