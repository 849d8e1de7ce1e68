"""Escalations: cases about an item or a strategy, worked through states under an SLA.

States move only along `TRANSITIONS`. The SLA due time comes from the priority; a case still
unresolved after it is flagged as breached once (history entry and notifications). A resolution
is delivered to whoever raised the case as a notification. Every step is kept in the case
history and the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from governance.review import audit_log, queue
from governance.review.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from governance.review.orm import (
    Escalation,
    EscalationComment,
    EscalationEvent,
    Notification,
    QueueItem,
    User,
)
from governance.review.vocabulary import (
    DEFAULT_SLA_HOURS,
    EscalationKind,
    EscalationPriority,
    EscalationState,
    Role,
    utcnow,
)

S = EscalationState
#: Allowed moves: assign (again), start, resolve, reopen, close; closed is final.
TRANSITIONS: dict[EscalationState, frozenset[EscalationState]] = {
    S.OPEN: frozenset({S.ASSIGNED, S.CLOSED}),
    S.ASSIGNED: frozenset({S.ASSIGNED, S.OPEN, S.IN_PROGRESS, S.CLOSED}),
    S.IN_PROGRESS: frozenset({S.ASSIGNED, S.RESOLVED}),
    S.RESOLVED: frozenset({S.IN_PROGRESS, S.CLOSED}),
    S.CLOSED: frozenset(),
}
_MANAGERS = frozenset({Role.PM, Role.ADMIN})
_SEE_ALL = frozenset({Role.PM, Role.ADMIN, Role.ML_ENGINEER})
_ACTIVE = (S.OPEN, S.ASSIGNED, S.IN_PROGRESS)


@dataclass(frozen=True)
class CaseEntry:
    """One line of a case's history: an event or a comment."""

    at: datetime
    actor: str
    kind: str
    text: str


def can_view(user: User, escalation: Escalation) -> bool:
    """PMs, ML engineers and admins see every case; others the ones they raised or work."""
    return user.role in _SEE_ALL or user.id in (escalation.raised_by_id, escalation.assignee_id)


def can_act(user: User, escalation: Escalation) -> bool:
    """PMs and admins act on every case; others on the cases they raised or work.

    Seeing is not acting: an ML engineer sees every case but comments on or moves only the
    ones they are part of.
    """
    return user.role in _MANAGERS or user.id in (escalation.raised_by_id, escalation.assignee_id)


def _check_part(user: User, escalation: Escalation) -> None:
    if not can_act(user, escalation):
        raise PermissionDeniedError(
            f"escalation {escalation.id}: a {user.role.value} may see this case but acts only on "
            "cases they raised or are assigned to; ask a PM or an admin to assign it"
        )


def get(session: Session, user: User, escalation_id: int) -> Escalation:
    """The escalation, if it exists and `user` may see it."""
    escalation = session.get(Escalation, escalation_id)
    if escalation is None:
        raise NotFoundError(f"escalation {escalation_id} does not exist")
    if not can_view(user, escalation):
        raise PermissionDeniedError(
            f"escalation {escalation_id} is not yours to see; you see cases you raised or work"
        )
    return escalation


def list_for(
    session: Session,
    user: User,
    *,
    states: tuple[EscalationState, ...] | None = None,
    limit: int = 200,
) -> list[Escalation]:
    """Escalations `user` may see, most urgent (earliest due) first."""
    query = sa.select(Escalation).order_by(Escalation.due_at, Escalation.id).limit(limit)
    if user.role not in _SEE_ALL:
        query = query.where(
            sa.or_(Escalation.raised_by_id == user.id, Escalation.assignee_id == user.id)
        )
    if states is not None:
        query = query.where(Escalation.state.in_(states))
    return list(session.scalars(query))


def _event(
    session: Session,
    escalation: Escalation,
    actor: User | None,
    kind: str,
    *,
    from_state: EscalationState | None = None,
    to_state: EscalationState | None = None,
    detail: dict[str, Any] | None = None,
    now: datetime,
) -> None:
    session.add(
        EscalationEvent(
            escalation_id=escalation.id,
            actor_id=actor.id if actor is not None else None,
            kind=kind,
            from_state=from_state.value if from_state else None,
            to_state=to_state.value if to_state else None,
            detail=detail or {},
            created_at=now,
        )
    )


