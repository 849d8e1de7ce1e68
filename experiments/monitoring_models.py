"""Model-side monitoring measured against a simulated world's truth: violative view rate
intervals (coverage) and label-free precision (error), for `govrisk evaluate-monitoring`.

Training the real models per world would take most of the evaluation's time, so the scores
come from a stand-in model: the true violation probability, distorted the way a trained model
is (shrunk and shifted on the log-odds scale, with per-item noise), so the monitoring has to
recalibrate it with the audit labels, as it would a real model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from experiments.audit_eval.truth import truth_by_population
from experiments.simulator.simulation import SimulationResult
from features.vocabulary import Entity, Policy
from governance.audit.population import Population


@dataclass(frozen=True)
class StandInModel:
    """`sigmoid(slope * logit(p_true) + shift + noise * N(0, 1))` per item and policy."""

    slope: float = 0.7
    shift: float = 0.6
    noise: float = 0.7


def stand_in_predictions(items: pd.DataFrame, model: StandInModel, *, seed: int) -> pd.DataFrame:
    """(entity, item_id, policy, p) for every item and relevant policy of the ground truth."""
    rng = np.random.default_rng(seed)
    parts = []
    for policy in Policy:
        p = items[f"p_{policy.value}"].to_numpy(dtype=float)
        ok = np.isfinite(p)
        logit = np.log(np.clip(p[ok], 1e-6, 1 - 1e-6) / np.clip(1 - p[ok], 1e-6, 1))
        z = model.slope * logit + model.shift + model.noise * rng.standard_normal(int(ok.sum()))
        parts.append(
            pd.DataFrame(
                {
                    "entity": items.loc[ok, "entity"].astype(str).to_numpy(),
                    "item_id": items.loc[ok, "item_id"].astype(str).to_numpy(),
                    "policy": policy.value,
                    "p": 1.0 / (1.0 + np.exp(-z)),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def audit_populations(
    sim: SimulationResult, predictions: pd.DataFrame
) -> dict[tuple[Entity, Policy], Population]:
    """The audit's populations of the world, scored by `predictions` and recalibrated on its
    labels, as the monitor builds them."""
    from governance.monitoring.prevalence import model_populations

    return model_populations(sim.tables, sim.strategies, predictions)


def true_view_rate(
    populations: Mapping[tuple[Entity, Policy], Population], items: pd.DataFrame
) -> pd.DataFrame:
    """(policy, channel, vvr_true): the share of impressions on truly violating items."""
    truth = truth_by_population(populations, items)
    rows = []
    for key, pop in populations.items():
        for c, channel in enumerate(pop.channels):
            imp = pop.impressions[:, c]
            rows.append((pop.policy.value, channel, float(imp @ truth[key]), float(imp.sum())))
    df = pd.DataFrame(rows, columns=["policy", "channel", "violative", "impressions"])
    g = df.groupby(["policy", "channel"], as_index=False)[["violative", "impressions"]].sum()
    g = g[g["impressions"] > 0]
    return g.assign(vvr_true=g["violative"] / g["impressions"])[["policy", "channel", "vvr_true"]]


def true_precision(
    populations: Mapping[tuple[Entity, Policy], Population],
    items: pd.DataFrame,
    *,
    threshold: float,
) -> pd.DataFrame:
    """(entity, policy, precision_true) of each model at `threshold`."""
    truth = truth_by_population(populations, items)
    rows = []
    for (entity, policy), pop in populations.items():
        flagged = pop.p_model >= threshold
        value = float(truth[(entity, policy)][flagged].mean()) if flagged.any() else float("nan")
        rows.append((entity.value, policy.value, value))
    return pd.DataFrame(rows, columns=["entity", "policy", "precision_true"])
