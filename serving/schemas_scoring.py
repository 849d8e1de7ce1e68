"""Request and response schemas of the scoring API (`POST /v1/score`)."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

from serving.limits import FeatureInt

#: A finite number: NaN and ±Infinity (which Python's JSON parser accepts) are refused.
FiniteFloat = Annotated[float, Field(allow_inf_nan=False, strict=True)]
#: One model input value: a number, a boolean, a category (text), or null for missing.
FeatureValue = StrictBool | Annotated[FeatureInt, Strict()] | FiniteFloat | StrictStr | None


def _whole_number(value: Any) -> Any:
    """2.0 is the integer 2 in JSON (JSON Schema agrees); 2.5, true and "2" stay invalid."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


class ScoreItem(BaseModel):
    """One item to score: model input `features`, or raw item `fields` to build them from."""

    model_config = ConfigDict(extra="forbid")

    item_id: Annotated[StrictStr, Field(min_length=1, max_length=200)]
    features: dict[str, FeatureValue] | None = Field(
        default=None,
        description="Model inputs by name (see GET /v1/model); null means missing.",
        examples=[{"listing_category": "bags", "listing_price": 19.9}],
    )
    fields: dict[str, Any] | None = Field(
        default=None,
        description="Raw item fields; features are built from them by the same code as batch.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.features is None) == (self.fields is None):
            raise ValueError("give exactly one of `features` (model inputs) or `fields` (raw item)")
        return self


class ScoreRequest(BaseModel):
    """Items to score in one call, and how many reasons to return per item."""

    model_config = ConfigDict(extra="forbid")

    items: list[ScoreItem] = Field(min_length=1)
    explain: Annotated[StrictInt, BeforeValidator(_whole_number)] = Field(
        default=5, ge=0, description="Reasons per item (0 skips explanations)."
    )


class SpanPublic(BaseModel):
    """Where a phrase occurs: a raw text field and character offsets [start, end)."""

    field: str
    start: int
    end: int


class PhrasePublic(BaseModel):
    """A phrase of the item's text and its exact contribution to a text model's log-odds."""

    text: str = Field(description="The phrase as written (first occurrence).")
    contribution: float = Field(
        description="Log-odds of the text model (not of the risk model); positive raises it."
    )
    field: str = Field(description="Raw text field of the first occurrence ('' if none).")
    spans: list[SpanPublic] = Field(description="Every occurrence, for highlighting.")


class ReasonPublic(BaseModel):
    """One reason: a feature, its value, and its signed contribution to the raw score."""

    feature: str
    description: str
    value: str | float | None
    contribution: float = Field(description="SHAP value in log-odds; positive raises the risk.")
    phrases: list[PhrasePublic] = Field(
        default_factory=list,
        description="For a text score feature: the phrases its text model weighed most.",
    )


class ScoredItem(BaseModel):
    """The score of one item."""

    item_id: str
    raw_score: float = Field(description="Model margin (log-odds) before calibration.")
    probability: float = Field(description="Calibrated probability of a policy violation.")
    risk_band: str
    reasons: list[ReasonPublic]
    warnings: list[str] = Field(
        default_factory=list,
        description="What was adjusted to score the item (e.g. a computed value raised to its "
        "domain because the item is newer than the feature snapshot).",
    )


class ModelPublic(BaseModel):
    """Which model answered."""

    uri: str
    name: str | None
    version: str | None
    fingerprint: str
    run_id: str | None
    entity: str | None
    policy: str | None


class SnapshotPublic(BaseModel):
    """The feature snapshot raw `fields` were joined with: its cutoff and how old it is."""

    as_of: str = Field(description="Cutoff of the snapshot (UTC, ISO 8601).")
    age_days: float = Field(
        description="Days from the cutoff to now; ages and tenures are measured to the cutoff."
    )


class ScoreResponse(BaseModel):
    """Scores of every requested item, in request order."""

    model: ModelPublic
    items: list[ScoredItem]
    snapshot: SnapshotPublic | None = Field(
        default=None, description="Set when some items were given as raw `fields`."
    )


class ModelDetail(ModelPublic):
    """The served model and its inputs."""

    features: dict[str, str] = Field(description="Model input name -> description, in order.")
    categorical: dict[str, list[str]] = Field(description="Known categories per feature.")
    nullable: list[str]
    risk_bands: dict[str, float]
    loaded_at: str


class ReadyPublic(BaseModel):
    """Readiness of the scoring service."""

    ready: bool
    model: ModelPublic | None = None
    detail: str | None = None
