"""Bring your own data: a YAML dataset spec maps a user's tables to one scored entity.

The spec names a *rows* table (one row per scored item: id, time and label columns, typed
columns) and optional lookup tables, then declares features: typed columns taken as they are,
and derived ones — time between two timestamps, how many earlier rows share a value (point in
time: only rows strictly before the row's own time), a range lookup into another table (IP ->
country), hour of day, day of week, and text columns through the same text pipeline as listing
titles. Everything runs in DuckDB except the text pipeline; see `experiments/specs/` for an
example and docs/features.md for the format.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import duckdb
import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from features.columns import arrow_column
from features.engine import connect, timestamp_literal
from features.lexicon import LEXICON
from features.schema import Feature, FeatureKind, FeatureSet
from features.text import encode, text_signals
from features.vocabulary import ENTITY_CHANNELS, Channel, Entity, Policy

BYO_VERSION = 1
#: Frame columns besides the features: id, time, label and the governance channel.
RESERVED_COLUMNS = ("item_id", "event_time", "label", "channel")


class ColumnType(StrEnum):
    """Types a spec may give a column."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"
    TEXT = "text"


class SpecError(ValueError):
    """A dataset spec or its data is invalid; `problems` lists every issue found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid dataset spec:\n  " + "\n  ".join(problems))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnDecl(_Model):
    """A column's type, and for timestamps stored as text their strptime format."""

    type: ColumnType
    format: str | None = None


class TableDecl(_Model):
    """A CSV (optionally gzipped) or Parquet file and the columns the spec uses from it."""

    path: str
    format: Literal["csv", "parquet"] | None = None
    columns: dict[str, ColumnType | ColumnDecl]

    def column_types(self) -> dict[str, ColumnDecl]:
        """Every declared column as a ColumnDecl."""
        return {
            name: decl if isinstance(decl, ColumnDecl) else ColumnDecl(type=decl)
            for name, decl in self.columns.items()
        }


class RowsDecl(TableDecl):
    """The table with one row per scored item."""

    id: str
    time: str
    label: str | None = None