def notify(
    session: Session,
    user_id: int,
    *,
    kind: str,
    subject: str,
    body: str = "",
    escalation_id: int | None = None,
    now: datetime | None = None,
) -> Notification:
    """Leave a notification for one user."""
    note = Notification(
        user_id=user_id,
        kind=kind,
        subject=subject[:200],
        body=body,
        escalation_id=escalation_id,
        created_at=now or utcnow(),
    )
    session.add(note)
    return note


def create(
    session: Session,
    actor: User,
    *,
    kind: EscalationKind | str,
    title: str,
    priority: EscalationPriority | str,
    description: str = "",
    queue_item_id: int | None = None,
    strategy_id: str | None = None,
    sla_hours: Mapping[EscalationPriority, float] = DEFAULT_SLA_HOURS,
    now: datetime | None = None,
) -> Escalation:
    """Open a case; an item case takes the item out of the queue until it is resolved."""
    try:
        kind = EscalationKind(kind)
        priority = EscalationPriority(priority)
    except ValueError as err:
        raise InvalidInputError(
            f"kind must be one of {[k.value for k in EscalationKind]} and priority one of "
            f"{[p.value for p in EscalationPriority]}: {err}"
        ) from err
    title = title.strip()
    if not title:
        raise InvalidInputError("title: say in a few words what is wrong")
    now = now or utcnow()
    item: QueueItem | None = None
    if kind == EscalationKind.ITEM:
        if queue_item_id is None:
            raise InvalidInputError("queue_item_id: an item escalation names the queue item")
        item = queue.get_item(session, actor, queue_item_id)
    elif kind == EscalationKind.STRATEGY and not strategy_id:
        raise InvalidInputError("strategy_id: a strategy escalation names the strategy")
    escalation = Escalation(
        kind=kind,
        queue_item_id=item.id if item is not None else None,
        strategy_id=strategy_id,
        title=title[:200],
        description=description,
        priority=priority,
        state=S.OPEN,
        raised_by_id=actor.id,
        due_at=now + timedelta(hours=sla_hours[priority]),
        created_at=now,
        updated_at=now,
    )
    session.add(escalation)
    session.flush()
    held = item is not None and queue.hold_for_escalation(session, item, now=now)
    _event(
        session,
        escalation,
        actor,
        "created",
        to_state=S.OPEN,
        detail={
            "priority": priority.value,
            "due_at": escalation.due_at.isoformat(),
            "item_held": held,
        },
        now=now,
    )
    audit_log.record(
        session,
        actor=actor,
        action="escalation.create",
        target_type="escalation",
        target_id=escalation.id,
        after=_snapshot(escalation),
        now=now,
    )
    return escalation


def _snapshot(escalation: Escalation) -> dict[str, Any]:
    return {
        "state": escalation.state,
        "assignee_id": escalation.assignee_id,
        "priority": escalation.priority,
        "due_at": escalation.due_at,
        "resolution": escalation.resolution,
    }


def _check_actor(
    actor: User, escalation: Escalation, to_state: EscalationState, assignee_id: int | None
) -> None:
    manager = actor.role in _MANAGERS
    is_assignee = actor.id == escalation.assignee_id
    is_raiser = actor.id == escalation.raised_by_id
    current = escalation.state
    if to_state == S.ASSIGNED:
        allowed = (
            manager
            or (is_raiser and assignee_id == actor.id and current == S.OPEN)
            or (is_assignee and current == S.IN_PROGRESS)
        )
    elif to_state == S.OPEN:
        allowed = manager or is_assignee
    elif to_state in (S.IN_PROGRESS, S.RESOLVED):
        allowed = manager or is_assignee or (current == S.RESOLVED and is_raiser)
    else:  # closing: confirming a resolution, or dismissing an unworked case
        allowed = manager or (current == S.RESOLVED and is_raiser)
    if not allowed:
        raise PermissionDeniedError(
            f"escalation {escalation.id}: a {actor.role.value} who is "
            f"{'the assignee' if is_assignee else 'not the assignee'} cannot move it from "
            f"{current.value} to {to_state.value}"
        )


def allowed_moves(actor: User, escalation: Escalation) -> list[EscalationState]:
    """The states `actor` may move the case to now, in workflow order (what a page offers).

    An assignment is offered to someone who may assign it at least to themselves.
    """
    if not can_act(actor, escalation):
        return []
    moves = []
    for state in sorted(TRANSITIONS[escalation.state], key=list(EscalationState).index):
        try:
            _check_actor(actor, escalation, state, actor.id)
        except PermissionDeniedError:
            continue
        moves.append(state)
    return moves


