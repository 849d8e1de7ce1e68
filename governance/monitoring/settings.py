"""Settings of monitoring, read from `GOVRISK_MONITOR_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class MonitorSettings(BaseSettings):
    """Configuration of `governance.monitoring`; each field is `GOVRISK_MONITOR_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="GOVRISK_MONITOR_", extra="ignore")

    objectives_path: Path | None = Field(
        None, description="YAML of channel objectives (default: the packaged objectives.yaml)."
    )
    mature_completeness: float = Field(
        0.9, gt=0, le=1, description="A period is mature once this share of outcomes arrived."
    )
    min_completeness: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Days with fewer expected outcomes arrived are left out of burn rates.",
    )
    delay_reference_days: int = Field(
        21, ge=1, description="Delays are measured on sales at least this old (uncensored)."
    )
    reference_weeks: int = Field(
        2, ge=1, description="First weeks of the period that are the drift reference."
    )
    prediction_warmup_days: int = Field(
        28,
        ge=0,
        description="Prediction drift's reference weeks start this many days after the first "
        "day of data: before, the windowed features models read (30-day counts) are cut short "
        "by the data's start, so early items score differently.",
    )
    psi_medium: float = Field(0.1, gt=0, description="PSI of a moderate shift (low alert).")
    psi_high: float = Field(0.25, gt=0, description="PSI of a major shift (medium alert).")
    min_drift_items: int = Field(100, ge=1, description="Items a week needs for a PSI.")
    decay_baseline_days: int = Field(14, ge=2, description="Baseline window of hit rates.")
    decay_recent_days: int = Field(5, ge=1, description="Recent window compared with it.")
    decay_ratio: float = Field(
        0.4, gt=0, lt=1, description="Hit rate below this share of its baseline is decay."
    )
    surge_ratio: float = Field(3.0, gt=1, description="Hit rate above this multiple is a surge.")
    family_alpha: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="False-alarm rate per day across all strategy x channel tests (Bonferroni).",
    )
    min_baseline_hits: int = Field(10, ge=1, description="Hits a baseline needs to be tested.")
    overturn_horizon_days: int = Field(
        5, ge=1, description="Overturns count within this many days of the decision."
    )
    overturn_rise_ratio: float = Field(
        2.0, gt=1, description="Overturn rate above this multiple of its baseline can alert."
    )
    cusum_threshold: float = Field(
        4.0, gt=0, description="Log-likelihood ratio at which the sequential category test fires."
    )
    watch_threshold: float = Field(
        2.5,
        gt=0,
        description="Log-likelihood ratio at which the sequential test fires on a watched "
        "category (declared in the objectives file, or launched recently).",
    )
    launch_watch_days: int = Field(
        28, ge=0, description="A category is watched this many days from its first listing."
    )
    cusum_shift_ratio: float = Field(
        3.0, gt=1, description="Rise of a category's rate the sequential test looks for."
    )
    precision_threshold: float = Field(
        0.5, gt=0, lt=1, description="Model operating point of the label-free precision."
    )
    confidence: float = Field(
        0.95, gt=0, lt=1, description="Level of the violative view rate intervals."
    )


@lru_cache(maxsize=1)
def get_settings() -> MonitorSettings:
    """The cached settings object."""
    return MonitorSettings()
