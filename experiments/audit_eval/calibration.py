"""The models' calibration in the large, over populations and their parts."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.vocabulary import Entity, Policy
from governance.audit.population import Population

#: Prefix of the per-model calibration ratios a world's values hold.
CALIBRATION_RATIO = "calibration_ratio__"


def calibration_ratios(
    preds: pd.DataFrame, items: pd.DataFrame, *, flip_rate: float
) -> dict[str, float]:
    """Per trained model (entity, policy with varying predictions and a truth column): its mean
    probability over every item over the violating-verdict rate the population would get (the
    truth, flipped at `flip_rate`, as the labels the model learns from are); 1 is calibrated in
    the large."""
    out: dict[str, float] = {}
    for (entity, policy), g in preds.groupby(["entity", "policy"], sort=True):
        col = f"violates_{policy}"
        truth = items[items["entity"] == entity].set_index("item_id")
        p = g["p"].to_numpy(dtype=np.float64)
        if col not in truth.columns or len(p) == 0 or np.ptp(p) == 0:
            continue  # no truth, or no model (a constant prior)
        y = truth[col].reindex(g["item_id"].astype(str)).to_numpy(dtype=np.float64)
        rate = flip_rate + (1.0 - 2.0 * flip_rate) * float(np.nanmean(y))
        if rate > 0:
            out[f"{CALIBRATION_RATIO}{entity}/{policy}"] = float(p.mean()) / rate
    return out


#: Prefixes of the calibration ratios among the units some audited strategy of the policy
#: actioned and among the rest (recall's denominator lives mostly there): `model` is the
#: trained model's p, `audit` the audit's recalibrated f behind the estimates.
DOMAIN_RATIO = {
    ("model", "actioned"): "calibration_ratio_actioned__",
    ("model", "unactioned"): "calibration_ratio_unactioned__",
    ("audit", "actioned"): "audit_f_ratio_actioned__",
    ("audit", "unactioned"): "audit_f_ratio_unactioned__",
}


def domain_calibration_ratios(
    populations: Mapping[tuple[Entity, Policy], Population],
    truth: Mapping[tuple[Entity, Policy], np.ndarray],
    *,
    flip_rate: float,
) -> dict[str, float]:
    """Per population with a trained model (its p varies) and domain (actioned by some audited
    strategy of the policy, or not): the model's mean p over the violating-verdict rate the
    domain would get (truth flipped at `flip_rate`: what the model learns from) and the
    audit's mean f (denoised: P(violating)) over the true violation rate (keys
    `DOMAIN_RATIO[(source, domain)] + "entity/policy"`); 1 is calibrated in the large."""
    out: dict[str, float] = {}
    for key, pop in populations.items():
        if len(pop) == 0 or np.ptp(pop.p_model) == 0:
            continue  # no model (a constant prior)
        acted = np.asarray(pop.any_actioned.any(axis=1), dtype=bool)
        y = np.asarray(truth[key], dtype=np.float64)
        name = f"{pop.entity.value}/{pop.policy.value}"
        for domain, mask in (("actioned", acted), ("unactioned", ~acted)):
            if not mask.any():
                continue
            true_rate = float(y[mask].mean())
            verdict_rate = flip_rate + (1.0 - 2.0 * flip_rate) * true_rate
            for source, prob, rate in (
                ("model", pop.p_model, verdict_rate),
                ("audit", pop.f, true_rate),
            ):
                if rate > 0:
                    out[f"{DOMAIN_RATIO[(source, domain)]}{name}"] = float(prob[mask].mean()) / rate
    return out
