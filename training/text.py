"""Text scores for stacking: one n-gram text model per (entity, text policy), cross-fitted.

For each text policy with enough labels, the entity's labels of that policy reviewed before the
holdout weeks train a `models.text_model.TextModel` (inverse-inclusion weights, trimmed like
the LightGBM models'). Its log-odds become the declared feature
`<entity>_text_score_<policy>` of every feature row:

- an item with a training label of that policy gets an **out-of-fold** score: items are cut
  into `text.folds` folds by a hash of their id, and each fold is scored by a model trained on
  the other folds' labels, so no row's feature has seen its own label (stacking without
  leakage);
- every other item (holdout weeks, items labelled for other policies only) gets the score of
  the model trained on all training labels, the one the bundle serves.

With `text.vocabulary: corpus` (default) the n-gram vocabularies and idf come from every
document of the entity (no labels), so rarity is the population's and `text.min_df` drops
n-grams (brand names, one-off wording) too rare to generalise from a few hundred labels; on
the simulated marketplace this lifted the text-only PR-AUC of every policy (see the
benchmark in docs/training.md).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from features.text_source import TEXT_POLICIES, text_fields_of, text_score_names, text_source
from models.text_model import TextModel, TextModelError
from training.dataset import EntityData, _normalised, week_start
from training.spec import FeatureSelection, LabelSpec, SplitSpec, TextSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextScores:
    """The entity data with text score columns added, and the models that serve them."""

    data: EntityData
    models: dict[str, TextModel]  # feature name -> model trained on all training labels
    fields: tuple[str, ...] = ()  # raw text fields the models read, in document order
    skipped: dict[str, str] = field(default_factory=dict)  # feature name -> why
    n_labels: dict[str, int] = field(default_factory=dict)


def item_folds(item_ids: np.ndarray, *, n_folds: int) -> np.ndarray:
    """Stable fold 0..n_folds-1 of each item id (crc32 of its UTF-8 bytes)."""
    return np.array([zlib.crc32(str(i).encode()) % n_folds for i in item_ids], dtype=np.int64)


def holdout_start(data: EntityData, *, split: SplitSpec) -> pd.Timestamp | None:
    """First holdout week of the entity's labels (None when too few weeks to hold any out)."""
    weeks = np.sort(week_start(data.labels["reviewed_at"]).unique())
    if len(weeks) <= split.test_weeks:
        return None
    return pd.Timestamp(weeks[-split.test_weeks])


def add_text_scores(
    data: EntityData,
    documents: pd.Series,
    *,
    text: TextSpec,
    labels: LabelSpec,
    split: SplitSpec,
    selection: FeatureSelection | None = None,
    fields: pd.DataFrame | None = None,
) -> TextScores:
    """Add `<entity>_text_score_<policy>` columns to `data` (see the module docstring).

    `documents` maps item_id -> the item's document (`TextSource.documents`); items without
    one read as empty text. `fields` (indexed by item_id, one column per text field) rides
    along in the feature rows so a served bundle can be scored on them (the champion); by
    default the document itself stands in as the first field. Score features the spec's
    `features` selection excludes are not built.
    """
    source = text_source(data.entity)
    if source is None:
        return TextScores(data=data, models={})
    cut = holdout_start(data, split=split)
    item_ids = data.features["item_id"].astype(str).to_numpy()
    docs = documents.reindex(pd.Index(item_ids)).to_numpy(dtype=object)
    docs = np.array([d if isinstance(d, str) else "" for d in docs], dtype=object)
    folds = item_folds(item_ids, n_folds=text.folds)
    # Every document of the entity (not only the labelled rows'): the unlabelled corpus.
    all_docs = np.array(
        [d if isinstance(d, str) else "" for d in documents.to_numpy(dtype=object)], dtype=object
    )
    features = data.features.copy()
    kinds = dict(data.feature_types)
    models: dict[str, TextModel] = {}
    skipped: dict[str, str] = {}
    counts: dict[str, int] = {}
    wanted = set((selection or FeatureSelection()).select(text_score_names(data.entity)))
    for policy in TEXT_POLICIES:
        name = source.score_feature(policy).name
        if name not in wanted:
            continue
        rows = data.labels.loc[data.labels["policy"] == policy]
        if cut is not None:
            rows = rows.loc[rows["reviewed_at"] < cut]
        counts[name] = len(rows)
        y = rows["y"].to_numpy(dtype=np.float64)
        if (y == 1).sum() < text.min_positives or (y == 0).sum() < text.min_positives:
            skipped[name] = (
                f"{int((y == 1).sum())} violating / {int((y == 0).sum())} clean {policy} labels "
                f"before the holdout; text.min_positives={text.min_positives} of each"
            )
            continue
        if labels.weighting == "inverse_inclusion":
            raw = 1.0 / rows["inclusion_probability"].to_numpy(dtype=np.float64)
        else:
            raw = np.ones(len(rows))
        weight = _normalised(raw, max_weight=labels.max_weight)
        label_rows = rows["row"].to_numpy()
        label_docs = docs[label_rows]
        label_folds = folds[label_rows]
        corpus = all_docs if text.vocabulary == "corpus" else None
        try:
            full = _model(text).fit(label_docs, y, sample_weight=weight, corpus=corpus)
        except TextModelError as exc:
            skipped[name] = str(exc)
            continue
        scores = full.decision_function(docs)
        labelled_items = set(item_ids[label_rows])
        in_training = np.array([i in labelled_items for i in item_ids])
        for k in range(text.folds):
            train = label_folds != k
            target = in_training & (folds == k)
            if not target.any():
                continue
            if len(np.unique(y[train])) < 2:
                scores[target] = np.nan  # a fold without both classes: say "unknown"
                continue
            fold_model = _model(text).fit(
                label_docs[train], y[train], sample_weight=weight[train], corpus=corpus
            )
            scores[target] = fold_model.decision_function(docs[target])
        features[name] = scores
        kinds[name] = "numeric"
        models[name] = full
        log.info("%s: text model on %d labels, %d n-grams", name, len(rows), full.n_features)
    if models:
        for k, column in enumerate(source.fields):
            if fields is not None and column in fields.columns:
                values = fields[column].reindex(pd.Index(item_ids)).to_numpy(dtype=object)
            else:
                values = docs if k == 0 else np.full(len(docs), "", dtype=object)
            features[column] = values
    out = replace(data, features=features, feature_types=kinds)
    return TextScores(
        data=out, models=models, fields=source.fields, skipped=skipped, n_labels=counts
    )


def _model(text: TextSpec) -> TextModel:
    return TextModel(
        word_ngrams=text.word_ngrams,
        char_ngrams=text.char_ngrams,
        min_df=text.min_df,
        max_word_features=text.max_word_features,
        max_char_features=text.max_char_features,
        C=text.C,
    )


def entity_documents(tables: Mapping[str, pd.DataFrame], entity: str) -> pd.Series | None:
    """item_id -> document of the entity's text source from contract tables (None: no text)."""
    source = text_source(entity)
    if source is None or source.table not in tables:
        return None
    return source.documents(tables[source.table])


def entity_fields(tables: Mapping[str, pd.DataFrame], entity: str) -> pd.DataFrame | None:
    """The entity's raw text fields indexed by item_id (None: no text)."""
    return text_fields_of(entity, tables)
