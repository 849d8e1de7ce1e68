"""Per strategy x channel accuracy: precision, recall, FP/FN counts and exposure-weighted error
cost, each with an interval and the number of labels behind it."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.vocabulary import Entity, Policy
from governance.audit.estimators import (
    FloatArray,
    TotalEstimate,
    TotalParts,
    block_rows,
    combine_parts,
    domain_totals,
    estimate_totals,
    fit_model_bias_posterior,
    interval,
    posterior_violation,
    total_parts,
    z_value,
)
from governance.audit.population import Population
from governance.audit.tables import METRICS
from governance.strategy import parse_ref

#: The pseudo-strategy standing for "any audited strategy of this policy".
ALL_STRATEGIES = "*"
#: The pseudo-channel of a strategy's overall row.
ALL_CHANNELS = "all"

METRIC_COLUMNS: tuple[str, ...] = tuple(METRICS.column_names)


@dataclass(frozen=True)
class _Target:
    ref: str
    channels: tuple[str, ...]
    actioned: npt.NDArray[np.bool_]


def _targets(pop: Population) -> list[_Target]:
    out = [_Target(ref, pop.strategy_channels[ref], mask) for ref, mask in pop.actioned.items()]
    out.append(_Target(ALL_STRATEGIES, pop.channels, pop.any_actioned))
    return out


@dataclass(frozen=True)
class EstimandDomains:
    """The (N, K) domain matrix of every total of a population, built one row block at a time
    (`block_rows`), so a population of any size never holds it whole."""

    pop: Population
    names: tuple[str, ...]
    targets: tuple[_Target, ...]

    @property
    def shape(self) -> tuple[int, int]:
        """(units, totals)."""
        return (len(self.pop), len(self.names))

    def blocks(self) -> Iterator[tuple[int, FloatArray]]:
        """(first row, block) over the units in order."""
        step = block_rows(len(self.names))
        for start in range(0, len(self.pop), step):
            yield start, _estimand_block(self.pop, self.targets, slice(start, start + step))[1]

    def take(self, rows: npt.NDArray[np.int64]) -> FloatArray:
        """The rows of the units at `rows`."""
        return _estimand_block(self.pop, self.targets, rows)[1]


def estimand_domains(pop: Population) -> EstimandDomains:
    """Every total's domain of a population (see `_estimand_block` for the totals)."""
    targets = tuple(_targets(pop))
    names, _, _ = _estimand_block(pop, targets, slice(0, 0))
    return EstimandDomains(pop, tuple(names), targets)


def estimand_constants(pop: Population) -> dict[str, float]:
    """Known constants per strategy x channel: actioned count (`n|`), misses reviewers confirmed
    (`fnlab|`), the model's misses (`fnmodel|`), lost exposure (`lostimp|`, `lostgmv|`)."""
    labeled = labeled_violation(pop)
    domains = estimand_domains(pop)
    consts: dict[str, float] = {}
    step = block_rows(len(domains.names))
    for start in range(0, max(len(pop), 1), step):
        rows = slice(start, start + step)
        _, _, part = _estimand_block(pop, domains.targets, rows, labeled)
        for key, value in part.items():
            consts[key] = consts.get(key, 0.0) + value
    return consts


