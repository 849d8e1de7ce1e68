"""Text scores for stacking: out-of-fold without leakage, selection, served model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from features.vocabulary import Entity
from training.dataset import EntityData
from training.spec import FeatureSelection, LabelSpec, SplitSpec, TextSpec
from training.text import add_text_scores, holdout_start, item_folds

SCORE = "listing_text_score_counterfeit"
_WORDS = ("soft", "cotton", "shirt", "leather", "wallet", "garden", "hose", "kids", "puzzle")
_BAD = ("replica", "r3plica", "1:1 mirror", "dupe")


def documents_for(data: EntityData, *, seed: int = 0) -> pd.Series:
    """item_id -> text; counterfeit-violating items usually carry a counterfeit phrase."""
    rng = np.random.default_rng(seed)
    labels = data.labels.loc[data.labels["policy"] == "counterfeit"]
    bad = set(labels.loc[labels["y"] == 1, "item_id"])
    items = data.features["item_id"].astype(str).unique()
    docs = []
    for item in items:
        words = list(rng.choice(_WORDS, size=4))
        if (item in bad and rng.random() < 0.8) or rng.random() < 0.03:
            words.insert(1, str(rng.choice(_BAD)))
        docs.append(" ".join(words))
    return pd.Series(docs, index=items, dtype=object)


def _scores(data: EntityData, docs: pd.Series, **text: object) -> pd.DataFrame:
    scored = add_text_scores(
        data,
        docs,
        text=TextSpec(folds=3, min_positives=5, **text),  # type: ignore[arg-type]
        labels=LabelSpec(max_weight=5.0),
        split=SplitSpec(test_weeks=2),
    )
    return scored.data.features


def test_adds_declared_score_columns_and_models(entity_data: EntityData):
    docs = documents_for(entity_data)
    scored = add_text_scores(
        entity_data,
        docs,
        text=TextSpec(folds=3, min_positives=5),
        labels=LabelSpec(),
        split=SplitSpec(test_weeks=2),
    )
    assert SCORE in scored.models
    assert scored.data.feature_types[SCORE] == "numeric"
    assert scored.data.feature_names[-1].startswith("listing_text_score_")
    assert scored.fields == ("title", "description")
    features = scored.data.features
    y = entity_data.labels.query("policy == 'counterfeit'").set_index("row")["y"]
    s = features[SCORE].to_numpy()[y.index.to_numpy()]
    assert np.nanmean(s[y.to_numpy() == 1]) > np.nanmean(s[y.to_numpy() == 0]) + 1.0


def test_training_rows_never_see_their_own_label(entity_data: EntityData):
    """Flipping every label of one fold's items leaves those items' own scores unchanged."""
    docs = documents_for(entity_data)
    before = _scores(entity_data, docs)
    labels = entity_data.labels
    cut = holdout_start(entity_data, split=SplitSpec(test_weeks=2))
    fold = item_folds(labels["item_id"].astype(str).to_numpy(), n_folds=3)
    flip = (labels["policy"] == "counterfeit") & (fold == 0) & (labels["reviewed_at"] < cut)
    flipped = labels.assign(y=np.where(flip, 1 - labels["y"], labels["y"]))
    after = _scores(replace(entity_data, labels=flipped), docs)
    rows = labels.loc[flip, "row"].to_numpy()
    assert len(rows) > 10
    np.testing.assert_array_equal(before[SCORE].to_numpy()[rows], after[SCORE].to_numpy()[rows])
    others = labels.loc[~flip & (labels["policy"] == "counterfeit"), "row"].to_numpy()
    assert not np.array_equal(before[SCORE].to_numpy()[others], after[SCORE].to_numpy()[others])


def test_holdout_rows_get_the_served_model(entity_data: EntityData):
    docs = documents_for(entity_data)
    scored = add_text_scores(
        entity_data,
        docs,
        text=TextSpec(folds=3, min_positives=5),
        labels=LabelSpec(),
        split=SplitSpec(test_weeks=2),
    )
    cut = holdout_start(entity_data, split=SplitSpec(test_weeks=2))
    labels = entity_data.labels
    trained_items = set(
        labels.loc[labels["reviewed_at"] < cut].query("policy == 'counterfeit'")["item_id"]
    )
    features = scored.data.features
    served = ~features["item_id"].isin(trained_items)
    model = scored.models[SCORE]
    item_docs = docs.reindex(features.loc[served, "item_id"].astype(str)).to_numpy()
    np.testing.assert_array_equal(
        features.loc[served, SCORE].to_numpy(), model.decision_function(item_docs)
    )


def test_selection_and_thin_policies_skip(entity_data: EntityData):
    docs = documents_for(entity_data)
    scored = add_text_scores(
        entity_data,
        docs,
        text=TextSpec(folds=3, min_positives=5),
        labels=LabelSpec(),
        split=SplitSpec(test_weeks=2),
        selection=FeatureSelection(exclude=(SCORE,)),
    )
    assert SCORE not in scored.data.features.columns
    thin = add_text_scores(
        entity_data,
        docs,
        text=TextSpec(folds=3, min_positives=100_000),
        labels=LabelSpec(),
        split=SplitSpec(test_weeks=2),
    )
    assert not thin.models and SCORE in thin.skipped


def test_entities_without_text_are_unchanged(entity_data: EntityData):
    seller = replace(entity_data, entity=Entity.SELLER)
    scored = add_text_scores(
        seller, pd.Series(dtype=object), text=TextSpec(), labels=LabelSpec(), split=SplitSpec()
    )
    assert scored.data is seller and not scored.models


@pytest.mark.parametrize("n_folds", [2, 5])
def test_item_folds_are_stable(n_folds: int):
    ids = np.array([f"L{i}" for i in range(200)])
    folds = item_folds(ids, n_folds=n_folds)
    assert set(folds) == set(range(n_folds))
    np.testing.assert_array_equal(folds, item_folds(ids[::-1], n_folds=n_folds)[::-1])
