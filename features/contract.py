"""Validation of contract tables: a failure names the table, column, row count and example keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from features.tables import TABLES, ColumnSpec, TableSpec

_MAX_EXAMPLES = 5


@dataclass(frozen=True)
class Problem:
    """One contract violation in one column of one table."""

    table: str
    column: str | None
    check: str
    n_rows: int
    examples: tuple[str, ...]

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        rows = f"{self.n_rows} row{'s' if self.n_rows != 1 else ''}" if self.n_rows else ""
        ex = f" (e.g. {', '.join(self.examples)})" if self.examples else ""
        return f"{where}: {self.check}" + (f" — {rows}{ex}" if rows else "")


class ContractError(ValueError):
    """Input tables break the data contract; `problems` lists every violation found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = "\n  ".join(str(p) for p in problems)
        super().__init__(
            f"{len(problems)} data contract violation(s):\n  {lines}\n"
            "See docs/data-contract.md for the expected tables and columns."
        )


def _kind_ok(series: pd.Series, col: ColumnSpec) -> bool:
    dtype = series.dtype
    if col.kind == "string":
        return bool(pd.api.types.is_string_dtype(dtype)) or (
            dtype == np.dtype(object)
            and bool(series.dropna().map(lambda v: isinstance(v, str)).all())
        )
    if col.kind == "int":
        return bool(pd.api.types.is_integer_dtype(dtype))
    if col.kind == "float":
        return bool(pd.api.types.is_float_dtype(dtype) or pd.api.types.is_integer_dtype(dtype))
    if col.kind == "bool":
        return bool(pd.api.types.is_bool_dtype(dtype))
    if col.kind in ("timestamp", "date"):
        return bool(pd.api.types.is_datetime64_dtype(dtype)) and getattr(dtype, "tz", None) is None
    raise AssertionError(col.kind)


def _expected(col: ColumnSpec) -> str:
    return {
        "string": "text",
        "int": "integer",
        "float": "number",
        "bool": "boolean",
        "timestamp": "timezone-naive UTC timestamp",
        "date": "timezone-naive date (timestamp at midnight)",
    }[col.kind]


def _pandera_schema(spec: TableSpec) -> pa.DataFrameSchema:
    columns: dict[str, pa.Column] = {}
    for col in spec.columns:
        checks: list[pa.Check] = []
        if col.enum is not None:
            checks.append(pa.Check.isin(list(col.enum), error=f"value not in {list(col.enum)}"))
        if col.min_value is not None:
            checks.append(pa.Check.ge(col.min_value, error=f"value below {col.min_value}"))
        if col.max_value is not None:
            checks.append(pa.Check.le(col.max_value, error=f"value above {col.max_value}"))
        if col.max_length is not None:
            checks.append(
                pa.Check.str_length(
                    max_value=col.max_length, error=f"text longer than {col.max_length} characters"
                )
            )
        if col.kind == "float":
            checks.append(
                pa.Check(
                    lambda s: ~s.isin([float("inf"), float("-inf")]),
                    element_wise=False,
                    error="infinite value",
                )
            )
        columns[col.name] = pa.Column(dtype=None, checks=checks, nullable=col.nullable)
    return pa.DataFrameSchema(columns, unique=list(spec.key), strict=False, coerce=False)


def _examples(df: pd.DataFrame, spec: TableSpec, index: pd.Index) -> tuple[str, ...]:
    rows = df.loc[df.index.isin(index)].head(_MAX_EXAMPLES)
    key = [k for k in spec.key if k in df.columns]
    if not key:
        return tuple(f"row {i}" for i in rows.index)
    return tuple("/".join(str(v) for v in values) for values in rows[key].itertuples(index=False))


def _spec(table: str | TableSpec) -> TableSpec:
    if isinstance(table, TableSpec):
        return table
    if table not in TABLES:
        raise KeyError(f"unknown contract table {table!r}; known: {sorted(TABLES)}")
    return TABLES[table]


def find_column_problems(table: str | TableSpec, df: pd.DataFrame) -> list[Problem]:
    """Missing or wrongly typed columns of `table`, a contract table's name or any declared
    table (cheap: no value checks)."""
    spec = _spec(table)
    name = spec.name
    problems: list[Problem] = []
    problems.extend(
        Problem(name, c, "missing column", 0, ()) for c in spec.column_names if c not in df.columns
    )
    for col in spec.columns:
        if col.name in df.columns and not _kind_ok(df[col.name], col):
            problems.append(
                Problem(
                    name,
                    col.name,
                    f"wrong type: {df[col.name].dtype}, expected {_expected(col)}",
                    len(df),
                    (),
                )
            )
    return problems


