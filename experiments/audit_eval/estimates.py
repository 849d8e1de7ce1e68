"""Precision / recall estimates against the truth, and labels needed for a target error."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from features.vocabulary import Entity, Policy
from governance.audit.estimators import LabelDraws
from governance.audit.metrics import strategy_metrics
from governance.audit.population import Population
from governance.audit.sampling import audit_sample, inclusion_probabilities


def estimate_errors(
    estimated: pd.DataFrame, true: pd.DataFrame, *, channel: str = "all"
) -> pd.DataFrame:
    """Per strategy: estimate, truth, absolute error and whether the interval covers it."""
    keys = ["strategy", "entity", "policy", "channel"]
    j = estimated.merge(true[[*keys, "precision", "recall", "fn"]], on=keys, suffixes=("", "_true"))
    j = j[(j["channel"] == channel) & (j["strategy"] != "*") & (j["n_actioned"] > 0)]
    out = pd.DataFrame(
        {
            "strategy": j["strategy"],
            "n_actioned": j["n_actioned"],
            "n_labels": j["n_labels"],
            "precision": j["precision"],
            "precision_true": j["precision_true"],
            "precision_err": (j["precision"] - j["precision_true"]).abs(),
            "precision_covered": (j["precision_low"] <= j["precision_true"])
            & (j["precision_true"] <= j["precision_high"]),
            "recall": j["recall"],
            "recall_true": j["recall_true"],
            "recall_err": (j["recall"] - j["recall_true"]).abs(),
            "recall_covered": (j["recall_low"] <= j["recall_true"])
            & (j["recall_true"] <= j["recall_high"]),
            # FP intervals are precision's scaled by the actioned count: same coverage.
            "fn_covered": (j["fn_low"] <= j["fn_true"]) & (j["fn_true"] <= j["fn_high"]),
        }
    )
    return out[out["recall_true"].notna()].reset_index(drop=True)


def _oracle_population(
    pop: Population, positions: np.ndarray, pi: np.ndarray, y_obs: np.ndarray
) -> Population:
    draws = LabelDraws(
        position=positions.astype(np.int64),
        y_obs=y_obs.astype(np.float64),
        n_reviews=np.ones(len(positions), dtype=np.int64),
        inclusion_probability=pi,
        design=np.full(len(positions), "oracle", dtype=object),
        f_label=pop.f[positions],
    )
    return Population(
        **{
            **{f: getattr(pop, f) for f in pop.__dataclass_fields__},
            "draws": draws,
            "frames": {"oracle": np.ones(len(pop), dtype=bool)},
        }
    )


def oracle_errors(
    populations: Mapping[tuple[Entity, Policy], Population],
    truth: Mapping[tuple[Entity, Policy], np.ndarray],
    *,
    design: str,
    budget: int,
    seed: int,
    flip_rate: float,
    true_metrics: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Errors of per-strategy estimates from `budget` oracle labels under one design.

    `design` is `importance` (govrisk's audit sample) or `uniform` (equal probability for
    every (entity, item, policy) unit); labels are the truth flipped at `flip_rate`.
    """
    rng = np.random.default_rng(seed)
    keys = list(populations)
    sizes = np.array([len(populations[k]) for k in keys])
    if design == "importance":
        sample = audit_sample(populations, size=budget, seed=seed)
    elif design == "uniform":
        pi_all = inclusion_probabilities(np.ones(int(sizes.sum())), float(budget), floor=0.0)
        drawn = rng.random(pi_all.shape[0]) < pi_all
        rows = []
        offset = 0
        for k, n in zip(keys, sizes, strict=True):
            chosen = np.flatnonzero(drawn[offset : offset + n])
            rows.append(
                pd.DataFrame(
                    {
                        "entity": k[0].value,
                        "item_id": populations[k].item_ids[chosen].astype(str),
                        "policy": k[1].value,
                        "inclusion_probability": pi_all[offset + chosen],
                    }
                )
            )
            offset += n
        sample = pd.concat(rows, ignore_index=True)
    else:
        raise ValueError(f"unknown design {design!r}; use importance or uniform")
    oracle: dict[tuple[Entity, Policy], Population] = {}
    for k, pop in populations.items():
        sel = sample[(sample["entity"] == k[0].value) & (sample["policy"] == k[1].value)]
        pos = pd.Index(pop.item_ids.astype(str)).get_indexer(sel["item_id"].astype(str))
        y = truth[k][pos].astype(float)
        flips = rng.random(len(pos)) < flip_rate
        y_obs = np.where(flips, 1.0 - y, y)
        oracle[k] = _oracle_population(
            pop, pos, sel["inclusion_probability"].to_numpy(dtype=float), y_obs
        )
        oracle[k] = Population(
            **{
                **{f: getattr(oracle[k], f) for f in pop.__dataclass_fields__},
                "flip_rate": flip_rate,
            }
        )
    est = strategy_metrics(oracle)
    true = true_metrics if true_metrics is not None else strategy_metrics(oracle, truth=truth)
    out = estimate_errors(est, true)
    out["labels"] = len(sample)
    return out


def labels_needed(
    populations: Mapping[tuple[Entity, Policy], Population],
    truth: Mapping[tuple[Entity, Policy], np.ndarray],
    *,
    budgets: Sequence[int],
    reps: int,
    seed: int,
    flip_rate: float,
) -> pd.DataFrame:
    """RMS error of precision and recall per budget and design (mean over strategies, reps)."""
    rows = []
    true = strategy_metrics(populations, truth=truth)
    for design in ("importance", "uniform"):
        for b in budgets:
            errs = [
                oracle_errors(
                    populations,
                    truth,
                    design=design,
                    budget=b,
                    seed=seed * 10_000 + r,
                    flip_rate=flip_rate,
                    true_metrics=true,
                )
                for r in range(reps)
            ]
            e = pd.concat(errs, ignore_index=True)
            rows.append(
                {
                    "design": design,
                    "budget": b,
                    "labels": float(np.mean([x["labels"].iloc[0] for x in errs if len(x)])),
                    "precision_rmse": float(np.sqrt((e["precision_err"] ** 2).mean())),
                    "recall_rmse": float(np.sqrt((e["recall_err"] ** 2).mean())),
                    "precision_mae": float(e["precision_err"].mean()),
                    "recall_mae": float(e["recall_err"].mean()),
                    "precision_coverage": float(e["precision_covered"].mean()),
                    "recall_coverage": float(e["recall_covered"].mean()),
                }
            )
    return pd.DataFrame(rows)


def budget_for(curve: pd.DataFrame, column: str, target: float) -> float:
    """Labels needed for `column` (an RMS error) to reach `target`, interpolating in log-log
    space between budgets and extrapolating with error ~ 1 / sqrt(labels) beyond them."""
    c = curve.sort_values("labels")
    x = np.log(c["labels"].to_numpy(dtype=float))
    y = np.log(c[column].to_numpy(dtype=float))
    t = math.log(target)
    if y[-1] > t:  # not reached: extrapolate from the largest budget
        return float(math.exp(x[-1] + 2.0 * (y[-1] - t)))
    if y[0] <= t:
        return float(math.exp(x[0] - 2.0 * (t - y[0])))
    for i in range(1, len(x)):
        if y[i] <= t:
            w = (y[i - 1] - t) / (y[i - 1] - y[i])
            return float(math.exp(x[i - 1] + w * (x[i] - x[i - 1])))
    return float("nan")
