"""Contract tables from real exports: a small mapping file, forgiving about names, types and
time zones, strict about what it keeps.

A mapping file (YAML) names, per contract table, the exported file and where each contract
column comes from::

    timezone: Asia/Singapore          # zone of timestamps written without one (default UTC)
    tables:
      listings:
        file: listings_export.csv     # CSV or Parquet, relative to the mapping file
        columns: {listing_id: item_sku, created_at: published}   # contract: export
        values: {category: {"Bags & Luggage": bags}}            # export value -> contract
        timezone: UTC                                           # per-table override

Columns the export already names as the contract does need no entry. Every row is converted to
the declared kind (numbers, booleans, timestamps converted to UTC and stored zone-naive, as the
contract says); a row that cannot be, or breaks the declaration (an unknown category, a value
out of range, a repeated key, a reference to a row that is not there) goes to
`quarantine/<table>.parquet` with its reasons and its exported values, so nothing is lost:
rows read = rows imported + rows quarantined, per table. A contract table the mapping leaves
out is written empty when it is optional, with its stated effect, and refused otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import yaml

from features.contract import typed_frame
from features.tables import TABLES, ColumnSpec, TableSpec

#: Contract tables an export may lack, and what govrisk then cannot do.
OPTIONAL_TABLES: dict[str, str] = {
    "creators": "no creator features (videos and lives must then be absent too)",
    "videos": "no video items: video strategies, models and audits have nothing to act on",
    "live_sessions": "no live items: live strategies, models and audits have nothing to act on",
    "outcomes": (
        "no trust signals: complaint, return and rating features are missing and monitoring "
        "has no trust metrics"
    ),
}
#: Tables whose references are checked before the tables that point at them.
_ORDER = tuple(TABLES)
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


class MappingError(ValueError):
    """The mapping file, or a file it names, cannot be used (one line says which and why)."""


@dataclass(frozen=True)
class TableMapping:
    """Where one contract table comes from."""

    table: str
    file: Path
    columns: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    timezone: str = "UTC"


@dataclass
class TableImport:
    """What happened to one table."""

    table: str
    rows_read: int
    imported: pd.DataFrame
    quarantined: pd.DataFrame
    note: str = ""

    @property
    def rows_imported(self) -> int:
        """Rows written to the contract table."""
        return len(self.imported)


def read_mapping(path: Path | str) -> list[TableMapping]:
    """The table mappings of a mapping file; MappingError names what is wrong."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise MappingError(f"cannot read the mapping file {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise MappingError(f"{path} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tables"), dict):
        raise MappingError(f"{path}: expected a mapping with a `tables:` section")
    default_zone = _zone(str(doc.get("timezone", "UTC")), path)
    out = []
    for name, entry in doc["tables"].items():
        if name not in TABLES:
            raise MappingError(f"{path}: unknown contract table {name!r}; known: {list(TABLES)}")
        if not isinstance(entry, dict) or "file" not in entry:
            raise MappingError(f"{path}: table {name!r} needs `file:`")
        spec = TABLES[name]
        columns = {str(k): str(v) for k, v in (entry.get("columns") or {}).items()}
        unknown = sorted(set(columns) - set(spec.column_names))
        if unknown:
            raise MappingError(f"{path}: {name} has no column(s) {unknown}")
        out.append(
            TableMapping(
                table=name,
                file=(path.parent / str(entry["file"])).resolve(),
                columns=columns,
                values={str(k): dict(v) for k, v in (entry.get("values") or {}).items()},
                timezone=_zone(str(entry.get("timezone", default_zone)), path),
            )
        )
    return out


def _zone(name: str, path: Path) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise MappingError(f"{path}: unknown time zone {name!r} (use an IANA name)") from None
    return name


