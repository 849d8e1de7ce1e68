"""Settings of the strategy audit, read from `GOVRISK_AUDIT_*` environment variables."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: What a sampling design's frame is: every unit, only units some strategy of the label's
#: policy actioned, or not a probability design at all (labels kept for ranking, not estimates).
DesignFrame = Literal["population", "actioned", "exclude"]


def _default_design_frames() -> dict[str, DesignFrame]:
    return {
        "random": "population",
        "model_ranked": "population",
        "strategy_flagged": "actioned",
        "appeal": "exclude",
        "ranked_list": "exclude",
    }


#: SliceLine's weight of error against size, when slices are scored that way (default of the
#: `slice_alpha` setting and of the slice finder).
SLICE_ALPHA = 0.98


class AuditSettings(BaseSettings):
    """Configuration of `governance.audit`; every field can be set as `GOVRISK_AUDIT_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="GOVRISK_AUDIT_", extra="ignore")

    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Interval confidence level.")
    flip_rate: float = Field(
        0.04, ge=0.0, le=0.45, description="Reviewer verdict flip rate when not estimable."
    )
    estimate_flip_rate: bool = Field(
        True, description="Estimate the flip rate from double-reviewed items when there are any."
    )
    min_flip_pairs: int = Field(
        30, ge=1, description="Double-review pairs needed before the estimated flip rate is used."
    )
    calibration: Literal["refit", "denoise", "none"] = Field(
        "refit",
        description="refit: recalibrate model probabilities on the sampled verdicts (noise "
        "aware); denoise: treat them as P(verdict); none: as P(violating).",
    )
    estimate_calibration: Literal["refit", "denoise", "none"] = Field(
        "denoise",
        description="Calibration of the model probabilities behind the strategy metrics and "
        "the audit slice (`calibration` is for the ranked lists): the composite estimates "
        "recalibrate the model per stratum across populations themselves.",
    )
    composite_estimates: bool = Field(
        False,
        description="Combine the corrections among units no strategy actioned with the model "
        "under a model-bias variance fitted across populations (empirical Bayes): smaller "
        "recall errors, but its intervals under-cover when the model's bias differs between "
        "populations (0.78 for recall on simulated worlds); False: design-based corrections "
        "everywhere.",
    )
    use_oof: bool = Field(
        True, description="Use out-of-fold predictions at labeled items (cross-fitting)."
    )
    design_frames: dict[str, DesignFrame] = Field(
        default_factory=_default_design_frames,
        description="Frame each audit_labels.sampling design draws from.",
    )
    severity: dict[str, float] = Field(
        default_factory=lambda: {
            "prohibited_item": 5.0,
            "counterfeit": 3.0,
            "misleading_claim": 3.0,
            "engagement_fraud": 2.0,
            "fake_discount": 1.5,
            "low_quality": 1.0,
        },
        description="Policy severity multiplying expected impact in ranked flags.",
    )
    flag_list_size: int = Field(500, ge=1, description="Rows per ranked flag list.")
    fp_min_probability: float = Field(
        0.95, ge=0, le=1, description="P(honest) from which an actioned item is a likely FP."
    )
    fp_min_precision: float = Field(
        0.98,
        ge=0,
        le=1,
        description="Expected precision (mean P(honest)) every prefix of the likely-FP list keeps: "
        "reinstating a rightly actioned item is costly, so the list as a whole stays near-certain.",
    )
    fn_min_precision: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Expected precision every prefix of the likely-FN list keeps (it is filled "
        "by expected violating exposure; a much-seen, less certain item may follow sure ones).",
    )
    slice_exclude_prefixes: tuple[str, ...] = Field(
        ("strategy_",),
        description="Features left out of slice search (strategy-derived ones restate the "
        "action itself).",
    )
    audit_sample_size: int = Field(
        300, ge=0, description="Expected size of the importance-sampled audit slice."
    )
    audit_sample_floor: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Every unit's inclusion probability is at least this share of the uniform one.",
    )
    watch_boost: float = Field(
        3.0,
        ge=1.0,
        description="The audit slice samples items of watched categories (the monitoring "
        "watch list and recent launches) this many times as much, so their labels come sooner.",
    )
    pinned_max_width: float = Field(
        0.2,
        gt=0,
        le=1,
        description="Widest interval (high - low) a precision or recall may have to count as "
        "pinned by its labels; the report and the review dashboard flag wider ones with the "
        "labels they would need.",
    )
    precision_target: float = Field(0.015, gt=0, description="Target abs. error of precision.")
    recall_target: float = Field(0.03, gt=0, description="Target abs. error of recall.")
    fp_cost: float = Field(1.0, ge=0, description="Cost of one wrongly actioned honest item.")
    fn_cost: float = Field(
        2.0, ge=0, description="Cost of one violating item a strategy leaves unactioned."
    )
    impression_cost: float = Field(
        0.0, ge=0, description="Extra cost per impression of error exposure (both kinds)."
    )
    min_material_errors: float = Field(
        5.0, ge=0, description="A strategy gets suggestions when estimated FP or FN exceeds this."
    )
    max_suggestions_per_strategy: int = Field(5, ge=1)
    slice_max_level: int = Field(3, ge=1, le=4, description="Most predicates in one slice.")
    slice_exclude_patterns: tuple[str, ...] = Field(
        ("*_text_hash_*",),
        description="Glob patterns of features left out of slice search: ones a person cannot "
        "read as a segment (dense text projections).",
    )
    slice_min_support: int = Field(20, ge=1, description="Fewest rows in a reported slice.")
    slice_score: Literal["likelihood", "sliceline"] = Field(
        "likelihood",
        description="Slice ranking: error-rate log-likelihood ratio (size and lift together) "
        "or SliceLine's score.",
    )
    slice_alpha: float = Field(
        SLICE_ALPHA,
        gt=0,
        le=1,
        description="SliceLine error vs size weight (slice_score=sliceline).",
    )
    slice_top_k: int = Field(10, ge=1, description="Slices kept per strategy and error kind.")
    slice_bins: int = Field(
        5,
        ge=2,
        le=20,
        description="Most bins of a numeric feature (error-aware cuts, else quantiles).",
    )
    slice_min_z: float = Field(
        4.0, gt=0, description="z statistic an error-aware bin cut needs (else quantile bins)."
    )
    slice_max_overlap: float = Field(
        0.6, gt=0, le=1, description="Jaccard row overlap from which two slices are one finding."
    )
    cohort_age_features: dict[str, str] = Field(
        default_factory=lambda: {
            "listing": "listing_age_days",
            "video": "video_age_days",
            "live": "live_age_days",
        },
        description=(
            "Per entity, the feature holding an item's age in days: false-negative slices then "
            "start with the cohort checks (strategy hits decayed on recent items, new segments "
            "no strategy acts on). An empty mapping turns them off."
        ),
    )
    seed: int = 0
    history_every_days: int = Field(
        7, ge=0, description="Frame snapshots for projecting suggestions (0: final frame only)."
    )
    mlflow_experiment: str = Field("govrisk-audit", description="MLflow experiment of audit runs.")


@lru_cache(maxsize=1)
def get_settings() -> AuditSettings:
    """The cached settings object."""
    return AuditSettings()
