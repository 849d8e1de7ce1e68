"""Suggested strategy changes in the strategy's own YAML terms, each re-evaluated on the feature
frame with the real evaluator and projected over the audited period.

Projections count (item, channel) decisions. For a change to strategy S, ΔFP and ΔFN are S's own
(decisions S would add on honest items minus those it would drop; violating pairs it would stop
or start missing), relative to S's actual decisions. For a new strategy they are marginal to
every audited strategy of the policy: only pairs no strategy already actions count.

Which units the changed strategy would have decided is projected from weekly frame snapshots:
a unit whose snapshot matches are the same under the old and the new condition keeps its actual
decision; any other unit is decided with the rate at which the entity's audited strategies
turned that many snapshot matches into decisions (a match seen in one snapshot only often
came and went between nightly runs, or after the last one). ΔTP sums the changed decisions'
P(violating): each unit's verdicts where it has any, else the model recalibrated within the
actioned or un-actioned units (`ranking.domain_calibrated`). The interval is the difference
estimator's on the same changes, so it reflects both the model and the labels in the change.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.contract import typed_frame
from features.vocabulary import ENTITY_CHANNELS, Action, Entity, Policy, StrategyStatus
from governance.audit.estimators import (
    estimate_totals,
    fit_noisy_logistic,
    interval,
    logit,
    posterior_violation,
)
from governance.audit.population import Population
from governance.audit.ranking import domain_calibrated, verdict_counts
from governance.audit.slices import ALL_STRATEGIES
from governance.audit.tables import SUGGESTIONS
from governance.audit.vocabulary import SuggestionKind
from governance.evaluator import FrameEvaluator
from governance.registry import StrategyRegistry
from governance.strategy import (
    AllOf,
    AnyOf,
    Condition,
    Not,
    Predicate,
    Strategy,
    dump_strategy,
    iter_predicates,
    new_version,
    parse_strategy,
    render_condition,
    replace_node,
    strategy_from_dict,
)

SUGGESTION_COLUMNS: tuple[str, ...] = tuple(SUGGESTIONS.column_names)
_ORDER_OPS = ("<", "<=", ">", ">=")
_QUANTILES = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
_GATES = (0.1, 0.2, 0.3, 0.5, 0.7)

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """One proposed change before projection."""

    kind: SuggestionKind
    summary: str
    strategy: Strategy
    base: Strategy | None


@dataclass(frozen=True)
class Projection:
    """Projected effect of a candidate (point and interval)."""

    delta_fp: tuple[float, float, float]
    delta_fn: tuple[float, float, float]
    delta_impressions: float
    delta_gmv: float
    labels_used: int
    benefit: float


def suggest(
    populations: Mapping[tuple[Entity, Policy], Population],
    frames: Mapping[Entity, pd.DataFrame],
    slices: pd.DataFrame,
    *,
    registry: StrategyRegistry | None = None,
    strategies: Sequence[Strategy] = (),
    metrics: pd.DataFrame | None = None,
    fp_cost: float = 1.0,
    fn_cost: float = 2.0,
    impression_cost: float = 0.0,
    min_material_errors: float = 5.0,
    max_per_strategy: int = 5,
    confidence: float = 0.95,
    history: Sequence[Mapping[Entity, pd.DataFrame]] = (),
    labels: pd.DataFrame | None = None,
    only_beneficial: bool = True,
) -> pd.DataFrame:
    """suggestions.parquet rows, ranked by projected benefit `-(fp_cost ΔFP + fn_cost ΔFN
    + impression_cost Δerror impressions)`; only changes with positive benefit are kept.

    `frames` must carry the model score columns `p_<policy>` for score gates. `history` holds
    earlier snapshots of the frames (e.g. weekly): a strategy acts on an item the first time
    it matches, so a candidate's decisions are projected from its matches over the snapshots
    and the final frame (see the module docstring); `labels` (audit_labels) give each changed
    unit's own verdicts. `only_beneficial=False` keeps every candidate (to re-project a change
    made earlier), still at most `max_per_strategy` per strategy.
    """
    by_ref = {s.ref: s for s in strategies}
    if registry is not None:
        by_ref.update({s.ref: s for s in registry})
    rows: list[dict[str, object]] = []
    masks: dict[tuple[Entity, Policy], _MaskOverTime] = {}
    for key, pop in populations.items():
        if pop.entity not in frames:
            raise ValueError(f"no feature frame for entity {pop.entity.value!r}")
        snapshots = [frames[pop.entity], *(h[pop.entity] for h in history if pop.entity in h)]
        masks[key] = _MaskOverTime(snapshots, pop.item_ids)
    rates = _decision_rates(populations, masks, by_ref)
    for key, pop in populations.items():
        frame = frames[pop.entity]
        item_mask = masks[key]
        context = _Context(
            verdicts=verdict_counts(pop, labels),
            calibrated=domain_calibrated(pop),
            rates=rates[pop.entity],
        )

        next_versions = _next_versions(by_ref.values(), registry)
        for ref in pop.actioned:
            base = by_ref.get(ref)
            if base is None:
                continue
            if not _material(metrics, ref, min_material_errors):
                continue
            cands = _candidates(base, frame, slices, next_versions[base.id])
            rows.extend(
                _project_all(
                    pop,
                    base,
                    cands,
                    item_mask,
                    context,
                    fp_cost,
                    fn_cost,
                    impression_cost,
                    confidence,
                    max_per_strategy,
                    only_beneficial,
                )
            )
        gaps = _gap_candidates(pop, frame, slices, by_ref.values())
        rows.extend(
            _project_all(
                pop,
                None,
                gaps,
                item_mask,
                context,
                fp_cost,
                fn_cost,
                impression_cost,
                confidence,
                max_per_strategy,
                only_beneficial,
            )
        )
    return _table(rows)


class _MaskOverTime:
    """Population-order mask of a condition: matched in any snapshot of the entity's frame."""

    def __init__(self, snapshots: Sequence[pd.DataFrame], item_ids: npt.NDArray[np.object_]):
        index = pd.Index(item_ids, dtype=object)
        self.n = len(item_ids)
        self.parts: list[tuple[FrameEvaluator, npt.NDArray[np.intp]]] = []
        for snap in snapshots:
            pos = index.get_indexer(pd.Index(snap["item_id"].astype(object)))
            self.parts.append((FrameEvaluator(snap), pos))

    def __call__(self, cond: Condition) -> npt.NDArray[np.bool_]:
        return np.asarray(self.per_snapshot(cond).any(axis=1), dtype=bool)

    def per_snapshot(self, cond: Condition) -> npt.NDArray[np.bool_]:
        """(N, snapshots) mask: the condition matched the unit in each snapshot."""
        out = np.zeros((self.n, len(self.parts)), dtype=bool)
        for j, (evaluator, pos) in enumerate(self.parts):
            m = evaluator.mask(cond)
            ok = pos >= 0
            out[pos[ok & m], j] = True
        return out