def _estimand_block(
    pop: Population,
    targets: Sequence[_Target],
    rows: slice | npt.NDArray[np.int64],
    labeled: tuple[npt.NDArray[np.int64], FloatArray] | None = None,
) -> tuple[list[str], FloatArray, dict[str, float]]:
    """Names, domain block of the units at `rows` and their share of the known constants
    (computed when `rows` is a slice and `labeled` = `labeled_violation(pop)` is given)."""
    names: list[str] = []
    cols: list[FloatArray] = []
    consts: dict[str, float] = {}

    def add(name: str, col: FloatArray) -> None:
        names.append(name)
        cols.append(np.asarray(col, dtype=np.float64))

    eligible, f = pop.eligible[rows], pop.f[rows]
    n = len(f)
    add(f"pos|{ALL_CHANNELS}", np.ones(n))
    for j, c in enumerate(pop.channels):
        add(f"pos|{c}", eligible[:, j].astype(np.float64))
    lab_rows, lab_p = _labeled_in(labeled, rows, len(pop))
    for t in targets:
        idx = [pop.channel_index(c) for c in t.channels if c in pop.channels]
        actioned = t.actioned[rows][:, idx]
        a_all = actioned.any(axis=1)
        a_blk = actioned.astype(np.float64)
        imp, gmv = pop.impressions[rows][:, idx], pop.gmv[rows][:, idx]
        limp, lgmv = pop.lost_impressions[rows][:, idx], pop.lost_gmv[rows][:, idx]
        per_channel = [(t.channels[k], a_blk[:, k]) for k in range(len(idx))]
        table = [
            (ALL_CHANNELS, a_all.astype(np.float64), None),
            *((c, a, k) for k, (c, a) in enumerate(per_channel)),
        ]
        for c, a, k in table:
            key = f"{t.ref}|{c}"
            if k is None:
                fn_imp = ((1.0 - a_blk) * imp).sum(axis=1)
                fn_gmv = ((1.0 - a_blk) * gmv).sum(axis=1)
                fp_imp = (a_blk * limp).sum(axis=1)
                fp_gmv = (a_blk * lgmv).sum(axis=1)
            else:
                fn_imp = np.asarray((1.0 - a) * imp[:, k], dtype=np.float64)
                fn_gmv = np.asarray((1.0 - a) * gmv[:, k], dtype=np.float64)
                fp_imp = np.asarray(a * limp[:, k], dtype=np.float64)
                fp_gmv = np.asarray(a * lgmv[:, k], dtype=np.float64)
            add(f"tp|{key}", np.asarray(a, dtype=np.float64))
            add(f"fnimp|{key}", fn_imp)
            add(f"fngmv|{key}", fn_gmv)
            add(f"fpimp|{key}", fp_imp)
            add(f"fpgmv|{key}", fp_gmv)
            if lab_rows is None:
                continue
            consts[f"n|{key}"] = float(a.sum())
            # The false-negative domain: its model count, and the misses reviewers confirmed
            # (a floor under the total).
            missed = np.asarray(a, dtype=np.float64) == 0
            if k is not None:
                missed &= eligible[:, idx[k]]
            consts[f"fnlab|{key}"] = float(lab_p[missed[lab_rows]].sum())
            consts[f"fnmodel|{key}"] = float(f[missed].sum())
            consts[f"lostimp|{key}"] = float(fp_imp.sum())
            consts[f"lostgmv|{key}"] = float(fp_gmv.sum())
    block = np.column_stack(cols) if n else np.zeros((0, len(names)))
    return names, block, consts


def _labeled_in(
    labeled: tuple[npt.NDArray[np.int64], FloatArray] | None,
    rows: slice | npt.NDArray[np.int64],
    n_units: int,
) -> tuple[npt.NDArray[np.int64] | None, FloatArray]:
    """Labelled units within a row slice (positions relative to it) and their P(violating)."""
    if labeled is None or not isinstance(rows, slice):
        return None, np.zeros(0)
    start, stop, _ = rows.indices(n_units)
    units, p = labeled
    inside = (units >= start) & (units < stop)
    return units[inside] - start, p[inside]


def labeled_violation(pop: Population) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Every labelled unit's position and P(violating) given the model and all its verdicts."""
    d = pop.draws
    if not len(d):
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    units, inverse = np.unique(d.position, return_inverse=True)
    n = np.bincount(inverse, weights=d.n_reviews.astype(np.float64))
    k = np.bincount(inverse, weights=d.y_obs * d.n_reviews)
    return units.astype(np.int64), posterior_violation(pop.f[units], k, n, pop.flip_rate)


def exact_totals(pop: Population, y_true: npt.ArrayLike) -> TotalEstimate:
    """The same totals computed from known truth (zero variance): for evaluation."""
    return _exact(estimand_domains(pop), y_true)


def _exact(domains: EstimandDomains, y_true: npt.ArrayLike) -> TotalEstimate:
    k = len(domains.names)
    return TotalEstimate(
        names=domains.names,
        point=domain_totals(y_true, domains),
        cov=np.zeros((k, k)),
        n_labels=np.zeros(k, dtype=np.int64),
        n_labeled_positive=np.zeros(k, dtype=np.int64),
        model_only_share=np.zeros(k),
    )


def population_totals(pop: Population) -> TotalEstimate:
    """Model-assisted estimates of every total of a population."""
    d = estimand_domains(pop)
    return estimate_totals(
        pop.f, d, pop.draws, frames=pop.frames, flip_rate=pop.flip_rate, names=d.names
    )


#: Post-strata of the estimates: units no audited strategy actioned, and actioned units.
UNACTIONED, ACTIONED = 0, 1


