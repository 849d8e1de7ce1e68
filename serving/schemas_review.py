"""Request and response schemas of the review API, in families (VerdictCreate / VerdictPublic)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from features.vocabulary import Channel, Entity, Policy, StrategyStatus, Verdict
from governance.audit.tables import ITEM_ID_MAX_LENGTH
from governance.audit.vocabulary import SuggestionKind
from governance.review.vocabulary import (
    Confidence,
    EscalationKind,
    EscalationPriority,
    EscalationState,
    ItemKind,
    QueueStatus,
    Role,
    SuggestionStatus,
    TokenState,
)
from serving.limits import Count, FiniteFloat, RowId

_ORM = ConfigDict(from_attributes=True)


def _as_utc(value: datetime) -> datetime:
    # Stored timestamps are naive UTC (governance.review.vocabulary.utcnow); say so on the way out.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: A timestamp in a response: always timezone-aware UTC (RFC 3339 with "+00:00" or "Z").
UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]


# -- users and tokens ------------------------------------------------------------------------


class UserCreate(BaseModel):
    """A new user (admins only)."""

    username: str = Field(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]+$")
    role: Role
    password: str = Field(min_length=10, max_length=256)
    display_name: str = Field(default="", max_length=128)
    team: str | None = Field(default=None, description="Name of an existing team.")


class UserPublic(BaseModel):
    """A user as others may see them."""

    model_config = _ORM

    id: int
    username: str
    display_name: str
    role: Role
    team: str | None
    is_active: bool


class TokenCreate(BaseModel):
    """Exchange a username and password for an API token."""

    username: str
    password: str
    name: str = Field(default="api", max_length=64)
    ttl_days: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="Lifetime in days; default GOVRISK_TOKEN_TTL_DAYS (30). At most "
        "GOVRISK_TOKEN_MAX_TTL_DAYS (90), for admins GOVRISK_TOKEN_ADMIN_MAX_TTL_DAYS (365).",
    )


class TokenIssued(BaseModel):
    """A new API token; the secret is shown only in this response."""

    token: str
    token_prefix: str
    name: str
    expires_at: UtcDateTime
    user: UserPublic


class TokenPublic(BaseModel):
    """An API token as its owner and admins see it (never the secret)."""

    id: int
    name: str
    token_prefix: str
    username: str
    created_at: UtcDateTime
    expires_at: UtcDateTime | None
    revoked_at: UtcDateTime | None
    state: TokenState


# -- queue and verdicts ---------------------------------------------------------------------


class FlagReasonPublic(BaseModel):
    """One SHAP reason behind a flag."""

    feature: str
    description: str = ""
    value: Any = None
    contribution: float | None = None


class QueueItemPublic(BaseModel):
    """A queue item with what the audit knew about it."""

    id: int
    entity: Entity
    item_id: str
    policy: Policy
    channel: Channel | None
    kind: ItemKind
    priority: float
    p_error: float
    inclusion_probability: float
    strategies: list[str]
    reasons: list[FlagReasonPublic]
    exposure: dict[str, Any]
    team: str | None
    status: QueueStatus
    leased_by: str | None
    lease_expires_at: UtcDateTime | None
    created_at: UtcDateTime
    judged_at: UtcDateTime | None


class ClaimPublic(BaseModel):
    """A leased item: judge it before `expires_at` or it goes back to the queue."""

    lease_id: int
    expires_at: UtcDateTime
    resumed: bool
    item: QueueItemPublic


class QueueStatsPublic(BaseModel):
    """Counts of the items the caller may see."""

    total: int
    open: int
    leased: int
    available: int
    escalated: int
    judged: int


class VerdictCreate(BaseModel):
    """A verdict on an item the caller holds; resend with the same `client_key` safely."""

    verdict: Verdict
    client_key: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="Idempotency key chosen by the client, e.g. a UUID; one verdict per key.",
    )
    confidence: Confidence = Confidence.HIGH
    policy: Policy | None = Field(
        default=None, description="The policy judged; must be the item's policy when given."
    )
    note: str = Field(default="", max_length=4000)


class VerdictPublic(BaseModel):
    """A recorded verdict."""

    id: int
    label_id: str
    queue_item_id: int
    verdict: Verdict
    policy: Policy
    confidence: Confidence
    note: str
    reviewer: str
    created_at: UtcDateTime


class FlagReasonIn(BaseModel):
    """One reason behind a flag, as flags.parquet's `reasons` holds them."""

    feature: str = Field(max_length=256)
    description: str = Field(default="", max_length=2000)
    value: str | bool | int | FiniteFloat | None = None
    contribution: FiniteFloat | None = None


