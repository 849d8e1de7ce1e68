"""Settings of the `models` package, read from `GOVRISK_*` environment variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class ModelsSettings(BaseSettings):
    """Configuration of `models`; every field can be set as `GOVRISK_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="GOVRISK_", extra="ignore")

    #: onnxruntime threads per scoring session (intra-op). With 1 each row's trees are summed
    #: in order, so scores are bit-identical to LightGBM and across batch sizes and engines;
    #: more threads may split a row's trees and change the last bits.
    onnx_intra_op_threads: int = 1
    #: onnxruntime inter-op threads (the graph is a single operator, so 1 suffices).
    onnx_inter_op_threads: int = 1


@lru_cache(maxsize=1)
def get_settings() -> ModelsSettings:
    """The cached settings object."""
    return ModelsSettings()
