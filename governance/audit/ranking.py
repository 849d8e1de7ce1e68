"""Ranked likely false positives and false negatives, and the audit slice, as flags.parquet rows.

Priority = P(error) x exposure at stake x policy severity, where exposure is the impressions an
honest item lost to its actions (false positives) or a violating item was shown (negatives).
P(error) comes from `ranking_probability`: the model recalibrated separately among actioned
and un-actioned units (a strategy's hits are a selected set where one population-wide
calibration is far off), averaged over the calibration's uncertainty, then updated with any
verdicts already on the item. Each list takes units by priority while every prefix keeps an
expected precision floor (and, for false positives, every unit a probability floor).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.contract import typed_frame
from features.vocabulary import Entity, Policy, Sampling
from governance.audit.estimators import (
    FloatArray,
    fit_noisy_logistic,
    logit,
    posterior_violation,
)
from governance.audit.population import Population
from governance.audit.tables import FLAGS
from governance.audit.vocabulary import FlagKind

FLAG_COLUMNS: tuple[str, ...] = tuple(FLAGS.column_names)
LIKELY_FP = FlagKind.LIKELY_FALSE_POSITIVE.value
LIKELY_FN = FlagKind.LIKELY_FALSE_NEGATIVE.value
RANDOM_AUDIT = FlagKind.RANDOM_AUDIT.value
#: The audit_labels `sampling` a verdict on each flag kind must come back with: the audit slice
#: is the `model_ranked` importance design (with the inclusion probability it was drawn with);
#: ranked-list picks are take-all, so they get their own design and stay out of the estimates.
SAMPLING_OF_KIND: dict[str, str] = {
    RANDOM_AUDIT: Sampling.MODEL_RANKED.value,
    LIKELY_FP: Sampling.RANKED_LIST.value,
    LIKELY_FN: Sampling.RANKED_LIST.value,
}

#: Explains items: (entity, policy, item_ids) -> one JSON list of reasons per item.
ReasonsFn = Callable[[Entity, Policy, Sequence[str]], list[str]]


#: Prior sd of the domain recalibration: intercept, slope on the model's logit (around the
#: model's own calibration), and each strategy's offset among the units it actioned.
_PRIOR_SD = (2.0, 0.5, 1.0)


def posterior(pop: Population, labels: pd.DataFrame | None) -> FloatArray:
    """P(violating) per unit from the model and every verdict already given (any sampling)."""
    k, n = verdict_counts(pop, labels)
    return posterior_violation(pop.f, k, n, pop.flip_rate) if n.any() else pop.f.copy()


def ranking_probability(pop: Population, labels: pd.DataFrame | None) -> FloatArray:
    """P(violating) per unit for the ranked lists: `domain_calibrated` updated with every verdict
    already given on the unit (any sampling, noise-aware)."""
    prior = domain_calibrated(pop)[0]
    k, n = verdict_counts(pop, labels)
    return posterior_violation(prior, k, n, pop.flip_rate) if n.any() else prior


def domain_calibrated(pop: Population) -> tuple[FloatArray, FloatArray]:
    """P(violating) per unit and at each label draw (from the label's out-of-fold model
    probability) from the model, recalibrated within the actioned and within the un-actioned
    units on the probability-sampled labels that fall in each.

    `sigmoid(a + b logit p_model + sum_s c_s [s actioned the unit])` is fitted per domain
    under the reviewer-flip model, each design's labels weighted by 1 / inclusion probability
    (rescaled to mean 1 within the design), with a Gaussian prior around the model's own
    calibration; the prediction averages over the fit's uncertainty (probit approximation),
    so a domain with few labels yields less extreme probabilities.
    """
    act: npt.NDArray[np.bool_] = np.asarray(pop.any_actioned.any(axis=1), dtype=bool)
    has_model = bool(np.ptp(pop.p_model) > 0) if len(pop) else False
    refs = [r for r in pop.actioned if pop.actioned[r].any()]
    hits = np.column_stack([pop.actioned[r].any(axis=1) for r in refs]) if len(refs) > 1 else None
    d = pop.draws
    p_label = d.p_label if d.p_label is not None else d.f_label
    usable = np.zeros(len(d), dtype=bool)
    for name, frame in pop.frames.items():
        m = d.design == name
        usable[m] = frame[d.position[m]]
    out = np.empty(len(pop), dtype=np.float64)
    at_labels = np.empty(len(d), dtype=np.float64)
    domains: list[tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_] | None]] = [
        (act, hits),
        (~act, None),
    ]
    for domain, by_strategy in domains:
        units = np.flatnonzero(domain)
        if not len(units):
            continue
        lab = usable & domain[d.position]
        mean = [0.0 if has_model else float(logit(pop.p_model[:1])[0])]
        sd = [_PRIOR_SD[0]]
        if has_model:
            mean, sd = [*mean, 1.0], [*sd, _PRIOR_SD[1]]
        if by_strategy is not None:
            mean += [0.0] * by_strategy.shape[1]
            sd += [_PRIOR_SD[2]] * by_strategy.shape[1]
        theta, cov = fit_noisy_logistic(
            _covariates(d.position[lab], p_label[lab], has_model, by_strategy),
            d.y_obs[lab],
            _design_weights(d.inclusion_probability[lab], d.design[lab]),
            flip_rate=pop.flip_rate,
            prior_mean=mean,
            prior_sd=sd,
        )
        out[units] = _predict(
            _covariates(units, pop.p_model[units], has_model, by_strategy), theta, cov
        )
        in_domain = domain[d.position]
        at_labels[in_domain] = _predict(
            _covariates(d.position[in_domain], p_label[in_domain], has_model, by_strategy),
            theta,
            cov,
        )
    return out, at_labels


def _predict(X: FloatArray, theta: FloatArray, cov: FloatArray) -> FloatArray:
    """E[sigmoid(X theta)] over theta ~ N(theta, cov) (probit approximation)."""
    eta = X @ theta
    var = np.einsum("ij,jk,ik->i", X, cov, X)
    return np.asarray(1.0 / (1.0 + np.exp(-eta / np.sqrt(1.0 + np.pi * var / 8.0))))


def _covariates(
    pos: npt.NDArray[np.int64],
    p: FloatArray,
    has_model: bool,
    by_strategy: npt.NDArray[np.bool_] | None,
) -> FloatArray:
    """(n, k) design matrix of the domain recalibration: 1, logit p, strategy indicators."""
    cols = [np.ones(len(pos))]
    if has_model:
        cols.append(logit(p))
    if by_strategy is not None:
        cols.extend(by_strategy[pos, j].astype(np.float64) for j in range(by_strategy.shape[1]))
    return np.column_stack(cols)


def _design_weights(pi: FloatArray, design: npt.NDArray[np.object_]) -> FloatArray:
    w = 1.0 / pi
    for name in np.unique(design):
        m = design == name
        w[m] = w[m] / w[m].mean()
    return w


def verdict_counts(pop: Population, labels: pd.DataFrame | None) -> tuple[FloatArray, FloatArray]:
    """Violating verdicts and verdicts per unit of the population's policy (any sampling)."""
    zeros = np.zeros(len(pop), dtype=np.float64)
    if labels is None or not len(labels):
        return zeros, zeros.copy()
    lab = labels[
        (labels["entity"].astype(str) == pop.entity.value)
        & (labels["policy"].astype(str) == pop.policy.value)
    ]
    if not len(lab):
        return zeros, zeros.copy()
    pos = pd.Index(pop.item_ids, dtype=object).get_indexer(pd.Index(lab["item_id"].astype(object)))
    keep = pos >= 0
    v = (lab["verdict"].astype(str).to_numpy() == "violating")[keep].astype(np.float64)
    k = np.bincount(pos[keep], weights=v, minlength=len(pop)).astype(np.float64)
    n = np.bincount(pos[keep], minlength=len(pop)).astype(np.float64)
    return k, n


