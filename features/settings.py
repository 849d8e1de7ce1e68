"""Settings of the `features` package, read from `GOVRISK_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FeaturesSettings(BaseSettings):
    """Configuration of `features`; every field can be set as `GOVRISK_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="GOVRISK_", extra="ignore")

    #: The one thread count of every package (GOVRISK_THREADS): DuckDB feature builds,
    #: LightGBM training, SHAP, batch-scoring workers and the audit's model loading.
    threads: int = Field(2, ge=1)
    #: DuckDB memory limit for feature builds (DuckDB size syntax, e.g. "4GB").
    duckdb_memory_limit: str = "4GB"
    #: Where DuckDB may spill; the system temporary directory when unset.
    duckdb_temp_directory: Path | None = None


@lru_cache(maxsize=1)
def get_settings() -> FeaturesSettings:
    """The cached settings object."""
    return FeaturesSettings()


def thread_count() -> int:
    """The thread count every package uses (GOVRISK_THREADS)."""
    return get_settings().threads
