"""Database tables of the review service as SQLAlchemy 2.0 typed ORM models.

Timestamps are timezone-aware UTC (`vocabulary.utcnow`): `timestamptz` on PostgreSQL, UTC text on
SQLite, and always read back with their zone (`UtcDateTime`). Enumerations are
stored as their string values. `audit_log` is append-only: an ORM guard refuses updates and
deletes, and a database trigger (installed by the migration and by `create_all`) does too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from governance.audit.tables import ITEM_ID_MAX_LENGTH
from governance.experiments.vocabulary import ExperimentStatus, RandomisationUnit
from governance.review.vocabulary import (
    Confidence,
    EscalationKind,
    EscalationPriority,
    EscalationState,
    ItemKind,
    LeaseOutcome,
    QueueStatus,
    Role,
    SuggestionStatus,
    utcnow,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp stored and read as UTC with its zone; a value without a zone is UTC.

    PostgreSQL keeps `timestamp with time zone`; SQLite has no zones, so the UTC wall time is
    stored and the zone put back on read.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware if dialect.name == "postgresql" else aware.replace(tzinfo=None)

    def process_result_value(
        self,
        value: datetime | None,
        dialect: sa.Dialect,  # noqa: ARG002 - SQLAlchemy's signature
    ) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(enum: type[StrEnum]) -> sa.Enum:
    """A VARCHAR column holding the enum's values (no native database enum type)."""
    return sa.Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda e: [member.value for member in e],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    """Declarative base with stable constraint names (migrations depend on them)."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UtcDateTime(),
        dict[str, Any]: sa.JSON(),
        list[str]: sa.JSON(),
        list[dict[str, Any]]: sa.JSON(),
    }


user_team_grants = sa.Table(
    "user_team_grants",
    Base.metadata,
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("team_id", sa.ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True),
)


class Team(Base):
    """A moderation team; queue items of its policies are routed to it."""

    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    #: Policies routed to this team (values of features.vocabulary.Policy).
    policies: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    """A person who signs in to the pages or calls the API."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    display_name: Mapped[str] = mapped_column(sa.String(128), default="")
    role: Mapped[Role] = mapped_column(_enum(Role))
    team_id: Mapped[int | None] = mapped_column(sa.ForeignKey("teams.id"), index=True)
    password_hash: Mapped[str] = mapped_column(sa.String(256))
    is_active: Mapped[bool] = mapped_column(default=True)
    #: Bumped to end every page session of the user (disabling them, "sign out everywhere").
    session_epoch: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    team: Mapped[Team | None] = relationship(lazy="joined")
    granted_teams: Mapped[list[Team]] = relationship(secondary=user_team_grants, lazy="selectin")