def actioned_strata(pop: Population) -> npt.NDArray[np.int64]:
    """(N,) post-stratum of every unit: `ACTIONED` if some audited strategy actioned it."""
    return np.where(pop.any_actioned.any(axis=1), ACTIONED, UNACTIONED).astype(np.int64)


def composite_totals(
    populations: Mapping[tuple[Entity, Policy], Population],
    *,
    shrink: tuple[int, ...] = (UNACTIONED,),
) -> dict[tuple[Entity, Policy], TotalEstimate]:
    """Every population's totals, post-stratified by `actioned_strata`, with the corrections of
    the `shrink` strata combined with the model under a relative model-bias variance fitted
    across every population (`fit_model_bias_posterior` on the all-units total of each
    region; the composite is averaged over the posterior of the bias variance).

    Recall's denominator lives mostly among units no strategy actioned: thousands of units a
    few hundred labels reach, where a design-unbiased correction costs far more variance (label
    noise x N^2 / n) than a calibrated model's error; the composite lets the labels decide how
    far the model can be trusted there.
    """
    parts: dict[tuple[Entity, Policy], TotalParts] = {}
    moments = []
    for key, pop in populations.items():
        d = estimand_domains(pop)
        parts[key] = total_parts(
            pop.f,
            d,
            pop.draws,
            frames=pop.frames,
            flip_rate=pop.flip_rate,
            names=d.names,
            strata=actioned_strata(pop),
        )
        moments.extend(parts[key].moments(d.names.index(f"pos|{ALL_CHANNELS}")))
    fitted = fit_model_bias_posterior(moments)
    bias = {s: fitted[s] for s in shrink if s in fitted}
    return {key: combine_parts(p, model_bias=bias) for key, p in parts.items()}


def strategy_metrics(
    populations: Mapping[tuple[Entity, Policy], Population],
    *,
    confidence: float = 0.95,
    fp_cost: float = 1.0,
    fn_cost: float = 2.0,
    impression_cost: float = 0.0,
    truth: Mapping[tuple[Entity, Policy], npt.ArrayLike] | None = None,
    composite: bool = False,
) -> pd.DataFrame:
    """One row per strategy x channel (plus `all`, and `*` = every strategy of the policy).

    With `truth` (true 0/1 labels per population unit) the table holds the true values instead.
    `composite` uses `composite_totals` (GOVRISK_AUDIT_COMPOSITE_ESTIMATES in an audit);
    otherwise each population's design-based totals.
    """
    rows: list[dict[str, object]] = []
    shrunk = composite_totals(populations) if composite and truth is None else {}
    for key, pop in populations.items():
        d, consts = estimand_domains(pop), estimand_constants(pop)
        if truth is not None:
            est = _exact(d, truth[key])
        elif key in shrunk:
            est = shrunk[key]
        else:
            est = estimate_totals(
                pop.f, d, pop.draws, frames=pop.frames, flip_rate=pop.flip_rate, names=d.names
            )
        for t in d.targets:
            for c in (ALL_CHANNELS, *t.channels):
                if c != ALL_CHANNELS and c not in pop.channels:
                    continue
                rows.append(
                    _row(
                        pop,
                        est,
                        consts,
                        t.ref,
                        c,
                        confidence,
                        fp_cost,
                        fn_cost,
                        impression_cost,
                        exact=truth is not None,
                    )
                )
    df = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    for col in ("strategy", "strategy_id", "entity", "policy", "channel"):
        df[col] = df[col].astype("str")
    df["strategy_version"] = df["strategy_version"].astype("Int64")
    for col in ("n_actioned", "n_labels", "n_labels_population"):
        df[col] = df[col].astype("int64")
    return df


def more_labels_to_pin(width: float, n_labels: int, *, max_width: float) -> int | None:
    """About how many labels, beyond the `n_labels` behind an interval `width` wide, would
    narrow it to `max_width` (0 when it already is; None when no label stands behind it or the
    width is unknown).

    Assumes the width shrinks as 1 / sqrt(labels) with more labels drawn the same way (the
    model's share of the variance and the design's weights unchanged): needed labels
    `n (width / max_width)^2`. Where the model carries the interval (`model_only_share`) this
    understates the need.
    """
    if not math.isfinite(width) or max_width <= 0:
        return None
    if width <= max_width:
        return 0
    if n_labels <= 0:
        return None
    return max(1, math.ceil(n_labels * (width / max_width) ** 2) - n_labels)


