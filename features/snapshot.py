"""The feature snapshot: per-entity aggregate tables a build writes and online lookups read.

A snapshot holds, as of one cutoff, every table an item's features are looked up in (seller,
creator, category, image-hash and per-item activity aggregates, the listing frame for linked
listings). Batch joins these tables in DuckDB; online takes the same rows by key with `Lookup`.
Both then call the same pure functions, so one item gets the same features either way.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.columns import Columns, arrow_column, missing_like, to_datetime64

_KEY_SEPARATOR = "\x1f"
_SMALL = 32
META_FILE = "snapshot.json"


@dataclass(frozen=True)
class LookupJoin:
    """Join a snapshot table into an item's context: `on` names the context columns holding
    the key (in the table's key order); the table's other columns arrive as `prefix.column`."""

    table: str
    prefix: str
    on: tuple[str, ...]


@dataclass(frozen=True)
class TableInfo:
    """How a snapshot table is keyed and which columns mean 0 when the key is absent."""

    key: tuple[str, ...]
    zero_fill: frozenset[str] = frozenset()


def context_name(prefix: str, column: str) -> str:
    """The context column a looked-up value arrives in."""
    return f"{prefix}.{column}"


def _composite(parts: Sequence[np.ndarray]) -> np.ndarray:
    if len(parts) == 1:
        return parts[0] if parts[0].dtype == object else parts[0].astype(object)
    out = np.empty(len(parts[0]), dtype=object)
    for i, values in enumerate(zip(*parts, strict=True)):
        out[i] = None if any(v is None for v in values) else _KEY_SEPARATOR.join(values)
    return out


class Lookup:
    """Rows of one snapshot table addressed by key, for a few keys at a time."""

    def __init__(self, table: pa.Table, info: TableInfo) -> None:
        self.info = info
        self._table = table
        self._columns: Columns | None = None
        self._index: pd.Index | None = None
        self._names: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def _key_index(self) -> pd.Index:
        with self._lock:
            if self._index is None:
                key_parts = [arrow_column(self._table.column(k)) for k in self.info.key]
                self._index = pd.Index(_composite(key_parts), dtype=object)
            return self._index

    def positions(self, keys: Sequence[np.ndarray]) -> np.ndarray:
        """Row of each key (-1 where absent or where any key part is missing)."""
        index = self._key_index()
        composite = _composite(keys)
        if len(composite) > _SMALL:
            return np.asarray(index.get_indexer(pd.Index(composite)), dtype=np.int64)
        out = np.full(len(composite), -1, dtype=np.int64)
        for i, key in enumerate(composite):
            if key is None:
                continue
            try:
                loc = index.get_loc(key)
            except KeyError:
                continue
            if isinstance(loc, int | np.integer):
                out[i] = int(loc)
        return out

    def take(self, keys: Sequence[np.ndarray], prefix: str) -> Columns:
        """The looked-up columns for `keys`, named `prefix.column` (see `take_positions`)."""
        return self.take_positions(self.positions(keys), prefix)

    def take_positions(self, pos: np.ndarray, prefix: str) -> Columns:
        """The rows at `pos` (-1 = no row), named `prefix.column`.

        Where there is no row, zero-filled columns read 0 and the others are missing.
        """
        columns = self.columns()
        names = self._names.get(prefix)
        if names is None:
            names = self._names[prefix] = {c: context_name(prefix, c) for c in columns}
        found = pos >= 0
        out: Columns = {}
        if found.all():
            for name, values in columns.items():
                out[names[name]] = values[pos]
            return out
        for name, values in columns.items():
            taken = missing_like(values, len(pos))
            if name in self.info.zero_fill:
                taken[:] = 0.0
            taken[found] = values[pos[found]]
            out[names[name]] = taken
        return out

    def columns(self) -> Columns:
        """The table's non-key columns as a bundle (converted once)."""
        with self._lock:
            if self._columns is None:
                self._columns = {
                    name: arrow_column(self._table.column(name))
                    for name in self._table.column_names
                    if name not in self.info.key
                }
            return self._columns


def sorted_category_prices(table: pa.Table) -> dict[str, np.ndarray]:
    """Category -> ascending prices, from a (category, price) table."""
    categories = arrow_column(table.column("category"))
    prices = arrow_column(table.column("price"))
    codes, uniques = pd.factorize(categories)
    order = np.lexsort((prices, codes))
    codes, prices = codes[order], prices[order]
    bounds = np.searchsorted(codes, np.arange(len(uniques) + 1))
    return {str(cat): prices[bounds[i] : bounds[i + 1]] for i, cat in enumerate(uniques)}


class FeatureSnapshot:
    """Aggregate tables as of one cutoff, with lazily built lookups."""

    def __init__(
        self,
        *,
        as_of: datetime | np.datetime64,
        tables: Mapping[str, pa.Table],
        infos: Mapping[str, TableInfo],
        versions: Mapping[str, int],
        directory: Path | None = None,
    ) -> None:
        self.as_of = to_datetime64(as_of)
        self.infos = dict(infos)
        self.versions = dict(versions)
        self._tables = dict(tables)
        self._directory = directory
        self._lookups: dict[str, Lookup] = {}
        self._prices: dict[str, np.ndarray] | None = None
        self._lock = threading.Lock()

    @property
    def table_names(self) -> list[str]:
        """Names of the tables this snapshot holds."""
        return list(self.infos)

    def table(self, name: str) -> pa.Table:
        """One snapshot table (read from disk on first use when loaded from a directory)."""
        if name not in self.infos:
            raise KeyError(f"snapshot has no table {name!r}; it has {sorted(self.infos)}")
        with self._lock:
            if name not in self._tables:
                assert self._directory is not None
                self._tables[name] = pq.read_table(self._directory / f"{name}.parquet")
            return self._tables[name]

    def lookup(self, name: str) -> Lookup:
        """The lookup over table `name` (built once)."""
        lookup = self._lookups.get(name)
        if lookup is None:
            table = self.table(name)
            with self._lock:
                lookup = self._lookups.setdefault(name, Lookup(table, self.infos[name]))
        return lookup

    def category_prices(self) -> dict[str, np.ndarray]:
        """Sorted prices of each category's listings (for price percentiles)."""
        if self._prices is None:
            self._prices = sorted_category_prices(self.table("category_prices"))
        return self._prices

    def write(self, directory: Path) -> list[Path]:
        """Write every table as Parquet plus `snapshot.json`; returns the paths written."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for name in self.infos:
            path = directory / f"{name}.parquet"
            pq.write_table(self.table(name), path)
            paths.append(path)
        meta = {
            "as_of": str(self.as_of),
            "versions": self.versions,
            "tables": {
                name: {"key": list(info.key), "zero_fill": sorted(info.zero_fill)}
                for name, info in self.infos.items()
            },
        }
        meta_path = directory / META_FILE
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        paths.append(meta_path)
        return paths

    @classmethod
    def load(cls, directory: Path | str) -> FeatureSnapshot:
        """Open a snapshot written by `write`; tables are read when first used."""
        directory = Path(directory)
        meta_path = directory / META_FILE
        if not meta_path.exists():
            raise FileNotFoundError(
                f"no feature snapshot at {directory} ({META_FILE} missing); "
                "run `govrisk features build` first"
            )
        meta = json.loads(meta_path.read_text())
        infos = {
            name: TableInfo(key=tuple(t["key"]), zero_fill=frozenset(t["zero_fill"]))
            for name, t in meta["tables"].items()
        }
        return cls(
            as_of=np.datetime64(meta["as_of"], "us"),
            tables={},
            infos=infos,
            versions=meta["versions"],
            directory=directory,
        )