class ApiToken(Base):
    """A bearer token for the API; only its SHA-256 digest is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(64))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    #: First characters of the token, shown so people can tell their tokens apart.
    token_prefix: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(lazy="joined")


class QueueItem(Base):
    """One (entity, item_id, policy) to judge, as the audit flagged it."""

    __tablename__ = "queue_items"
    __table_args__ = (
        sa.UniqueConstraint("entity", "item_id", "policy"),
        sa.Index("ix_queue_items_claim", "status", "priority", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    entity: Mapped[str] = mapped_column(sa.String(16))
    item_id: Mapped[str] = mapped_column(sa.String(ITEM_ID_MAX_LENGTH))
    policy: Mapped[str] = mapped_column(sa.String(32))
    channel: Mapped[str | None] = mapped_column(sa.String(16))
    kind: Mapped[ItemKind] = mapped_column(_enum(ItemKind))
    #: Expected impact from the audit (error probability x exposure x severity).
    priority: Mapped[float]
    p_error: Mapped[float]
    #: Probability the item was drawn into the audit sample (1.0 for ranked lists).
    inclusion_probability: Mapped[float]
    #: Strategies involved, as "id@vN".
    strategies: Mapped[list[str]] = mapped_column(default=list)
    #: SHAP reasons: [{feature, description, value, contribution}].
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    #: Exposure snapshot at ingestion: {channel: {impressions, gmv}}; empty when unknown.
    exposure: Mapped[dict[str, Any]] = mapped_column(default=dict)
    team_id: Mapped[int | None] = mapped_column(sa.ForeignKey("teams.id"), index=True)
    status: Mapped[QueueStatus] = mapped_column(_enum(QueueStatus), default=QueueStatus.PENDING)
    leased_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    lease_expires_at: Mapped[datetime | None]
    source: Mapped[str] = mapped_column(sa.String(256), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    judged_at: Mapped[datetime | None]

    team: Mapped[Team | None] = relationship(lazy="joined")
    leased_by: Mapped[User | None] = relationship(lazy="joined")


class Lease(Base):
    """One claim of a queue item by a moderator; ends judged, released, escalated or expired."""

    __tablename__ = "leases"
    __table_args__ = (
        # At most one open lease per item, enforced by the database itself.
        sa.Index(
            "uq_leases_open_item",
            "queue_item_id",
            unique=True,
            sqlite_where=sa.text("outcome IS NULL"),
            postgresql_where=sa.text("outcome IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    queue_item_id: Mapped[int] = mapped_column(sa.ForeignKey("queue_items.id"), index=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    claimed_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    outcome: Mapped[LeaseOutcome | None] = mapped_column(_enum(LeaseOutcome))


class Verdict(Base):
    """A moderator's judgement of a queue item; at most one per item."""

    __tablename__ = "verdicts"
    __table_args__ = (sa.UniqueConstraint("reviewer_id", "client_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Stable identifier of the exported audit label.
    label_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    queue_item_id: Mapped[int] = mapped_column(sa.ForeignKey("queue_items.id"), unique=True)
    reviewer_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    lease_id: Mapped[int | None] = mapped_column(sa.ForeignKey("leases.id"))
    verdict: Mapped[str] = mapped_column(sa.String(16))
    policy: Mapped[str] = mapped_column(sa.String(32))
    confidence: Mapped[Confidence] = mapped_column(_enum(Confidence))
    note: Mapped[str] = mapped_column(sa.Text, default="")
    #: Idempotency key chosen by the client: the same key twice records one verdict.
    client_key: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    queue_item: Mapped[QueueItem] = relationship(lazy="joined")
    reviewer: Mapped[User] = relationship(lazy="joined")


class Escalation(Base):
    """A case raised about an item or a strategy, worked to resolution under an SLA."""

    __tablename__ = "escalations"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[EscalationKind] = mapped_column(_enum(EscalationKind))
    queue_item_id: Mapped[int | None] = mapped_column(sa.ForeignKey("queue_items.id"), index=True)
    strategy_id: Mapped[str | None] = mapped_column(sa.String(128))
    title: Mapped[str] = mapped_column(sa.String(200))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    priority: Mapped[EscalationPriority] = mapped_column(_enum(EscalationPriority))
    state: Mapped[EscalationState] = mapped_column(
        _enum(EscalationState), default=EscalationState.OPEN, index=True
    )
    raised_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    assignee_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    due_at: Mapped[datetime]
    #: When the SLA breach was first recorded (history + notification sent once).
    breached_at: Mapped[datetime | None]
    resolution: Mapped[str | None] = mapped_column(sa.Text)
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    raised_by: Mapped[User] = relationship(foreign_keys=[raised_by_id], lazy="joined")
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id], lazy="joined")
    queue_item: Mapped[QueueItem | None] = relationship(lazy="joined")

    def is_breached(self, now: datetime) -> bool:
        """Whether the SLA is missed: unresolved past due, or resolved after it."""
        if self.resolved_at is not None:
            return self.resolved_at > self.due_at
        if self.state == EscalationState.CLOSED:
            return self.closed_at is not None and self.closed_at > self.due_at
        return now > self.due_at


class EscalationComment(Base):
    """A comment on an escalation."""

    __tablename__ = "escalation_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    escalation_id: Mapped[int] = mapped_column(
        sa.ForeignKey("escalations.id", ondelete="CASCADE"), index=True
    )
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    body: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    author: Mapped[User] = relationship(lazy="joined")


