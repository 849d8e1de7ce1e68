"""The importance-sampled audit slice: a Poisson sample with known inclusion probabilities.

Each unit's inclusion probability is proportional to the standard deviation of its label
residual times the square root of its weight in the variance of every estimate it enters
(precision and recall of each strategy, scaled by their target errors, and the exposure
-weighted error cost), with a floor so every unit can be drawn. This is Neyman allocation for
the difference estimator: labels go where the model is unsure and where they move estimates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from features.vocabulary import Entity, Policy
from governance.audit.estimators import EstimationError, FloatArray
from governance.audit.population import Population

SAMPLE_COLUMNS = ("entity", "item_id", "policy", "inclusion_probability", "importance")


def importance_scores(
    pop: Population,
    *,
    precision_target: float = 0.015,
    recall_target: float = 0.03,
    exposure_target: float = 0.10,
) -> FloatArray:
    """(N,) unnormalised sampling scores of one population's units."""
    f = pop.f
    eps = pop.flip_rate
    noise = eps * (1 - eps) / (1 - 2 * eps) ** 2
    sigma = np.sqrt(f * (1 - f) + noise)
    t_pos = max(float(f.sum()), 1.0)
    term = np.zeros(len(pop))
    for mask in pop.actioned.values():
        a = mask.any(axis=1).astype(np.float64)
        n_a = float(a.sum())
        if n_a == 0:
            continue
        recall = float((f * a).sum()) / t_pos
        term += a / n_a**2 / precision_target**2
        term += (a - recall) ** 2 / t_pos**2 / recall_target**2
    shown = pop.impressions.sum(axis=1)
    exp_total = float((f * shown).sum())
    if exp_total > 0:
        term += (shown / exp_total) ** 2 / exposure_target**2
    return np.asarray(sigma * np.sqrt(term), dtype=np.float64)


def inclusion_probabilities(scores: FloatArray, size: float, *, floor: float = 0.2) -> FloatArray:
    """Probabilities proportional to `scores`, capped at 1, summing to `size`, floored at
    `floor * size / N` so no unit is impossible to draw."""
    n = scores.shape[0]
    if n == 0 or size <= 0:
        return np.zeros(n)
    if size >= n:
        return np.ones(n)
    s = np.clip(np.nan_to_num(scores, nan=0.0), 0.0, None)
    base = floor * size / n
    s = s / s.sum() * (size * (1 - floor)) if s.sum() > 0 else np.full(n, size * (1 - floor) / n)
    pi = s + base
    # Water-filling: cap at 1 and redistribute the excess over the uncapped units.
    for _ in range(50):
        over = pi > 1.0
        if not over.any():
            break
        excess = float((pi[over] - 1.0).sum())
        pi[over] = 1.0
        free = ~over & (pi < 1.0)
        if not free.any():
            break
        pi[free] += excess * pi[free] / pi[free].sum()
    return np.asarray(np.clip(pi, 1e-12, 1.0), dtype=np.float64)


def audit_sample(
    populations: Mapping[tuple[Entity, Policy], Population],
    *,
    size: int,
    floor: float = 0.2,
    seed: int = 0,
    precision_target: float = 0.015,
    recall_target: float = 0.03,
    exclude_labeled: bool = False,
    boost: Mapping[tuple[Entity, Policy], FloatArray] | None = None,
) -> pd.DataFrame:
    """Draw the audit slice over every (entity, item, policy) unit; returns the drawn units with
    their inclusion probabilities (verdicts on them come back as `sampling=model_ranked` with
    that pi; see `ranking.SAMPLING_OF_KIND`). `boost` multiplies a population's scores per
    unit (watched categories are sampled more; the recorded probabilities keep estimates
    unbiased)."""
    if size < 0:
        raise EstimationError(f"audit sample size must be >= 0, got {size}")
    parts, scores = [], []
    for (entity, policy), pop in populations.items():
        s = importance_scores(pop, precision_target=precision_target, recall_target=recall_target)
        if exclude_labeled and len(pop.draws):
            s[pop.draws.position] = 0.0
        if boost is not None and (entity, policy) in boost:
            s = s * boost[(entity, policy)]
        parts.append(
            pd.DataFrame({"entity": entity.value, "item_id": pop.item_ids, "policy": policy.value})
        )
        scores.append(s)
    if not parts:
        return pd.DataFrame({c: pd.Series([], dtype="str") for c in SAMPLE_COLUMNS})
    units = pd.concat(parts, ignore_index=True)
    # One budget over every population: scores are on a common scale (variance per target^2).
    all_scores = np.concatenate(scores)
    pi = inclusion_probabilities(all_scores, float(size), floor=floor)
    rng = np.random.default_rng(seed)
    drawn = rng.random(pi.shape[0]) < pi
    out = units[drawn].copy()
    out["inclusion_probability"] = pi[drawn]
    out["importance"] = all_scores[drawn]
    return out.reset_index(drop=True)


def category_boost(
    populations: Mapping[tuple[Entity, Policy], Population],
    items: pd.DataFrame,
    categories: Sequence[str],
    factor: float,
) -> dict[tuple[Entity, Policy], FloatArray]:
    """Per population, `factor` for its units whose item (`items`: entity, item_id,
    category) is in `categories`, else 1; empty when nothing is boosted."""
    if factor == 1.0 or not categories:
        return {}
    hit = items[items["category"].isin(list(categories))]
    out: dict[tuple[Entity, Policy], FloatArray] = {}
    for (entity, policy), pop in populations.items():
        ids = set(hit.loc[hit["entity"].astype(str) == entity.value, "item_id"].astype(str))
        watched = np.fromiter((str(i) in ids for i in pop.item_ids), bool, len(pop))
        if watched.any():
            out[(entity, policy)] = np.where(watched, factor, 1.0)
    return out