def transition(
    session: Session,
    actor: User,
    escalation_id: int,
    *,
    to_state: EscalationState | str,
    assignee_id: int | None = None,
    resolution: str | None = None,
    now: datetime | None = None,
) -> Escalation:
    """Move a case to `to_state` if the workflow and the actor's part in the case allow it."""
    try:
        to_state = EscalationState(to_state)
    except ValueError as err:
        raise InvalidInputError(
            f"to_state must be one of {[s.value for s in EscalationState]}"
        ) from err
    now = now or utcnow()
    escalation = get(session, actor, escalation_id)
    current = escalation.state
    if to_state not in TRANSITIONS[current]:
        allowed = sorted(s.value for s in TRANSITIONS[current]) or ["none: the case is closed"]
        raise ConflictError(
            f"escalation {escalation.id} is {current.value}; it can move to {allowed}, "
            f"not {to_state.value}"
        )
    _check_part(actor, escalation)
    _check_actor(actor, escalation, to_state, assignee_id)
    before = _snapshot(escalation)
    if to_state == S.ASSIGNED:
        if assignee_id is None:
            raise InvalidInputError("assignee_id: name who takes the case")
        assignee = session.get(User, assignee_id)
        if assignee is None or not assignee.is_active:
            raise NotFoundError(f"assignee_id: no active user {assignee_id}")
        escalation.assignee_id = assignee.id
        if assignee.id != actor.id:
            notify(
                session,
                assignee.id,
                kind="escalation_assigned",
                subject=f"Escalation #{escalation.id} assigned to you: {escalation.title}",
                body=(
                    f"Priority {escalation.priority.value}, "
                    f"due {escalation.due_at:%Y-%m-%d %H:%M} UTC."
                ),
                escalation_id=escalation.id,
                now=now,
            )
    elif to_state == S.OPEN:
        escalation.assignee_id = None
    elif to_state in (S.RESOLVED, S.CLOSED) and current != S.RESOLVED:
        if not resolution or not resolution.strip():
            # closing needs a resolution only while the case is unresolved: a state conflict
            error = ConflictError if to_state == S.CLOSED else InvalidInputError
            raise error(
                "resolution: say what was found and done; it is sent to whoever raised the case"
            )
    if resolution and to_state in (S.RESOLVED, S.CLOSED) and current != S.RESOLVED:
        escalation.resolution = resolution.strip()
    escalation.state = to_state
    escalation.updated_at = now
    if to_state == S.RESOLVED:
        escalation.resolved_at = now
    if to_state == S.IN_PROGRESS and current == S.RESOLVED:
        escalation.resolved_at = None
    if to_state == S.CLOSED:
        escalation.closed_at = now
    if to_state in (S.RESOLVED, S.CLOSED) and current in _ACTIVE:
        _deliver_resolution(session, escalation, actor, now=now)
        _release_item(session, escalation, now=now)
    if escalation.breached_at is None and escalation.is_breached(now):
        escalation.breached_at = now
    _event(
        session,
        escalation,
        actor,
        "state_changed",
        from_state=current,
        to_state=to_state,
        detail={"assignee_id": escalation.assignee_id} if to_state == S.ASSIGNED else {},
        now=now,
    )
    audit_log.record(
        session,
        actor=actor,
        action=f"escalation.{to_state.value}",
        target_type="escalation",
        target_id=escalation.id,
        before=before,
        after=_snapshot(escalation),
        now=now,
    )
    return escalation


def _deliver_resolution(
    session: Session, escalation: Escalation, actor: User, *, now: datetime
) -> None:
    verb = "resolved" if escalation.state == S.RESOLVED else "closed"
    notify(
        session,
        escalation.raised_by_id,
        kind=f"escalation_{verb}",
        subject=f"Escalation #{escalation.id} {verb} by {actor.username}: {escalation.title}",
        body=escalation.resolution or "",
        escalation_id=escalation.id,
        now=now,
    )


def _release_item(session: Session, escalation: Escalation, *, now: datetime) -> None:
    if escalation.queue_item_id is None:
        return
    still_open = session.scalar(
        sa.select(sa.func.count())
        .select_from(Escalation)
        .where(
            Escalation.queue_item_id == escalation.queue_item_id,
            Escalation.id != escalation.id,
            Escalation.state.in_(_ACTIVE),
        )
    )
    item = session.get(QueueItem, escalation.queue_item_id)
    if item is not None and not still_open:
        queue.return_from_escalation(item, now=now)