def import_tables(mappings: list[TableMapping]) -> dict[str, TableImport]:
    """Every contract table converted from its export (optional ones missing: empty)."""
    by_table = {m.table: m for m in mappings}
    missing = [t for t in TABLES if t not in by_table and t not in OPTIONAL_TABLES]
    if missing:
        raise MappingError(
            f"the mapping has no entry for required table(s) {missing}; optional ones are "
            f"{list(OPTIONAL_TABLES)}"
        )
    results: dict[str, TableImport] = {}
    for name in _ORDER:
        spec = TABLES[name]
        if name not in by_table:
            empty = typed_frame(spec, pd.DataFrame(columns=spec.column_names))
            results[name] = TableImport(name, 0, empty, _quarantine_frame(), OPTIONAL_TABLES[name])
            continue
        raw = _read_export(by_table[name].file)
        results[name] = _import_table(spec, raw, by_table[name], results)
    return results


def write_import(results: Mapping[str, TableImport], out_dir: Path | str) -> list[Path]:
    """`out_dir/tables/<table>.parquet` (what `govrisk data validate` reads) and, for tables with
    refused rows, `out_dir/quarantine/<table>.parquet`; returns the paths written."""
    out = Path(out_dir)
    paths = []
    for name, result in results.items():
        path = out / "tables" / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        result.imported.to_parquet(path, index=False)
        paths.append(path)
        if len(result.quarantined):
            qpath = out / "quarantine" / f"{name}.parquet"
            qpath.parent.mkdir(parents=True, exist_ok=True)
            result.quarantined.to_parquet(qpath, index=False)
            paths.append(qpath)
    return paths


