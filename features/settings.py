"""Settings of the `features` package, read from `GOVRISK_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class FeaturesSettings(BaseSettings):
    """Configuration of `features`; every field can be set as `GOVRISK_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="GOVRISK_", extra="ignore")

    threads: int = 2
    #: DuckDB memory limit for feature builds (DuckDB size syntax, e.g. "4GB").
    duckdb_memory_limit: str = "4GB"
    #: Where DuckDB may spill; the system temporary directory when unset.
    duckdb_temp_directory: Path | None = None


@lru_cache(maxsize=1)
def get_settings() -> FeaturesSettings:
    """The cached settings object."""
    return FeaturesSettings()