def labeled_mask(pop: Population, labels: pd.DataFrame | None) -> npt.NDArray[np.bool_]:
    """Units that already carry a verdict for this policy."""
    if labels is None or not len(labels):
        return np.zeros(len(pop), dtype=bool)
    lab = labels[
        (labels["entity"].astype(str) == pop.entity.value)
        & (labels["policy"].astype(str) == pop.policy.value)
    ]
    # A hash lookup: np.isin sorts object arrays (minutes at a million units).
    labeled = pd.Series(pop.item_ids, dtype=object).isin(lab["item_id"].astype(object))
    return np.asarray(labeled.to_numpy(), dtype=bool)


def rank_flags(
    populations: Mapping[tuple[Entity, Policy], Population],
    *,
    labels: pd.DataFrame | None = None,
    severity: Mapping[str, float] | None = None,
    list_size: int = 500,
    include_labeled: bool = False,
    reasons: ReasonsFn | None = None,
    audit_slice: pd.DataFrame | None = None,
    fp_min_probability: float = 0.95,
    fp_min_precision: float = 0.98,
    fn_min_precision: float = 0.5,
) -> pd.DataFrame:
    """flags.parquet rows: the top `list_size` likely FPs and FNs over every population, plus the
    audit slice (units drawn by `sampling.audit_sample`) as `random_audit` rows.

    Each list is built greedily by expected impact (`priority`) among the units that keep it
    *likely*: every prefix keeps an expected precision (mean P(error)) of at least
    `fp_min_precision` / `fn_min_precision`, and a false positive needs P(honest) >=
    `fp_min_probability` itself. A much-viewed item at 30% can so follow near-certain ones
    in the FN list. Units that fit neither follow, most probable errors first.
    """
    if list_size < 1:
        raise ValueError(f"list_size must be >= 1, got {list_size}")
    for name, value in (
        ("fp_min_probability", fp_min_probability),
        ("fp_min_precision", fp_min_precision),
        ("fn_min_precision", fn_min_precision),
    ):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    fp_parts, fn_parts = [], []
    sev = dict(severity or {})
    for pop in populations.values():
        post = ranking_probability(pop, labels)
        skip = np.zeros(len(pop), dtype=bool) if include_labeled else labeled_mask(pop, labels)
        s = float(sev.get(pop.policy.value, 1.0))
        fp_parts.append(_fp_candidates(pop, post, skip, s, (list_size, fp_min_probability)))
        fn_parts.append(_fn_candidates(pop, post, skip, s, (list_size, 0.0)))
    fp = _top(
        fp_parts, list_size, min_probability=fp_min_probability, min_precision=fp_min_precision
    )
    fn = _top(fn_parts, list_size, min_probability=0.0, min_precision=fn_min_precision)
    parts = [fp, fn]
    if audit_slice is not None and len(audit_slice):
        parts.append(_audit_rows(populations, audit_slice, labels))
    flags = (
        pd.concat([p for p in parts if len(p)], ignore_index=True)
        if any(len(p) for p in parts)
        else _empty_flags()
    )
    flags["reasons"] = _reasons_column(flags, reasons)
    return _typed(flags)