def _read_export(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise MappingError(f"export file not found: {path}")
    try:
        if path.suffix.lower() in {".parquet", ".pq"}:
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except Exception as err:  # noqa: BLE001 - any reader failure is one line naming the file
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise MappingError(f"cannot read {path}: {first}") from None


def _import_table(
    spec: TableSpec,
    raw: pd.DataFrame,
    mapping: TableMapping,
    done: Mapping[str, TableImport],
) -> TableImport:
    source = {c: mapping.columns.get(c, c) for c in spec.column_names}
    absent = [
        f"{c} (looked for {s!r})"
        for c, s in source.items()
        if s not in raw.columns and not spec.column(c).nullable
    ]
    if absent:
        raise MappingError(
            f"{mapping.file.name}: no export column for {spec.name} column(s) "
            f"{', '.join(absent)}; "
            "name them under `columns:` in the mapping"
        )
    raw = raw.reset_index(drop=True)
    reasons: list[list[str]] = [[] for _ in range(len(raw))]
    converted = {}
    for col in spec.columns:
        values = raw[source[col.name]] if source[col.name] in raw.columns else None
        converted[col.name] = _convert(col, values, len(raw), mapping, reasons)
    frame = pd.DataFrame(converted)
    _check_key(spec, frame, reasons)
    _check_references(spec, frame, done, reasons)
    bad = np.array([bool(r) for r in reasons], dtype=bool)
    kept = typed_frame(spec, frame.loc[~bad])
    quarantined = _quarantine_frame(raw.loc[bad], [reasons[i] for i in np.flatnonzero(bad)])
    return TableImport(spec.name, len(raw), kept, quarantined)


def _convert(
    col: ColumnSpec,
    values: pd.Series | None,
    n: int,
    mapping: TableMapping,
    reasons: list[list[str]],
) -> pd.Series:
    """One column converted to its declared kind; rows that fail get a reason."""
    if values is None:
        return pd.Series([None] * n, dtype=object)
    present = values.notna() & values.astype(str).str.strip().ne("")
    text = values.where(present, None)
    if col.name in mapping.values:
        text = text.map(lambda v: mapping.values[col.name].get(v, v) if v is not None else None)
    if col.kind == "string":
        out = text.map(lambda v: None if v is None else str(v).strip())
    elif col.kind in ("int", "float"):
        out = pd.to_numeric(text, errors="coerce")
        _flag(reasons, present & out.isna(), f"{col.name}: not a number")
        if col.kind == "int":
            fractional = out.notna() & (out % 1 != 0)
            _flag(reasons, fractional, f"{col.name}: not a whole number")
    elif col.kind == "bool":
        lowered = text.map(lambda v: None if v is None else str(v).strip().lower())
        out = lowered.map(lambda v: True if v in _TRUE else False if v in _FALSE else None)
        _flag(reasons, present & out.isna(), f"{col.name}: not true/false")
    else:
        out = _to_utc(text, mapping.timezone)
        _flag(reasons, present & out.isna(), f"{col.name}: not a date and time")
        if col.kind == "date":
            out = out.dt.normalize()
    _check_declared(col, out, present, reasons)
    return out


def _to_utc(text: pd.Series, zone: str) -> pd.Series:
    """Each value as zone-naive UTC: values with an offset are converted, values without one
    are read in `zone`."""
    out: list[Any] = []
    for v in text:
        ts = pd.NaT if v is None else pd.to_datetime(str(v), errors="coerce")
        if ts is not pd.NaT and not pd.isna(ts):
            ts = ts.tz_localize(zone) if ts.tzinfo is None else ts
            ts = ts.tz_convert("UTC").tz_localize(None)
        out.append(ts)
    return pd.Series(out, dtype="datetime64[us]")


def _check_declared(
    col: ColumnSpec, out: pd.Series, present: pd.Series, reasons: list[list[str]]
) -> None:
    if not col.nullable:
        _flag(reasons, ~present, f"{col.name}: missing (the column is required)")
    if col.enum is not None:
        unknown = out.notna() & ~out.isin(col.enum)
        _flag(reasons, unknown, f"{col.name}: not one of {list(col.enum)}")
    numbers = pd.to_numeric(out, errors="coerce") if col.kind in ("int", "float") else None
    if numbers is not None and col.min_value is not None:
        _flag(reasons, numbers < col.min_value, f"{col.name}: below {col.min_value:g}")
    if numbers is not None and col.max_value is not None:
        _flag(reasons, numbers > col.max_value, f"{col.name}: above {col.max_value:g}")
    if col.max_length is not None and col.kind == "string":
        too_long = out.map(lambda v: v is not None and len(v) > (col.max_length or 0))
        _flag(reasons, too_long, f"{col.name}: longer than {col.max_length} characters")


def _check_key(spec: TableSpec, frame: pd.DataFrame, reasons: list[list[str]]) -> None:
    """Repeated keys: the first row is kept, the repeats quarantined."""
    key = list(spec.key)
    clean = np.array([not r for r in reasons], dtype=bool)
    repeated = frame[key].duplicated(keep="first") & clean
    # A repeat only counts against rows that are themselves importable.
    _flag(reasons, repeated, f"repeats the key ({', '.join(key)}) of an earlier row")


def _check_references(
    spec: TableSpec,
    frame: pd.DataFrame,
    done: Mapping[str, TableImport],
    reasons: list[list[str]],
) -> None:
    for column, target in spec.references.items():
        if target not in done:
            continue
        known = done[target].imported[TABLES[target].key[0]]
        dangling = frame[column].notna() & ~frame[column].isin(known)
        _flag(reasons, dangling, f"{column}: no {target} row with this id was imported")


def _flag(reasons: list[list[str]], mask: pd.Series | np.ndarray, reason: str) -> None:
    for i in np.flatnonzero(np.asarray(mask, dtype=bool)):
        reasons[i].append(reason)


def _quarantine_frame(
    rows: pd.DataFrame | None = None, reasons: list[list[str]] | None = None
) -> pd.DataFrame:
    """Refused rows: their position in the export (0-based), reasons and exported values."""
    if rows is None or not len(rows):
        return pd.DataFrame(
            {"export_row": pd.Series([], dtype="int64"), "reasons": [], "values": []}
        )
    records = rows.astype(object).where(rows.notna(), None).to_dict("records")
    return pd.DataFrame(
        {
            "export_row": rows.index.to_numpy(dtype=np.int64),
            "reasons": ["; ".join(r) for r in reasons or []],
            "values": [json.dumps(r, default=str) for r in records],
        }
    )