class FlagRow(BaseModel):
    """One row of flags.parquet."""

    entity: Entity
    item_id: str = Field(min_length=1, max_length=ITEM_ID_MAX_LENGTH)
    policy: Policy
    channel: Channel | None = None
    kind: ItemKind
    priority: float = Field(ge=0, allow_inf_nan=False)
    p_error: float = Field(ge=0, le=1, allow_inf_nan=False)
    inclusion_probability: float = Field(gt=0, le=1, allow_inf_nan=False)
    strategies: str = ""
    reasons: list[FlagReasonIn] = Field(default_factory=list, max_length=64)

    def as_flags_row(self) -> dict[str, Any]:
        """The flags.parquet row: reasons as the JSON text the table holds."""
        row = self.model_dump(mode="json", exclude={"reasons"})
        row["reasons"] = json.dumps([r.model_dump(mode="json") for r in self.reasons])
        return row


class FlagsIngest(BaseModel):
    """Flags to queue."""

    source: str = Field(default="api", max_length=256)
    rows: list[FlagRow] = Field(min_length=1)


class IngestReportPublic(BaseModel):
    """What a load of flags did."""

    rows_read: int
    inserted: int
    updated: int
    duplicates_in_input: int
    skipped_closed: int


class AuditLabelPublic(BaseModel):
    """One audit_labels row (the data contract table)."""

    label_id: str
    entity: Entity
    item_id: str
    policy: Policy
    verdict: Verdict
    reviewer_id: str
    reviewed_at: UtcDateTime
    sampling: str
    inclusion_probability: float


# -- escalations ----------------------------------------------------------------------------


class _EscalationCreateBase(BaseModel):
    title: str = Field(min_length=1, max_length=200, pattern=r"\S")
    priority: EscalationPriority = EscalationPriority.MEDIUM
    description: str = Field(default="", max_length=8000)


class ItemEscalationCreate(_EscalationCreateBase):
    """A case about a queue item: it leaves the queue until the case is resolved."""

    kind: Literal[EscalationKind.ITEM]
    queue_item_id: RowId
    strategy_id: str | None = Field(default=None, max_length=128)


class StrategyEscalationCreate(_EscalationCreateBase):
    """A case about a strategy (by id)."""

    kind: Literal[EscalationKind.STRATEGY]
    strategy_id: str = Field(min_length=1, max_length=128, pattern=r"\S")
    queue_item_id: RowId | None = None


class AlertEscalationCreate(_EscalationCreateBase):
    """A case about a monitoring alert."""

    kind: Literal[EscalationKind.ALERT]
    queue_item_id: RowId | None = None
    strategy_id: str | None = Field(default=None, max_length=128)


#: Raise a case; what it must name depends on its kind (OpenAPI `oneOf` on `kind`).
EscalationCreate = Annotated[
    ItemEscalationCreate | StrategyEscalationCreate | AlertEscalationCreate,
    Field(discriminator="kind"),
]


class EscalationPublic(BaseModel):
    """A case and where it stands."""

    id: int
    kind: EscalationKind
    title: str
    description: str
    priority: EscalationPriority
    state: EscalationState
    queue_item_id: int | None
    strategy_id: str | None
    raised_by: str
    assignee: str | None
    assignee_id: int | None
    due_at: UtcDateTime
    breached: bool
    breached_at: UtcDateTime | None
    resolution: str | None
    resolved_at: UtcDateTime | None
    closed_at: UtcDateTime | None
    created_at: UtcDateTime
    updated_at: UtcDateTime


class AssignTransition(BaseModel):
    """Assign a case: name who takes it."""

    to_state: Literal[EscalationState.ASSIGNED]
    assignee_id: RowId
    resolution: str | None = Field(default=None, max_length=8000)


class ResolveTransition(BaseModel):
    """Resolve a case: say what was found and done (sent to whoever raised it)."""

    to_state: Literal[EscalationState.RESOLVED]
    resolution: str = Field(min_length=1, max_length=8000, pattern=r"\S")
    assignee_id: RowId | None = None


class OtherTransition(BaseModel):
    """Reopen, start or close a case (closing an unresolved case needs a resolution)."""

    to_state: Literal[EscalationState.OPEN, EscalationState.IN_PROGRESS, EscalationState.CLOSED]
    assignee_id: RowId | None = None
    resolution: str | None = Field(default=None, max_length=8000)


