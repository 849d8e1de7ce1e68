"""Vectorized evaluation of strategy conditions on feature frames, and their type checks.

Semantics: a missing value (NaN / None / NA) never satisfies a comparison — not `<`, not `==`,
and not `!=` or `not_in` either; only `is_null` matches it. `not` negates the mask of its member,
so `not: {feature: x, op: ">", value: 1}` is true where x is missing.
"""

from __future__ import annotations

import difflib
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from features.vocabulary import Entity, Policy
from governance.strategy import (
    LIST_OPS,
    NULL_OPS,
    ORDER_OPS,
    AllOf,
    AnyOf,
    Condition,
    Not,
    Predicate,
    Scalar,
    Strategy,
    StrategyProblem,
    iter_predicates,
)

FeatureType = Literal["numeric", "categorical", "boolean"]
Mask: TypeAlias = npt.NDArray[np.bool_]

#: Calibrated model-probability columns a strategy may gate on when the frame carries them.
SCORE_COLUMNS: tuple[str, ...] = (*(f"p_{p.value}" for p in Policy), "p_any")
#: Columns of the hits frame `evaluate_strategy` / `evaluate_strategies` return, in order.
HIT_COLUMNS: tuple[str, ...] = (
    "strategy_id",
    "strategy_version",
    "entity",
    "item_id",
    "channel",
    "policy",
    "action",
)

_OPS_BY_TYPE: dict[FeatureType, frozenset[str]] = {
    "numeric": frozenset({"<", "<=", ">", ">=", "==", "!=", "in", "not_in", "is_null", "not_null"}),
    "categorical": frozenset({"==", "!=", "in", "not_in", "is_null", "not_null"}),
    "boolean": frozenset({"==", "!=", "in", "not_in", "is_null", "not_null"}),
}


class EvaluationError(ValueError):
    """A condition cannot be evaluated on a frame (missing column, wrong type)."""


def score_feature_types() -> dict[str, FeatureType]:
    """The model-score gate columns (`p_<policy>`, `p_any`), all numeric probabilities."""
    return dict.fromkeys(SCORE_COLUMNS, "numeric")


def infer_feature_types(frame: pd.DataFrame) -> dict[str, FeatureType]:
    """Feature type of every column but `item_id`, from its dtype."""
    return {str(col): _infer_type(frame[col]) for col in frame.columns if str(col) != "item_id"}


def _infer_type(series: pd.Series) -> FeatureType:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(series, skipna=True)
        if inferred == "boolean":
            return "boolean"
        if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
            return "numeric"
    return "categorical"


# --------------------------------------------------------------------------------------------
# Type checks
# --------------------------------------------------------------------------------------------


def _value_kind(value: Scalar) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "text"


def predicate_problem(predicate: Predicate, feature_type: FeatureType) -> str | None:
    """Why `predicate` does not fit a feature of `feature_type`, or None when it does."""
    op, feature = predicate.op, predicate.feature
    if op not in _OPS_BY_TYPE[feature_type]:
        fix = "use ==, !=, in or not_in" if op in ORDER_OPS else "use another operator"
        return f"op {op!r} compares order, but {feature!r} is {feature_type}; {fix}"
    if op in NULL_OPS:
        return None
    value = predicate.value
    values = value if isinstance(value, tuple) else (value,)
    kinds = {_value_kind(v) for v in values if v is not None}
    expected = {"numeric": "number", "categorical": "text", "boolean": "boolean"}[feature_type]
    if kinds <= {expected}:
        return None
    shown = list(value) if isinstance(value, tuple) else value
    if feature_type == "numeric":
        fix = "write a number without quotes"
    elif feature_type == "boolean":
        fix = "write true or false"
    elif "boolean" in kinds:
        fix = "quote it: YAML reads yes/no/on/off/true/false as booleans"
    else:
        fix = "quote it to compare as text"
    return (
        f"{feature!r} is {feature_type} but the value {shown!r} is "
        f"{' and '.join(sorted(kinds))}; {fix}"
    )


def check_condition(
    condition: Condition, feature_types: Mapping[str, FeatureType], *, path: str = "condition"
) -> list[tuple[str, str]]:
    """(field path, message) for every predicate that names an unknown feature or mismatches it."""
    problems: list[tuple[str, str]] = []
    known = sorted(feature_types)
    for pred_path, predicate in iter_predicates(condition, path):
        feature_type = feature_types.get(predicate.feature)
        if feature_type is None:
            problems.append((f"{pred_path}.feature", _unknown_feature(predicate.feature, known)))
            continue
        problem = predicate_problem(predicate, feature_type)
        if problem is not None:
            field = "op" if predicate.op not in _OPS_BY_TYPE[feature_type] else "value"
            problems.append((f"{pred_path}.{field}", problem))
    return problems


