"""Column bundles: the in-memory form features are computed on, in batch and online alike.

A bundle maps a column name to a 1-d numpy array; every array has the same length. Numbers
are float64 (missing = NaN), booleans are bool (missing = False), text is an object array of
`str` (missing = None) and timestamps are datetime64[us] (missing = NaT). The same pure
functions run on a bundle of one row (online) and of millions (batch), so both paths produce
the same floats.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.schema import Feature

Columns = dict[str, np.ndarray]

_US_PER_DAY = 86_400_000_000


def arrow_to_columns(table: pa.Table) -> Columns:
    """Convert an Arrow table to a bundle with the conventions above."""
    out: Columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        out[name] = arrow_column(column)
    return out


def arrow_column(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """One Arrow column as a bundle array (see the module docstring for the conventions)."""
    kind = column.type
    if pa.types.is_boolean(kind):
        return np.asarray(pc.fill_null(column, False).to_numpy(zero_copy_only=False), dtype=bool)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _text_objects(column)
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return np.asarray(column.cast(pa.timestamp("us")).to_numpy(zero_copy_only=False))
    if pa.types.is_null(kind):
        return np.full(len(column), np.nan)
    as_float = column if pa.types.is_float64(kind) else column.cast(pa.float64())
    if as_float.null_count:
        as_float = pc.fill_null(as_float, np.nan)
    # Without nulls a single-chunk float64 column is viewed, not copied.
    return np.asarray(as_float.to_numpy(zero_copy_only=False), dtype=np.float64)


def _text_objects(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    # One Python str per distinct value, shared by its rows: a million rows of a few categories
    # cost a million pointers, not a million string objects.
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    if len(column) == 0:
        return np.empty(0, dtype=object)
    sample = column.slice(0, 4096)
    if pc.count_distinct(sample).as_py() > len(sample) // 2:  # ids: nothing to share
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
    encoded = pc.dictionary_encode(column)
    codes = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False))
    distinct = np.empty(len(encoded.dictionary) + 1, dtype=object)
    distinct[:-1] = encoded.dictionary.to_numpy(zero_copy_only=False)
    out: np.ndarray = distinct[codes]  # code -1 picks the trailing None
    return out


def missing_like(values: np.ndarray, n: int) -> np.ndarray:
    """An array of `n` missing values of the same kind as `values`."""
    if values.dtype == bool:
        return np.zeros(n, dtype=bool)
    if values.dtype == object:
        return np.full(n, None, dtype=object)
    if np.issubdtype(values.dtype, np.datetime64):
        return np.full(n, np.datetime64("NaT"), dtype=values.dtype)
    return np.full(n, np.nan)


def to_datetime64(value: datetime | pd.Timestamp | np.datetime64) -> np.datetime64:
    """A timezone-naive UTC instant as numpy datetime64[us]."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    out: np.datetime64 = ts.as_unit("us").to_datetime64().astype("datetime64[us]")
    return out


def parse_time(value: str) -> datetime:
    """An ISO 8601 time as a naive UTC datetime (an offset, if given, is converted)."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()  # type: ignore[no-any-return]


def days_between(later: np.datetime64 | np.ndarray, earlier: np.ndarray) -> np.ndarray:
    """(later - earlier) in days as float64; NaN where either side is missing."""
    later_us = np.asarray(later).astype("datetime64[us]", copy=False)
    earlier_us = earlier.astype("datetime64[us]", copy=False)
    delta = (later_us.view(np.int64) - earlier_us.view(np.int64)) / _US_PER_DAY
    missing = np.isnat(earlier_us) | np.isnat(later_us)
    if missing.any():
        delta = np.where(missing, np.nan, delta)
    return np.asarray(delta, dtype=np.float64)


def ratio(numerator: np.ndarray, denominator: np.ndarray, *, when_zero: float) -> np.ndarray:
    """numerator / denominator, `when_zero` where the denominator is 0 (NaN stays NaN)."""
    out = np.full(numerator.shape, when_zero, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def zero_filled(values: np.ndarray) -> np.ndarray:
    """NaN replaced by 0 (for counts of things that did not happen)."""
    return np.where(np.isnan(values), 0.0, values)


def to_frame(
    key_name: str, keys: np.ndarray, columns: Mapping[str, np.ndarray], features: Iterable[Feature]
) -> pd.DataFrame:
    """A frame with the key column first, then `features` in order, typed by kind."""
    data: dict[str, pd.Series | np.ndarray] = {key_name: pd.Series(keys, dtype="str")}
    for feature in features:
        values = columns[feature.name]
        if feature.kind == "categorical":
            data[feature.name] = pd.Series(values, dtype="str")
        elif feature.kind == "boolean":
            data[feature.name] = np.asarray(values, dtype=bool)
        else:
            data[feature.name] = np.asarray(values, dtype=np.float64)
    return pd.DataFrame(data, copy=False)


def columns_to_arrow(columns: Mapping[str, np.ndarray]) -> pa.Table:
    """A bundle as an Arrow table (text as string, None as null, NaN kept as NaN)."""
    arrays: dict[str, pa.Array] = {}
    for name, values in columns.items():
        if values.dtype == object:
            arrays[name] = pa.array(values, type=pa.string())
        else:
            arrays[name] = pa.array(values)
    return pa.table(arrays)