class EscalationEvent(Base):
    """One step in an escalation's history (created, assigned, state change, breach...)."""

    __tablename__ = "escalation_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    escalation_id: Mapped[int] = mapped_column(
        sa.ForeignKey("escalations.id", ondelete="CASCADE"), index=True
    )
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(sa.String(32))
    from_state: Mapped[str | None] = mapped_column(sa.String(32))
    to_state: Mapped[str | None] = mapped_column(sa.String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    actor: Mapped[User | None] = relationship(lazy="joined")


class Notification(Base):
    """A message for one user, e.g. the resolution of an escalation they raised."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    subject: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text, default="")
    escalation_id: Mapped[int | None] = mapped_column(sa.ForeignKey("escalations.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]


class StrategyVersion(Base):
    """A strategy version whose lifecycle the service manages (created or touched by it)."""

    __tablename__ = "strategy_versions"
    __table_args__ = (sa.UniqueConstraint("strategy_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    strategy_id: Mapped[str] = mapped_column(sa.String(128))
    version: Mapped[int]
    status: Mapped[str] = mapped_column(sa.String(16))
    entity: Mapped[str] = mapped_column(sa.String(16))
    policy: Mapped[str] = mapped_column(sa.String(32))
    yaml_text: Mapped[str] = mapped_column(sa.Text)
    #: File name inside the strategies directory.
    file_name: Mapped[str] = mapped_column(sa.String(256))
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    promoted_at: Mapped[datetime | None]
    retired_at: Mapped[datetime | None]


class Suggestion(Base):
    """A suggested strategy change from the audit (suggestions.parquet row)."""

    __tablename__ = "suggestions"

    id: Mapped[int] = mapped_column(primary_key=True)
    suggestion_id: Mapped[str] = mapped_column(sa.String(128), unique=True)
    strategy_id: Mapped[str] = mapped_column(sa.String(128), index=True)
    base_version: Mapped[int | None]
    kind: Mapped[str] = mapped_column(sa.String(32))
    summary: Mapped[str] = mapped_column(sa.Text)
    proposed_yaml: Mapped[str] = mapped_column(sa.Text)
    delta_fp: Mapped[float]
    delta_fp_low: Mapped[float]
    delta_fp_high: Mapped[float]
    delta_fn: Mapped[float]
    delta_fn_low: Mapped[float]
    delta_fn_high: Mapped[float]
    delta_impressions: Mapped[float]
    delta_gmv: Mapped[float]
    labels_used: Mapped[int]
    rank: Mapped[int]
    status: Mapped[SuggestionStatus] = mapped_column(
        _enum(SuggestionStatus), default=SuggestionStatus.PENDING, index=True
    )
    source: Mapped[str] = mapped_column(sa.String(256), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SuggestionDecision(Base):
    """A PM's accept or reject of a suggestion, with the reason; one per suggestion."""

    __tablename__ = "suggestion_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    suggestion_pk: Mapped[int] = mapped_column(sa.ForeignKey("suggestions.id"), unique=True)
    decided_by_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    decision: Mapped[SuggestionStatus] = mapped_column(_enum(SuggestionStatus))
    reason: Mapped[str] = mapped_column(sa.Text)
    strategy_version_pk: Mapped[int | None] = mapped_column(sa.ForeignKey("strategy_versions.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    decided_by: Mapped[User] = relationship(lazy="joined")
    strategy_version: Mapped[StrategyVersion | None] = relationship(lazy="joined")


class ExperimentRecord(Base):
    """A strategy experiment (governance/experiments): its declaration, status and last analysis."""

    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The declaration's slug.
    experiment_id: Mapped[str] = mapped_column(sa.String(80), unique=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    owner: Mapped[str] = mapped_column(sa.String(128))
    #: Strategy versions compared, as "id@vN".
    control: Mapped[str] = mapped_column(sa.String(140), index=True)
    treatment: Mapped[str] = mapped_column(sa.String(140), index=True)
    unit: Mapped[RandomisationUnit] = mapped_column(_enum(RandomisationUnit))
    traffic_share: Mapped[float]
    start: Mapped[datetime]
    end: Mapped[datetime]
    primary_metric: Mapped[str] = mapped_column(sa.String(32))
    #: The whole declaration as YAML (governance.experiments.declaration.dump_experiment).
    definition_yaml: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[ExperimentStatus] = mapped_column(
        _enum(ExperimentStatus), default=ExperimentStatus.DRAFT, index=True
    )
    #: Latest analysis summary (effects, SRM, verdicts, recommendation); empty until analysed.
    last_analysis: Mapped[dict[str, Any]] = mapped_column(default=dict)
    analysed_at: Mapped[datetime | None]
    stop_reason: Mapped[str | None] = mapped_column(sa.Text)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime | None]


class AuditEvent(Base):
    """Append-only record of who did what, when, with the state before and after."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    #: Username at the time (or "system"/"cli"), kept even if the user is renamed.
    actor: Mapped[str] = mapped_column(sa.String(64))
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    target_type: Mapped[str] = mapped_column(sa.String(32))
    target_id: Mapped[str] = mapped_column(sa.String(128))
    before: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON())
    after: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON())


def audit_log_trigger_ddl(dialect: str) -> list[str]:
    """Statements that make `audit_log` reject UPDATE and DELETE in the database itself."""
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER IF NOT EXISTS audit_log_no_{op.lower()} BEFORE {op} ON audit_log "
            f"BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            for op in ("UPDATE", "DELETE")
        ]
    if dialect == "postgresql":
        return [
            "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'audit_log is append-only'; END $$",
            "DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log",
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
        ]
    return []


@sa.event.listens_for(AuditEvent.__table__, "after_create")
def _install_audit_log_trigger(target: sa.Table, connection: sa.Connection, **_: Any) -> None:
    del target
    for statement in audit_log_trigger_ddl(connection.dialect.name):
        connection.exec_driver_sql(statement)
