"""Training on a bring-your-own dataset: its feature build and audit labels as one target.

The feature frame of `govrisk features byo` is already point in time (each row's features as
of its own time), so every label gets its row as it is; the spec's governance section gives the
target (entity and policy) and the features' declaration travels with the data into the model
bundle, which scoring then validates against.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from features.byo import ByoDataset
from features.byo_labels import governance_of
from features.contract import validate_table
from features.tables import AUDIT_LABELS
from features.vocabulary import Entity
from training.dataset import (
    DatasetError,
    EntityData,
    assemble,
    feature_cutoff,
    frame_digest,
    prepare_labels,
)
from training.spec import ExperimentSpec, TargetSpec


def load_byo(spec: ExperimentSpec) -> tuple[ExperimentSpec, dict[Entity, EntityData], str]:
    """The spec with its target filled in, the labeled rows and a digest of the data."""
    from features.store import read_dataset

    if spec.dataset is None:
        raise DatasetError("the spec names no dataset (dataset: {path, labels})")
    dataset = read_dataset(spec.dataset.path)
    labels = validate_table(AUDIT_LABELS.name, pd.read_parquet(spec.dataset.labels))
    data = byo_entity_data(dataset, labels, spec=spec)
    gov = governance_of(dataset)
    target = TargetSpec(entity=gov.entity, policies=(gov.policy.value,))
    digest = frame_digest(data.features)
    return spec.model_copy(update={"targets": (target,)}), {gov.entity: data}, digest


def byo_entity_data(
    dataset: ByoDataset, labels: pd.DataFrame, *, spec: ExperimentSpec
) -> EntityData:
    """The dataset's labeled rows for its governance target (labels on other rows are an
    error: they belong to another dataset)."""
    gov = governance_of(dataset)
    prepared = prepare_labels(labels, entity=gov.entity, dedupe=spec.labels.dedupe)
    prepared = prepared.loc[prepared["policy"] == gov.policy.value].reset_index(drop=True)
    if prepared.empty:
        raise DatasetError(
            f"the labels hold no {gov.entity.value}/{gov.policy.value} verdicts; draw them "
            "with `govrisk labels draw --reveal` from this dataset"
        )
    unknown = ~prepared["item_id"].isin(set(dataset.frame["item_id"].astype(str)))
    if unknown.any():
        raise DatasetError(
            f"{int(unknown.sum())} labeled item(s) are not rows of dataset "
            f"{dataset.spec.name!r}, e.g. {prepared.loc[unknown, 'item_id'].iloc[0]!r}"
        )
    declared = {f.name: f.kind for f in dataset.feature_set.features}
    rows = dataset.frame[["item_id", *declared]].assign(item_id=lambda d: d["item_id"].astype(str))
    cadence = spec.labels.feature_cutoff
    cutoffs = np.unique(feature_cutoff(prepared["reviewed_at"], cadence=cadence).to_numpy())
    data = assemble(
        {pd.Timestamp(t): rows for t in cutoffs},
        prepared,
        entity=gov.entity,
        feature_types=declared,
        feature_selection=spec.features,
        cadence=cadence,
        slice_spec=spec.slices,
    )
    return replace(data, declaration=dataset.feature_set)
