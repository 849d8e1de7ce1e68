"""Settings of the `models` package, read from `GOVRISK_*` environment variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class ModelsSettings(BaseSettings):
    """Configuration of `models`; every field can be set as `GOVRISK_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="GOVRISK_", extra="ignore")

    threads: int = 2
    #: onnxruntime threads per scoring session (intra-op); None uses `threads`.
    onnx_intra_op_threads: int | None = None
    #: onnxruntime inter-op threads (the graph is a single operator, so 1 suffices).
    onnx_inter_op_threads: int = 1


@lru_cache(maxsize=1)
def get_settings() -> ModelsSettings:
    """The cached settings object."""
    return ModelsSettings()
