"""Reading and writing contract tables as Parquet, validating on the way in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd
import pyarrow as pa

from features.contract import ContractError, Problem, find_problems, find_reference_problems
from features.tables import TABLES


def table_path(data_dir: Path, name: str) -> Path:
    """Where table `name` lives inside a data directory."""
    return data_dir / "tables" / f"{name}.parquet"


class UnreadableTableError(ValueError):
    """A table file exists but is not readable Parquet (truncated, or another format)."""


class DataDirectoryNotFoundError(FileNotFoundError):
    """The data directory, or its `tables/` folder, does not exist."""

    def __init__(self, data_dir: Path) -> None:
        where = "does not exist" if not data_dir.exists() else "has no tables/ folder"
        super().__init__(
            f"data directory {data_dir} {where}; pass the directory `govrisk simulate` or "
            "`govrisk data import` wrote (it holds tables/*.parquet)"
        )


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UnreadableTableError(
            f"{path} is not a readable Parquet file ({str(exc).splitlines()[0]}); "
            "write the table again as Parquet"
        ) from None


def read_table(data_dir: Path, name: str) -> pd.DataFrame:
    """Read one table without validating it."""
    path = table_path(data_dir, name)
    if not path.exists():
        raise ContractError([Problem(name, None, f"table file not found at {path}", 0, ())])
    return _read_parquet(path)


def load_tables(
    data_dir: Path | str, names: Iterable[str] | None = None
) -> dict[str, pd.DataFrame]:
    """Load and validate contract tables from `data_dir/tables/*.parquet`.

    Every problem across every table is collected before raising one ContractError.
    """
    data_dir = Path(data_dir)
    wanted = list(names) if names is not None else list(TABLES)
    unknown = sorted(set(wanted) - set(TABLES))
    if unknown:
        raise KeyError(f"unknown contract table(s) {unknown}; known: {sorted(TABLES)}")
    if not (data_dir / "tables").is_dir():
        raise DataDirectoryNotFoundError(data_dir)
    tables: dict[str, pd.DataFrame] = {}
    problems: list[Problem] = []
    for name in wanted:
        path = table_path(data_dir, name)
        if not path.exists():
            problems.append(Problem(name, None, f"table file not found at {path}", 0, ()))
            continue
        df = _read_parquet(path)
        table_problems = find_problems(name, df)
        problems.extend(table_problems)
        if not table_problems:
            tables[name] = df
    if not problems:
        problems.extend(find_reference_problems(tables))
    if problems:
        raise ContractError(problems)
    return tables


def write_tables(data_dir: Path | str, tables: Mapping[str, pd.DataFrame]) -> list[Path]:
    """Validate and write tables as Parquet; returns the paths written."""
    data_dir = Path(data_dir)
    problems: list[Problem] = []
    for name, df in tables.items():
        problems.extend(find_problems(name, df))
    problems.extend(find_reference_problems(tables))
    if problems:
        raise ContractError(problems)
    paths = []
    for name, df in tables.items():
        path = table_path(data_dir, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        df[TABLES[name].column_names].to_parquet(path, index=False)
        paths.append(path)
    return paths
