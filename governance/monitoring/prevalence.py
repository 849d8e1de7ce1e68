"""Violative view rate per channel and label-free model precision, from the audit's populations.

**Violative view rate** (VVR): the share of a channel's impressions that went to items
violating a policy. Prediction-powered: the calibrated model probability of every item
carries the estimate (`sum imp * f`), and the audit's design-weighted labels correct it
(`sum w imp (y - f)` over labels, w the inverse inclusion probability, reviewer noise
removed), which is the audit's difference estimator (`estimate_totals`) with the channel
impressions as domains. Its interval holds however wrong the model is; a better model only
narrows it. (The audit's composite estimator, which shrinks the corrections toward the model,
gave intervals a quarter as wide but covered the truth in only 69% of channels x policies on
the development worlds, so it is not used here.) Entities add up within a channel
(independent samples).

**Label-free precision** (confidence-based performance estimation, CBPE): the precision a
model has at its operating point is, if its probabilities are calibrated, the mean
probability of the items it flags there, so it can be followed every day without waiting
for labels. It reads the model's own (training-calibrated) probabilities, not the audit's
recalibration, so that it stays label-free; a model whose calibration went stale shows as a
gap between this and the audit's label-based precision, which each per-policy row carries
where the verdicts reach the flagged items (`labelled_precision`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from features.vocabulary import Entity, Policy
from governance.audit.estimators import TotalEstimate, estimate_totals, interval
from governance.audit.population import Population
from governance.monitoring.tables import (
    MODEL_PRECISION,
    VIOLATIVE_VIEW_RATE,
    conform,
    empty_frame,
)
from governance.strategy import Strategy
from training.spec import ANY

log = logging.getLogger(__name__)


def model_populations(
    tables: Mapping[str, pd.DataFrame],
    strategies: Sequence[Strategy],
    predictions: pd.DataFrame,
) -> dict[tuple[Entity, Policy], Population]:
    """The audit's populations (every item of each audited entity x policy, with exposure and
    labels), scored by `predictions` (entity, item_id, policy, p) and recalibrated on the
    audit labels as `govrisk audit` does (`policy_scores` fills policies without a model)."""
    from governance.audit.pipeline import audited_strategies, flip_rate_for
    from governance.audit.population import build_populations
    from governance.audit.settings import get_settings

    cfg = get_settings()
    audited = audited_strategies(strategies, tables["strategy_decisions"])
    flip_rate, _source = flip_rate_for(tables["audit_labels"], cfg)
    pairs = {(s.entity, s.policy) for s in audited}
    return build_populations(
        tables,
        audited,
        policy_scores(predictions, pairs, tables["audit_labels"]),
        flip_rate=flip_rate,
        design_frames=cfg.design_frames,
        calibration="refit",
        use_oof=False,
    )


def policy_scores(
    predictions: pd.DataFrame,
    pairs: set[tuple[Entity, Policy]],
    labels: pd.DataFrame,
) -> pd.DataFrame:
    """`predictions` with every (entity, policy) of `pairs` scored: by its own model's rows,
    else by the entity's any-violation model (policy `any`), else by the labels' weighted
    prevalence on every item the entity's rows name. The populations recalibrate a borrowed
    score to the policy's labels and the labels correct it, so violative view rates stay
    valid (only wider); label-free precision reads only a policy's own model."""
    from governance.audit.pipeline import label_prevalence

    entity_of = predictions["entity"].astype(str)
    have = set(zip(entity_of, predictions["policy"].astype(str), strict=True))
    parts = [predictions]
    for entity, policy in sorted(pairs):
        if (entity.value, policy.value) in have:
            continue
        rows = predictions[entity_of == entity.value]
        if (entity.value, ANY) in have:
            rows = rows[rows["policy"].astype(str) == ANY]
            parts.append(rows.assign(policy=policy.value))
            source = "its entity's any-violation model"
        elif len(rows):
            p = label_prevalence(labels, entity, policy)
            parts.append(rows.drop_duplicates("item_id").assign(policy=policy.value, p=p))
            source = f"its label prevalence {p:.3f}"
        else:
            continue
        log.info("%s/%s has no model of its own: scored by %s", entity.value, policy.value, source)
    return pd.concat(parts, ignore_index=True)


def violative_view_rate(
    populations: Mapping[tuple[Entity, Policy], Population], *, confidence: float = 0.95
) -> pd.DataFrame:
    """Table `violative_view_rate`: per policy and channel, the share of impressions on
    violating items with its interval."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    pops = {k: p for k, p in populations.items() if len(p)}
    if not pops:
        return empty_frame(VIOLATIVE_VIEW_RATE)
    parts = [_entity_totals(pop, _design_totals(pop)) for pop in pops.values()]
    return _compute_rates(pd.concat(parts, ignore_index=True), confidence)


def _design_totals(pop: Population) -> TotalEstimate:
    """Violative impressions per channel of one population: the model's totals plus the
    labels' design-weighted corrections (valid whatever the model's errors)."""
    return estimate_totals(
        pop.f,
        pop.impressions,
        pop.draws,
        frames=pop.frames,
        flip_rate=pop.flip_rate,
        names=pop.channels,
    )


def _entity_totals(pop: Population, est: TotalEstimate) -> pd.DataFrame:
    """Per channel of one population: impressions, estimated violative impressions and
    their variance, the model's own total and the labels behind it."""
    return pd.DataFrame(
        {
            "policy": pop.policy.value,
            "channel": list(pop.channels),
            "impressions": pop.impressions.sum(axis=0),
            "violative": est.point,
            "variance": np.diag(est.cov),
            "model": pop.f @ pop.impressions,
            "labels": est.n_labels,
        }
    )