#: Labels behind each number: precision rests on the labels inside the strategy's actioned
#: set, recall on every label of its (entity, policy) population (its denominator spans it).
LABELS_BEHIND = {"precision": "n_labels", "recall": "n_labels_population"}


@dataclass(frozen=True)
class LabelSupport:
    """The labels behind one precision or recall and whether they pin it."""

    n_labels: int
    #: Unknown value: None; pinned: 0; otherwise about how many more labels would pin it
    #: (None also when no label stands behind a wide interval).
    more_needed: int | None
    known: bool
    where: str

    @property
    def pinned(self) -> bool:
        """The interval is at most the pinned width."""
        return self.known and self.more_needed == 0

    @property
    def note(self) -> str:
        """ "needs about N more labels in ..." for a person, or "" when pinned or unknown."""
        if not self.known or self.more_needed == 0:
            return ""
        if self.more_needed is None:
            return f"not pinned: no labels {self.where} yet"
        return f"needs about {self.more_needed:,} more labels {self.where}"


def label_support(
    row: pd.Series | Mapping[str, Any], name: str, *, max_width: float
) -> LabelSupport:
    """The labels behind a metrics-table row's precision or recall (`name`) and, when its
    interval is wider than `max_width`, about how many more would pin it."""
    n = int(row[LABELS_BEHIND[name]])
    value, low, high = (float(row[k]) for k in (name, f"{name}_low", f"{name}_high"))
    where = (
        "among its actioned items"
        if name == "precision"
        else f"on {row['entity']} items for {row['policy']}"
    )
    known = math.isfinite(value)
    more = more_labels_to_pin(high - low, n, max_width=max_width) if known else None
    return LabelSupport(n, more, known, where)


def _row(
    pop: Population,
    est: TotalEstimate,
    consts: Mapping[str, float],
    ref: str,
    channel: str,
    confidence: float,
    fp_cost: float,
    fn_cost: float,
    impression_cost: float,
    *,
    exact: bool = False,
) -> dict[str, object]:
    key = f"{ref}|{channel}"
    n_act = consts[f"n|{key}"]
    tp_name, pos_name = f"tp|{key}", f"pos|{channel}"
    tp, tp_se = est.value(tp_name), est.se(tp_name)
    tp = float(np.clip(tp, 0.0, n_act))
    prec, prec_se = est.ratio(tp_name, n_act) if n_act > 0 else (float("nan"), float("nan"))
    confirmed = 0.0 if exact else consts[f"fnlab|{key}"]
    rec, rec_low, rec_high, fn, fn_low, fn_high = _recall_and_misses(
        est,
        tp_name,
        pos_name,
        tp=tp,
        n_act=n_act,
        confirmed=confirmed,
        model_fn=None if exact else consts[f"fnmodel|{key}"],
        confidence=confidence,
    )
    fp = n_act - tp
    fn_imp, fn_imp_se = est.value(f"fnimp|{key}"), est.se(f"fnimp|{key}")
    fn_gmv, fn_gmv_se = est.value(f"fngmv|{key}"), est.se(f"fngmv|{key}")
    lost_imp, lost_gmv = consts[f"lostimp|{key}"], consts[f"lostgmv|{key}"]
    fp_imp = lost_imp - est.value(f"fpimp|{key}")
    fp_imp_se = est.se(f"fpimp|{key}")
    fp_gmv = lost_gmv - est.value(f"fpgmv|{key}")
    fp_gmv_se = est.se(f"fpgmv|{key}")
    inf = float("inf")

    def ci(p: float, se: float, lo: float = 0.0, hi: float = inf) -> tuple[float, float]:
        return interval(p, se, confidence=confidence, lower=lo, upper=hi)

    strategy_id, version = (ref, None) if ref == ALL_STRATEGIES else parse_ref(ref)
    i_tp = est.index(tp_name)
    fn_c = max(fn, 0.0)
    fn_imp_c = float(np.clip(fn_imp, 0.0, None))
    fp_imp_c = float(np.clip(fp_imp, 0.0, lost_imp))
    return {
        "strategy": ref,
        "strategy_id": strategy_id,
        "strategy_version": version,
        "entity": pop.entity.value,
        "policy": pop.policy.value,
        "channel": channel,
        "n_actioned": int(n_act),
        "precision": float(np.clip(prec, 0, 1)) if np.isfinite(prec) else np.nan,
        "precision_low": ci(prec, prec_se, 0.0, 1.0)[0],
        "precision_high": ci(prec, prec_se, 0.0, 1.0)[1],
        "recall": float(np.clip(rec, 0, 1)) if np.isfinite(rec) else np.nan,
        "recall_low": rec_low,
        "recall_high": rec_high,
        "tp": tp,
        "fp": fp,
        "fp_low": ci(fp, tp_se, 0.0, n_act)[0],
        "fp_high": ci(fp, tp_se, 0.0, n_act)[1],
        "fn": fn_c,
        "fn_low": fn_low,
        "fn_high": fn_high,
        "fn_confirmed": confirmed,
        "fn_impressions": fn_imp_c,
        "fn_impressions_low": ci(fn_imp, fn_imp_se)[0],
        "fn_impressions_high": ci(fn_imp, fn_imp_se)[1],
        "fn_gmv": float(np.clip(fn_gmv, 0.0, None)),
        "fn_gmv_low": ci(fn_gmv, fn_gmv_se)[0],
        "fn_gmv_high": ci(fn_gmv, fn_gmv_se)[1],
        "fp_impressions": fp_imp_c,
        "fp_impressions_low": ci(fp_imp, fp_imp_se, 0.0, lost_imp)[0],
        "fp_impressions_high": ci(fp_imp, fp_imp_se, 0.0, lost_imp)[1],
        "fp_gmv": float(np.clip(fp_gmv, 0.0, lost_gmv)),
        "fp_gmv_low": ci(fp_gmv, fp_gmv_se, 0.0, lost_gmv)[0],
        "fp_gmv_high": ci(fp_gmv, fp_gmv_se, 0.0, lost_gmv)[1],
        "error_cost": fp_cost * fp + fn_cost * fn_c + impression_cost * (fn_imp_c + fp_imp_c),
        "n_labels": int(est.n_labels[i_tp]),
        "n_labeled_positive": int(est.n_labeled_positive[i_tp]),
        "n_labels_population": len(pop.draws),
        "model_only_share": float(est.model_only_share[i_tp]),
        "flip_rate": pop.flip_rate,
    }