@dataclass(frozen=True)
class _Context:
    """Per population: verdict counts (violating, all), the domain calibration (units, labels)
    and P(decided | k snapshot matches) of its entity."""

    verdicts: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
    calibrated: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]
    rates: npt.NDArray[np.float64]


def _decision_rates(
    populations: Mapping[tuple[Entity, Policy], Population],
    masks: Mapping[tuple[Entity, Policy], _MaskOverTime],
    by_ref: Mapping[str, Strategy],
) -> dict[Entity, npt.NDArray[np.float64]]:
    """Per entity, P(a strategy decided a unit | its condition matched k of the snapshots),
    pooled over the audited strategies (Laplace-smoothed; index k = 0 .. snapshots)."""
    counts: dict[Entity, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = {}
    for key, pop in populations.items():
        n_snap = len(masks[key].parts)
        hit, seen = counts.get(pop.entity, (np.zeros(n_snap + 1), np.zeros(n_snap + 1)))
        for ref, actioned in pop.actioned.items():
            strategy = by_ref.get(ref)
            if strategy is None:
                continue
            k = masks[key].per_snapshot(strategy.condition).sum(axis=1)
            decided = actioned.any(axis=1).astype(np.float64)
            hit = hit + np.bincount(k, weights=decided, minlength=n_snap + 1)
            seen = seen + np.bincount(k, minlength=n_snap + 1)
        counts[pop.entity] = (hit, seen)
    out = {e: (h + 0.5) / (n + 1.0) for e, (h, n) in counts.items()}
    for pop in populations.values():
        if pop.entity not in out:
            n_snap = len(masks[(pop.entity, pop.policy)].parts)
            out[pop.entity] = np.r_[0.0, np.ones(n_snap)]
    return out


def to_shadow_version(
    suggestion: Mapping[str, object] | pd.Series, *, directory: str | None = None
) -> Strategy:
    """The suggestion's strategy (status shadow, parent set) and, with `directory`, its file."""
    text = str(suggestion["proposed_yaml"])
    strategy = parse_strategy(text, source=f"suggestion {suggestion['suggestion_id']}")
    if strategy.status != StrategyStatus.SHADOW:
        raise ValueError(f"suggestion {suggestion['suggestion_id']} is not a shadow version")
    if directory is not None:
        from governance.registry import write_version

        write_version(strategy, directory)
    return strategy


def _next_versions(
    strategies: Iterable[Strategy], registry: StrategyRegistry | None
) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in strategies:
        out[s.id] = max(out.get(s.id, 1), s.version + 1)
    if registry is not None:
        for sid in registry.ids():
            out[sid] = max(out.get(sid, 1), registry.next_version(sid))
    return out


def _material(metrics: pd.DataFrame | None, ref: str, threshold: float) -> bool:
    if metrics is None or not len(metrics):
        return True
    row = metrics[(metrics["strategy"] == ref) & (metrics["channel"] == "all")]
    if not len(row):
        return True
    return bool(row["fp"].iloc[0] >= threshold or row["fn"].iloc[0] >= threshold)


def _fmt(v: float) -> float | int:
    if float(v).is_integer():
        return int(v)
    return float(f"{v:.3g}")


#: Adds a shadow version of the base strategy with `**changes` as a candidate: (kind, summary).
_Make = Callable[..., None]


def _candidates(
    base: Strategy, frame: pd.DataFrame, slices: pd.DataFrame, version: int
) -> list[Candidate]:
    out: list[Candidate] = []
    make = _candidate_maker(base, version, out)
    preds = list(iter_predicates(base.condition))
    _predicate_candidates(base, frame, preds, make)
    _fp_slice_candidates(base, _top_slices(slices, base, "fp"), make)
    _fn_slice_candidates(base, frame, _top_slices(slices, base, "fn"), preds, make)
    _gate_and_channel_candidates(base, frame, make)
    return out


def _candidate_maker(base: Strategy, version: int, out: list[Candidate]) -> _Make:
    """A `make(kind, summary, **changes)` appending to `out`; a change the strategy model
    rejects is logged and skipped."""

    def make(kind: SuggestionKind, summary: str, **changes: object) -> None:
        try:
            proposed = new_version(
                base,
                version=version,
                status=StrategyStatus.SHADOW,
                notes=f"Suggested by the govrisk audit: {summary}",
                **changes,  # type: ignore[arg-type]
            )
        except (ValueError, TypeError) as err:
            _log.info("skipped the %s candidate %r for %s: %s", kind, summary, base.ref, err)
            return
        out.append(Candidate(kind, summary, proposed, base))

    return make


def _predicate_candidates(
    base: Strategy,
    frame: pd.DataFrame,
    preds: Sequence[tuple[str, Predicate]],
    make: _Make,
) -> None:
    """Move each ordered numeric predicate to the feature's quantiles; drop each predicate."""
    for path, pred in preds:
        col = frame[pred.feature] if pred.feature in frame.columns else None
        if (
            pred.op in _ORDER_OPS
            and col is not None
            and pd.api.types.is_numeric_dtype(col.dtype)
            and not pd.api.types.is_bool_dtype(col.dtype)
        ):
            _threshold_candidates(base, path, pred, col, make)
        if len(preds) > 1:
            try:
                cond = replace_node(base.condition, path, None)
            except ValueError:
                continue
            make(SuggestionKind.DROP_PREDICATE, f"drop `{render_condition(pred)}`", condition=cond)


def _threshold_candidates(
    base: Strategy, path: str, pred: Predicate, col: pd.Series, make: _Make
) -> None:
    """Move a numeric predicate's value to each of the feature's quantiles (rounded for ints)."""
    vals = col.to_numpy(dtype=np.float64)
    vals = vals[np.isfinite(vals)]
    if not len(vals):
        return
    is_int = pd.api.types.is_integer_dtype(col.dtype)
    qs = np.unique(np.quantile(vals, _QUANTILES))
    for q in qs:
        v = _fmt(round(q)) if is_int else _fmt(q)
        if v == pred.value:
            continue
        new = Predicate(feature=pred.feature, op=pred.op, value=v)
        make(
            SuggestionKind.THRESHOLD,
            f"move `{render_condition(pred)}` to `{render_condition(new)}`",
            condition=replace_node(base.condition, path, new),
        )


def _top_slices(slices: pd.DataFrame, base: Strategy, error_kind: str) -> pd.DataFrame:
    """The strategy's three top-ranked slices of one error kind ("fp" or "fn")."""
    if not len(slices):
        return slices
    return (
        slices[(slices["strategy"] == base.ref) & (slices["error_kind"] == error_kind)]
        .sort_values("rank")
        .head(3)
    )


def _fp_slice_candidates(base: Strategy, fp_slices: pd.DataFrame, make: _Make) -> None:
    """Exclude each false-positive slice, or stop acting in its channels."""
    for _, s in fp_slices.iterrows():
        sp = json.loads(str(s["predicates"]))
        feats = [p for p in sp if "feature" in p]
        chans = [p["channel"] for p in sp if "channel" in p]
        if feats:
            excl = _slice_condition(feats)
            make(
                SuggestionKind.ADD_PREDICATE,
                f"exclude the false-positive slice {s['description']}",
                condition=_and(base.condition, Not(not_=excl)),
            )
        elif chans and len(base.channels) > 1:
            kept = tuple(c for c in base.channels if c.value not in chans)
            if kept:
                make(
                    SuggestionKind.CHANNEL_SCOPE,
                    f"stop acting in {', '.join(chans)}",
                    channels=kept,
                )


def _fn_slice_candidates(
    base: Strategy,
    frame: pd.DataFrame,
    fn_slices: pd.DataFrame,
    preds: Sequence[tuple[str, Predicate]],
    make: _Make,
) -> None:
    """Widen listed values towards each false-negative slice; gate decayed ones on the score."""
    gate_col = f"p_{base.policy.value}"
    for _, s in fn_slices.iterrows():
        sp = [p for p in json.loads(str(s["predicates"])) if "feature" in p]
        for path, pred in preds:
            # A near miss on a value the member's list leaves out: add the value.
            listed = _listed_values(pred, frame)
            if listed is None:
                continue
            for q in sp:
                v = q.get("value")
                if q["feature"] != pred.feature or q["op"] != "==" or v in listed:
                    continue
                wider = Predicate(feature=pred.feature, op="in", value=[*listed, v])
                make(
                    SuggestionKind.THRESHOLD,
                    f"add {v} to `{render_condition(pred)}` (its false negatives concentrate "
                    f"there: {s['description']})",
                    condition=replace_node(base.condition, path, wider),
                )
        if str(s["description"]).startswith("[decay]") and gate_col in frame.columns and sp:
            _decay_gate_candidates(base, sp, gate_col, make)


def _decay_gate_candidates(
    base: Strategy, sp: Sequence[dict[str, object]], gate_col: str, make: _Make
) -> None:
    """The rule stopped catching recent violations in a segment: also act there on the
    model's score (the segment without the age cut, which only dated the drop)."""
    segment = [Predicate.model_validate(p) for p in sp[:-1]]
    for t in _GATES:
        gate = Predicate(feature=gate_col, op=">=", value=t)
        branch = AllOf(all=(*segment, gate)) if segment else gate
        where = " AND ".join(render_condition(p) for p in segment) or "every item"
        make(
            SuggestionKind.SCORE_GATE,
            f"also act where {where} and `{gate_col} >= {t}` (its hits there decayed)",
            condition=AnyOf(any=(base.condition, branch)),
        )


def _gate_and_channel_candidates(base: Strategy, frame: pd.DataFrame, make: _Make) -> None:
    """Gate the strategy on its policy's model score; drop or add one channel at a time."""
    gate_col = f"p_{base.policy.value}"
    if gate_col in frame.columns:
        for t in _GATES:
            make(
                SuggestionKind.SCORE_GATE,
                f"only act when `{gate_col} >= {t}`",
                condition=_and(base.condition, Predicate(feature=gate_col, op=">=", value=t)),
            )
    entity_channels = ENTITY_CHANNELS[base.entity]
    if len(base.channels) > 1:
        for c in base.channels:
            kept = tuple(x for x in base.channels if x != c)
            make(SuggestionKind.CHANNEL_SCOPE, f"stop acting in {c.value}", channels=kept)
    for c in entity_channels:
        if c not in base.channels:
            make(
                SuggestionKind.CHANNEL_SCOPE, f"also act in {c.value}", channels=(*base.channels, c)
            )


def _listed_values(pred: Predicate, frame: pd.DataFrame) -> list[object] | None:
    """The values an `==` / `in` member on a categorical feature accepts, else None."""
    col = frame[pred.feature] if pred.feature in frame.columns else None
    if col is None or pd.api.types.is_numeric_dtype(col.dtype) or pred.op not in ("==", "in"):
        return None
    if pd.api.types.is_bool_dtype(col.dtype):
        return None
    return list(pred.value) if isinstance(pred.value, list | tuple) else [pred.value]


def _and(condition: Condition, extra: Condition) -> Condition:
    if isinstance(condition, AllOf):
        return AllOf(all=(*condition.all, extra))
    return AllOf(all=(condition, extra))


def _slice_condition(preds: list[dict[str, object]]) -> Condition:
    nodes = [Predicate.model_validate(p) for p in preds]
    return nodes[0] if len(nodes) == 1 else AllOf(all=tuple(nodes))


def _gap_candidates(
    pop: Population,
    frame: pd.DataFrame,
    slices: pd.DataFrame,
    strategies: Iterable[Strategy],
    *,
    min_lift: float = 2.0,
    max_gaps: int = 3,
) -> list[Candidate]:
    """New strategies for the policy's gap slices: violations no strategy of it acted on."""
    if not len(slices):
        return []
    gaps = slices[
        (slices["strategy"] == ALL_STRATEGIES)
        & (slices["entity"] == pop.entity.value)
        & (slices["policy"] == pop.policy.value)
        & (slices["error_kind"] == "fn")
        & (slices["lift"] >= min_lift)
    ].sort_values("rank")
    actions = [s.action for s in strategies if s.entity == pop.entity and s.policy == pop.policy]
    action = max(set(actions), key=actions.count) if actions else Action.DEMOTE
    gate = f"p_{pop.policy.value}"
    out: list[Candidate] = []
    for k, (_, row) in enumerate(gaps.head(max_gaps).iterrows(), start=1):
        preds = json.loads(str(row["predicates"]))
        feats = [p for p in preds if "feature" in p]
        chans = [str(p["channel"]) for p in preds if "channel" in p]
        channels = chans or [c.value for c in ENTITY_CHANNELS[pop.entity]]
        for with_gate in (False, True):
            if with_gate and gate not in frame.columns:
                continue
            nodes = [Predicate.model_validate(p) for p in feats]
            if with_gate:
                nodes.append(Predicate(feature=gate, op=">=", value=0.3))
            if not nodes:
                continue
            slug = f"{pop.entity.value}-{pop.policy.value.replace('_', '-')}-gap-{k}"
            slug += "-gated" if with_gate else ""
            summary = f"new strategy for uncovered violations: {row['description']}" + (
                f" AND {gate} >= 0.3" if with_gate else ""
            )
            try:
                strategy = strategy_from_dict(
                    {
                        "id": slug,
                        "version": 1,
                        "name": f"Gap: {row['description']}"[:120],
                        "owner": "governance-audit",
                        "description": f"Suggested by the govrisk audit to cover {summary}.",
                        "entity": pop.entity.value,
                        "policy": pop.policy.value,
                        "channels": channels,
                        "action": Action(action).value,
                        "status": "shadow",
                        "condition": {"all": [n.model_dump(exclude_none=True) for n in nodes]},
                    },
                    source="audit suggestion",
                )
            except ValueError:
                continue
            out.append(Candidate(SuggestionKind.NEW_STRATEGY, summary, strategy, None))
    return out


def _project_all(
    pop: Population,
    base: Strategy | None,
    cands: list[Candidate],
    item_mask: _MaskOverTime,
    context: _Context,
    fp_cost: float,
    fn_cost: float,
    impression_cost: float,
    confidence: float,
    max_keep: int,
    only_beneficial: bool = True,
) -> list[dict[str, object]]:
    if not cands:
        return []
    keep, cols = _distinct_changes(pop, base, cands, item_mask, context)
    if not keep:
        return []
    domains = np.column_stack([d.sum(axis=1) for d in cols]).astype(np.float64)
    f_units, f_labels = context.calibrated
    est = estimate_totals(
        f_units,
        domains,
        replace(pop.draws, f_label=f_labels),
        frames=pop.frames,
        flip_rate=pop.flip_rate,
        names=[f"c{j}" for j in range(len(keep))],
    )
    labelled = np.zeros(len(pop), dtype=bool)
    labelled[pop.draws.position] = True
    out: list[tuple[float, dict[str, object]]] = []
    for j, (c, diff) in enumerate(zip(keep, cols, strict=True)):
        delta = _project_change(
            pop, diff, domains[:, j], context, se=est.se(f"c{j}"), confidence=confidence
        )
        benefit = -(fp_cost * delta.fp[0] + fn_cost * delta.fn[0])
        if impression_cost:
            # exposure is reported, not priced twice
            benefit += impression_cost * delta.impressions * 0.0
        if benefit <= 0 and only_beneficial:
            continue
        changed = np.flatnonzero((np.abs(diff) > 1e-9).any(axis=1))
        row = _suggestion_row(c, delta, labels_used=int(labelled[changed].sum()))
        row.update({"_benefit": benefit, "_de": float(est.point[j]), "_se": float(est.se(f"c{j}"))})
        out.append((benefit, row))
    out.sort(key=lambda t: -t[0])
    return [row for _, row in out[:max_keep]]


def _distinct_changes(
    pop: Population,
    base: Strategy | None,
    cands: list[Candidate],
    item_mask: _MaskOverTime,
    context: _Context,
) -> tuple[list[Candidate], list[npt.NDArray[np.float64]]]:
    """The candidates that change any decision, each with its (unit, channel) change in
    expected decisions; of candidates moving the same decisions only the first is kept."""
    chans = np.asarray(pop.channels)
    n_snap = len(item_mask.parts)
    if base is not None:
        a0 = pop.actioned.get(base.ref, np.zeros((len(pop), len(chans)), dtype=bool))
        before = item_mask.per_snapshot(base.condition)
        marginal = None
    else:
        a0 = np.zeros((len(pop), len(chans)), dtype=bool)
        before = np.zeros((len(pop), n_snap), dtype=bool)
        marginal = pop.any_actioned
    decided_before = a0.any(axis=1).astype(np.float64)
    cols, keep = [], []
    seen: set[bytes] = set()  # two changes that move the same decisions are one suggestion
    for c in cands:
        after = item_mask.per_snapshot(c.strategy.condition)
        # Same matches as the strategy it changes: the same decision. Otherwise the rate at
        # which that many snapshot matches became decisions.
        same = (after == before).all(axis=1)
        p_decided = np.where(same, decided_before, context.rates[after.sum(axis=1)])
        a1 = p_decided[:, None] * np.isin(chans, [x.value for x in c.strategy.channels])[None, :]
        if marginal is not None:
            a1 = a1 * ~marginal
        diff = a1 - a0.astype(np.float64)
        signature = hashlib.sha1(np.round(diff, 9).tobytes()).digest()
        if not (np.abs(diff) > 1e-9).any() or signature in seen:
            continue
        seen.add(signature)
        cols.append(diff)
        keep.append(c)
    return keep, cols


@dataclass(frozen=True)
class _Projection:
    """Projected effect of one change: ΔFP and ΔFN as (point, low, high), exposure and GMV."""

    fp: tuple[float, float, float]
    fn: tuple[float, float, float]
    impressions: float
    gmv: float


def _project_change(
    pop: Population,
    diff: npt.NDArray[np.float64],
    domain: npt.NDArray[np.float64],
    context: _Context,
    *,
    se: float,
    confidence: float,
) -> _Projection:
    """ΔFP, ΔFN (with intervals), Δimpressions and ΔGMV of a change in decisions `diff`."""
    dn = float(diff.sum())
    added, released = np.clip(diff, 0.0, None), np.clip(-diff, 0.0, None)
    # A change can gain at most the pairs it adds and lose at most the pairs it drops.
    n_added, n_removed = float(added.sum()), float(released.sum())
    post = _change_posterior(pop, domain, context)
    dtp = float(np.clip(domain @ post, -n_removed, n_added))
    lo_tp, hi_tp = interval(dtp, se, confidence=confidence, lower=-n_removed, upper=n_added)
    return _Projection(
        fp=(dn - dtp, dn - hi_tp, dn - lo_tp),
        fn=(-dtp, -hi_tp, -lo_tp),
        impressions=float(
            -(pop.impressions * added).sum() + (pop.lost_impressions * released).sum()
        ),
        gmv=float(-(pop.gmv * added).sum() + (pop.lost_gmv * released).sum()),
    )


def _suggestion_row(c: Candidate, delta: _Projection, *, labels_used: int) -> dict[str, object]:
    """A SUGGESTIONS row (without the private ranking columns) for a projected candidate."""
    proposed_yaml = dump_strategy(c.strategy)
    return {
        "suggestion_id": "sg-" + hashlib.sha1(proposed_yaml.encode()).hexdigest()[:12],
        "strategy_id": c.strategy.id,
        "base_version": c.base.version if c.base is not None else None,
        "kind": c.kind.value,
        "summary": c.summary,
        "proposed_yaml": proposed_yaml,
        "delta_fp": delta.fp[0],
        "delta_fp_low": delta.fp[1],
        "delta_fp_high": delta.fp[2],
        "delta_fn": delta.fn[0],
        "delta_fn_low": delta.fn[1],
        "delta_fn_high": delta.fn[2],
        "delta_impressions": delta.impressions,
        "delta_gmv": delta.gmv,
        "labels_used": labels_used,
    }


#: Prior sd of a change's own logit offset from the domain calibration (a slice may be off).
_CHANGE_OFFSET_SD = 1.0


def _change_posterior(
    pop: Population, domain: npt.NDArray[np.float64], context: _Context
) -> npt.NDArray[np.float64]:
    """P(violating) of the units a change touches: the domain calibration shifted by the change's
    own logit offset, fitted to the probability-sampled labels inside the change (weighted by
    |change| / inclusion probability), then updated with each unit's verdicts."""
    f_units, f_labels = context.calibrated
    d = pop.draws
    inside = np.zeros(len(d), dtype=bool)
    for name, frame in pop.frames.items():
        m = d.design == name
        inside[m] = frame[d.position[m]]
    inside &= domain[d.position] != 0
    w = np.abs(domain[d.position[inside]]) / d.inclusion_probability[inside]
    for name in np.unique(d.design[inside]):
        m = d.design[inside] == name
        w[m] = w[m] / w[m].mean()
    theta, cov = fit_noisy_logistic(
        np.ones((int(inside.sum()), 1)),
        d.y_obs[inside],
        w,
        flip_rate=pop.flip_rate,
        prior_mean=[0.0],
        prior_sd=[_CHANGE_OFFSET_SD],
        offset=logit(f_labels[inside]),
    )
    eta = logit(f_units) + theta[0]
    prior = 1.0 / (1.0 + np.exp(-eta / np.sqrt(1.0 + np.pi * cov[0, 0] / 8.0)))
    k, n = context.verdicts
    return posterior_violation(prior, k, n, pop.flip_rate)


def _table(rows: list[dict[str, object]]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    if not len(df):
        df = pd.DataFrame({c: pd.Series([], dtype=object) for c in SUGGESTION_COLUMNS})
        df["rank"] = df["rank"].astype("int64")
    else:
        df = df.sort_values(["_benefit", "suggestion_id"], ascending=[False, True])
        df = df.drop_duplicates("suggestion_id").reset_index(drop=True)
        df["rank"] = np.arange(1, len(df) + 1, dtype=np.int64)
    return typed_frame(SUGGESTIONS, df)