#: Move a case; what the body must hold depends on the target state (OpenAPI `oneOf`).
EscalationTransition = Annotated[
    AssignTransition | ResolveTransition | OtherTransition, Field(discriminator="to_state")
]


class CommentCreate(BaseModel):
    """A comment on a case."""

    body: str = Field(min_length=1, max_length=8000)


class CaseEntryPublic(BaseModel):
    """One line of a case's history."""

    at: UtcDateTime
    actor: str
    kind: str
    text: str


class EscalationDetail(BaseModel):
    """A case with its full history."""

    escalation: EscalationPublic
    history: list[CaseEntryPublic]


class NotificationPublic(BaseModel):
    """A message for the caller."""

    model_config = _ORM

    id: int
    kind: str
    subject: str
    body: str
    escalation_id: int | None
    created_at: UtcDateTime
    read_at: UtcDateTime | None


# -- suggestions and strategy versions ------------------------------------------------------


class SuggestionRow(BaseModel):
    """One row of suggestions.parquet."""

    suggestion_id: str = Field(min_length=1, max_length=128)
    strategy_id: str = Field(min_length=1, max_length=128)
    base_version: RowId | None = None
    kind: SuggestionKind
    summary: str
    proposed_yaml: str = Field(min_length=1)
    delta_fp: FiniteFloat
    delta_fp_low: FiniteFloat
    delta_fp_high: FiniteFloat
    delta_fn: FiniteFloat
    delta_fn_low: FiniteFloat
    delta_fn_high: FiniteFloat
    delta_impressions: FiniteFloat
    delta_gmv: FiniteFloat
    labels_used: Count
    rank: Count


class SuggestionsIngest(BaseModel):
    """Suggestions to put up for review."""

    source: str = Field(default="api", max_length=256)
    rows: list[SuggestionRow] = Field(min_length=1)


class SuggestionIngestPublic(BaseModel):
    """What a load of suggestions did (a repeated suggestion_id: the last row is kept)."""

    rows_read: int
    inserted: int
    updated: int
    skipped_decided: int
    duplicates_in_input: int


class SuggestionPublic(BaseModel):
    """A suggested strategy change with its projected effect."""

    model_config = _ORM

    id: int
    suggestion_id: str
    strategy_id: str
    base_version: int | None
    kind: str
    summary: str
    proposed_yaml: str
    delta_fp: float
    delta_fp_low: float
    delta_fp_high: float
    delta_fn: float
    delta_fn_low: float
    delta_fn_high: float
    delta_impressions: float
    delta_gmv: float
    labels_used: int
    rank: int
    status: SuggestionStatus


class SuggestionDecisionCreate(BaseModel):
    """Accept or reject a suggestion; the reason is required and kept."""

    decision: Literal["accept", "reject"]
    reason: str = Field(min_length=1, max_length=4000)


class StrategyVersionPublic(BaseModel):
    """One strategy version and its lifecycle status."""

    strategy_id: str
    version: int
    status: StrategyStatus
    name: str
    entity: Entity
    policy: Policy
    channels: list[Channel]
    action: str
    file_name: str


class SuggestionDecisionPublic(BaseModel):
    """A recorded decision and the shadow version it created, if accepted."""

    suggestion_id: str
    decision: SuggestionStatus
    reason: str
    decided_by: str
    created_at: UtcDateTime
    strategy_version: StrategyVersionPublic | None


class StatusChange(BaseModel):
    """Promote a shadow version to active, or retire a version."""

    status: Literal["active", "retired"]


# -- dashboard and audit log ----------------------------------------------------------------


class EstimatePublic(BaseModel):
    """A proportion with its 95% interval and the labels behind it."""

    value: float | None
    low: float | None
    high: float | None
    n_labels: int


class MetricPublic(BaseModel):
    """Precision, recall and error exposure of one strategy or channel."""

    key: str
    policy: str
    precision: EstimatePublic
    recall: EstimatePublic
    fp_impressions: float
    fn_impressions: float


class DashboardPublic(BaseModel):
    """Live estimates from the random-audit verdicts, and the audit's table when configured."""

    strategies: list[MetricPublic]
    channels: list[MetricPublic]
    audit_metrics: list[dict[str, Any]] | None


class AuditEventPublic(BaseModel):
    """One audit log entry."""

    model_config = _ORM

    id: int
    created_at: UtcDateTime
    actor: str
    action: str
    target_type: str
    target_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
