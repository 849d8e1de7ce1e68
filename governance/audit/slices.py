"""Root causes: the slices where a strategy's estimated errors concentrate (SliceLine search).

SliceLine (Sagadeeva & Boehm, SIGMOD 2021) searches the lattice of conjunctions of binned
features level by level, pruning with the upper bound of any refinement's score (its size and
error sum cannot exceed its parents'). This module implements that search with per-row
(fractional) errors, vectorized with bincount, and by default scores a slice of size s with
error sum e by the Bernoulli log-likelihood ratio of its error rate against the overall one
(the scan statistic), less log(#levels) per predicate beyond the first; SliceLine's own score

    score(S) = alpha * ((e(S) / |S|) / e_bar - 1) - (1 - alpha) * (n / |S| - 1)

ranks tiny slices with a marginally higher rate first, which buries large clear ones. Numeric
features are binned per search where that search's errors change (a 1-D regression tree).
Besides feature slices, a strategy gets structural ones that map to a fix of its condition:
the `any` branch its FPs alone fired through, and the `all` member its near-miss FNs alone
fail. The `sliceline` package was evaluated (works with pandas 3 and numpy 2) but
materialises a dense rows x candidates product that needed 27.7 GiB at level 3 on 100k rows x
12 features, takes no row weights and returns redundant refinements of one slice, so it is
not used.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.contract import typed_frame
from features.vocabulary import Entity, Policy
from governance.audit.cohorts import (
    CohortSlice,
    HitHistory,
    categorical_levels,
    decay_slices,
    new_segment_slices,
)
from governance.audit.estimators import FloatArray
from governance.audit.population import Population
from governance.audit.settings import SLICE_ALPHA
from governance.audit.tables import SLICES
from governance.evaluator import EvaluationError, FrameEvaluator
from governance.strategy import (
    AllOf,
    AnyOf,
    Condition,
    Predicate,
    Strategy,
    condition_to_data,
    negate,
    parse_ref,
    render_condition,
)

SLICE_COLUMNS: tuple[str, ...] = tuple(SLICES.column_names)
#: The pseudo-strategy of a policy's coverage gaps (as in the metrics table).
ALL_STRATEGIES = "*"


@dataclass(frozen=True)
class BinnedFeature:
    """One feature cut into levels, with the strategy predicates each level stands for."""

    name: str
    codes: npt.NDArray[np.int64]
    labels: tuple[str, ...]
    predicates: tuple[tuple[dict[str, object], ...], ...]


@dataclass(frozen=True)
class Slice:
    """A conjunction of (feature, level) pairs and its statistics."""

    items: tuple[tuple[int, int], ...]
    size: float
    errors: float
    score: float


def bin_features(
    X: pd.DataFrame,
    *,
    n_bins: int = 5,
    max_levels: int = 40,
    errors: npt.ArrayLike | None = None,
    min_support: int = 20,
    min_z: float = 4.0,
) -> list[BinnedFeature]:
    """Numeric columns into bins, booleans as is, categoricals by top levels.

    Without `errors`, numeric bins are quantiles. With `errors` (one per row), numeric bins
    are cut where the mean error changes (`_error_cuts`: a 1-D regression tree of at most
    `n_bins` leaves of `min_support` rows, each split significant at `min_z`), falling back to
    quantiles for a column without such a change; rare categorical levels (fewer than
    `min_support` rows) fold into `other`.
    """
    e = None if errors is None else np.asarray(errors, dtype=np.float64)
    if e is not None and e.shape != (len(X),):
        raise ValueError(f"errors needs one value per row of X ({len(X)}), got shape {e.shape}")
    out: list[BinnedFeature] = []
    for name in X.columns:
        s = X[name]
        if pd.api.types.is_bool_dtype(s.dtype):
            out.append(_bin_bool(str(name), s))
        elif pd.api.types.is_numeric_dtype(s.dtype):
            out.extend(_bin_numeric(str(name), s.astype("float64"), n_bins, e, min_support, min_z))
        else:
            out.append(
                _bin_categorical(str(name), s, max_levels, min_support if e is not None else 1)
            )
    return out


def _bin_bool(name: str, s: pd.Series) -> BinnedFeature:
    missing = s.isna().to_numpy()
    vals = s.fillna(False).to_numpy(dtype=bool)
    codes = np.where(missing, 2, vals.astype(np.int64))
    preds: tuple[tuple[dict[str, object], ...], ...] = (
        ({"feature": name, "op": "==", "value": False},),
        ({"feature": name, "op": "==", "value": True},),
        ({"feature": name, "op": "is_null"},),
    )
    return BinnedFeature(name, codes, tuple(_predicates_label(p) for p in preds), preds)


def _predicates_label(preds: Sequence[Mapping[str, object]]) -> str:
    """A bin's predicates as the strategy file's renderer writes them (`a == 'x' AND ...`)."""
    return " AND ".join(render_condition(Predicate.model_validate(d)) for d in preds)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _round_between(lo: float, hi: float) -> float:
    """The roundest number v with lo < v <= hi (fewest significant digits)."""
    if hi == 0.0 or lo < 0.0 < hi:
        return 0.0 if lo < 0.0 else hi
    exp = int(np.floor(np.log10(abs(hi))))
    for digits in range(1, 16):
        step = 10.0 ** (exp - digits + 1)
        v = float(np.floor(hi / step) * step)
        v = float(f"{v:.{digits + 2}g}")
        if lo < v <= hi:
            return v
    return hi


def _error_cuts(
    x: FloatArray, e: FloatArray, *, max_leaves: int, min_leaf: int, min_z: float
) -> list[float]:
    """Cut points of a best-first 1-D regression tree of `e` on `x`, in the order found.

    A leaf is split where the two sides' mean errors differ most (largest squared-error
    reduction), only between distinct values, with `min_leaf` rows a side, and only when the
    difference is `min_z` standard errors or more.
    """
    order = np.argsort(x, kind="stable")
    xs, es = x[order], e[order]
    cuts: list[float] = []
    first = _best_split(xs, es, 0, len(xs), min_leaf, min_z)
    candidates = [first] if first is not None else []
    bounds = [(0, len(xs))]
    while candidates and len(bounds) < max_leaves:
        k = max(range(len(candidates)), key=lambda i: candidates[i][0])
        _, at = candidates.pop(k)
        seg = next(b for b in bounds if b[0] < at < b[1])
        bounds.remove(seg)
        cuts.append(_round_between(float(xs[at - 1]), float(xs[at])))
        for lo, hi in ((seg[0], at), (at, seg[1])):
            bounds.append((lo, hi))
            best = _best_split(xs, es, lo, hi, min_leaf, min_z)
            if best is not None:
                candidates.append(best)
    return cuts


def _best_split(
    xs: FloatArray, es: FloatArray, lo: int, hi: int, min_leaf: int, min_z: float
) -> tuple[float, int] | None:
    n = hi - lo
    if n < 2 * min_leaf:
        return None
    seg_x, seg_e = xs[lo:hi], es[lo:hi]
    c = np.cumsum(seg_e)
    total = float(c[-1])
    var = (float(np.sum(seg_e * seg_e)) - total * total / n) / (n - 1)
    if var <= 1e-12:
        return None
    n_left = np.arange(1, n, dtype=np.float64)
    n_right = n - n_left
    left = c[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = (left / n_left - (total - left) / n_right) ** 2 * n_left * n_right / n
    valid = (seg_x[1:] > seg_x[:-1]) & (n_left >= min_leaf) & (n_right >= min_leaf)
    if not valid.any():
        return None
    gain = np.where(valid, gain, -1.0)
    i = int(np.argmax(gain))
    # gain / var is the squared two-sample z statistic of the split (variance pooled).
    if gain[i] / var < min_z * min_z:
        return None
    return float(gain[i]), lo + i + 1


def _bin_numeric(
    name: str,
    s: pd.Series,
    n_bins: int,
    errors: FloatArray | None = None,
    min_support: int = 20,
    min_z: float = 4.0,
) -> list[BinnedFeature]:
    """The feature's bins; with error cuts past the first, also the first cut alone (a
    one-sided split, which finer bins would cut in pieces)."""
    arr = s.to_numpy(dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.any():
        return []
    uniq = np.unique(arr[finite])
    cuts: list[float] = []
    if errors is not None and len(uniq) > 1:
        cuts = _error_cuts(
            arr[finite],
            errors[finite],
            max_leaves=n_bins,
            min_leaf=min_support,
            min_z=min_z,
        )
    out = [_numeric_levels(name, arr, uniq, n_bins, sorted(cuts))]
    if len(cuts) > 1:
        out.append(_numeric_levels(name, arr, uniq, n_bins, cuts[:1]))
    return [b for b in out if b is not None]


def _numeric_levels(
    name: str, arr: FloatArray, uniq: FloatArray, n_bins: int, cuts: list[float]
) -> BinnedFeature | None:
    present = ~np.isnan(arr)  # +-inf fall in the outer bins, as the evaluator compares them
    finite = np.isfinite(arr)
    exact = not cuts and len(uniq) <= n_bins and not (present & ~finite).any()
    if cuts:
        edges = np.array([float(uniq[0]), *cuts, np.inf])
    elif exact:
        edges = np.concatenate([uniq, [np.inf]])
    else:
        qs = np.quantile(arr[finite], np.linspace(0, 1, n_bins + 1))
        edges = np.unique(qs)
        edges[-1] = np.inf
    n_lv = len(edges) - 1
    if n_lv < 2:
        return None
    codes = np.searchsorted(edges, np.where(present, arr, 0.0), side="right") - 1
    codes = np.clip(codes, 0, n_lv - 1)
    codes = np.where(present, codes, n_lv).astype(np.int64)
    labels: list[str] = []
    preds: list[tuple[dict[str, object], ...]] = []
    for k in range(n_lv):
        lo, hi = float(edges[k]), float(edges[k + 1])
        if exact:
            labels.append(f"{name} = {_fmt(lo)}")
            preds.append(({"feature": name, "op": "==", "value": lo},))
        elif k == 0:
            labels.append(f"{name} < {_fmt(hi)}")
            preds.append(({"feature": name, "op": "<", "value": hi},))
        elif k == n_lv - 1:
            labels.append(f"{name} >= {_fmt(lo)}")
            preds.append(({"feature": name, "op": ">=", "value": lo},))
        else:
            labels.append(f"{_fmt(lo)} <= {name} < {_fmt(hi)}")
            preds.append(
                (
                    {"feature": name, "op": ">=", "value": lo},
                    {"feature": name, "op": "<", "value": hi},
                )
            )
    preds.append(({"feature": name, "op": "is_null"},))
    labels.append(_predicates_label(preds[-1]))
    return BinnedFeature(name, codes, tuple(labels), tuple(preds))


def _bin_categorical(name: str, s: pd.Series, max_levels: int, min_count: int = 1) -> BinnedFeature:
    vals = s.astype("object").where(s.notna(), None)
    counts = vals.value_counts(dropna=True)
    counts = counts[counts >= min_count]
    top = [str(v) for v in counts.index[:max_levels]]
    lookup = {v: i for i, v in enumerate(top)}
    other = len(top)
    missing = other + 1
    codes = np.array(
        [missing if v is None else lookup.get(str(v), other) for v in vals], dtype=np.int64
    )
    preds: list[tuple[dict[str, object], ...]] = [
        ({"feature": name, "op": "==", "value": v},) for v in top
    ]
    preds.append(({"feature": name, "op": "not_in", "value": top},) if top else ())
    preds.append(({"feature": name, "op": "is_null"},))
    labels = [_predicates_label(p) for p in preds[:other]]
    labels += [f"{name} is another value", _predicates_label(preds[missing])]
    return BinnedFeature(name, codes, tuple(labels), tuple(preds))


#: How a slice is scored: the log-likelihood ratio of its error rate against the rest
#: (size and lift together) or SliceLine's linear mix of lift and relative size.
ScoreKind = Literal["likelihood", "sliceline"]


def find_slices(
    features: Sequence[BinnedFeature],
    errors: npt.ArrayLike,
    *,
    alpha: float = SLICE_ALPHA,
    max_level: int = 3,
    min_support: int = 20,
    top_k: int = 10,
    beam: int = 64,
    score: ScoreKind = "likelihood",
    required: int | None = None,
    max_overlap: float = 0.6,
    e_bar: float | None = None,
) -> list[Slice]:
    """Top-k distinct slices by score (redundant refinements and near-duplicates removed).

    `likelihood` scores a slice of size s with error sum e by the Bernoulli log-likelihood
    ratio of its rate m = e / s against the overall rate (the scan statistic; positive only
    where m exceeds the overall rate), so a large slice with a clear lift beats a tiny one
    with a slightly higher rate; `sliceline` uses SliceLine's score with weight `alpha`.
    With `required` (a feature index), every slice holds one level of that feature. A slice
    whose rows overlap a better one's by Jaccard index `max_overlap` or more is dropped.
    `e_bar` replaces the mean error as the rate slices are compared with (when `errors` are
    a subset of the rows, the whole set's rate).
    """
    e = np.asarray(errors, dtype=np.float64)
    if e.ndim != 1 or any(f.codes.shape != e.shape for f in features):
        raise ValueError("every binned feature needs one code per error value")
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if required is not None and not 0 <= required < len(features):
        raise ValueError(f"required must index one of the {len(features)} features")
    if len(e) == 0 or e.sum() <= 0 or not features:
        return []
    scorer = _Scorer(
        score,
        len(e),
        float(e.mean()) if e_bar is None else e_bar,
        alpha,
        float(np.log(sum(len(f.labels) for f in features))),
    )
    return _compute_slices(
        list(features), e, scorer, max_level, min_support, top_k, beam, required, max_overlap
    )


@dataclass(frozen=True)
class _Scorer:
    kind: ScoreKind
    n: int
    e_bar: float
    alpha: float
    per_predicate: float = 0.0

    @property
    def min_score(self) -> float:
        """Score a reported slice must beat: under `likelihood`, its first predicate must earn
        its log-count too (a slice that does not is a chance concentration among all the
        levels searched, e.g. a 20-row sliver of a numeric range); 0 under `sliceline`."""
        return self.per_predicate if self.kind == "likelihood" else 0.0

    def __call__(self, size: FloatArray, err: FloatArray, level: int = 1) -> FloatArray:
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.kind == "sliceline":
                sc = self.alpha * ((err / size) / self.e_bar - 1.0) - (1.0 - self.alpha) * (
                    self.n / size - 1.0
                )
            else:
                base = min(max(self.e_bar, 1e-12), 1.0 - 1e-12)
                m = np.clip(err / size, 1e-12, 1.0 - 1e-12)
                llr = err * np.log(m / base) + (size - err) * np.log((1.0 - m) / (1.0 - base))
                # Each predicate beyond the first is one choice among all levels searched: a
                # refinement must earn its log-count in likelihood (a BIC-like penalty), so
                # chance concentrations in long conjunctions do not outrank simple slices.
                sc = np.where(m > base, llr, -llr) - (level - 1) * self.per_predicate
        return np.where(size > 0, sc, -np.inf)


def _compute_slices(
    features: list[BinnedFeature],
    e: FloatArray,
    scorer: _Scorer,
    max_level: int,
    min_support: int,
    top_k: int,
    beam: int,
    required: int | None,
    max_overlap: float,
) -> list[Slice]:
    n = e.shape[0]
    if required is not None:
        # The required feature goes first, so the canonical order extends it with all others.
        order = [required, *(i for i in range(len(features)) if i != required)]
        features = [features[i] for i in order]
    found: dict[tuple[tuple[int, int], ...], Slice] = {}
    # Level 1.
    for fi, feat in enumerate(features):
        if required is not None and fi > 0:
            break
        n_lv = len(feat.labels)
        size = np.bincount(feat.codes, minlength=n_lv).astype(np.float64)
        err = np.bincount(feat.codes, weights=e, minlength=n_lv).astype(np.float64)
        sc = scorer(size, err)
        for lv in range(n_lv):
            whole = size[lv] >= n and required is None
            if size[lv] >= min_support and not whole and len(feat.predicates[lv]):
                one = ((fi, lv),)
                found[one] = Slice(one, float(size[lv]), float(err[lv]), float(sc[lv]))
    # All features' levels in one index space, so one bincount scores every extension.
    n_levels = np.array([len(f.labels) for f in features], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(n_levels)])
    coded = np.column_stack([f.codes + offsets[i] for i, f in enumerate(features)])
    level_feature = np.repeat(np.arange(len(features)), n_levels)
    level_value = np.arange(int(offsets[-1])) - offsets[level_feature]
    has_preds = np.array([len(pr) > 0 for f in features for pr in f.predicates], dtype=bool)
    for level in range(2, max_level + 1):
        bounds = {
            s.items: _upper_bound(s, scorer, min_support)
            for s in found.values()
            if len(s.items) == level - 1
        }
        kth = _kth_score(found, top_k)
        parents = sorted(
            (found[k] for k, ub in bounds.items() if ub > kth),
            key=lambda s: bounds[s.items],
            reverse=True,
        )[:beam]
        if not parents:
            break
        for parent in parents:
            mask = np.ones(n, dtype=bool)
            for fi, lv in parent.items:
                mask &= features[fi].codes == lv
            rows = np.flatnonzero(mask)
            # Canonical order: extend only with later features, so each conjunction is
            # generated once.
            start = max(fi for fi, _ in parent.items) + 1
            if start >= len(features):
                continue
            sub = coded[rows, start:]
            lo, hi = int(offsets[start]), int(offsets[-1])
            size = np.bincount(sub.ravel() - lo, minlength=hi - lo).astype(np.float64)
            errs = np.bincount(
                sub.ravel() - lo,
                weights=np.broadcast_to(e[rows, None], sub.shape).ravel(),
                minlength=hi - lo,
            ).astype(np.float64)
            sc = scorer(size, errs, level)
            # A level holding every parent row restates the parent.
            ok = (size >= min_support) & (size < len(rows)) & (sc > 0) & has_preds[lo:hi]
            for j in np.flatnonzero(ok).tolist():
                fi, lv = int(level_feature[lo + j]), int(level_value[lo + j])
                key: tuple[tuple[int, int], ...] = tuple(sorted((*parent.items, (fi, lv))))
                if key not in found:
                    found[key] = Slice(key, float(size[j]), float(errs[j]), float(sc[j]))
    ranked = sorted(found.values(), key=lambda s: (-s.score, -s.size, s.items))
    kept = _dedupe(ranked, top_k, features, max_overlap, min_score=scorer.min_score)
    if required is not None:
        back = [required, *(i for i in range(len(features)) if i != required)]
        kept = [
            Slice(tuple(sorted((back[fi], lv) for fi, lv in s.items)), s.size, s.errors, s.score)
            for s in kept
        ]
    return kept


def _upper_bound(s: Slice, scorer: _Scorer, min_support: int) -> float:
    # A refinement keeps at most the parent's errors in at least min support rows; the best
    # case is all the errors in as few rows as the errors themselves need (error <= 1 per row).
    # Both scores grow with the error sum and, at a fixed error sum, as the size shrinks.
    size = max(s.errors, float(min_support))
    if scorer.kind == "sliceline":
        return float(scorer(np.array([size]), np.array([s.errors]))[0])
    base = min(max(scorer.e_bar, 1e-12), 1.0 - 1e-12)
    m = min(max(s.errors / size, 1e-12), 1.0 - 1e-12)
    if m <= base:
        return -math.inf
    llr = s.errors * math.log(m / base) + (size - s.errors) * math.log((1.0 - m) / (1.0 - base))
    return llr - len(s.items) * scorer.per_predicate


def _kth_score(found: Mapping[tuple[tuple[int, int], ...], Slice], k: int) -> float:
    scores = sorted((s.score for s in found.values()), reverse=True)
    return scores[k - 1] if len(scores) >= k else 0.0


def _dedupe(
    ranked: list[Slice],
    top_k: int,
    features: Sequence[BinnedFeature],
    max_overlap: float,
    min_gain: float = 1.1,
    within: float = 0.9,
    min_score: float = 0.0,
) -> list[Slice]:
    kept: list[Slice] = []
    masks: list[npt.NDArray[np.bool_]] = []
    seen: dict[tuple[tuple[int, int], ...], float] = {}
    for s in ranked:
        if s.score <= min_score:
            break
        mean_s = s.errors / s.size
        # A refinement of any better-ranked slice (shown or not) must be clearly denser.
        parents = (
            seen.get(sub)
            for r in range(1, len(s.items))
            for sub in itertools.combinations(s.items, r)
        )
        seen[s.items] = mean_s
        if any(m is not None and mean_s < min_gain * m for m in parents):
            continue
        mask = np.ones(features[0].codes.shape, dtype=bool)
        for fi, lv in s.items:
            mask &= features[fi].codes == lv
        redundant = False
        for k, m in zip(kept, masks, strict=True):
            mean_k = k.errors / k.size
            both = float((mask & m).sum())
            # A slice (nearly) inside a kept one must concentrate errors clearly more to be
            # shown; one (nearly) containing a kept one that is no denser adds nothing either;
            # and different predicates selecting mostly the same rows are one finding.
            if both >= within * s.size and mean_s < min_gain * mean_k:
                redundant = True
            elif (
                both >= within * k.size and mean_s * min_gain < mean_k and s.errors < 1.1 * k.errors
            ):
                redundant = True
            elif both >= max_overlap * float((mask | m).sum()):
                redundant = True
            if redundant:
                break
        if redundant:
            continue
        kept.append(s)
        masks.append(mask)
        if len(kept) >= top_k:
            break
    return kept


def slice_table(
    features: Sequence[BinnedFeature],
    slices: Sequence[Slice],
    errors: npt.ArrayLike,
    *,
    baseline: npt.ArrayLike | None = None,
) -> pd.DataFrame:
    """Readable rows for found slices: description, predicates (JSON), size, errors, lift.

    Lift and error share are relative to `baseline` (all the rows `errors` were taken from)
    when given, else to `errors` themselves.
    """
    e = np.asarray(errors if baseline is None else baseline, dtype=np.float64)
    total, e_bar = float(e.sum()), (float(e.mean()) if len(e) else 0.0)
    rows = []
    for rank, s in enumerate(slices, start=1):
        preds: list[dict[str, object]] = []
        desc: list[str] = []
        for fi, lv in s.items:
            preds.extend(features[fi].predicates[lv])
            desc.append(features[fi].labels[lv])
        mean = s.errors / s.size
        rows.append(
            {
                "rank": rank,
                "description": " AND ".join(desc),
                "predicates": json.dumps(preds, default=_json_default),
                "level": len(s.items),
                "size": int(s.size),
                "errors": s.errors,
                "mean_error": mean,
                "lift": mean / e_bar if e_bar > 0 else np.nan,
                "error_share": s.errors / total if total > 0 else np.nan,
                "score": s.score,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "rank",
            "description",
            "predicates",
            "level",
            "size",
            "errors",
            "mean_error",
            "lift",
            "error_share",
            "score",
        ],
    )


def _json_default(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def audit_slices(
    populations: Mapping[tuple[Entity, Policy], Population],
    frames: Mapping[Entity, pd.DataFrame],
    posteriors: Mapping[tuple[Entity, Policy], FloatArray],
    *,
    alpha: float = SLICE_ALPHA,
    max_level: int = 3,
    min_support: int = 20,
    top_k: int = 10,
    n_bins: int = 5,
    exclude_features: Sequence[str] = (),
    exclude_prefixes: Sequence[str] = ("strategy_",),
    exclude_patterns: Sequence[str] = ("*_text_hash_*",),
    strategies: Mapping[str, Strategy] | None = None,
    score: ScoreKind = "likelihood",
    min_z: float = 4.0,
    max_overlap: float = 0.6,
    age_features: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """slices.parquet rows: for each strategy, where its estimated FPs and FNs concentrate.

    FP rows are (item, channel) pairs the strategy actioned, erring with P(not violating); FN
    rows are every (item, channel) pair the item was eligible for, erring with P(violating)
    where the strategy did not act. Strategy `*` holds each policy's gaps: violations no
    audited strategy of the policy acted on. Numeric features are binned per search, where
    that search's errors change (`bin_features` with errors). With `strategies` (by ref), a
    strategy whose condition is an `all` of several members also gets *near-miss* FN slices,
    searched among items that fail exactly one member (what its scope just leaves out), each
    naming the member it fails, interleaved with the general ones. With `age_features` (entity
    -> feature holding an item's age in days), FN searches first list the cohort checks of
    `cohorts`: where a strategy's hits decayed on recent items, and (policy row `*`) new
    segments no strategy acts on.
    """
    search = SliceSearch(alpha, max_level, min_support, top_k, n_bins, score, min_z, max_overlap)
    parts = []
    histories = _hit_histories(populations, frames, age_features or {})
    for key, pop in populations.items():
        if pop.entity not in frames:
            raise ValueError(f"no feature frame for entity {pop.entity.value!r}")
        frame = frames[pop.entity]
        X = _population_frame(pop, frame, exclude_features, exclude_prefixes, exclude_patterns)
        age_feature = (age_features or {}).get(pop.entity.value)
        context = _PopulationContext(
            pop,
            X,
            posteriors[key],
            near=_near_misses(pop, frame, strategies or {}),
            clauses=_clause_features(pop, frame, strategies or {}),
            age_feature=age_feature if age_feature in X.columns else None,
            histories=histories,
        )
        for ref, act in [*pop.actioned.items(), (ALL_STRATEGIES, pop.any_actioned)]:
            for kind in ("fp", "fn"):
                if ref == ALL_STRATEGIES and kind == "fp":
                    continue  # the policy row only looks for gaps no strategy covers
                table = _strategy_slices(search, context, ref, act, kind)
                if table is not None:
                    parts.append(_with_strategy_columns(table, pop, ref, kind))
    if not parts:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in SLICE_COLUMNS})
    return typed_frame(SLICES, pd.concat(parts, ignore_index=True))


@dataclass(frozen=True)
class SliceSearch:
    """How slices are searched: the audit's `slice_*` settings in one object."""

    alpha: float
    max_level: int
    min_support: int
    top_k: int
    n_bins: int
    score: ScoreKind
    min_z: float
    max_overlap: float

    def run(
        self,
        X: pd.DataFrame,
        pop: Population,
        rows: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]],
        err: FloatArray,
        scope: BinnedFeature | None = None,
        base: FloatArray | None = None,
    ) -> pd.DataFrame:
        """The slice table of the (item, channel) `rows` erring with `err`; with `scope`, only
        slices within one of its levels (scored against `base`, all of the strategy's rows)."""
        ii, cc = rows
        feats = bin_features(
            X.take(ii),
            n_bins=self.n_bins,
            errors=err,
            min_support=self.min_support,
            min_z=self.min_z,
        )
        feats.append(_channel_feature(pop, cc))
        if scope is not None:
            feats.insert(
                0, BinnedFeature(scope.name, scope.codes[ii], scope.labels, scope.predicates)
            )
        found = find_slices(
            feats,
            err,
            alpha=self.alpha,
            max_level=self.max_level,
            min_support=self.min_support,
            top_k=self.top_k,
            score=self.score,
            required=0 if scope is not None else None,
            max_overlap=self.max_overlap,
            e_bar=None if base is None else float(base.mean()),
        )
        return slice_table(feats, found, err, baseline=base)


