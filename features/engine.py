"""The DuckDB engine feature builds run SQL on: configured threads, memory and spill folder."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from features.settings import get_settings


def connect(*, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with threads, memory limit and spill folder set."""
    settings = get_settings()
    n_threads = threads if threads is not None else settings.threads
    if n_threads < 1:
        raise ValueError(f"threads must be >= 1, got {n_threads}")
    temp_dir = settings.duckdb_temp_directory or Path(tempfile.gettempdir()) / "govrisk-duckdb"
    con = duckdb.connect(":memory:")
    con.execute(f"SET threads = {int(n_threads)}")
    con.execute("SET memory_limit = ?", [settings.duckdb_memory_limit])
    con.execute("SET temp_directory = ?", [str(temp_dir)])
    con.execute("SET preserve_insertion_order = false")
    return con


def timestamp_literal(value: datetime | np.datetime64) -> str:
    """A DuckDB TIMESTAMP literal for a naive UTC instant (microsecond precision)."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return f"TIMESTAMP '{ts.strftime('%Y-%m-%d %H:%M:%S.%f')}'"
