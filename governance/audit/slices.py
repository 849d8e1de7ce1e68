"""Root causes: the slices where a strategy's estimated errors concentrate (SliceLine search).

SliceLine (Sagadeeva & Boehm, SIGMOD 2021) scores a slice S of size |S| with error sum e(S) as

    score(S) = alpha * ((e(S) / |S|) / e_bar - 1) - (1 - alpha) * (n / |S| - 1)

and searches the lattice of conjunctions level by level, pruning with the upper bound of any
refinement's score (its size and error sum cannot exceed its parents'). This module implements
that search over binned features with per-row (fractional) errors, vectorized with bincount:
the `sliceline` package was evaluated (works with pandas 3 and numpy 2) but materialises a dense
rows x candidates product that needed 27.7 GiB at level 3 on 100k rows x 12 features, takes no
row weights and returns redundant refinements of one slice, so it is not used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.vocabulary import Entity, Policy
from governance.audit.estimators import FloatArray
from governance.audit.population import Population
from governance.evaluator import EvaluationError, FrameEvaluator
from governance.strategy import AllOf, Strategy, parse_ref

SLICE_COLUMNS: tuple[str, ...] = (
    "strategy",
    "strategy_id",
    "strategy_version",
    "entity",
    "policy",
    "error_kind",
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
)
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


def bin_features(X: pd.DataFrame, *, n_bins: int = 5, max_levels: int = 40) -> list[BinnedFeature]:
    """Numeric columns into quantile bins, booleans as is, categoricals by top levels."""
    out: list[BinnedFeature] = []
    for name in X.columns:
        s = X[name]
        if pd.api.types.is_bool_dtype(s.dtype):
            out.append(_bin_bool(str(name), s))
        elif pd.api.types.is_numeric_dtype(s.dtype):
            b = _bin_numeric(str(name), s.astype("float64"), n_bins)
            if b is not None:
                out.append(b)
        else:
            out.append(_bin_categorical(str(name), s, max_levels))
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
    return BinnedFeature(
        name, codes, (f"{name} = false", f"{name} = true", f"{name} missing"), preds
    )


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _bin_numeric(name: str, s: pd.Series, n_bins: int) -> BinnedFeature | None:
    arr = s.to_numpy(dtype=np.float64)
    present = ~np.isnan(arr)  # +-inf fall in the outer bins, as the evaluator compares them
    finite = np.isfinite(arr)
    if not finite.any():
        return None
    uniq = np.unique(arr[finite])
    exact = len(uniq) <= n_bins and not (present & ~finite).any()
    if exact:
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
    labels.append(f"{name} missing")
    preds.append(({"feature": name, "op": "is_null"},))
    return BinnedFeature(name, codes, tuple(labels), tuple(preds))


def _bin_categorical(name: str, s: pd.Series, max_levels: int) -> BinnedFeature:
    vals = s.astype("object").where(s.notna(), None)
    counts = vals.value_counts(dropna=True)
    top = [str(v) for v in counts.index[:max_levels]]
    lookup = {v: i for i, v in enumerate(top)}
    other = len(top)
    missing = other + 1
    codes = np.array(
        [missing if v is None else lookup.get(str(v), other) for v in vals], dtype=np.int64
    )
    labels = [f"{name} = {v}" for v in top] + [f"{name} other", f"{name} missing"]
    preds: list[tuple[dict[str, object], ...]] = [
        ({"feature": name, "op": "==", "value": v},) for v in top
    ]
    preds.append(({"feature": name, "op": "not_in", "value": top},) if top else ())
    preds.append(({"feature": name, "op": "is_null"},))
    return BinnedFeature(name, codes, tuple(labels), tuple(preds))


def find_slices(
    features: Sequence[BinnedFeature],
    errors: npt.ArrayLike,
    *,
    alpha: float = 0.95,
    max_level: int = 3,
    min_support: int = 20,
    top_k: int = 10,
    beam: int = 64,
) -> list[Slice]:
    """Top-k slices by SliceLine score (redundant refinements of a better slice removed)."""
    e = np.asarray(errors, dtype=np.float64)
    if e.ndim != 1 or any(f.codes.shape != e.shape for f in features):
        raise ValueError("every binned feature needs one code per error value")
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha must be in (0, 1], got {alpha}")
    if len(e) == 0 or e.sum() <= 0 or not features:
        return []
    return _compute_slices(list(features), e, alpha, max_level, min_support, top_k, beam)


def _score(size: FloatArray, err: FloatArray, n: int, e_bar: float, alpha: float) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = alpha * ((err / size) / e_bar - 1.0) - (1.0 - alpha) * (n / size - 1.0)
    return np.where(size > 0, sc, -np.inf)


def _compute_slices(
    features: list[BinnedFeature],
    e: FloatArray,
    alpha: float,
    max_level: int,
    min_support: int,
    top_k: int,
    beam: int,
) -> list[Slice]:
    n = e.shape[0]
    e_bar = float(e.mean())
    found: dict[tuple[tuple[int, int], ...], Slice] = {}
    # Level 1.
    for fi, feat in enumerate(features):
        n_lv = len(feat.labels)
        size = np.bincount(feat.codes, minlength=n_lv).astype(np.float64)
        err = np.bincount(feat.codes, weights=e, minlength=n_lv).astype(np.float64)
        sc = _score(size, err, n, e_bar, alpha)
        for lv in range(n_lv):
            if size[lv] >= min_support and size[lv] < n and len(feat.predicates[lv]):
                one = ((fi, lv),)
                found[one] = Slice(one, float(size[lv]), float(err[lv]), float(sc[lv]))
    for level in range(2, max_level + 1):
        parents = sorted(
            (s for s in found.values() if len(s.items) == level - 1),
            key=lambda s: _upper_bound(s, n, e_bar, alpha, min_support),
            reverse=True,
        )
        kth = _kth_score(found, top_k)
        parents = [p for p in parents if _upper_bound(p, n, e_bar, alpha, min_support) > kth][:beam]
        if not parents:
            break
        for parent in parents:
            mask = np.ones(n, dtype=bool)
            for fi, lv in parent.items:
                mask &= features[fi].codes == lv
            rows = np.flatnonzero(mask)
            used = {fi for fi, _ in parent.items}
            er = e[rows]
            for fi, feat in enumerate(features):
                if fi in used or fi < max(used):
                    # Canonical order: extend only with later features, so each conjunction
                    # is generated once.
                    continue
                n_lv = len(feat.labels)
                c = feat.codes[rows]
                size = np.bincount(c, minlength=n_lv).astype(np.float64)
                err = np.bincount(c, weights=er, minlength=n_lv).astype(np.float64)
                sc = _score(size, err, n, e_bar, alpha)
                for lv in np.flatnonzero((size >= min_support) & (sc > 0)).tolist():
                    if not len(feat.predicates[lv]):
                        continue
                    key: tuple[tuple[int, int], ...] = tuple(sorted((*parent.items, (fi, int(lv)))))
                    if key not in found:
                        found[key] = Slice(key, float(size[lv]), float(err[lv]), float(sc[lv]))
    ranked = sorted(found.values(), key=lambda s: (-s.score, -s.size, s.items))
    return _dedupe(ranked, top_k)


def _upper_bound(s: Slice, n: int, e_bar: float, alpha: float, min_support: int) -> float:
    # A refinement keeps at most the parent's errors in at least min support rows; the best
    # case is all the errors in as few rows as the errors themselves need (error <= 1 per row).
    size = max(s.errors, float(min_support))
    return float(_score(np.array([size]), np.array([s.errors]), n, e_bar, alpha)[0])


def _kth_score(found: Mapping[tuple[tuple[int, int], ...], Slice], k: int) -> float:
    scores = sorted((s.score for s in found.values()), reverse=True)
    return scores[k - 1] if len(scores) >= k else 0.0


def _dedupe(ranked: list[Slice], top_k: int, min_gain: float = 1.1) -> list[Slice]:
    kept: list[Slice] = []
    for s in ranked:
        if s.score <= 0:
            break
        redundant = False
        for k in kept:
            ks, ss = set(k.items), set(s.items)
            mean_k, mean_s = k.errors / k.size, s.errors / s.size
            # A refinement of a kept slice must concentrate errors clearly more to be shown;
            # a generalisation of a kept slice that is no denser adds nothing either.
            if ks < ss and mean_s < min_gain * mean_k:
                redundant = True
            if ss < ks and mean_s * min_gain < mean_k and s.errors < 1.1 * k.errors:
                redundant = True
        if not redundant:
            kept.append(s)
        if len(kept) >= top_k:
            break
    return kept


def slice_table(
    features: Sequence[BinnedFeature], slices: Sequence[Slice], errors: npt.ArrayLike
) -> pd.DataFrame:
    """Readable rows for found slices: description, predicates (JSON), size, errors, lift."""
    e = np.asarray(errors, dtype=np.float64)
    total, e_bar = float(e.sum()), float(e.mean()) if len(e) else 0.0
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
    alpha: float = 0.95,
    max_level: int = 3,
    min_support: int = 20,
    top_k: int = 10,
    n_bins: int = 5,
    exclude_features: Sequence[str] = (),
    exclude_prefixes: Sequence[str] = ("strategy_",),
    strategies: Mapping[str, Strategy] | None = None,
) -> pd.DataFrame:
    """slices.parquet rows: for each strategy, where its estimated FPs and FNs concentrate.

    FP rows are (item, channel) pairs the strategy actioned, erring with P(not violating); FN
    rows are every (item, channel) pair the item was eligible for, erring with P(violating)
    where the strategy did not act. Strategy `*` holds each policy's gaps: violations no
    audited strategy of the policy acted on. With `strategies` (by ref), a strategy whose
    condition is an `all` of several members also gets *near-miss* FN slices, searched among
    items meeting all members but one (what its scope just leaves out), interleaved with the
    general ones.
    """
    parts = []
    for key, pop in populations.items():
        if pop.entity not in frames:
            raise ValueError(f"no feature frame for entity {pop.entity.value!r}")
        frame = frames[pop.entity]
        binned = _population_bins(pop, frame, n_bins, exclude_features, exclude_prefixes)
        post = posteriors[key]
        targets = [*pop.actioned.items(), (ALL_STRATEGIES, pop.any_actioned)]
        near = _near_misses(pop, frame, strategies or {})

        def search(
            ii: npt.NDArray[np.intp],
            cc: npt.NDArray[np.intp],
            err: FloatArray,
            _binned: list[BinnedFeature] = binned,
            _pop: Population = pop,
        ) -> pd.DataFrame:
            feats = [BinnedFeature(b.name, b.codes[ii], b.labels, b.predicates) for b in _binned]
            feats.append(_channel_feature(_pop, cc))
            found = find_slices(
                feats,
                err,
                alpha=alpha,
                max_level=max_level,
                min_support=min_support,
                top_k=top_k,
            )
            return slice_table(feats, found, err)

        for ref, act in targets:
            for kind in ("fp", "fn"):
                if ref == ALL_STRATEGIES and kind == "fp":
                    continue  # the policy row only looks for gaps no strategy covers
                if kind == "fp":
                    ii, cc = np.nonzero(act)
                    err = 1.0 - post[ii]
                else:
                    ii, cc = np.nonzero(pop.eligible)
                    err = post[ii] * (~act[ii, cc])
                if len(ii) < min_support or err.sum() <= 0:
                    continue
                table = search(ii, cc, err)
                if kind == "fn" and ref in near:
                    # Violations the strategy's scope just misses (all but one of its `all`
                    # members hold): interleaved with the general FN slices.
                    keep = near[ref][ii]
                    if keep.sum() >= min_support and err[keep].sum() > 0:
                        extra = search(ii[keep], cc[keep], err[keep])
                        extra["description"] = "[near miss] " + extra["description"]
                        table = _interleave(extra, table, top_k)
                sid, version = (ref, None) if ref == ALL_STRATEGIES else parse_ref(ref)
                table.insert(0, "error_kind", kind)
                table.insert(0, "policy", pop.policy.value)
                table.insert(0, "entity", pop.entity.value)
                table.insert(0, "strategy_version", version)
                table.insert(0, "strategy_id", sid)
                table.insert(0, "strategy", ref)
                parts.append(table)
    if not parts:
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in SLICE_COLUMNS})
    out = pd.concat(parts, ignore_index=True)[list(SLICE_COLUMNS)]
    for col in (
        "strategy",
        "strategy_id",
        "entity",
        "policy",
        "error_kind",
        "description",
        "predicates",
    ):
        out[col] = out[col].astype("str")
    out["strategy_version"] = out["strategy_version"].astype("Int64")
    return out


def _near_misses(
    pop: Population, frame: pd.DataFrame, strategies: Mapping[str, Strategy]
) -> dict[str, npt.NDArray[np.bool_]]:
    """Per strategy ref: (N,) units that meet all members of its top-level `all` but one."""
    out: dict[str, npt.NDArray[np.bool_]] = {}
    pos = pd.Index(pop.item_ids, dtype=object).get_indexer(
        pd.Index(frame["item_id"].astype(object))
    )
    ok = pos >= 0
    evaluator: FrameEvaluator | None = None
    for ref in pop.actioned:
        strategy = strategies.get(ref)
        if strategy is None or not isinstance(strategy.condition, AllOf):
            continue
        members = strategy.condition.all
        if len(members) < 2:
            continue
        evaluator = evaluator or FrameEvaluator(frame)
        try:
            hits = np.column_stack([evaluator.mask(m) for m in members]).sum(axis=1)
        except EvaluationError:
            continue
        mask = np.zeros(len(pop), dtype=bool)
        mask[pos[ok]] = (hits == len(members) - 1)[ok]
        out[ref] = mask
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


def _population_bins(
    pop: Population,
    frame: pd.DataFrame,
    n_bins: int,
    exclude: Sequence[str],
    prefixes: Sequence[str],
) -> list[BinnedFeature]:
    aligned = frame.set_index(frame["item_id"].astype(object)).reindex(
        pd.Index(pop.item_ids, dtype=object)
    )
    skip = {"item_id", *exclude}
    cols = [
        c for c in aligned.columns if c not in skip and not str(c).startswith(("p_", *prefixes))
    ]
    return bin_features(aligned[cols].reset_index(drop=True), n_bins=n_bins)


def _channel_feature(pop: Population, channel_index: npt.NDArray[np.int64]) -> BinnedFeature:
    labels = tuple(f"channel = {c}" for c in pop.channels)
    # A channel slice maps to the strategy's channel scope, not to a condition predicate.
    preds: tuple[tuple[dict[str, object], ...], ...] = tuple(
        ({"channel": c},) for c in pop.channels
    )
    return BinnedFeature("channel", channel_index.astype(np.int64), labels, preds)
