"""Model-side monitoring measured against a simulated world's truth: violative view rate
intervals (coverage) and label-free precision (error), for `govrisk evaluate-monitoring`.

Training the real models per world would take most of the evaluation's time, so the scores
come from a stand-in model built the way training builds one: a noisy score (the true
violation log-odds plus per-item noise, what features cannot see) calibrated by isotonic
regression on a labelled training sample (true labels of a random share of the items), then
shifted on the log-odds scale to play a model whose calibration has gone stale. The audit's
recalibration and labels have to cope with the shift; the label-free precision reads the
served probabilities as they are.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from experiments.audit_eval.truth import truth_by_population
from experiments.simulator.simulation import SimulationResult
from features.vocabulary import Entity, Policy
from governance.audit.population import Population
from training.spec import ANY


@dataclass(frozen=True)
class StandInModel:
    """Score `logit(p_true) + noise * N(0, 1)`, isotonic-calibrated on `train_items` labelled
    training items per entity and policy (drawn like the world's items, with their own
    outcomes), then shifted by `stale_shift` log-odds."""

    noise: float = 0.8
    train_items: int = 1_000
    stale_shift: float = 0.0


def stand_in_predictions(items: pd.DataFrame, model: StandInModel, *, seed: int) -> pd.DataFrame:
    """(entity, item_id, policy, p) for every item and relevant policy of the ground truth,
    and each entity's any-violation model (policy `any`, from `1 - prod(1 - p)`: the
    simulator draws an item's violations independently given their probabilities)."""
    rng = np.random.default_rng(seed)
    parts = []
    for (entity, g), policy in itertools.product(items.groupby("entity"), Policy):
        p_true = g[f"p_{policy.value}"].to_numpy(dtype=float)
        if np.isfinite(p_true).all():
            parts.append(_scored(str(entity), g, policy.value, _calibrated(p_true, model, rng)))
    for entity, g in items.groupby("entity"):
        p_any = 1 - np.prod(1 - _policy_columns(g, "p_"), axis=1)
        parts.append(_scored(str(entity), g, ANY, _calibrated(p_any, model, rng)))
    return pd.concat(parts, ignore_index=True)


def _scored(entity: str, g: pd.DataFrame, policy: str, p: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {"entity": entity, "item_id": g["item_id"].astype(str).to_numpy(), "policy": policy, "p": p}
    )


def _policy_columns(g: pd.DataFrame, prefix: str) -> npt.NDArray[np.float64]:
    """(items, policies) of the columns `prefix<policy>` defined for these items."""
    defined = [p.value for p in Policy if f"p_{p.value}" in g and g[f"p_{p.value}"].notna().all()]
    cols = [f"{prefix}{p}" for p in defined]
    return g[cols].to_numpy(dtype=float)


def _calibrated(
    p_true: npt.NDArray[np.float64],
    model: StandInModel,
    rng: np.random.Generator,
) -> npt.NDArray[np.float64]:
    from sklearn.isotonic import IsotonicRegression

    z = np.log(np.clip(p_true, 1e-6, 1 - 1e-6) / np.clip(1 - p_true, 1e-6, 1))
    z = z + model.noise * rng.standard_normal(len(z))
    # training's items are other items like these: fresh outcomes, not these items' truth
    train = rng.choice(len(z), model.train_items, replace=True)
    y_train = rng.random(model.train_items) < p_true[train]
    iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-4, y_max=1 - 1e-4)
    p = np.asarray(iso.fit(z[train], y_train).predict(z), dtype=np.float64)
    if model.stale_shift:
        p = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + model.stale_shift)))
    return p


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
    predictions: pd.DataFrame,
) -> pd.DataFrame:
    """(entity, policy, precision_true) of each model at `threshold`, the any-violation
    models (`predictions` of policy `any`) included."""
    truth = truth_by_population(populations, items)
    rows = []
    for (entity, policy), pop in populations.items():
        flagged = pop.p_model >= threshold
        rows.append((entity.value, policy.value, _share(truth[(entity, policy)][flagged])))
    anyv = predictions[predictions["policy"] == ANY].merge(
        any_violation(items), on=["entity", "item_id"], validate="one_to_one"
    )
    for any_entity, g in anyv.groupby("entity"):
        rows.append((str(any_entity), ANY, _share(g.loc[g["p"] >= threshold, "violates"])))
    return pd.DataFrame(rows, columns=["entity", "policy", "precision_true"])


def any_violation(items: pd.DataFrame) -> pd.DataFrame:
    """(entity, item_id, violates): whether each item truly violates at least one policy."""
    parts = [
        pd.DataFrame(
            {
                "entity": str(entity),
                "item_id": g["item_id"].astype(str).to_numpy(),
                "violates": _policy_columns(g, "violates_").astype(bool).any(axis=1),
            }
        )
        for entity, g in items.groupby("entity")
    ]
    return pd.concat(parts, ignore_index=True).drop_duplicates(["entity", "item_id"])


def true_strategy_precision(
    decisions: pd.DataFrame, policies: Mapping[str, str], items: pd.DataFrame
) -> pd.DataFrame:
    """(strategy_id, week_start, precision_true, precision_p_true): the share of the items each
    strategy first actioned in a week that truly violate its policy, and the mean of their
    true violation probabilities (what the share is without the outcomes' own chance)."""
    from governance.monitoring.strategy_precision import first_decisions

    first = first_decisions(decisions, policies).astype({"entity": str, "item_id": str})
    truth = items.assign(
        entity=items["entity"].astype(str), item_id=items["item_id"].astype(str)
    ).drop_duplicates(["entity", "item_id"])
    first = first.merge(truth, on=["entity", "item_id"], how="left", validate="many_to_one")
    y, p = np.zeros(len(first)), np.zeros(len(first))
    for policy in first["policy"].unique():
        on = (first["policy"] == policy).to_numpy()
        y[on] = first.loc[on, f"violates_{policy}"].to_numpy(dtype=float)
        p[on] = first.loc[on, f"p_{policy}"].to_numpy(dtype=float)
    g = first.assign(y=y, p=p).groupby(["strategy_id", "week_start"], as_index=False)
    out = g[["y", "p"]].mean()
    return out.rename(columns={"y": "precision_true", "p": "precision_p_true"})


def _share(flags: Any) -> float:
    """Share of true values, NaN when empty."""
    a = np.asarray(flags, dtype=float)
    return float(a.mean()) if len(a) else float("nan")
