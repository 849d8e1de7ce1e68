"""Settings of the `governance` package, read from `GOVRISK_*` environment variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class GovernanceSettings(BaseSettings):
    """Configuration of `governance`; every field can be set as `GOVRISK_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="GOVRISK_", extra="ignore")

    threads: int = 2


@lru_cache(maxsize=1)
def get_settings() -> GovernanceSettings:
    """The cached settings object."""
    return GovernanceSettings()
