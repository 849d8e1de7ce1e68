"""Settings of the `features` package, read from `GOVRISK_*` environment variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class FeaturesSettings(BaseSettings):
    """Configuration of `features`; every field can be set as `GOVRISK_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="GOVRISK_", extra="ignore")

    threads: int = 2


@lru_cache(maxsize=1)
def get_settings() -> FeaturesSettings:
    """The cached settings object."""
    return FeaturesSettings()
