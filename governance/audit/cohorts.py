"""Cohort checks on strategy hits: changes the error-weighted slice search cannot see yet.

Slices rank where a strategy's *estimated* errors concentrate, so they find only what the model
and the labels already know. Two common failures show in the strategies' own hits first:

- **Decay** (a stale rule): the strategy acts far less often on recently created items than on
  older ones of the segment it used to act on, beyond the age effect the entity's other
  strategies show and beyond any drop in the model's risk there (violators changed their
  wording; the rule did not).
- **New segment** (an uncovered gap): a categorical level whose first item came well into the
  period (a newly launched category) and that the policy's strategies hardly act on.

Both yield false-negative slices in the slice table's terms: a decay slice names the segment
and the item age below which hits fell; a new segment names the level.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from governance.audit.estimators import BoolArray, FloatArray

CohortKind = Literal["decay", "new_segment"]


@dataclass(frozen=True)
class HitHistory:
    """One strategy's hits over the units of its population: (N,) hit, age in days, risk."""

    hits: BoolArray
    age_days: FloatArray
    risk: FloatArray


@dataclass(frozen=True)
class CohortSlice:
    """A segment found by a cohort check: (N,) unit mask, its predicates and how strong it is."""

    kind: CohortKind
    mask: BoolArray
    description: str
    predicates: tuple[dict[str, object], ...]
    score: float


def categorical_levels(
    X: pd.DataFrame, *, max_levels: int = 50
) -> dict[str, npt.NDArray[np.object_]]:
    """The (N,) values of every string-like column with 2..`max_levels` distinct values."""
    out: dict[str, npt.NDArray[np.object_]] = {}
    for col in X.columns:
        s = X[col]
        if pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
            continue
        n = s.nunique(dropna=True)
        if 2 <= n <= max_levels:
            out[str(col)] = s.astype("object").where(s.notna(), None).to_numpy()
    return out


def _cohort_counts(h: HitHistory, late: BoolArray, seg: BoolArray) -> tuple[float, float, float]:
    """Early hits, late hits and the late hits expected at the early catch rate (risk-scaled)."""
    early = ~late & np.isfinite(h.age_days)
    h_e = float(h.hits[early & seg].sum())
    h_l = float(h.hits[late & seg].sum())
    r_e = float(h.risk[early & seg].sum())
    r_l = float(h.risk[late & seg].sum())
    expected = h_e * r_l / r_e if r_e > 0 else 0.0
    return h_e, h_l, expected


def age_effect(others: Sequence[HitHistory], cut_days: float) -> float:
    """Late hits over the late hits expected from the early catch rate, pooled over `others`:
    how much less often strategies act on young items for age alone (1 when unknown)."""
    observed = expected = 0.0
    for h in others:
        late = h.age_days < cut_days
        everything = np.ones(len(h.hits), dtype=bool)
        _, h_l, e = _cohort_counts(h, late, everything)
        observed, expected = observed + h_l, expected + e
    if expected < 10:
        return 1.0
    return float(np.clip(observed / expected, 0.25, 2.0))


def decay_slices(
    history: HitHistory,
    categoricals: Mapping[str, npt.NDArray[np.object_]],
    others: Sequence[HitHistory],
    *,
    age_feature: str,
    cuts_days: Sequence[float] | None = None,
    min_early_hits: int = 10,
    max_ratio: float = 0.5,
    min_z: float = 3.0,
    min_units: int = 20,
    max_set: int = 8,
) -> list[CohortSlice]:
    """The segment and age below which the strategy's hits fell most, if they fell
    significantly: late hits at most `max_ratio` of those expected (early catch rate x late
    risk / early risk x the entity's age effect) with a log-rate-ratio z of at most -`min_z`.

    Cuts: every week up to half the period. Candidate segments: per categorical feature, the
    few levels that held the strategy's early hits (its reach, see `_reach`). A rule acting
    everywhere is not tested: its hits commonly grow with age for its own reasons (views,
    complaints and enforcement build up), which reads as decay. Of the significant drops, the
    one with the fewest recent units among those within 10% of the strongest (Poisson
    likelihood ratio) wins, so a rule that only ever acted in a few categories gets a slice
    naming them.
    """
    age = history.age_days
    finite = age[np.isfinite(age)]
    if not len(finite) or not history.hits.any():
        return []
    oldest = float(finite.max())
    cuts = list(cuts_days) if cuts_days is not None else list(np.arange(7.0, oldest / 2 + 1, 7.0))
    found: list[tuple[float, int, CohortSlice]] = []
    for cut in cuts:
        late = age < cut
        if late.sum() < min_units or (~late & np.isfinite(age)).sum() < min_units:
            continue
        rho = age_effect(others, cut)
        segments: list[tuple[str, BoolArray, tuple[dict[str, object], ...]]] = []
        for name, values in categoricals.items():
            segments.extend(_reach(history, late, name, values, max_set=max_set))
        for desc, seg, preds in segments:
            h_e, h_l, expected = _cohort_counts(history, late, seg)
            if h_e < min_early_hits:
                continue
            expected *= rho
            n_late = int((late & seg).sum())
            if n_late < min_units or expected <= 0 or h_l > max_ratio * expected:
                continue
            z = math.log((h_l + 0.5) / (expected + 0.5)) / math.sqrt(
                1.0 / (h_l + 0.5) + 1.0 / (h_e + 0.5)
            )
            if z > -min_z:
                continue
            fell = 1.0 - h_l / expected
            age_pred = {"feature": age_feature, "op": "<", "value": float(cut)}
            cand = CohortSlice(
                kind="decay",
                mask=seg & late,
                description=(
                    f"[decay] {fell:.0%} fewer hits than the {expected:.0f} expected on items "
                    f"created in the last {cut:g} days: "
                    + (f"{desc} AND " if preds else "")
                    + f"{age_feature} < {cut:g}"
                ),
                predicates=(*preds, age_pred),
                score=-z,
            )
            # Poisson log-likelihood ratio of the drop (the scan statistic): peaks where the
            # cut meets the change and the segment holds the hits that fell.
            llr = h_l * math.log(max(h_l, 1e-9) / expected) - (h_l - expected)
            found.append((llr, n_late, cand))
    if not found:
        return []
    # A nearly as strong drop in fewer recent units: the more specific segment.
    top = max(f[0] for f in found)
    return [min((f for f in found if f[0] >= 0.9 * top), key=lambda f: (f[1], -f[0]))[2]]