@dataclass
class _PopulationContext:
    """One population's frame, posteriors, structural features and cohort inputs."""

    pop: Population
    X: pd.DataFrame
    post: FloatArray
    near: Mapping[str, list[BinnedFeature]]
    clauses: Mapping[str, list[BinnedFeature]]
    age_feature: str | None
    histories: Mapping[Entity, Mapping[str, HitHistory]]
    #: Each unit's age in days and the categorical levels (when an age feature is declared).
    age: FloatArray | None = None
    levels: Mapping[str, npt.NDArray[np.object_]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.age_feature is not None:
            self.age = pd.to_numeric(self.X[self.age_feature], errors="coerce").to_numpy(np.float64)
            self.levels = categorical_levels(self.X)


def _strategy_slices(
    search: SliceSearch,
    ctx: _PopulationContext,
    ref: str,
    act: npt.NDArray[np.bool_],
    kind: str,
) -> pd.DataFrame | None:
    """One strategy's FP or FN slices (None when too few rows or no error to explain).

    Structural slices, scored against all of the strategy's rows, come first, interleaved with
    the general slices: FPs by the one `any` branch that fired, FNs the scope just misses (all
    but one `all` member hold); FN searches then put the cohort checks first.
    """
    pop, post = ctx.pop, ctx.post
    if kind == "fp":
        ii, cc = np.nonzero(act)
        err = 1.0 - post[ii]
    else:
        ii, cc = np.nonzero(pop.eligible)
        err = post[ii] * (~act[ii, cc])
    if len(ii) < search.min_support or err.sum() <= 0:
        return None
    table = search.run(ctx.X, pop, (ii, cc), err)
    scoped = []
    for scope in ctx.clauses.get(ref, []) if kind == "fp" else ctx.near.get(ref, []):
        keep = scope.codes[ii] < len(scope.labels) - 1
        if keep.sum() >= search.min_support and err[keep].sum() > 0:
            scoped.append(search.run(ctx.X, pop, (ii[keep], cc[keep]), err[keep], scope, err))
    if scoped:
        first = pd.concat(scoped, ignore_index=True).sort_values(
            "score", ascending=False, kind="stable"
        )
        if kind == "fn":
            first["description"] = "[near miss] " + first["description"]
        table = _interleave(first, table, search.top_k)
    if kind == "fn" and ctx.age is not None and ctx.age_feature is not None:
        cohort = _cohort_slices(
            pop, ref, act, ctx.age, ctx.age_feature, ctx.levels, ctx.histories, search.min_support
        )
        table = _cohort_first(cohort, ii, err, table, search.top_k, search.min_support)
    return table


def _with_strategy_columns(
    table: pd.DataFrame, pop: Population, ref: str, kind: str
) -> pd.DataFrame:
    """The slice table with the strategy, its population and the error kind in front."""
    sid, version = (ref, None) if ref == ALL_STRATEGIES else parse_ref(ref)
    table.insert(0, "error_kind", kind)
    table.insert(0, "policy", pop.policy.value)
    table.insert(0, "entity", pop.entity.value)
    table.insert(0, "strategy_version", version)
    table.insert(0, "strategy_id", sid)
    table.insert(0, "strategy", ref)
    return table


def _condition_dicts(node: Condition) -> list[dict[str, object]]:
    """Flat predicate dicts of an `all` chain; other groups stay one (nested) dict."""
    if isinstance(node, AllOf):
        return [d for m in node.all for d in _condition_dicts(m)]
    return [condition_to_data(node)]


def _any_groups(node: Condition, path: str = "condition") -> list[tuple[str, AnyOf]]:
    """`any` groups that decide the whole condition: the top one or members of top `all`s."""
    if isinstance(node, AnyOf):
        return [(path, node)]
    if isinstance(node, AllOf):
        return [g for i, m in enumerate(node.all) for g in _any_groups(m, f"{path}.all[{i}]")]
    return []


def _clause_features(
    pop: Population, frame: pd.DataFrame, strategies: Mapping[str, Strategy]
) -> dict[str, list[BinnedFeature]]:
    """Per strategy ref: one (N,) feature per deciding `any` group, level k = units where only
    its branch k holds (predicates: branch k and the other branches negated); last: others.

    Among actioned units, "only branch k" attributes the action to one clause, so the FPs an
    irrelevant clause causes form one level.
    """
    out: dict[str, list[BinnedFeature]] = {}
    pos, ok = _frame_positions(pop, frame)
    evaluator: FrameEvaluator | None = None
    for ref in pop.actioned:
        strategy = strategies.get(ref)
        if strategy is None:
            continue
        feats: list[BinnedFeature] = []
        for path, group in _any_groups(strategy.condition):
            branches = group.any
            if len(branches) < 2:
                continue
            evaluator = evaluator or FrameEvaluator(frame)
            try:
                hits = np.column_stack([evaluator.mask(b) for b in branches])
                negs = [negate(b) for b in branches]
            except (EvaluationError, ValueError):
                continue
            only = hits & (hits.sum(axis=1) == 1)[:, None]
            codes = np.full(len(pop), len(branches), dtype=np.int64)
            codes[pos[ok]] = np.where(only.any(axis=1), only.argmax(axis=1), len(branches))[ok]
            labels = [f"fires only via {render_condition(b)}" for b in branches]
            preds = [
                tuple(
                    d
                    for m in [b, *(n for i, n in enumerate(negs) if i != k)]
                    for d in _condition_dicts(m)
                )
                for k, b in enumerate(branches)
            ]
            labels.append("fires via several or no branches")
            preds.append(())
            feats.append(BinnedFeature(f"clause {path}", codes, tuple(labels), tuple(preds)))
        if feats:
            out[ref] = feats
    return out


def _frame_positions(
    pop: Population, frame: pd.DataFrame
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Each frame row's position among the population's units, and which rows have one."""
    pos = pd.Index(pop.item_ids, dtype=object).get_indexer(
        pd.Index(frame["item_id"].astype(object))
    )
    return pos, pos >= 0


def _near_misses(
    pop: Population, frame: pd.DataFrame, strategies: Mapping[str, Strategy]
) -> dict[str, list[BinnedFeature]]:
    """Per strategy ref: one (N,) scope feature, a level per way of failing only one member
    of its top-level `all` (predicates: the other members and that member negated); last
    level: every other unit.

    A member on a categorical feature (`==`, `!=`, `in`, `not_in`) fails once per value: each
    value is its own level (the fix adds that value to the member), as is a failing member
    on any other feature.
    """
    out: dict[str, list[BinnedFeature]] = {}
    pos, ok = _frame_positions(pop, frame)
    evaluator: FrameEvaluator | None = None
    for ref in pop.actioned:
        strategy = strategies.get(ref)
        if strategy is None or not isinstance(strategy.condition, AllOf):
            continue
        members = strategy.condition.all
        if len(members) < 2:
            continue
        evaluator = evaluator or FrameEvaluator(frame)
        item_codes = np.full(len(frame), -1, dtype=np.int64)
        labels: list[str] = []
        preds: list[tuple[dict[str, object], ...]] = []
        try:
            hits = np.column_stack([evaluator.mask(m) for m in members])
            for j, member in enumerate(members):
                neg = negate(member)
                rows = evaluator.mask(neg) & np.delete(hits, j, axis=1).all(axis=1)
                others = [d for i, m in enumerate(members) if i != j for d in _condition_dicts(m)]
                for label, cond, sub in _failing_ways(member, neg, rows, frame):
                    item_codes[sub] = len(labels)
                    labels.append(f"fails only {render_condition(member)}{label}")
                    preds.append((*others, *_condition_dicts(cond)))
        except (EvaluationError, ValueError):
            continue
        codes = np.full(len(pop), len(labels), dtype=np.int64)
        codes[pos[ok]] = np.where(item_codes[ok] >= 0, item_codes[ok], len(labels))
        labels.append("meets all members or fails several")
        preds.append(())
        out[ref] = [BinnedFeature("scope", codes, tuple(labels), tuple(preds))]
    return out


def _failing_ways(
    member: Condition, neg: Condition, rows: npt.NDArray[np.bool_], frame: pd.DataFrame
) -> list[tuple[str, Condition, npt.NDArray[np.bool_]]]:
    """(label suffix, condition, rows) per way `rows` fail `member`: per value of a
    categorical member's feature, else one."""
    categorical = (
        isinstance(member, Predicate)
        and member.op in ("==", "!=", "in", "not_in")
        and member.feature in frame.columns
        and not pd.api.types.is_numeric_dtype(frame[member.feature].dtype)
        and not pd.api.types.is_bool_dtype(frame[member.feature].dtype)
    )
    if not categorical or not rows.any():
        return [("", neg, rows)]
    assert isinstance(member, Predicate)
    values = frame[member.feature].astype("object").to_numpy()
    out: list[tuple[str, Condition, npt.NDArray[np.bool_]]] = []
    for v in pd.unique(values[rows]):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        cond = Predicate(feature=member.feature, op="==", value=str(v))
        out.append((f": {render_condition(cond)}", cond, rows & (values == v)))
    return out


def _hit_histories(
    populations: Mapping[tuple[Entity, Policy], Population],
    frames: Mapping[Entity, pd.DataFrame],
    age_features: Mapping[str, str],
) -> dict[Entity, dict[str, HitHistory]]:
    """Per entity, every audited strategy's hits, unit ages and model risk."""
    out: dict[Entity, dict[str, HitHistory]] = {}
    for pop in populations.values():
        feature = age_features.get(pop.entity.value)
        frame = frames.get(pop.entity)
        if feature is None or frame is None or feature not in frame.columns:
            continue
        pos, ok = _frame_positions(pop, frame)
        age = np.full(len(pop), np.nan)
        age[pos[ok]] = pd.to_numeric(frame[feature], errors="coerce").to_numpy()[ok]
        risk = pop.p_model if np.ptp(pop.p_model) > 0 else np.ones(len(pop))
        for ref, act in pop.actioned.items():
            hits = np.asarray(act.any(axis=1), dtype=bool)
            out.setdefault(pop.entity, {})[ref] = HitHistory(hits, age, risk)
    return out


def _cohort_slices(
    pop: Population,
    ref: str,
    act: npt.NDArray[np.bool_],
    age: FloatArray,
    age_feature: str,
    levels: Mapping[str, npt.NDArray[np.object_]],
    histories: Mapping[Entity, Mapping[str, HitHistory]],
    min_support: int,
) -> list[CohortSlice]:
    if ref == ALL_STRATEGIES:
        hits = np.asarray(act.any(axis=1), dtype=bool)
        return new_segment_slices(hits, age, levels, min_units=min_support)
    entity = histories.get(pop.entity, {})
    own = entity.get(ref)
    if own is None:
        return []
    others = [h for r, h in entity.items() if r != ref]
    return decay_slices(own, levels, others, age_feature=age_feature, min_units=min_support)


def _cohort_first(
    cohort: Sequence[CohortSlice],
    ii: npt.NDArray[np.intp],
    err: FloatArray,
    table: pd.DataFrame,
    top_k: int,
    min_support: int,
) -> pd.DataFrame:
    """The cohort slices (over the search's rows) ahead of the searched ones.

    A new segment is kept only where its estimated error rate is at least the search's."""
    e_bar, total = float(err.mean()), float(err.sum())
    rows = []
    for c in cohort:
        m = c.mask[ii]
        size = int(m.sum())
        if size < min_support:
            continue
        errors = float(err[m].sum())
        mean = errors / size
        if c.kind == "new_segment" and mean < e_bar:
            continue
        rows.append(
            {
                "rank": 0,
                "description": c.description,
                "predicates": json.dumps(list(c.predicates), default=_json_default),
                "level": len(c.predicates),
                "size": size,
                "errors": errors,
                "mean_error": mean,
                "lift": mean / e_bar if e_bar > 0 else np.nan,
                "error_share": errors / total if total > 0 else np.nan,
                "score": c.score,
            }
        )
    if not rows:
        return table
    out = pd.concat([pd.DataFrame(rows, columns=table.columns), table], ignore_index=True)
    out = out.head(top_k).reset_index(drop=True)
    out["rank"] = np.arange(1, len(out) + 1)
    return out


def _interleave(first: pd.DataFrame, second: pd.DataFrame, top_k: int) -> pd.DataFrame:
    rows: list[dict[str, object]] = []
    a = [{str(k): v for k, v in r.items()} for r in first.to_dict("records")]
    b = [{str(k): v for k, v in r.items()} for r in second.to_dict("records")]
    for i in range(max(len(a), len(b))):
        rows.extend(x[i] for x in (a, b) if i < len(x))
    out = pd.DataFrame(rows[:top_k], columns=first.columns)
    out["rank"] = np.arange(1, len(out) + 1)
    return out


def _population_frame(
    pop: Population,
    frame: pd.DataFrame,
    exclude: Sequence[str],
    prefixes: Sequence[str],
    patterns: Sequence[str] = (),
) -> pd.DataFrame:
    """The features a slice may name, one row per population unit (in its order)."""
    aligned = frame.set_index(frame["item_id"].astype(object)).reindex(
        pd.Index(pop.item_ids, dtype=object)
    )
    skip = {"item_id", *exclude}
    cols = [
        c
        for c in aligned.columns
        if c not in skip
        and not str(c).startswith(("p_", *prefixes))
        and not any(fnmatch.fnmatchcase(str(c), pat) for pat in patterns)
    ]
    return aligned[cols].reset_index(drop=True)


def _channel_feature(pop: Population, channel_index: npt.NDArray[np.int64]) -> BinnedFeature:
    labels = tuple(f"channel == '{c}'" for c in pop.channels)
    # A channel slice maps to the strategy's channel scope, not to a condition predicate.
    preds: tuple[tuple[dict[str, object], ...], ...] = tuple(
        ({"channel": c},) for c in pop.channels
    )
    return BinnedFeature("channel", channel_index.astype(np.int64), labels, preds)