def _fp_candidates(
    pop: Population,
    post: FloatArray,
    skip: npt.NDArray[np.bool_],
    severity: float,
    bounds: tuple[int, float],
) -> pd.DataFrame:
    act = pop.any_actioned
    rows = act.any(axis=1) & ~skip
    idx = np.flatnonzero(rows)
    p_err = 1.0 - post[idx]
    at_stake = (pop.lost_impressions * act).sum(axis=1)[idx]
    # Every actioned unit keeps a floor of one impression so zero-traffic errors still rank.
    priority = p_err * (at_stake + 1.0) * severity
    keep = rankable(priority, p_err, *bounds)
    idx, p_err, priority = idx[keep], p_err[keep], priority[keep]
    return _candidate_frame(pop, idx, act[idx], p_err, priority, LIKELY_FP, _fp_refs(pop, idx))


def _fn_candidates(
    pop: Population,
    post: FloatArray,
    skip: npt.NDArray[np.bool_],
    severity: float,
    bounds: tuple[int, float],
) -> pd.DataFrame:
    act = pop.any_actioned
    shown = pop.impressions
    rows = ~act.any(axis=1) & (shown.sum(axis=1) > 0) & ~skip
    idx = np.flatnonzero(rows)
    p_err = post[idx]
    priority = p_err * shown.sum(axis=1)[idx] * severity
    keep = rankable(priority, p_err, *bounds)
    idx, p_err, priority = idx[keep], p_err[keep], priority[keep]
    return _candidate_frame(
        pop, idx, shown[idx] > 0, p_err, priority, LIKELY_FN, _fn_refs(pop, idx)
    )


#: Candidates `rankable` compares per step (a block of the priority order).
_RANK_BLOCK = 65_536


def rankable(
    priority: FloatArray, p_err: FloatArray, n: int, min_probability: float
) -> npt.NDArray[np.int64]:
    """Positions of the candidates that can reach a list of `n` built by `_top`, in order: a
    population of millions keeps a few thousand, and the list is the same as from all of them.

    The greedy prefix takes, at each step, the first unit in priority order whose probability
    reaches a threshold; a unit behind `n` others of strictly higher (priority, probability)
    order with at least its probability is never first among those reaching any threshold
    before `n` picks are made, so it cannot be picked. The rest of the list is the top
    `n - k` by (probability, priority) of the units not among the `k` picks: within the
    first `n` (ties included) of every population.
    """
    keep = np.zeros(len(p_err), dtype=bool)
    if not len(p_err):
        return np.flatnonzero(keep)
    by_rest = np.lexsort((-priority, -p_err))
    edge = by_rest[min(n, len(by_rest)) - 1]
    keep |= (p_err > p_err[edge]) | ((p_err == p_err[edge]) & (priority >= priority[edge]))
    ok = np.flatnonzero(p_err >= min_probability)
    keep[_undominated(ok[np.lexsort((-p_err[ok], -priority[ok]))], priority, p_err, n)] = True
    return np.flatnonzero(keep)


