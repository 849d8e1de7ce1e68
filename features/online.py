"""Online features: the scoring-frame row of one item from a request payload and a snapshot.

The payload carries the item's own raw fields (the columns of its contract table: a listing's
`listings` row, a video's `videos` row, ...). Seller, creator, category, image and activity
aggregates come from the latest feature snapshot written by `govrisk features build`. The
context is then turned into features by exactly the functions the batch build uses, so an
item present in the snapshot gets its batch row back, float for float.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

import numpy as np
import pandas as pd

from features.catalog import frame_features, frame_spec
from features.columns import Columns, to_datetime64, to_frame
from features.frames import JOINS, compute_frame
from features.snapshot import FeatureSnapshot
from features.tables import ITEM_TABLES, ColumnSpec
from features.vocabulary import Entity

#: Fields a payload may leave out although the table requires them (unknown while running).
OPTIONAL_FIELDS = {Entity.LIVE: frozenset({"ended_at"})}

FeatureValue = float | str | bool | None
#: How far past the server's clock a payload timestamp may lie (clients' clocks drift).
FUTURE_SKEW = timedelta(minutes=5)


class PayloadError(ValueError):
    """A payload is missing fields or has values of the wrong type; `problems` lists them all."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid payload:\n  " + "\n  ".join(problems))


def payload_fields(entity: Entity | str) -> tuple[ColumnSpec, ...]:
    """The raw fields a payload for `entity` carries (the columns of its contract table)."""
    return ITEM_TABLES[Entity(entity)].columns


def _check_value(col: ColumnSpec, value: object) -> str | None:
    if col.kind == "string":
        if not isinstance(value, str):
            return f"must be text, got {type(value).__name__}"
        if col.enum is not None and value not in col.enum:
            return f"must be one of {list(col.enum)}, got {value!r}"
        return None
    if col.kind in ("float", "int"):
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            return f"must be a number, got {type(value).__name__}"
        try:
            number = float(value)
        except OverflowError:  # an integer beyond float64, e.g. 400 digits
            return "must be a number within the range of a 64-bit float"
        if not math.isfinite(number):
            return "must be finite (no NaN or infinity)"
        if col.kind == "int" and number != int(value):
            return "must be a whole number"
        if col.min_value is not None and number < col.min_value:
            return f"must be >= {col.min_value:g}"
        if col.max_value is not None and number > col.max_value:
            return f"must be <= {col.max_value:g}"
        return None
    if col.kind == "bool":
        return None if isinstance(value, bool | np.bool_) else "must be true or false"
    if isinstance(value, str):
        try:
            pd.Timestamp(value)
        except ValueError:
            return f"must be an ISO 8601 timestamp, got {value!r}"
    elif not isinstance(value, datetime | np.datetime64):
        return f"must be a timestamp, got {type(value).__name__}"
    try:
        instant = to_datetime64(value)  # type: ignore[arg-type]
    except (ValueError, OverflowError):
        return "must be a timestamp between the years 1678 and 2261"
    if instant > _latest_valid_time():
        return "is in the future; send the time in UTC (or with its offset)"
    return None


def _latest_valid_time() -> np.datetime64:
    """Now (UTC) plus a little clock skew: later timestamps describe nothing that happened."""
    now = datetime.now(UTC).replace(tzinfo=None) + FUTURE_SKEW
    return np.datetime64(now, "us")


def payload_columns(
    entity: Entity | str,
    payloads: Sequence[Mapping[str, object]],
    *,
    extra: Literal["forbid", "ignore"] = "forbid",
) -> Columns:
    """Validate payloads and turn them into a column bundle (raises PayloadError)."""
    entity = Entity(entity)
    fields = payload_fields(entity)
    names = {c.name for c in fields}
    optional = OPTIONAL_FIELDS.get(entity, frozenset())
    problems: list[str] = []
    for i, payload in enumerate(payloads):
        where = f"items[{i}]" if len(payloads) > 1 else "item"
        if not isinstance(payload, Mapping):
            problems.append(f"{where}: must be an object with the {entity.value}'s fields")
            continue
        if extra == "forbid":
            for name in sorted(set(payload) - names):
                problems.append(
                    f"{where}.{name}: unknown field; {entity.value} fields are {sorted(names)}"
                )
        for col in fields:
            value = payload.get(col.name)
            if value is None:
                if not (col.nullable or col.name in optional):
                    problems.append(f"{where}.{col.name}: required field missing")
                continue
            message = _check_value(col, value)
            if message:
                problems.append(f"{where}.{col.name}: {message}")
    if problems:
        raise PayloadError(problems)
    out: Columns = {}
    for col in fields:
        raw = [p.get(col.name) for p in payloads]
        if col.kind == "string":
            out[col.name] = np.array(raw, dtype=object)
        elif col.kind in ("float", "int"):
            out[col.name] = np.array([np.nan if v is None else float(v) for v in raw])  # type: ignore[arg-type]
        elif col.kind == "bool":
            out[col.name] = np.array([bool(v) for v in raw], dtype=bool)
        else:
            out[col.name] = np.array(
                [np.datetime64("NaT") if v is None else to_datetime64(v) for v in raw],  # type: ignore[arg-type]
                dtype="datetime64[us]",
            )
    return out


