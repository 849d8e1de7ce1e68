"""False positives and false negatives per arm, estimated from the audit labels falling in each.

The random audit is a simple random sample of each entity's items (`sampling == random`, one
inclusion probability `pi = n / N` per entity), labelled on every policy: an unbiased design
over both arms. For the experiment's strategy (entity, policy), an item is *actioned* in the
window when a decision of that strategy id (any version) was in force during it; a false
positive is an actioned item judged not violating, a false negative a violating item not
actioned. Each arm's rate is a domain total over its known number of items, and the difference
treatment - control is one Horvitz-Thompson estimate of the per-item contrast

    z_i = [i in T] e_i / N_T - [i in C] e_i / N_C,    delta = sum_sample z_i / pi,

with the without-replacement SRS variance N^2 (1 - n/N) s_z^2 / n. Verdicts are taken as
given (reviewer noise is not corrected here; the audit's estimators do that).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from features.tables import published_at
from features.vocabulary import Entity, Sampling, Verdict
from governance.experiments.assignment import assign
from governance.experiments.declaration import Experiment
from governance.experiments.unit_data import item_units
from governance.experiments.vocabulary import Arm


@dataclass(frozen=True)
class ErrorRateEffect:
    """One error kind's rate per item in each arm and their difference with an interval."""

    kind: str
    control: float
    treatment: float
    difference: float
    low: float
    high: float
    n_labels: int


def error_rate_effects(
    tables: Mapping[str, pd.DataFrame],
    experiment: Experiment,
    *,
    entity: str,
    policy: str,
    confidence: float = 0.95,
) -> dict[str, ErrorRateEffect]:
    """`fp` and `fn` rates per item in each arm from the random audit (see the module doc)."""
    for name in ("audit_labels", "strategy_decisions", "listings", "videos", "live_sessions"):
        if name not in tables:
            raise ValueError(f"table {name} is missing; error rates per arm need it")
    if entity == "seller":
        raise ValueError("error rates per arm cover listing, video and live strategies only")
    labels = tables["audit_labels"]
    labels = labels[
        (labels["sampling"] == Sampling.RANDOM.value)
        & (labels["entity"] == entity)
        & (labels["policy"] == policy)
    ]
    mapping = item_units(tables, experiment.unit)
    mapping = mapping[mapping["entity"] == entity]
    created = published_at(tables, Entity(entity)).reindex(mapping["item_id"].to_numpy())
    in_window = (pd.to_datetime(created) < experiment.end).to_numpy()
    arms_all = assign(experiment.id, mapping["unit_id"], traffic_share=experiment.traffic_share)
    arm_of = pd.Series(np.where(in_window, arms_all, Arm.OUTSIDE.value), index=mapping["item_id"])
    n_arm = {a: int((arm_of == a.value).sum()) for a in (Arm.CONTROL, Arm.TREATMENT)}

    strategy_id = experiment.treatment.split("@")[0]
    d = tables["strategy_decisions"]
    d = d[(d["strategy_id"] == strategy_id) & (d["entity"] == entity)]
    lifted = pd.to_datetime(d["lifted_at"])
    in_force = (pd.to_datetime(d["decided_at"]) < experiment.end) & (
        lifted.isna() | (lifted > experiment.start)
    )
    actioned = set(d.loc[in_force, "item_id"].astype(str))

    items = labels["item_id"].astype(str)
    arm = arm_of.reindex(items.to_numpy()).fillna(Arm.OUTSIDE.value).to_numpy()
    hit = items.isin(actioned).to_numpy()
    violating = (labels["verdict"] == Verdict.VIOLATING.value).to_numpy()
    pi = labels["inclusion_probability"].to_numpy(dtype=np.float64)
    errors = {"fp": hit & ~violating, "fn": ~hit & violating}
    return {
        kind: _compute_effect(kind, e, arm, pi, n_arm, confidence) for kind, e in errors.items()
    }


def _compute_effect(
    kind: str,
    error: np.ndarray,
    arm: np.ndarray,
    pi: np.ndarray,
    n_arm: dict[Arm, int],
    confidence: float,
) -> ErrorRateEffect:
    n = int(error.size)
    nan = math.nan
    if n < 2 or min(n_arm.values()) == 0:
        return ErrorRateEffect(kind, nan, nan, nan, nan, nan, n)
    treated = arm == Arm.TREATMENT.value
    control = arm == Arm.CONTROL.value
    rate_t = float((error & treated) @ (1 / pi)) / n_arm[Arm.TREATMENT]
    rate_c = float((error & control) @ (1 / pi)) / n_arm[Arm.CONTROL]
    z = (error & treated) / n_arm[Arm.TREATMENT] - (error & control) / n_arm[Arm.CONTROL]
    frame_size = float(np.mean(1 / pi)) * n  # N = n / pi under simple random sampling
    fpc = max(0.0, 1 - n / frame_size)
    se = frame_size * math.sqrt(fpc * float(np.var(z, ddof=1)) / n)
    half = NormalDist().inv_cdf(0.5 + confidence / 2) * se
    diff = rate_t - rate_c
    return ErrorRateEffect(kind, rate_c, rate_t, diff, diff - half, diff + half, n)
