"""The ground truth of each population, item by item."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.vocabulary import Entity, Policy
from governance.audit.population import Population


def truth_vector(pop: Population, items: pd.DataFrame) -> np.ndarray:
    """(N,) true violation of each population unit, from ground_truth items."""
    col = f"violates_{pop.policy.value}"
    sub = items[items["entity"].astype(str) == pop.entity.value]
    s = sub.drop_duplicates("item_id").set_index(sub["item_id"].astype(str))[col]
    out = s.reindex(pd.Index(pop.item_ids.astype(str))).to_numpy()
    if pd.isna(out).any():
        missing = int(pd.isna(out).sum())
        raise ValueError(f"ground truth lacks {missing} {pop.entity.value} items of the audit")
    return np.asarray(out, dtype=bool)


def truth_by_population(
    populations: Mapping[tuple[Entity, Policy], Population], items: pd.DataFrame
) -> dict[tuple[Entity, Policy], np.ndarray]:
    """`truth_vector` for every population."""
    return {k: truth_vector(p, items) for k, p in populations.items()}