def _compute_rates(totals: pd.DataFrame, confidence: float) -> pd.DataFrame:
    g = totals.groupby(["policy", "channel"], as_index=False)[
        ["impressions", "violative", "variance", "model", "labels"]
    ].sum()
    g = g[g["impressions"] > 0].reset_index(drop=True)
    imp = g["impressions"].to_numpy(dtype=float)
    rate = g["violative"].to_numpy(dtype=float) / imp
    se = np.sqrt(np.maximum(g["variance"].to_numpy(dtype=float), 0.0)) / imp
    bounds = [
        interval(r, s, confidence=confidence, lower=0.0, upper=1.0)
        for r, s in zip(rate, se, strict=True)
    ]
    g["vvr"] = np.clip(rate, 0.0, 1.0)
    g["vvr_low"] = [b[0] for b in bounds]
    g["vvr_high"] = [b[1] for b in bounds]
    g["vvr_model"] = g["model"].to_numpy(dtype=float) / imp
    g["violative_impressions"] = g["violative"].clip(lower=0.0)
    g["confidence"] = confidence
    return conform(g, VIOLATIVE_VIEW_RATE)


def label_free_precision(
    populations: Mapping[tuple[Entity, Policy], Population],
    *,
    threshold: float,
    predictions: pd.DataFrame | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Table `model_precision`: per entity and policy, the items the model flags at
    `threshold` (model probability at or above it), their expected precision and the same
    precision from the audit's labels; with `predictions`, also each entity's any-violation
    model (its rows of policy `any`, without labels: verdicts are per policy)."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    rows = [
        _precision_row(entity.value, policy.value, pop.p_model, threshold)
        | _labelled_precision(pop, pop.p_model >= threshold, confidence)
        for (entity, policy), pop in sorted(populations.items())
    ]
    if predictions is not None:
        anyv = predictions[predictions["policy"].astype(str) == ANY]
        rows += [
            _precision_row(str(entity), ANY, g["p"].to_numpy(dtype=float), threshold)
            | _NO_LABELLED_CHECK
            | {"confidence": confidence}
            for entity, g in anyv.groupby(anyv["entity"].astype(str), sort=True)
        ]
    return conform(pd.DataFrame(rows), MODEL_PRECISION) if rows else empty_frame(MODEL_PRECISION)


#: Largest share of a model's flagged items that no verdict reaches for the labelled check.
MAX_MODEL_ONLY_SHARE = 0.1

#: The labelled columns of a model without verdicts on its flagged items.
_NO_LABELLED_CHECK: dict[str, object] = {
    "labelled_precision": float("nan"),
    "labelled_low": float("nan"),
    "labelled_high": float("nan"),
    "labels_flagged": 0,
}


def _labelled_precision(
    pop: Population, flagged: np.ndarray, confidence: float
) -> dict[str, object]:
    """The flagged items' precision from the audit's labels: the violating flagged items
    (the recalibrated model's total plus the design-weighted label corrections, the view
    rates' estimator with the flagged items as the one domain) over their count. Nothing
    when more than `MAX_MODEL_ONLY_SHARE` of the flagged items lie where no verdict reaches
    (no design that drew a label covers them): there the estimator keeps the recalibrated
    model's own total, so it would check the model against itself."""
    n = int(flagged.sum())
    row: dict[str, object] = _NO_LABELLED_CHECK | {"confidence": confidence}
    if not n:
        return row
    est = estimate_totals(
        pop.f,
        flagged.astype(np.float64)[:, None],
        pop.draws,
        frames=pop.frames,
        flip_rate=pop.flip_rate,
        names=("flagged",),
    )
    row["labels_flagged"] = int(est.n_labels[0])
    if float(est.model_only_share[0]) > MAX_MODEL_ONLY_SHARE:
        # the verdicts do not reach the flagged items: the estimate would be the model's own
        return row
    point = float(est.point[0]) / n
    low, high = interval(point, float(np.sqrt(est.cov[0, 0])) / n, confidence=confidence)
    return row | {
        "labelled_precision": float(np.clip(point, 0.0, 1.0)),
        "labelled_low": max(low, 0.0),
        "labelled_high": min(high, 1.0),
    }


def _precision_row(
    entity: str, policy: str, p_model: np.ndarray, threshold: float
) -> dict[str, object]:
    """One model's flagged items at `threshold` and their expected precision."""
    p = p_model[p_model >= threshold]
    n = len(p)
    return {
        "entity": entity,
        "policy": policy,
        "threshold": threshold,
        "items": len(p_model),
        "flagged": n,
        "expected_precision": float(p.mean()) if n else float("nan"),
        # the flagged items' outcomes are independent Bernoulli draws if calibrated
        "expected_precision_sd": float(np.sqrt((p * (1 - p)).sum()) / n) if n else float("nan"),
        "expected_true_positives": float(p.sum()),
    }