def payloads_from_table(entity: Entity | str, df: pd.DataFrame) -> list[dict[str, object]]:
    """Payloads from rows of the entity's contract table (NaN -> None, timestamps -> datetime)."""
    names = [c.name for c in payload_fields(entity)]
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise KeyError(f"{ITEM_TABLES[Entity(entity)].name} rows lack columns {missing}")
    out: list[dict[str, object]] = []
    for record in df[names].to_dict("records"):
        payload: dict[str, object] = {}
        for key, value in record.items():
            if isinstance(value, float) and math.isnan(value):
                payload[str(key)] = None
            elif isinstance(value, pd.Timestamp):
                payload[str(key)] = value.to_pydatetime()
            else:
                payload[str(key)] = value
        out.append(payload)
    return out


def online_context(ctx: Columns, entity: Entity, snapshot: FeatureSnapshot) -> Columns:
    """Extend a payload bundle with the snapshot rows its item is joined to."""
    ctx = dict(ctx)
    for join in JOINS[entity]:
        lookup = snapshot.lookup(join.table)
        ctx.update(lookup.take([ctx[c] for c in join.on], join.prefix))
    return ctx


def _columns(
    entity: Entity,
    payloads: Sequence[Mapping[str, object]],
    snapshot: FeatureSnapshot,
    as_of: datetime | np.datetime64 | None,
    extra: Literal["forbid", "ignore"],
) -> tuple[Columns, Columns]:
    raw = payload_columns(entity, payloads, extra=extra)
    ctx = online_context(raw, entity, snapshot)
    cutoff = snapshot.as_of if as_of is None else to_datetime64(as_of)
    return raw, compute_frame(entity, ctx, as_of=cutoff, snapshot=snapshot)


def build_online_frame(
    entity: Entity | str,
    payloads: Sequence[Mapping[str, object]],
    snapshot: FeatureSnapshot,
    *,
    as_of: datetime | np.datetime64 | None = None,
    extra: Literal["forbid", "ignore"] = "forbid",
) -> pd.DataFrame:
    """Scoring-frame rows (same columns and dtypes as the batch frame) for several payloads.

    `as_of` defaults to the snapshot's cutoff; ages and tenures are measured to it while
    rolling aggregates stay those of the snapshot.
    """
    entity = Entity(entity)
    raw, columns = _columns(entity, payloads, snapshot, as_of, extra)
    return to_frame("item_id", raw[frame_spec(entity).key], columns, frame_features(entity))


def build_online_vector(
    entity: Entity | str,
    payload: Mapping[str, object],
    snapshot: FeatureSnapshot,
    *,
    as_of: datetime | np.datetime64 | None = None,
    extra: Literal["forbid", "ignore"] = "forbid",
) -> dict[str, FeatureValue]:
    """One item's features as `{"item_id": ..., feature: value, ...}` in frame column order.

    Numbers are floats (NaN when missing), categories are strings (None when missing),
    booleans are bools.
    """
    entity = Entity(entity)
    raw, columns = _columns(entity, [payload], snapshot, as_of, extra)
    out: dict[str, FeatureValue] = {"item_id": raw[frame_spec(entity).key][0]}
    for feature in frame_features(entity):
        value = columns[feature.name][0]
        if feature.kind == "numeric":
            out[feature.name] = float(value)
        elif feature.kind == "boolean":
            out[feature.name] = bool(value)
        else:
            out[feature.name] = None if value is None or value != value else str(value)
    return out