def _recall_and_misses(
    est: TotalEstimate,
    tp_name: str,
    pos_name: str,
    *,
    tp: float,
    n_act: float,
    confirmed: float,
    model_fn: float | None,
    confidence: float,
) -> tuple[float, float, float, float, float, float]:
    """Recall and the false-negative count with their intervals: (recall, low, high, fn, low,
    high). `model_fn` (None for exact totals) is the model's count, the fallback where the
    design correction cannot place the total; `confirmed` misses bound both."""
    rec, rec_se = est.ratio(tp_name, pos_name)
    fn, fn_se = est.linear({pos_name: 1.0, tp_name: -1.0})
    fn_low, fn_high = interval(fn, fn_se, confidence=confidence, lower=0.0)
    rec_low, rec_high = interval(rec, rec_se, confidence=confidence, lower=0.0, upper=1.0)
    if model_fn is not None and (not np.isfinite(fn) or fn < confirmed):
        # The design correction left fewer false negatives than reviewers already confirmed
        # (a few noisy random labels over thousands of unactioned units cannot place the
        # total): the point falls back to the model's count, at least the confirmed misses.
        fn = max(model_fn, confirmed)
        rec = tp / (tp + fn) if tp + fn > 0 else float("nan")
        if not (np.isfinite(rec_low) and np.isfinite(rec_high)):
            # No positive total to take a ratio against: the labels only bound recall above.
            rec_low, rec_high = 0.0, 1.0
        fn_low = fn_low if np.isfinite(fn_low) else 0.0
        fn_high = fn_high if np.isfinite(fn_high) else float("inf")
    if confirmed > 0:
        # The false negatives include the misses reviewers confirmed: they bound the count
        # below and recall above.
        fn_low, fn_high = max(fn_low, confirmed), max(fn_high, confirmed)
        tp_high = min(tp + z_value(confidence) * est.se(tp_name), n_act)
        rec_high = min(rec_high, tp_high / (tp_high + confirmed) if tp_high > 0 else 0.0)
    if np.isfinite(rec):
        rec_low, rec_high = min(rec_low, rec), max(rec_high, rec)
    if np.isfinite(fn):
        fn_low, fn_high = min(fn_low, fn), max(fn_high, fn)
    return rec, rec_low, rec_high, fn, fn_low, fn_high
