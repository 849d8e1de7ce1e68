"""A strategy experiment inside the simulated marketplace: which items are in the treatment arm.

The arm of every item comes from `governance.experiments.unit_data.item_units` and
`governance.experiments.assignment.assign`, the functions the offline analysis uses, so the
nightly enforcement and the analysis agree on every unit. During [start, end) the control
version acts on every item outside the treatment arm and the treatment version on the
treatment arm only; on the first night of the experiment the control version's standing
decisions on treatment-arm items are lifted (the candidate takes over there). Outside the
window the control version acts everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from experiments.simulator.exposure import ENTITY_CODES
from features.vocabulary import Entity

if TYPE_CHECKING:
    from experiments.simulator.world import World
    from governance.experiments.declaration import Experiment


@dataclass(frozen=True)
class ExperimentArms:
    """The two versions an experiment compares and, per entity code, the treatment-arm mask."""

    experiment_id: str
    control: str
    treatment: str
    start_us: int
    end_us: int
    #: Entity code (ENTITY_CODES index) -> bool per item: in the treatment arm.
    treated: dict[int, np.ndarray]

    def active(self, t0_us: int) -> bool:
        """Whether the experiment runs on the night starting at t0."""
        return self.start_us <= t0_us < self.end_us


def _us(moment: pd.Timestamp) -> int:
    return int(moment.value // 1_000)


def experiment_arms(world: World, experiment: Experiment) -> ExperimentArms:
    """Assign every simulated item to an arm of `experiment` (its unit, share and id)."""
    from governance.experiments.assignment import assign
    from governance.experiments.unit_data import item_units
    from governance.experiments.vocabulary import Arm, RandomisationUnit

    tables = {
        "listings": world.listings.table,
        "videos": world.videos.table,
        "live_sessions": world.lives.table,
    }
    mapping = item_units(tables, experiment.unit)
    treated: dict[int, np.ndarray] = {}
    for code, entity in enumerate(ENTITY_CODES):
        items = world.items(entity)
        if entity is Entity.SELLER:
            if experiment.unit is RandomisationUnit.CATEGORY:
                # a seller spans categories: seller strategies cannot be split by category
                units = np.asarray([], dtype=object)
                treated[code] = np.zeros(items.n, dtype=bool)
                continue
            units = items.table["seller_id"].astype(str).to_numpy()
        else:
            ids = items.table.iloc[:, 0].astype(str).to_numpy()
            part = mapping[mapping["entity"] == entity.value].set_index("item_id")["unit_id"]
            units = part.reindex(ids).to_numpy(dtype=object)
        arms = assign(experiment.id, units, traffic_share=experiment.traffic_share)
        treated[code] = arms == Arm.TREATMENT.value
    return ExperimentArms(
        experiment_id=experiment.id,
        control=experiment.control,
        treatment=experiment.treatment,
        start_us=_us(pd.Timestamp(experiment.start)),
        end_us=_us(pd.Timestamp(experiment.end)),
        treated=treated,
    )