def _reach(
    history: HitHistory,
    late: BoolArray,
    name: str,
    values: npt.NDArray[np.object_],
    *,
    hit_share: float = 0.95,
    max_unit_share: float = 0.5,
    max_set: int = 8,
) -> list[tuple[str, BoolArray, tuple[dict[str, object], ...]]]:
    """The fewest levels of `name` holding `hit_share` of the strategy's early hits, when they
    hold at most `max_unit_share` of the units: where the rule acts (none when it acts
    everywhere)."""
    early = ~late & np.isfinite(history.age_days)
    hit_values = values[history.hits & early]
    hit_values = hit_values[pd.notna(hit_values)]
    if not len(hit_values):
        return []
    counts = pd.Series(hit_values.astype(str)).value_counts()
    need = hit_share * counts.sum()
    chosen = list(counts.index[: int(np.searchsorted(counts.cumsum().to_numpy(), need)) + 1])
    if len(chosen) > max_set:
        return []
    seg = np.isin(values.astype(str), chosen) & pd.notna(values)
    if seg.mean() > max_unit_share:
        return []
    levels = sorted(chosen)
    pred: dict[str, object] = (
        {"feature": name, "op": "==", "value": levels[0]}
        if len(levels) == 1
        else {"feature": name, "op": "in", "value": levels}
    )
    desc = f"{name} = {levels[0]}" if len(levels) == 1 else f"{name} in [{', '.join(levels)}]"
    return [(desc, seg, (pred,))]


def new_segment_slices(
    any_hits: BoolArray,
    age_days: FloatArray,
    categoricals: Mapping[str, npt.NDArray[np.object_]],
    *,
    min_units: int = 20,
    max_chance: float = 1e-3,
    max_hit_share: float = 0.25,
    min_gap_share: float = 0.25,
) -> list[CohortSlice]:
    """Levels that appeared during the period and that the policy's strategies hardly act on.

    A level of n units whose oldest is g days younger than the oldest unit overall is new when
    n units spread over the whole period would all miss its first g days with chance below
    `max_chance`, i.e. (1 - g / oldest)^n < max_chance, and g is at least `min_gap_share` of
    the period (items cluster by seller, so a level of a few late sellers passes the chance
    test alone); it is uncovered when its hit rate is at most `max_hit_share` of the
    population's.
    """
    finite = age_days[np.isfinite(age_days)]
    if not len(finite):
        return []
    oldest = float(finite.max())
    base_rate = float(any_hits.mean()) if len(any_hits) else 0.0
    out: list[CohortSlice] = []
    for name, values in categoricals.items():
        for v in pd.unique(values):
            if v is None:
                continue
            seg = values == v
            n = int(seg.sum())
            ages = age_days[seg]
            ages = ages[np.isfinite(ages)]
            if n < min_units or not len(ages) or oldest <= 0:
                continue
            first = float(ages.max())
            gap = oldest - first
            if gap < min_gap_share * oldest:
                continue
            log_chance = n * math.log1p(-min(gap / oldest, 1.0 - 1e-12))
            if log_chance >= math.log(max_chance):
                continue
            hit_rate = float(any_hits[seg].mean())
            if hit_rate > max_hit_share * base_rate:
                continue
            out.append(
                CohortSlice(
                    kind="new_segment",
                    mask=seg,
                    description=(
                        f"[new segment] {name} = {v}: first item {first:.0f} days ago, "
                        f"{int(any_hits[seg].sum())} of {n} acted on by the policy's strategies"
                    ),
                    predicates=({"feature": name, "op": "==", "value": str(v)},),
                    score=-log_chance,
                )
            )
    out.sort(key=lambda s: -s.score)
    return out