class _FeatureBase(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    unit: str = ""


class ColumnFeature(_FeatureBase):
    """A numeric, categorical or boolean column of the rows table, as it is."""

    kind: Literal["column"]
    column: str


class TimeBetweenFeature(_FeatureBase):
    """Seconds from `start` to `end` (two timestamp columns of the rows table)."""

    kind: Literal["time_between"]
    start: str
    end: str


class PriorCountFeature(_FeatureBase):
    """Rows sharing this row's value of `column` whose time is strictly earlier."""

    kind: Literal["prior_count"]
    column: str


class RangeLookupFeature(_FeatureBase):
    """`value` of the lookup-table row with `lower <= column <= upper` (missing if none)."""

    kind: Literal["range_lookup"]
    column: str
    table: str
    lower: str
    upper: str
    value: str


class HourOfDayFeature(_FeatureBase):
    """Hour (0-23) of a timestamp column."""

    kind: Literal["hour_of_day"]
    column: str


class DayOfWeekFeature(_FeatureBase):
    """Day of week (0 = Monday ... 6 = Sunday) of a timestamp column."""

    kind: Literal["day_of_week"]
    column: str


class TextFeature(_FeatureBase):
    """A text column through the listing text pipeline: lexicon counts, length, hash dims."""

    kind: Literal["text"]
    column: str
    dims: int = Field(default=4, ge=1, le=64)


FeatureDecl = Annotated[
    ColumnFeature
    | TimeBetweenFeature
    | PriorCountFeature
    | RangeLookupFeature
    | HourOfDayFeature
    | DayOfWeekFeature
    | TextFeature,
    Field(discriminator="kind"),
]


class GovernanceDecl(_Model):
    """How the rows enter governance: the govrisk entity they stand in for (the entity
    strategies, audits and the review queue name), the policy the label judges, the channel
    they are shown in (one `channel` for every row, or a rows column of channel names) and the
    numeric feature whose value is at stake (GMV in the audit; 1 per row when absent)."""

    entity: Entity
    policy: Policy
    channel: Channel | None = None
    channel_column: str | None = None
    value: str | None = None

    def channel_of_rows(self) -> Channel:
        """The channel of every row when no column says it."""
        return self.channel or ENTITY_CHANNELS[self.entity][0]


class DatasetSpec(_Model):
    """A user's dataset mapped to one scored entity."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    entity: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    rows: RowsDecl
    lookups: dict[str, TableDecl] = Field(default_factory=dict)
    features: list[FeatureDecl] = Field(min_length=1)
    governance: GovernanceDecl | None = None

    @field_validator("lookups")
    @classmethod
    def _not_rows(cls, value: dict[str, TableDecl]) -> dict[str, TableDecl]:
        if "rows" in value:
            raise ValueError("a lookup table may not be called 'rows'")
        return value


@dataclass(frozen=True)
class ByoDataset:
    """Features built from a spec: `item_id`, `event_time`, `label` (if any), `channel` (with a
    governance `channel_column`), then features."""

    spec: DatasetSpec
    feature_set: FeatureSet
    frame: pd.DataFrame
    inputs: dict[str, Path]
    digests: dict[str, str]


def _pydantic_problems(err: ValidationError) -> list[str]:
    problems: dict[str, str] = {}
    for e in err.errors():
        # Drop pydantic's union-member tags ("str-enum[ColumnType]", "ColumnDecl") from paths.
        loc = [
            str(p) for p in e["loc"] if not (isinstance(p, str) and ("[" in p or p[:1].isupper()))
        ]
        problems.setdefault(".".join(loc) or "spec", e["msg"])
    return [f"{where}: {msg}" for where, msg in problems.items()]


def load_spec(path: Path | str) -> DatasetSpec:
    """Read and validate a dataset spec (structure, names and cross-references)."""
    path = Path(path)
    if not path.exists():
        raise SpecError([f"spec file not found: {path}"])
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SpecError([f"{path}: not valid YAML: {err}"]) from err
    return parse_spec(raw, source=str(path))


def parse_spec(raw: object, *, source: str = "spec") -> DatasetSpec:
    """Validate a spec given as parsed YAML."""
    if not isinstance(raw, Mapping):
        raise SpecError([f"{source}: expected a mapping at the top level"])
    try:
        spec = DatasetSpec.model_validate(raw)
    except ValidationError as err:
        raise SpecError(_pydantic_problems(err)) from err
    problems = _reference_problems(spec)
    if problems:
        raise SpecError(problems)
    return spec


def _reference_problems(spec: DatasetSpec) -> list[str]:
    problems: list[str] = []
    rows = spec.rows.column_types()

    def need(where: str, column: str, allowed: set[ColumnType] | None = None) -> None:
        if column not in rows:
            problems.append(
                f"{where}: unknown column {column!r}; declared rows columns: {sorted(rows)}"
            )
        elif allowed is not None and rows[column].type not in allowed:
            wanted = " or ".join(sorted(t.value for t in allowed))
            problems.append(
                f"{where}: column {column!r} is {rows[column].type.value}, needs {wanted}"
            )

    need("rows.id", spec.rows.id)
    need("rows.time", spec.rows.time, {ColumnType.TIMESTAMP})
    if spec.rows.label is not None:
        need("rows.label", spec.rows.label, {ColumnType.NUMERIC, ColumnType.BOOLEAN})
    for name, table in spec.lookups.items():
        for column, decl in table.column_types().items():
            if decl.format is not None and decl.type is not ColumnType.TIMESTAMP:
                problems.append(f"lookups.{name}.columns.{column}: format is for timestamps only")
    for column, decl in rows.items():
        if decl.format is not None and decl.type is not ColumnType.TIMESTAMP:
            problems.append(f"rows.columns.{column}: format is for timestamps only")
    seen: set[str] = set()
    scalar = {ColumnType.NUMERIC, ColumnType.CATEGORICAL, ColumnType.BOOLEAN}
    for i, f in enumerate(spec.features):
        where = f"features[{i}] ({f.name})"
        for out in _output_names(f):
            if out in seen or out in RESERVED_COLUMNS:
                problems.append(f"{where}: feature name {out!r} is used twice or reserved")
            seen.add(out)
        if isinstance(f, ColumnFeature):
            need(where, f.column, scalar)
        elif isinstance(f, TimeBetweenFeature):
            need(where, f.start, {ColumnType.TIMESTAMP})
            need(where, f.end, {ColumnType.TIMESTAMP})
        elif isinstance(f, HourOfDayFeature | DayOfWeekFeature):
            need(where, f.column, {ColumnType.TIMESTAMP})
        elif isinstance(f, TextFeature):
            need(where, f.column, {ColumnType.TEXT, ColumnType.CATEGORICAL})
        elif isinstance(f, PriorCountFeature):
            need(where, f.column)
        else:
            need(where, f.column, {ColumnType.NUMERIC, ColumnType.TIMESTAMP})
            lookup = spec.lookups.get(f.table)
            if lookup is None:
                problems.append(
                    f"{where}: unknown lookup table {f.table!r}; declared: {sorted(spec.lookups)}"
                )
                continue
            columns = lookup.column_types()
            for role in ("lower", "upper", "value"):
                column = getattr(f, role)
                if column not in columns:
                    problems.append(
                        f"{where}: {role} column {column!r} is not declared in lookup "
                        f"{f.table!r}; declared: {sorted(columns)}"
                    )
            if f.value in columns and columns[f.value].type not in scalar:
                problems.append(
                    f"{where}: value column {f.value!r} must be numeric, categorical or boolean"
                )
    if spec.governance is not None and not problems:
        problems += _governance_problems(spec, spec.governance, need)
    return problems


def _governance_problems(
    spec: DatasetSpec, gov: GovernanceDecl, need: Callable[[str, str, set[ColumnType]], None]
) -> list[str]:
    problems: list[str] = []
    allowed = ENTITY_CHANNELS[gov.entity]
    if gov.channel is not None and gov.channel not in allowed:
        problems.append(
            f"governance.channel: {gov.channel.value} is not a {gov.entity.value} channel; "
            f"use one of {[c.value for c in allowed]}"
        )
    if gov.channel is not None and gov.channel_column is not None:
        problems.append("governance: give channel or channel_column, not both")
    if gov.channel_column is not None:
        need("governance.channel_column", gov.channel_column, {ColumnType.CATEGORICAL})
    if gov.value is not None:
        kinds = {f.name: f.kind for f in feature_set(spec).features}
        if kinds.get(gov.value) != "numeric":
            numeric = [n for n, k in kinds.items() if k == "numeric"]
            problems.append(
                f"governance.value: {gov.value!r} is not a numeric feature; one of {numeric}"
            )
    return problems


def _output_names(f: FeatureDecl) -> list[str]:
    if isinstance(f, TextFeature):
        return [
            *(f"{f.name}_{group}_term_count" for group in LEXICON),
            f"{f.name}_text_length",
            *(f"{f.name}_text_hash_{k}" for k in range(f.dims)),
        ]
    return [f.name]


def _kind(spec: DatasetSpec, f: FeatureDecl) -> FeatureKind:
    if isinstance(f, ColumnFeature):
        return _scalar_kind(spec.rows.column_types()[f.column].type)
    if isinstance(f, RangeLookupFeature):
        return _scalar_kind(spec.lookups[f.table].column_types()[f.value].type)
    return "numeric"


def _scalar_kind(t: ColumnType) -> FeatureKind:
    return {
        ColumnType.NUMERIC: "numeric",
        ColumnType.CATEGORICAL: "categorical",
        ColumnType.BOOLEAN: "boolean",
    }[t]  # type: ignore[return-value]


def _default_description(f: FeatureDecl) -> str:
    if isinstance(f, ColumnFeature):
        return f"Column {f.column} as given."
    if isinstance(f, TimeBetweenFeature):
        return f"Seconds from {f.start} to {f.end}."
    if isinstance(f, PriorCountFeature):
        return f"Earlier rows (strictly before this row's time) with the same {f.column}."
    if isinstance(f, RangeLookupFeature):
        return f"{f.value} of the {f.table} row whose [{f.lower}, {f.upper}] holds {f.column}."
    if isinstance(f, HourOfDayFeature):
        return f"Hour of day (0-23) of {f.column}."
    if isinstance(f, DayOfWeekFeature):
        return f"Day of week (0 = Monday) of {f.column}."
    return f"Text signals of {f.column}."


def feature_set(spec: DatasetSpec) -> FeatureSet:
    """The spec's features as a declared feature set (text features expanded)."""
    features: list[Feature] = []
    for f in spec.features:
        description = f.description or _default_description(f)
        if isinstance(f, TextFeature):
            for out in _output_names(f):
                suffix = out[len(f.name) + 1 :].replace("_", " ")
                features.append(Feature(out, "numeric", f"{description} ({suffix})"))
            continue
        unit = f.unit or ("s" if isinstance(f, TimeBetweenFeature) else "")
        features.append(Feature(f.name, _kind(spec, f), description, unit))
    return FeatureSet(
        name=spec.name,
        entity=spec.entity,
        join_key=spec.rows.id,
        version=BYO_VERSION,
        description=spec.description or f"Features of {spec.entity} rows from a dataset spec.",
        features=tuple(features),
    )


def resolve_inputs(
    spec: DatasetSpec, *, base_dir: Path | None = None, overrides: Mapping[str, Path] | None = None
) -> dict[str, Path]:
    """Path of every table (`rows` and each lookup): overrides first, then spec paths resolved
    against `base_dir` (default: the current directory). Missing files are errors."""
    base = base_dir or Path.cwd()
    overrides = dict(overrides or {})
    tables: dict[str, TableDecl] = {"rows": spec.rows, **spec.lookups}
    problems = [
        f"--table {name}: no table called {name!r} in the spec; tables: {sorted(tables)}"
        for name in sorted(set(overrides) - set(tables))
    ]
    out: dict[str, Path] = {}
    for name, table in tables.items():
        path = overrides.get(name) or (base / table.path)
        if not path.exists():
            where = f"--table {name}" if name in overrides else f"{_where(name)}.path"
            problems.append(
                f"{where}: file not found: {path} (spec paths are relative to the base "
                "directory; set it with --base-dir or point at the file with --table)"
            )
        out[name] = path
    if problems:
        raise SpecError(problems)
    return out


def _where(table: str) -> str:
    return "rows" if table == "rows" else f"lookups.{table}"


def _reader(path: Path, fmt: str | None) -> str:
    kind = fmt or ("parquet" if path.suffix == ".parquet" else "csv")
    quoted = str(path).replace("'", "''")
    if kind == "parquet":
        return f"read_parquet('{quoted}')"
    return f"read_csv('{quoted}', header = true, all_varchar = true)"


def _typed(column: str, decl: ColumnDecl) -> str:
    q = f'"{column}"'
    if decl.type is ColumnType.NUMERIC:
        return f"TRY_CAST({q} AS DOUBLE)"
    if decl.type is ColumnType.BOOLEAN:
        return f"TRY_CAST({q} AS BOOLEAN)"
    if decl.type is ColumnType.TIMESTAMP:
        if decl.format:
            fmt = decl.format.replace("'", "''")
            return f"try_strptime(CAST({q} AS VARCHAR), '{fmt}')"
        return f"TRY_CAST({q} AS TIMESTAMP)"
    return f"CAST({q} AS VARCHAR)"


def _load_table(
    con: duckdb.DuckDBPyConnection, name: str, table: TableDecl, path: Path, problems: list[str]
) -> None:
    source = _reader(path, table.format)
    try:
        available = [r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {source}").fetchall()]
    except duckdb.Error as err:
        problems.append(f"{_where(name)}: cannot read {path}: {err}")
        return
    columns = table.column_types()
    missing = [c for c in columns if c not in available]
    for column in missing:
        problems.append(
            f"{_where(name)}.columns.{column}: no such column in {path.name}; it has {available}"
        )
    if missing:
        return
    select = ", ".join(f'{_typed(c, d)} AS "{c}"' for c, d in columns.items())
    raw = ", ".join(f'"{c}" AS "raw_{c}"' for c in columns)
    con.execute(
        f"CREATE TEMP TABLE typed_{name} AS SELECT row_number() OVER () AS _row, {select}, {raw} "
        f"FROM {source}"
    )
    for column, decl in columns.items():
        if decl.type in (ColumnType.CATEGORICAL, ColumnType.TEXT):
            continue
        bad = con.execute(
            f'SELECT count(*), list("raw_{column}")[1:3] FROM typed_{name} '
            f'WHERE "raw_{column}" IS NOT NULL AND "{column}" IS NULL'
        ).fetchall()[0]
        if bad[0]:
            hint = f" with format {decl.format!r}" if decl.format else ""
            problems.append(
                f"{_where(name)}.columns.{column}: {bad[0]} value(s) are not {decl.type.value}"
                f"{hint} (e.g. {', '.join(repr(str(v)) for v in bad[1])})"
            )


def _feature_sql(spec: DatasetSpec) -> tuple[list[str], list[str]]:
    select: list[str] = []
    joins: list[str] = []
    time = f'r."{spec.rows.time}"'
    for i, f in enumerate(spec.features):
        name = f'"{f.name}"'
        if isinstance(f, ColumnFeature):
            select.append(f'r."{f.column}" AS {name}')
        elif isinstance(f, TimeBetweenFeature):
            select.append(
                f'CAST(date_diff(\'microsecond\', r."{f.start}", r."{f.end}") AS DOUBLE) '
                f"/ 1000000.0 AS {name}"
            )
        elif isinstance(f, PriorCountFeature):
            col = f'r."{f.column}"'
            select.append(
                f"CASE WHEN {col} IS NULL THEN NULL ELSE CAST(rank() OVER "
                f"(PARTITION BY {col} ORDER BY {time}) - 1 AS DOUBLE) END AS {name}"
            )
        elif isinstance(f, HourOfDayFeature):
            select.append(f'CAST(hour(r."{f.column}") AS DOUBLE) AS {name}')
        elif isinstance(f, DayOfWeekFeature):
            select.append(f'CAST(isodow(r."{f.column}") - 1 AS DOUBLE) AS {name}')
        elif isinstance(f, RangeLookupFeature):
            alias = f"k{i}"
            joins.append(
                f"""LEFT JOIN (
  SELECT q._row, CASE WHEN q.v <= t."{f.upper}" THEN t."{f.value}" END AS value
  FROM (SELECT _row, "{f.column}" AS v FROM typed_rows) q
  ASOF LEFT JOIN typed_{f.table} t ON q.v >= t."{f.lower}"
) {alias} ON {alias}._row = r._row"""
            )
            select.append(f"{alias}.value AS {name}")
        else:
            select.append(f'r."{f.column}" AS "__text_{f.name}"')
    return select, joins


def build_dataset(
    spec: DatasetSpec,
    *,
    base_dir: Path | None = None,
    overrides: Mapping[str, Path] | None = None,
    as_of: datetime | None = None,
    threads: int | None = None,
) -> ByoDataset:
    """Read the spec's tables, check every value against its declared type, build features.

    With `as_of`, only rows whose time is strictly before it are kept (and counted).
    """
    inputs = resolve_inputs(spec, base_dir=base_dir, overrides=overrides)
    return _compute_dataset(spec, inputs, as_of=as_of, threads=threads)


def _compute_dataset(
    spec: DatasetSpec, inputs: Mapping[str, Path], *, as_of: datetime | None, threads: int | None
) -> ByoDataset:
    con = connect(threads=threads)
    try:
        problems: list[str] = []
        tables: dict[str, TableDecl] = {"rows": spec.rows, **spec.lookups}
        for name, table in tables.items():
            _load_table(con, name, table, inputs[name], problems)
        if problems:
            raise SpecError(problems)
        rows = spec.rows
        checks = con.execute(
            f'SELECT count(*) - count(DISTINCT "{rows.id}"), count(*) - count("{rows.id}"), '
            f'count(*) - count("{rows.time}") FROM typed_rows'
        ).fetchall()[0]
        for n, what in zip(checks, ("duplicate", "missing", "missing time for"), strict=True):
            if n:
                problems.append(f"rows: {n} row(s) with {what} id ({rows.id}/{rows.time})")
        if problems:
            raise SpecError(problems)
        if as_of is not None:
            con.execute(
                f'DELETE FROM typed_rows WHERE NOT ("{rows.time}" < {timestamp_literal(as_of)})'
            )
        select, joins = _feature_sql(spec)
        label = f', r."{rows.label}" AS label' if rows.label else ""
        channel = _channel_column(spec)
        channel_sql = f', r."{channel}" AS channel' if channel else ""
        sql = (
            f'SELECT CAST(r."{rows.id}" AS VARCHAR) AS item_id, r."{rows.time}" AS event_time'
            f"{label}{channel_sql}, {', '.join(select)} FROM typed_rows r {' '.join(joins)} "
            f'ORDER BY r."{rows.time}", item_id'
        )
        result = con.sql(sql).to_arrow_table()
    finally:
        con.close()
    declared = feature_set(spec)
    data: dict[str, object] = {
        "item_id": pd.Series(arrow_column(result.column("item_id")), dtype="str"),
        "event_time": arrow_column(result.column("event_time")),
    }
    if rows.label:
        data["label"] = arrow_column(result.column("label"))
    if channel:
        data["channel"] = _checked_channels(spec, arrow_column(result.column("channel")))
    computed: dict[str, np.ndarray] = {}
    for f in spec.features:
        if isinstance(f, TextFeature):
            text = arrow_column(result.column(f"__text_{f.name}"))
            computed.update(text_signals(encode(text), prefix=f.name, n_dims=f.dims))
        else:
            computed[f.name] = arrow_column(result.column(f.name))
    for feature in declared.features:
        values = computed[feature.name]
        if feature.kind == "categorical":
            data[feature.name] = pd.Series(values, dtype="str")
        elif feature.kind == "boolean":
            data[feature.name] = np.asarray(values, dtype=bool)
        else:
            data[feature.name] = np.asarray(values, dtype=np.float64)
    return ByoDataset(
        spec=spec,
        feature_set=declared,
        frame=pd.DataFrame(data),
        inputs=dict(inputs),
        digests={name: _sha256(path) for name, path in inputs.items()},
    )


def _channel_column(spec: DatasetSpec) -> str | None:
    return None if spec.governance is None else spec.governance.channel_column


def _checked_channels(spec: DatasetSpec, values: np.ndarray) -> pd.Series:
    """The channel column, refused when a value is not a channel of the governance entity."""
    assert spec.governance is not None
    allowed = {c.value for c in ENTITY_CHANNELS[spec.governance.entity]}
    channels = pd.Series(values, dtype="str")
    bad = sorted(set(channels.dropna()) - allowed)
    if bad or channels.isna().any():
        raise SpecError(
            [
                f"rows.columns.{spec.governance.channel_column}: every row needs one of "
                f"{sorted(allowed)} (the {spec.governance.entity.value} channels); found "
                f"{bad[:5] or 'missing values'}"
            ]
        )
    return channels


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
