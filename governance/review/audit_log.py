"""Append-only audit log: who did what, when, with the state before and after.

Rows are only ever inserted (`record`). The ORM session refuses updates and deletes of
`AuditEvent` and a database trigger refuses them too, so there is deliberately no API to change
or remove an entry.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from governance.review.orm import AuditEvent, User
from governance.review.vocabulary import utcnow

#: Actor name recorded for changes made from the command line without a user.
CLI_ACTOR = "cli"


def record(
    session: Session,
    *,
    actor: User | None,
    action: str,
    target_type: str,
    target_id: str | int,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    """Append one entry (flushed with the caller's unit of work, committed with it)."""
    event = AuditEvent(
        created_at=now or utcnow(),
        actor_id=actor.id if actor is not None else None,
        actor=actor.username if actor is not None else CLI_ACTOR,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        before=_jsonable(before),
        after=_jsonable(after),
    )
    session.add(event)
    return event


def entries(
    session: Session,
    *,
    target_type: str | None = None,
    target_id: str | int | None = None,
    action_prefix: str | None = None,
    limit: int = 200,
    before_id: int | None = None,
) -> list[AuditEvent]:
    """Entries, newest first, optionally for one target or one family of actions."""
    query = sa.select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if target_type is not None:
        query = query.where(AuditEvent.target_type == target_type)
    if target_id is not None:
        query = query.where(AuditEvent.target_id == str(target_id))
    if action_prefix is not None:
        query = query.where(AuditEvent.action.startswith(action_prefix))
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    return list(session.scalars(query))


def _jsonable(value: Any) -> Any:
    """Make values JSON-serialisable: datetimes as ISO text, enums as their values."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):  # stored naive values are UTC; written with their zone
        return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    return str(value)