def _undominated(
    order: npt.NDArray[np.int64], priority: FloatArray, p_err: FloatArray, n: int
) -> npt.NDArray[np.int64]:
    """The units of `order` (sorted by priority, then probability, descending) that fewer than
    `n` earlier units of strictly higher (priority, probability) dominate by probability.

    Blocks of the order are compared against the `n` highest probabilities of the blocks
    before them (a lower bound of each unit's own `n`-th dominator: a superset is kept); units
    tied on both keys with the next block's first are folded in only after it."""
    out: list[npt.NDArray[np.int64]] = []
    best = np.zeros(0)
    pending = np.zeros(0, dtype=np.int64)
    for start in range(0, len(order), _RANK_BLOCK):
        block = order[start : start + _RANK_BLOCK]
        floor = best[0] if len(best) >= n else -np.inf
        out.append(block[p_err[block] > floor])
        fold = np.concatenate([pending, block])
        nxt = start + _RANK_BLOCK
        if nxt < len(order):
            tied = (priority[fold] == priority[order[nxt]]) & (p_err[fold] == p_err[order[nxt]])
            fold, pending = fold[~tied], fold[tied]
        best = np.sort(np.concatenate([best, p_err[fold]]))[-n:]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _joined_refs(refs: list[str], hit: npt.NDArray[np.bool_]) -> list[str]:
    """Per row of `hit` (rows x refs), the refs it holds joined by commas: each distinct
    pattern is joined once (few patterns, up to millions of rows)."""
    if not refs:
        return [""] * hit.shape[0]
    patterns, inverse = np.unique(hit, axis=0, return_inverse=True)
    names = [",".join(r for r, h in zip(refs, row, strict=True) if h) for row in patterns]
    return [names[k] for k in np.asarray(inverse).reshape(-1)]


def _fp_refs(pop: Population, idx: npt.NDArray[np.int64]) -> list[str]:
    refs = list(pop.actioned)
    hit = np.zeros((len(idx), len(refs)), dtype=bool)
    for j, r in enumerate(refs):
        hit[:, j] = np.asarray(pop.actioned[r].any(axis=1))[idx]
    return _joined_refs(refs, hit)


def _fn_refs(pop: Population, idx: npt.NDArray[np.int64]) -> list[str]:
    # Strategies whose channels cover where the unit was shown: the ones that missed it.
    shown = pop.impressions[idx] > 0
    refs = list(pop.strategy_channels)
    hit = np.zeros((len(idx), len(refs)), dtype=bool)
    for j, ref in enumerate(refs):
        cover = np.isin(np.asarray(pop.channels), list(pop.strategy_channels[ref]))
        hit[:, j] = (shown & cover).any(axis=1)
    return _joined_refs(refs, hit)


def _candidate_frame(
    pop: Population,
    idx: npt.NDArray[np.int64],
    channel_mask: npt.NDArray[np.bool_],
    p_err: FloatArray,
    priority: FloatArray,
    kind: str,
    refs: list[str],
) -> pd.DataFrame:
    chans = np.asarray(pop.channels, dtype=object)
    n_ch = channel_mask.sum(axis=1)
    first = channel_mask.argmax(axis=1) if len(idx) else np.zeros(0, dtype=np.int64)
    picked = chans[first] if len(idx) else chans[:0]
    channel = [c if k == 1 else None for c, k in zip(picked, n_ch, strict=True)]
    return pd.DataFrame(
        {
            "entity": pop.entity.value,
            "item_id": pop.item_ids[idx],
            "policy": pop.policy.value,
            "channel": channel,
            "kind": kind,
            "priority": priority,
            "p_error": p_err,
            # ranked items are chosen with certainty (a take-all stratum), not drawn at random
            "inclusion_probability": 1.0,
            "strategies": refs,
        }
    )


def _top(
    parts: list[pd.DataFrame], n: int, *, min_probability: float, min_precision: float
) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    if not parts:
        return _empty_flags()
    df = pd.concat(parts, ignore_index=True)
    df = df.sort_values(
        ["priority", "p_error", "entity", "policy", "item_id"],
        ascending=[False, False, True, True, True],
    ).reset_index(drop=True)
    picked = _likely_prefix(
        df["p_error"].to_numpy(dtype=np.float64),
        n,
        min_probability=min_probability,
        min_precision=min_precision,
    )
    rest = df.drop(index=picked)
    rest = rest.sort_values(["p_error", "priority"], ascending=False, kind="stable")
    out = pd.concat([df.loc[picked], rest.head(n - len(picked))])
    return out.reset_index(drop=True)


