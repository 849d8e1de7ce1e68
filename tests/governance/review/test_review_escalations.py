"""Escalations: allowed transitions, SLA breach, resolution delivered to the raiser, history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from governance.review import escalations, queue
from governance.review.db import ReviewSession
from governance.review.errors import ConflictError, InvalidInputError, PermissionDeniedError
from governance.review.orm import Escalation, Notification, QueueItem, User
from governance.review.vocabulary import EscalationState, QueueStatus

T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
S = EscalationState


def _case(session: ReviewSession, raiser: User, *, priority: str = "high") -> Escalation:
    case = escalations.create(
        session,
        raiser,
        kind="strategy",
        strategy_id="listing-counterfeit-terms",
        title="Blocks genuine luxury resellers",
        priority=priority,
        now=T0,
    )
    session.commit()
    return case


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ((S.ASSIGNED, S.IN_PROGRESS, S.RESOLVED, S.CLOSED), True),
        ((S.ASSIGNED, S.IN_PROGRESS, S.RESOLVED, S.IN_PROGRESS, S.RESOLVED), True),
        ((S.ASSIGNED, S.OPEN, S.CLOSED), True),
        ((S.IN_PROGRESS,), False),
        ((S.RESOLVED,), False),
        ((S.ASSIGNED, S.RESOLVED), False),
        ((S.ASSIGNED, S.IN_PROGRESS, S.RESOLVED, S.CLOSED, S.OPEN), False),
    ],
)
def test_only_allowed_transitions_pass(
    session: ReviewSession,
    make_user: Callable[..., User],
    path: tuple[EscalationState, ...],
    allowed: bool,
) -> None:
    pm = make_user("pam", "pm")
    case = _case(session, make_user("mo"))
    steps = [(step, i == len(path) - 1) for i, step in enumerate(path)]
    for step, last in steps:

        def move(to: EscalationState = step) -> Escalation:
            return escalations.transition(
                session, pm, case.id, to_state=to, assignee_id=pm.id, resolution="checked", now=T0
            )

        if last and not allowed:
            with pytest.raises(ConflictError, match=f"not {step.value}"):
                move()
        else:
            assert move().state == step
    assert allowed or case.state != path[-1]


def test_sla_due_time_follows_priority_and_breach_is_flagged_once(
    session: ReviewSession, make_user: Callable[..., User]
) -> None:
    mo, pm = make_user("mo"), make_user("pam", "pm")
    critical = _case(session, mo, priority="critical")
    low = _case(session, mo, priority="low")
    assert critical.due_at == T0 + timedelta(hours=4)
    assert low.due_at == T0 + timedelta(hours=168)
    escalations.transition(session, pm, critical.id, to_state="assigned", assignee_id=pm.id, now=T0)
    later = T0 + timedelta(hours=5)
    assert [e.id for e in escalations.flag_breaches(session, now=later)] == [critical.id]
    assert escalations.flag_breaches(session, now=later + timedelta(hours=1)) == []
    session.commit()
    assert critical.is_breached(later) and not low.is_breached(later)
    breach_notes = session.scalars(
        sa.select(Notification).where(Notification.kind == "escalation_sla_breached")
    ).all()
    assert {n.user_id for n in breach_notes} == {mo.id, pm.id}
    history = escalations.case_history(session, critical)
    assert [h.kind for h in history].count("sla_breached") == 1
    assert history[0].text == "opened, due 2026-03-02 13:00 UTC"  # T0 + 4 h, in minutes


def test_resolution_is_delivered_to_the_raiser(
    session: ReviewSession, make_user: Callable[..., User]
) -> None:
    mo, eng = make_user("mo"), make_user("eve", "ml_engineer")
    pm = make_user("pam", "pm")
    case = _case(session, mo)
    t = [T0 + timedelta(minutes=m) for m in range(1, 6)]
    escalations.transition(session, pm, case.id, to_state="assigned", assignee_id=eng.id, now=t[0])
    escalations.comment(session, eng, case.id, "Looking at the price gate.", now=t[1])
    escalations.transition(session, eng, case.id, to_state="in_progress", now=t[2])
    with pytest.raises(InvalidInputError, match="resolution"):
        escalations.transition(session, eng, case.id, to_state="resolved", now=t[3])
    escalations.transition(
        session,
        eng,
        case.id,
        to_state="resolved",
        resolution="Threshold raised in v2 (shadow).",
        now=t[3],
    )
    escalations.transition(session, mo, case.id, to_state="closed", now=t[4])
    session.commit()
    notes = escalations.notifications_for(session, mo)
    resolved = [n for n in notes if n.kind == "escalation_resolved"]
    assert len(resolved) == 1 and resolved[0].body == "Threshold raised in v2 (shadow)."
    assert escalations.unread_count(session, mo) == len(notes)
    escalations.mark_read(session, mo, resolved[0].id)
    assert escalations.unread_count(session, mo) == len(notes) - 1
    kinds = [h.kind for h in escalations.case_history(session, case)]
    assert kinds == [
        "created",
        "state_changed",
        "comment",
        "state_changed",
        "state_changed",
        "state_changed",
    ]
    assert case.state == S.CLOSED and case.closed_at is not None


def test_participants_limit_who_moves_and_who_sees_a_case(
    session: ReviewSession, make_user: Callable[..., User]
) -> None:
    mo, other = make_user("mo"), make_user("other")
    case = _case(session, mo)
    with pytest.raises(PermissionDeniedError, match="cannot move it"):
        escalations.transition(session, mo, case.id, to_state="assigned", assignee_id=other.id)
    with pytest.raises(PermissionDeniedError, match="not yours"):
        escalations.get(session, other, case.id)
    pm = make_user("pam", "pm")
    escalations.transition(session, pm, case.id, to_state="assigned", assignee_id=other.id)
    escalations.transition(session, other, case.id, to_state="in_progress")
    assert [c.id for c in escalations.list_for(session, other)] == [case.id]
    with pytest.raises(PermissionDeniedError, match="cannot move it"):
        escalations.transition(session, mo, case.id, to_state="resolved", resolution="done")
    assert [c.id for c in escalations.list_for(session, mo)] == [case.id]


def test_item_escalation_holds_the_item_until_resolved(
    session: ReviewSession, review_data: SimpleNamespace, make_user: Callable[..., User]
) -> None:
    queue.ingest_flags(session, review_data.make_flags(1, seed=3))
    mo, pm = make_user("mo"), make_user("pam", "pm")
    claim = queue.claim_next(session, mo, lease_seconds=60)
    assert claim is not None
    case = escalations.create(
        session,
        mo,
        kind="item",
        queue_item_id=claim.item.id,
        title="Seller claims brand authorisation",
        priority="medium",
    )
    session.commit()
    item = session.get(QueueItem, claim.item.id)
    assert item is not None and item.status == QueueStatus.ESCALATED
    assert queue.claim_next(session, mo, lease_seconds=60) is None
    escalations.transition(session, pm, case.id, to_state="assigned", assignee_id=pm.id)
    escalations.transition(session, pm, case.id, to_state="in_progress")
    escalations.transition(
        session,
        pm,
        case.id,
        to_state="resolved",
        resolution="Authorisation is fake; judge as violating.",
    )
    session.commit()
    session.refresh(item)
    assert item.status == QueueStatus.PENDING
    again = queue.claim_next(session, mo, lease_seconds=60)
    assert again is not None and again.item.id == item.id
    history = [h.what for h in queue.item_history(session, item)]
    assert any(w.startswith("escalated #") for w in history)
    assert "lease escalated" in history


def test_escalating_an_item_leased_to_someone_else_holds_it_and_ends_their_lease(
    session: ReviewSession, review_data: SimpleNamespace, make_user: Callable[..., User]
) -> None:
    queue.ingest_flags(session, review_data.make_flags(1, seed=3))
    holder, other = make_user("holder"), make_user("other")
    claim = queue.claim_next(session, holder, lease_seconds=600)
    assert claim is not None
    escalations.create(
        session,
        other,
        kind="item",
        queue_item_id=claim.item.id,
        title="Same seller as a known counterfeit ring",
        priority="high",
    )
    session.commit()
    item = session.get(QueueItem, claim.item.id)
    assert item is not None and item.status == QueueStatus.ESCALATED
    assert item.leased_by_id is None
    with pytest.raises(ConflictError, match="on hold while escalated"):
        queue.submit_verdict(
            session,
            holder,
            item.id,
            verdict="violating",
            confidence="high",
            client_key="k-1",
        )
    assert "lease escalated" in [h.what for h in queue.item_history(session, item)]
