"""An experiment in the simulator: each version acts on its own arm only, from the start date."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from experiments.experiment_eval import campaign_rule_versions, listing_discount_frames
from experiments.simulator import SimulationConfig, SimulationResult, simulate
from governance.experiments.assignment import assign
from governance.experiments.declaration import Experiment, experiment_from_dict

START = datetime(2026, 1, 12)


def _experiment(unit: str) -> Experiment:
    v1, v2 = campaign_rule_versions()
    return experiment_from_dict(
        {
            "id": f"fix-{unit}",
            "name": "deep-discount fix",
            "owner": "test",
            "control": v1.ref,
            "treatment": v2.ref,
            "unit": unit,
            "traffic_share": 0.8,
            "start": START,
            "end": datetime(2026, 2, 1),
            "primary_metric": "impressions",
            "mde": 0.05,
        }
    )


@pytest.fixture(scope="module", params=["seller", "item"])
def run(request: pytest.FixtureRequest) -> tuple[Experiment, SimulationResult]:
    experiment = _experiment(request.param)
    config = SimulationConfig(n_listings=1_500, days=21, seed=5, label_budget=0)
    result = simulate(
        config,
        strategies=list(campaign_rule_versions()),
        experiment=experiment,
        build_frames_fn=listing_discount_frames,
    )
    return experiment, result


def _treated(experiment: Experiment, result: SimulationResult, item_ids: pd.Series) -> np.ndarray:
    if experiment.unit.value == "item":
        units = item_ids.astype(str)
    else:
        sellers = result.tables["listings"].set_index("listing_id")["seller_id"]
        units = sellers.reindex(item_ids.to_numpy()).astype(str)
    return assign(experiment.id, units, traffic_share=experiment.traffic_share) == "treatment"


def test_each_version_acts_on_its_arm_only(run: tuple[Experiment, SimulationResult]) -> None:
    experiment, result = run
    d = result.tables["strategy_decisions"]
    treated = _treated(experiment, result, d["item_id"])
    during = pd.to_datetime(d["decided_at"]) >= START
    v2 = (d["strategy_version"] == 2).to_numpy()
    assert v2.any() and treated[v2].all()
    assert during[v2].all()
    v1_during = (~v2) & during.to_numpy()
    assert v1_during.any() and not treated[v1_during].any()


def test_control_decisions_lifted_in_the_treatment_arm(
    run: tuple[Experiment, SimulationResult],
) -> None:
    experiment, result = run
    d = result.tables["strategy_decisions"]
    before = (d["strategy_version"] == 1) & (pd.to_datetime(d["decided_at"]) < START)
    treated = _treated(experiment, result, d["item_id"]) & before.to_numpy()
    assert treated.any()
    lifted = pd.to_datetime(d.loc[treated, "lifted_at"])
    assert (lifted <= START).all()


def test_treatment_must_be_in_the_strategy_set() -> None:
    v1, _ = campaign_rule_versions()
    with pytest.raises(ValueError, match="not in the strategy set"):
        simulate(
            SimulationConfig(n_listings=300, days=7, seed=1, label_budget=0),
            strategies=[v1],
            experiment=_experiment("seller"),
            build_frames_fn=listing_discount_frames,
        )
