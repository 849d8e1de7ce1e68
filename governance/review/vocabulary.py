"""Closed vocabularies of the review service: roles, queue states, escalation states."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from governance.audit.vocabulary import FlagKind


class Role(StrEnum):
    """What a user may do; checked on every route."""

    MODERATOR = "moderator"
    PM = "pm"
    ML_ENGINEER = "ml_engineer"
    ADMIN = "admin"


#: Which audit list a queue item came from: the audit's flag kind (flags.parquet `kind`).
ItemKind = FlagKind


class QueueStatus(StrEnum):
    """Life of a queue item: pending until one verdict is recorded; held while escalated."""

    PENDING = "pending"
    ESCALATED = "escalated"
    JUDGED = "judged"


class QueueFilter(StrEnum):
    """Which queue items a listing shows: one status, or every status (`all`)."""

    PENDING = "pending"
    ESCALATED = "escalated"
    JUDGED = "judged"
    ALL = "all"

    @property
    def status(self) -> QueueStatus | None:
        """The one status this filter keeps (None: every status)."""
        return None if self is QueueFilter.ALL else QueueStatus(self.value)


class LeaseOutcome(StrEnum):
    """How a lease ended; an active lease has no outcome yet."""

    JUDGED = "judged"
    RELEASED = "released"
    ESCALATED = "escalated"
    EXPIRED = "expired"


class Confidence(StrEnum):
    """How sure the moderator is of a verdict."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class EscalationKind(StrEnum):
    """What an escalation is about."""

    ITEM = "item"
    STRATEGY = "strategy"
    #: Raised by `govrisk monitor` / `govrisk alerts load` for a monitoring alert.
    ALERT = "alert"


class EscalationPriority(StrEnum):
    """Urgency of an escalation; sets its SLA."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class EscalationState(StrEnum):
    """Workflow states of an escalation."""

    OPEN = "open"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"


class TokenState(StrEnum):
    """Whether an API token works now, or why not."""

    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class SuggestionStatus(StrEnum):
    """Where a suggested strategy change stands."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


def utcnow() -> datetime:
    """Current time as a timezone-aware UTC datetime (how every timestamp is stored)."""
    return datetime.now(UTC)
