"""Settings of the `experiments` package, read from `GOVRISK_*` environment variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class ExperimentsSettings(BaseSettings):
    """Configuration of `experiments`; every field can be set as `GOVRISK_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="GOVRISK_", extra="ignore")

    threads: int = 2


@lru_cache(maxsize=1)
def get_settings() -> ExperimentsSettings:
    """The cached settings object."""
    return ExperimentsSettings()