def comment(
    session: Session, actor: User, escalation_id: int, body: str, *, now: datetime | None = None
) -> EscalationComment:
    """Add a comment to a case `actor` can see."""
    body = body.strip()
    if not body:
        raise InvalidInputError("body: write the comment")
    now = now or utcnow()
    escalation = get(session, actor, escalation_id)
    _check_part(actor, escalation)
    note = EscalationComment(
        escalation_id=escalation.id, author_id=actor.id, body=body, created_at=now
    )
    session.add(note)
    escalation.updated_at = now
    session.flush()
    for user_id in {escalation.raised_by_id, escalation.assignee_id} - {actor.id, None}:
        assert user_id is not None
        notify(
            session,
            user_id,
            kind="escalation_comment",
            subject=f"{actor.username} commented on escalation #{escalation.id}",
            body=body[:500],
            escalation_id=escalation.id,
            now=now,
        )
    audit_log.record(
        session,
        actor=actor,
        action="escalation.comment",
        target_type="escalation",
        target_id=escalation.id,
        after={"comment_id": note.id},
        now=now,
    )
    return note


def flag_breaches(session: Session, *, now: datetime | None = None) -> list[Escalation]:
    """Stamp newly breached active cases, record it in their history and tell the people on
    them; idempotent (each breach is flagged once)."""
    now = now or utcnow()
    breached = list(
        session.scalars(
            sa.select(Escalation).where(
                Escalation.state.in_(_ACTIVE),
                Escalation.breached_at.is_(None),
                Escalation.due_at < now,
            )
        )
    )
    for escalation in breached:
        escalation.breached_at = now
        _event(
            session,
            escalation,
            None,
            "sla_breached",
            detail={"due_at": escalation.due_at.isoformat()},
            now=now,
        )
        for user_id in {escalation.raised_by_id, escalation.assignee_id} - {None}:
            assert user_id is not None
            notify(
                session,
                user_id,
                kind="escalation_sla_breached",
                subject=f"SLA breached on escalation #{escalation.id}: {escalation.title}",
                body=f"Was due {escalation.due_at:%Y-%m-%d %H:%M} UTC.",
                escalation_id=escalation.id,
                now=now,
            )
        audit_log.record(
            session,
            actor=None,
            action="escalation.sla_breached",
            target_type="escalation",
            target_id=escalation.id,
            after={"breached_at": now},
            now=now,
        )
    return breached


def _due_text(recorded: object) -> str:
    """The due time an event recorded (ISO text), as people read it: minutes, in UTC."""
    try:
        due = datetime.fromisoformat(str(recorded))
    except ValueError:
        return "?"
    due = due.replace(tzinfo=UTC) if due.tzinfo is None else due.astimezone(UTC)
    return f"{due:%Y-%m-%d %H:%M} UTC"


def case_history(session: Session, escalation: Escalation) -> list[CaseEntry]:
    """Events and comments of one case, oldest first."""
    entries: list[CaseEntry] = []
    for event in session.scalars(
        sa.select(EscalationEvent)
        .where(EscalationEvent.escalation_id == escalation.id)
        .order_by(EscalationEvent.id)
    ):
        if event.kind == "state_changed":
            text = f"{event.from_state} → {event.to_state}"
        elif event.kind == "created":
            text = f"opened, due {_due_text(event.detail.get('due_at'))}"
        else:
            text = event.kind.replace("_", " ")
        actor = event.actor.username if event.actor is not None else "system"
        entries.append(CaseEntry(event.created_at, actor, event.kind, text))
    for note in session.scalars(
        sa.select(EscalationComment)
        .where(EscalationComment.escalation_id == escalation.id)
        .order_by(EscalationComment.id)
    ):
        entries.append(CaseEntry(note.created_at, note.author.username, "comment", note.body))
    entries.sort(key=lambda e: e.at)
    return entries


def notifications_for(
    session: Session, user: User, *, unread_only: bool = False, limit: int = 100
) -> list[Notification]:
    """A user's notifications, newest first."""
    query = (
        sa.select(Notification)
        .where(Notification.user_id == user.id)
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    return list(session.scalars(query))


def unread_count(session: Session, user: User) -> int:
    """How many notifications `user` has not read."""
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(Notification)
            .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        )
        or 0
    )


def mark_read(
    session: Session, user: User, notification_id: int, *, now: datetime | None = None
) -> Notification:
    """Mark one of `user`'s notifications read."""
    note = session.get(Notification, notification_id)
    if note is None or note.user_id != user.id:
        raise NotFoundError(f"notification {notification_id} does not exist for you")
    if note.read_at is None:
        note.read_at = now or utcnow()
    return note