def check_strategy(
    strategy: Strategy,
    feature_types: Mapping[str, FeatureType],
    *,
    source: str = "",
    include_scores: bool = True,
) -> list[StrategyProblem]:
    """Problems of a strategy's predicates against its entity's feature types (and score gates)."""
    types: dict[str, FeatureType] = dict(feature_types)
    if include_scores:
        types = {**score_feature_types(), **types}
    return [
        StrategyProblem(source or strategy.ref, path, f"{msg} (entity {strategy.entity.value})")
        for path, msg in check_condition(strategy.condition, types)
    ]


def _unknown_feature(feature: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(feature, known, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    if feature.startswith("p_"):
        return (
            f"unknown feature {feature!r}{hint} (model-score gates are {', '.join(SCORE_COLUMNS)})"
        )
    return f"unknown feature {feature!r}{hint}"


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def _node_key(node: Condition) -> Hashable:
    # Typed key: True == 1 == 1.0 in Python, but `x == true` and `x == 1` are different tests.
    if isinstance(node, Predicate):
        value = node.value
        values = value if isinstance(value, tuple) else (value,)
        typed = tuple((type(v).__name__, v) for v in values)
        return ("p", node.feature, node.op, isinstance(value, tuple), typed)
    if isinstance(node, AllOf):
        return ("all", tuple(_node_key(c) for c in node.all))
    if isinstance(node, AnyOf):
        return ("any", tuple(_node_key(c) for c in node.any))
    return ("not", _node_key(node.not_))


class FrameEvaluator:
    """Evaluates conditions on one feature frame, caching the mask of every node it computes.

    Strategies evaluated through the same instance share the masks of their common predicates
    and groups, so a registry of strategies costs little more than its distinct predicates.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        *,
        feature_types: Mapping[str, FeatureType] | None = None,
    ) -> None:
        self.frame = frame
        self.feature_types = dict(feature_types) if feature_types is not None else None
        self._masks: dict[Hashable, Mask] = {}
        self._columns: dict[str, _Column] = {}
        self._item_ids: pd.Index | None = None
        self.n_evaluated_ = 0

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def item_ids(self) -> pd.Index:
        """The frame's `item_id` column as a text index (built once)."""
        if self._item_ids is None:
            if "item_id" not in self.frame.columns:
                raise EvaluationError(
                    "the frame has no `item_id` column; pass a feature frame from features.build"
                )
            self._item_ids = pd.Index(self.frame["item_id"], dtype="str")
        return self._item_ids

    def mask(self, condition: Condition) -> Mask:
        """Boolean mask aligned (by position) to the frame's rows; read-only, shared from cache."""
        key = _node_key(condition)
        cached = self._masks.get(key)
        if cached is not None:
            return cached
        result = self._compute_mask(condition)
        result.setflags(write=False)
        self._masks[key] = result
        return result

    def _compute_mask(self, node: Condition) -> Mask:
        if isinstance(node, Predicate):
            self.n_evaluated_ += 1
            return self._predicate_mask(node)
        if isinstance(node, Not):
            return ~self.mask(node.not_)
        members = node.all if isinstance(node, AllOf) else node.any
        masks = [self.mask(m) for m in members]
        if len(masks) == 1:
            return masks[0].copy()
        reduce = np.logical_and.reduce if isinstance(node, AllOf) else np.logical_or.reduce
        return np.asarray(reduce(masks), dtype=bool)

    def _column(self, feature: str) -> _Column:
        cached = self._columns.get(feature)
        if cached is not None:
            return cached
        if feature not in self.frame.columns:
            known = [str(c) for c in self.frame.columns if str(c) != "item_id"]
            message = _unknown_feature(feature, known)
            if feature in SCORE_COLUMNS:
                message = (
                    f"the frame has no model-score column {feature!r}; score the frame with a "
                    "model before evaluating strategies that gate on it"
                )
            raise EvaluationError(f"{message} (the frame has {len(known)} feature columns)")
        column = _prepare_column(
            feature,
            self.frame[feature],
            self.feature_types.get(feature) if self.feature_types is not None else None,
        )
        self._columns[feature] = column
        return column

    def _predicate_mask(self, predicate: Predicate) -> Mask:
        column = self._column(predicate.feature)
        problem = predicate_problem(predicate, column.kind)
        if problem is not None:
            raise EvaluationError(problem)
        if column.lookup is not None:
            return _categorical_mask(column, predicate.op, predicate.value)
        return _array_mask(column, predicate.op, predicate.value)


@dataclass(frozen=True)
class _Column:
    """A frame column prepared once for every predicate on it."""

    kind: FeatureType
    values: np.ndarray  # float64 (numeric), bool (boolean) or factor codes (categorical)
    present: Mask
    lookup: Mapping[str, int] | None = None  # categorical: value -> code


def _prepare_column(feature: str, series: pd.Series, declared: FeatureType | None) -> _Column:
    inferred = _infer_type(series)
    if declared is not None and declared != inferred and series.notna().any():
        raise EvaluationError(
            f"feature {feature!r} is declared {declared} but the frame column has dtype "
            f"{series.dtype} ({inferred}); rebuild the frame or fix the feature types"
        )
    kind = declared or inferred
    if kind == "numeric":
        values = pd.to_numeric(series, errors="raise").to_numpy(dtype="float64", na_value=np.nan)
        return _Column(kind, values, ~np.isnan(values))
    if kind == "boolean":
        present = series.notna().to_numpy(dtype=bool)
        truth = series.to_numpy(dtype=bool, na_value=False) if present.any() else present.copy()
        return _Column(kind, truth, present)
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    codes = np.asarray(codes)
    lookup = {str(u): i for i, u in enumerate(uniques)}
    return _Column(kind, codes, codes >= 0, lookup)


def _array_mask(column: _Column, op: str, value: object) -> Mask:
    values, present = column.values, column.present
    if op == "is_null":
        return ~present
    if op == "not_null":
        return present.copy()
    if op in LIST_OPS:
        assert isinstance(value, tuple)
        hit = np.isin(values, np.asarray(value, dtype=values.dtype)) & present
        return hit if op == "in" else ~hit & present
    scalar = np.asarray(value, dtype=values.dtype)
    with np.errstate(invalid="ignore"):
        if op == "<":
            hit = values < scalar
        elif op == "<=":
            hit = values <= scalar
        elif op == ">":
            hit = values > scalar
        elif op == ">=":
            hit = values >= scalar
        elif op == "==":
            hit = values == scalar
        else:
            hit = values != scalar
    return np.asarray(hit & present, dtype=bool)


def _categorical_mask(column: _Column, op: str, value: object) -> Mask:
    codes, present, lookup = column.values, column.present, column.lookup or {}
    if op == "is_null":
        return ~present
    if op == "not_null":
        return present.copy()
    wanted = value if isinstance(value, tuple) else (value,)
    indices = [lookup[str(v)] for v in wanted if str(v) in lookup]
    hit = (
        np.isin(codes, np.asarray(indices, dtype=codes.dtype))
        if indices
        else np.zeros_like(present)
    )
    if op in ("==", "in"):
        return np.asarray(hit, dtype=bool)
    return np.asarray(~hit & present, dtype=bool)


def evaluate_condition(
    condition: Condition,
    frame: pd.DataFrame,
    *,
    feature_types: Mapping[str, FeatureType] | None = None,
) -> Mask:
    """Boolean mask of the frame's rows (by position) where the condition holds."""
    return FrameEvaluator(frame, feature_types=feature_types).mask(condition).copy()


def expand_hits(
    parts: Sequence[tuple[pd.Index, Mask, Sequence[str]]],
) -> tuple[npt.NDArray[np.intp], pd.Index, pd.Index]:
    """Masked rows of (item_ids, mask, channels) parts expanded to their channels.

    Returns, per output row, the part number, the item_id and the channel (item-major, channels
    in the given order). Text columns are built with one Arrow take each, not per part.
    """
    offsets: dict[int, int] = {}
    pools: list[pd.Index] = []
    size = 0
    channel_codes: dict[str, int] = {}
    part_rows: list[np.ndarray] = []
    item_rows: list[np.ndarray] = []
    channel_rows: list[np.ndarray] = []
    for number, (item_ids, mask, channels) in enumerate(parts):
        if id(item_ids) not in offsets:
            offsets[id(item_ids)] = size
            pools.append(item_ids)
            size += len(item_ids)
        positions = np.flatnonzero(mask) + offsets[id(item_ids)]
        codes = np.asarray(
            [channel_codes.setdefault(c, len(channel_codes)) for c in channels], dtype=np.intp
        )
        item_rows.append(np.repeat(positions, len(codes)))
        channel_rows.append(np.tile(codes, len(positions)))
        part_rows.append(np.full(len(positions) * len(codes), number, dtype=np.intp))
    if not pools:
        empty = pd.Index([], dtype="str")
        return np.zeros(0, dtype=np.intp), empty, empty
    pool = pools[0].append(pools[1:]) if len(pools) > 1 else pools[0]
    items = pool.take(np.concatenate(item_rows))
    channel_index = pd.Index(list(channel_codes), dtype="str")
    channels_out = channel_index.take(np.concatenate(channel_rows))
    return np.concatenate(part_rows), items, channels_out


def _hits_frame(parts: Sequence[tuple[Strategy, pd.Index, Mask]]) -> pd.DataFrame:
    part, items, channels = expand_hits(
        [(ids, mask, [c.value for c in s.channels]) for s, ids, mask in parts]
    )
    strategies = [s for s, _, _ in parts]

    def column(values: list[str]) -> pd.Index:
        return pd.Index(values, dtype="str").take(part)

    return pd.DataFrame(
        {
            "strategy_id": column([s.id for s in strategies]),
            "strategy_version": np.asarray([s.version for s in strategies], dtype="int64")[part],
            "entity": column([s.entity.value for s in strategies]),
            "item_id": items,
            "channel": channels,
            "policy": column([s.policy.value for s in strategies]),
            "action": column([s.action.value for s in strategies]),
        },
        columns=list(HIT_COLUMNS),
    )


def _check_frame(frame: pd.DataFrame, what: str) -> None:
    if "item_id" not in frame.columns:
        raise EvaluationError(
            f"{what} has no `item_id` column; pass a feature frame from features.build"
        )


def evaluate_strategy(
    strategy: Strategy,
    frame: pd.DataFrame,
    *,
    feature_types: Mapping[str, FeatureType] | None = None,
) -> pd.DataFrame:
    """Hits of one strategy on its entity's frame: one row per matching item and channel."""
    _check_frame(frame, f"the {strategy.entity.value} frame")
    evaluator = FrameEvaluator(frame, feature_types=feature_types)
    return _hits_frame([(strategy, evaluator.item_ids, _strategy_mask(strategy, evaluator))])


def _strategy_mask(strategy: Strategy, evaluator: FrameEvaluator) -> Mask:
    try:
        return evaluator.mask(strategy.condition)
    except EvaluationError as err:
        raise EvaluationError(f"strategy {strategy.ref}: {err}") from err


def strategy_masks(
    strategies: Iterable[Strategy],
    frame: pd.DataFrame,
    *,
    feature_types: Mapping[str, FeatureType] | None = None,
    evaluator: FrameEvaluator | None = None,
) -> dict[str, Mask]:
    """Row mask of each strategy (by `ref`) on one entity frame, sharing predicate masks."""
    evaluator = evaluator or FrameEvaluator(frame, feature_types=feature_types)
    return {s.ref: _strategy_mask(s, evaluator) for s in strategies}


def evaluate_strategies(
    strategies: Iterable[Strategy],
    frames: Mapping[Entity, pd.DataFrame],
    *,
    feature_types: Mapping[Entity, Mapping[str, FeatureType]] | None = None,
) -> pd.DataFrame:
    """Hits of many strategies on their entities' frames, evaluating shared predicates once."""
    strategies = list(strategies)
    missing = sorted({s.entity.value for s in strategies} - {Entity(e).value for e in frames})
    if missing:
        raise EvaluationError(
            f"no feature frame for entity {', '.join(missing)}; build frames for every entity "
            "the strategies target"
        )
    evaluators: dict[Entity, FrameEvaluator] = {}
    parts: list[tuple[Strategy, pd.Index, Mask]] = []
    for strategy in strategies:
        entity = strategy.entity
        if entity not in evaluators:
            frame = frames[entity]
            _check_frame(frame, f"the {entity.value} frame")
            types = feature_types.get(entity) if feature_types is not None else None
            evaluators[entity] = FrameEvaluator(frame, feature_types=types)
        evaluator = evaluators[entity]
        parts.append((strategy, evaluator.item_ids, _strategy_mask(strategy, evaluator)))
    return _hits_frame(parts)