def _likely_prefix(
    p: FloatArray, n: int, *, min_probability: float, min_precision: float
) -> list[int]:
    """Positions (of units sorted by priority) taken greedily: at each step the first unit whose
    probability reaches `min_probability` and keeps the prefix mean >= `min_precision`."""
    order: list[int] = []
    ok = p >= min_probability
    total = 0.0
    # Vectorised per step: n steps over the candidates (n is a review list, a few hundred).
    for step in range(min(n, int(ok.sum()))):
        need = min_precision * (step + 1) - total - 1e-12
        fits = ok & (p >= need)
        i = int(np.argmax(fits))
        if not fits[i]:
            break
        ok[i] = False
        order.append(i)
        total += float(p[i])
    return order


def _audit_rows(
    populations: Mapping[tuple[Entity, Policy], Population],
    audit_slice: pd.DataFrame,
    labels: pd.DataFrame | None,
) -> pd.DataFrame:
    parts = []
    for pop in populations.values():
        sel = audit_slice[
            (audit_slice["entity"].astype(str) == pop.entity.value)
            & (audit_slice["policy"].astype(str) == pop.policy.value)
        ]
        if not len(sel):
            continue
        idx = pd.Index(pop.item_ids, dtype=object).get_indexer(
            pd.Index(sel["item_id"].astype(object))
        )
        keep = idx >= 0
        idx = idx[keep]
        post = ranking_probability(pop, labels)[idx]
        act = pop.any_actioned[idx].any(axis=1)
        p_err = np.where(act, 1.0 - post, post)
        refs = _fp_refs(pop, idx)
        parts.append(
            pd.DataFrame(
                {
                    "entity": pop.entity.value,
                    "item_id": pop.item_ids[idx],
                    "policy": pop.policy.value,
                    "channel": None,
                    "kind": RANDOM_AUDIT,
                    "priority": 0.0,
                    "p_error": p_err,
                    "inclusion_probability": sel["inclusion_probability"].to_numpy()[keep],
                    "strategies": refs,
                }
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else _empty_flags()


def _reasons_column(flags: pd.DataFrame, reasons: ReasonsFn | None) -> list[str]:
    out = ["[]"] * len(flags)
    if reasons is None or not len(flags):
        return out
    for (entity, policy), grp in flags.groupby(["entity", "policy"], sort=False):
        ids = grp["item_id"].astype(str).tolist()
        got = reasons(Entity(str(entity)), Policy(str(policy)), ids)
        for pos, text in zip(grp.index, got, strict=True):
            out[int(pos)] = text
    return out


def reasons_from_frame(reasons: pd.DataFrame) -> ReasonsFn:
    """A ReasonsFn reading precomputed (entity, item_id, policy, reasons) rows."""
    lookup = {
        (str(e), str(i), str(p)): str(r)
        for e, i, p, r in reasons[["entity", "item_id", "policy", "reasons"]].itertuples(
            index=False
        )
    }

    def _fn(entity: Entity, policy: Policy, item_ids: Sequence[str]) -> list[str]:
        return [lookup.get((entity.value, i, policy.value), "[]") for i in item_ids]

    return _fn


def reasons_from_bundles(
    bundles: Mapping[tuple[Entity, Policy], object],
    frames: Mapping[Entity, pd.DataFrame],
    *,
    k: int = 3,
) -> ReasonsFn:
    """A ReasonsFn calling each (entity, policy) model bundle's `explain(frame, k)`."""

    def _fn(entity: Entity, policy: Policy, item_ids: Sequence[str]) -> list[str]:
        bundle = bundles.get((entity, policy))
        if bundle is None or entity not in frames:
            return ["[]"] * len(item_ids)
        frame = frames[entity]
        rows = frame.set_index(frame["item_id"].astype(str)).reindex(list(item_ids))
        rows = rows.reset_index(drop=True)
        explained = bundle.explain(rows, k)  # type: ignore[attr-defined]
        return [json.dumps([r.to_dict() for r in item]) for item in explained]

    return _fn


def _empty_flags() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series([], dtype=object) for c in FLAG_COLUMNS})


def _typed(flags: pd.DataFrame) -> pd.DataFrame:
    return typed_frame(FLAGS, flags)
