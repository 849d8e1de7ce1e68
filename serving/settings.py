"""Settings of the `serving` package, read from `GOVRISK_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ServingSettings(BaseSettings):
    """Configuration of `serving`; every field can be set as `GOVRISK_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="GOVRISK_", extra="ignore")

    # -- scoring (serving.batch, serving.scoring_api) --
    #: Model served by `govrisk serve` and used by `govrisk score` when --model is not given.
    model_uri: str | None = None
    #: Risk band name -> lowest calibrated probability in the band (a bundle's own bands win).
    risk_bands: dict[str, float] = {"low": 0.0, "medium": 0.3, "high": 0.7}
    #: Rows per chunk of `govrisk score`; bounds memory (about 1 kB per row with reasons).
    batch_chunk_rows: int = 100_000
    #: Seconds between checks of the served alias for a new champion version (0 disables).
    model_poll_seconds: float = 30.0
    #: Largest number of items in one POST /v1/score.
    max_items_per_request: int = 256
    #: Largest request body of any route (pages, review API, scoring), bytes.
    max_body_bytes: int = Field(default=1_000_000, gt=0)
    #: Longest time a client may take to send a request body, seconds (then 408).
    body_read_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Calls of at most this many items (given as model inputs) are scored on the event loop;
    #: larger ones in a worker thread. 0 sends every call to a worker thread.
    inline_max_items: int = 4
    #: Largest number of reasons a caller may ask for per item.
    max_reasons: int = 20
    #: Feature snapshot (`govrisk features build` OUT or OUT/snapshot) for raw-field requests.
    snapshot_dir: Path | None = None
    #: Bearer tokens `POST /v1/score` and `GET /v1/model` accept (comma-separated in the
    #: environment). Empty (the default): scoring answers anyone, as inside a private network.
    scoring_tokens: Annotated[list[str], NoDecode] = []

    @field_validator("scoring_tokens", mode="before")
    @classmethod
    def _split_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return [t.strip() for t in value.split(",") if t.strip()]
        return value

    @field_validator("scoring_tokens")
    @classmethod
    def _long_tokens(cls, value: list[str]) -> list[str]:
        short = [t for t in value if len(t) < 16]
        if short:
            raise ValueError(
                f"{len(short)} scoring token(s) shorter than 16 characters; "
                "use random ones (Python: secrets.token_urlsafe())"
            )
        return value


@lru_cache(maxsize=1)
def get_settings() -> ServingSettings:
    """The cached settings object."""
    return ServingSettings()