def find_problems(table: str | TableSpec, df: pd.DataFrame) -> list[Problem]:
    """Every way `df` breaks the declaration of `table`, a contract table's name or any
    declared table such as the audit's outputs (empty when it conforms)."""
    spec = _spec(table)
    name = spec.name
    problems = find_column_problems(spec, df)
    if problems:
        return problems  # value checks on wrongly typed or absent columns only add noise
    df = df.reset_index(drop=True)
    try:
        _pandera_schema(spec).validate(df, lazy=True)
    except SchemaErrors as err:
        cases = err.failure_cases
        for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
            idx = pd.Index(group["index"].dropna().astype(int).unique())
            col_name: str | None = None if pd.isna(column) else str(column)
            message = str(check)
            if message == "multiple_fields_uniqueness":
                col_name = "+".join(spec.key)
                message = "duplicate key"
            elif message == "not_nullable":
                message = "missing value (column is not nullable)"
            problems.append(Problem(name, col_name, message, len(idx), _examples(df, spec, idx)))
    return problems


def validate_table(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """Return `df` unchanged if it conforms to table `name`; raise ContractError otherwise."""
    problems = find_problems(name, df)
    if problems:
        raise ContractError(problems)
    return df


def find_reference_problems(tables: Mapping[str, pd.DataFrame]) -> list[Problem]:
    """Foreign keys that point at rows missing from the referenced table."""
    problems: list[Problem] = []
    for name, df in tables.items():
        spec = TABLES[name]
        for column, target in spec.references.items():
            if target not in tables:
                continue
            target_key = TABLES[target].key[0]
            dangling = ~df[column].isin(tables[target][target_key])
            if dangling.any():
                idx = df.index[dangling]
                problems.append(
                    Problem(
                        name,
                        column,
                        f"refers to {target}.{target_key} values that do not exist",
                        int(dangling.sum()),
                        _examples(df, spec, idx),
                    )
                )
    return problems


def typed_frame(table: str | TableSpec, df: pd.DataFrame) -> pd.DataFrame:
    """`df` with exactly the declared columns, in order, each cast to its declared kind (text
    keeps missing values missing where the column is nullable): how a table is written."""
    spec = _spec(table)
    out = df.reindex(columns=spec.column_names).reset_index(drop=True)
    for col in spec.columns:
        out[col.name] = _cast(out[col.name], col)
    return out


def _cast(series: pd.Series, col: ColumnSpec) -> pd.Series:
    if col.kind == "string":
        if not col.nullable:
            return series.astype("str")
        kept = [
            None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in series
        ]
        return pd.Series(pd.array(kept, dtype="str"), index=series.index)
    if col.kind == "float":
        return series.astype("float64")
    if col.kind == "int":
        return series.astype("Int64" if col.nullable else "int64")
    if col.kind == "bool":
        return series.astype("boolean" if col.nullable else "bool")
    return pd.to_datetime(series)


def find_future_problems(
    tables: Mapping[str, pd.DataFrame], *, now: datetime, skew: timedelta = timedelta(minutes=5)
) -> list[Problem]:
    """Timestamps later than `now` (naive UTC) plus `skew`: events that have not happened.

    Not part of `find_problems`, which judges a table on its own: whether a time lies in the
    future depends on when the check runs (`govrisk data validate` passes the wall clock).
    """
    latest = np.datetime64(now.replace(tzinfo=None) + skew, "us")
    problems: list[Problem] = []
    for name, df in tables.items():
        spec = TABLES[name]
        for col in spec.columns:
            if col.kind != "timestamp" or col.name not in df.columns:
                continue
            values = df[col.name].to_numpy(dtype="datetime64[us]")
            late = ~np.isnat(values) & (values > latest)
            if late.any():
                idx = df.index[late]
                problems.append(
                    Problem(
                        name,
                        col.name,
                        f"timestamp in the future (after {np.datetime_as_string(latest, 's')} UTC)",
                        int(late.sum()),
                        _examples(df, spec, idx),
                    )
                )
    return problems
