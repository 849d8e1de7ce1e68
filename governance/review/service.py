"""Use cases of the review service, one unit of work each: what the API and the pages both call.

`unit_of_work` is the only place a write transaction is opened: it takes the write lock
(`db.begin_write`), commits when the block ends normally and rolls back when it raises. Every
use case that changes the database runs inside one, so a route can neither forget the lock
(exclusive claiming on SQLite depends on it) nor commit half a use case. Routes parse and
validate their input (the same pydantic schemas for the API and the pages), call one use case
and render its result; they never commit. Reads need no unit of work and stay with the domain
modules (`queue`, `escalations`, `approvals`, ...).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from features.vocabulary import StrategyStatus
from governance.review import approvals, escalations, queue, users
from governance.review.db import ReviewSession, begin_write
from governance.review.errors import ConflictError, InvalidInputError, NotFoundError
from governance.review.orm import (
    ApiToken,
    Escalation,
    ExperimentRecord,
    Notification,
    QueueItem,
    StrategyVersion,
    SuggestionDecision,
    User,
)
from governance.review.settings import ReviewSettings
from governance.review.throttle import SignInThrottle
from governance.review.vocabulary import (
    Confidence,
    EscalationKind,
    EscalationPriority,
    EscalationState,
    Role,
    utcnow,
)

if TYPE_CHECKING:
    from features.vocabulary import Verdict as VerdictValue
    from governance.review.strategy_store import StrategyStore


#: Session.info key marking a session inside a unit of work.
_OPEN = "govrisk_unit_of_work"
#: Session.info key of a session that may write only inside a unit of work.
_GUARDED = "govrisk_writes_in_units_only"


def writes_in_units_only(session: Session) -> None:
    """Make `session` refuse to flush a change outside a unit of work (the web app's sessions).

    A route that changed the database without a use case would otherwise lose the change
    silently when the request's session closes (and, on SQLite, write without the lock).
    """
    session.info[_GUARDED] = True


@sa.event.listens_for(ReviewSession, "before_flush")
def _refuse_writes_outside_units(session: Session, flush_context: Any, instances: Any) -> None:
    del flush_context, instances
    if session.info.get(_GUARDED) and not session.info.get(_OPEN):
        raise RuntimeError(
            "a change was flushed outside a unit of work; run writes in a use case of "
            "governance.review.service"
        )


@contextmanager
def unit_of_work(session: Session) -> Iterator[Session]:
    """One write transaction: take the write lock, commit on success, roll back on error.

    Units of work do not nest: `begin_write` would commit the enclosing one half-way, so a use
    case called inside another is refused (call the domain function instead).
    """
    if session.info.get(_OPEN):
        raise RuntimeError(
            "a unit of work is already open on this session; inside a use case call the "
            "domain functions (queue, escalations, ...), not another use case"
        )
    begin_write(session)
    session.info[_OPEN] = True
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    else:
        session.commit()
    finally:
        session.info.pop(_OPEN, None)


# -- users and sign-in -----------------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in: the user, or why not."""

    user: User | None
    #: Seconds to wait when the throttle refused the attempt unchecked; 0 otherwise.
    retry_after_seconds: float = 0.0


def sign_in(
    session: Session,
    throttle: SignInThrottle,
    *,
    username: str,
    password: str,
    client: str | None,
) -> SignIn:
    """Check a password, throttled per username and per client address (pages and API alike).

    A refused attempt checks no password and does not count; a failure counts for both keys; a
    success clears the username's failures. A rehashed password is saved in a unit of work of
    its own; the argon2 check itself runs before the write lock is taken.
    """
    username = username.strip()
    wait = throttle.retry_after(username=username, client=client)
    if wait > 0:
        return SignIn(user=None, retry_after_seconds=wait)
    user = users.authenticate(session, username, password)
    if user is None:
        throttle.record_failure(username=username, client=client)
        return SignIn(user=None)
    if session.is_modified(user):  # the hash's parameters changed: keep the new hash
        new_hash = user.password_hash
        session.rollback()
        with unit_of_work(session):
            user.password_hash = new_hash
    throttle.record_success(username=username)
    return SignIn(user=user)


def issue_token(
    session: Session,
    user: User,
    *,
    name: str,
    ttl_days: float | None,
    settings: ReviewSettings,
) -> tuple[ApiToken, str]:
    """A new API token for `user` (lifetime capped by role): the record and the secret."""
    with unit_of_work(session):
        days = settings.token_lifetime().days_for(ttl_days, user.role)
        return users.issue_token(session, user, name=name, ttl_days=days)


def revoke_token(session: Session, actor: User, token_id: int) -> None:
    """Revoke the actor's own token, or anyone's for an admin (another's reads as unknown)."""
    with unit_of_work(session):
        token = session.get(ApiToken, token_id)
        if token is None or (token.user_id != actor.id and actor.role != Role.ADMIN):
            raise NotFoundError(f"no API token with id {token_id}")
        users.revoke_token(session, token, actor=actor)


def create_user(
    session: Session,
    actor: User,
    *,
    username: str,
    role: Role,
    password: str,
    display_name: str = "",
    team: str | None = None,
) -> User:
    """A new active user, in the team named `team` if given."""
    with unit_of_work(session):
        return users.create_user(
            session,
            username=username,
            role=role,
            password=password,
            display_name=display_name,
            team=users.team_by_name(session, team) if team else None,
            actor=actor,
        )


def end_sessions(session: Session, user: User) -> None:
    """Sign the user out of every page session (every copy of the cookie stops working)."""
    with unit_of_work(session):
        users.end_sessions(session, user, actor=user)


# -- queue -----------------------------------------------------------------------------------


def claim_next(session: Session, user: User, *, settings: ReviewSettings) -> queue.Claim | None:
    """Lease the next item (or renew the one the user holds); None when there is none."""
    with unit_of_work(session):
        return queue.claim_next(session, user, lease_seconds=settings.lease_seconds)


def release(session: Session, user: User, queue_item_id: int) -> QueueItem:
    """Give a held item back unjudged."""
    with unit_of_work(session):
        return queue.release(session, user, queue_item_id)


def submit_verdict(
    session: Session,
    user: User,
    queue_item_id: int,
    *,
    verdict: VerdictValue,
    client_key: str,
    confidence: Confidence,
    policy: str | None = None,
    note: str = "",
) -> queue.VerdictOutcome:
    """Record the user's verdict on an item they hold (a replayed `client_key` changes nothing)."""
    with unit_of_work(session):
        return queue.submit_verdict(
            session,
            user,
            queue_item_id,
            verdict=verdict,
            client_key=client_key,
            confidence=confidence,
            policy=policy,
            note=note,
        )


def ingest_flags(
    session: Session, actor: User, flags: pd.DataFrame, *, source: str
) -> queue.IngestReport:
    """Queue flags (rows of flags.parquet), de-duplicated by (entity, item_id, policy)."""
    with unit_of_work(session):
        return queue.ingest_flags(session, flags, source=source, actor=actor)


# -- escalations -----------------------------------------------------------------------------


def flag_breaches(session: Session) -> datetime:
    """Flag cases past their SLA now; returns the time used, for the breach marks shown."""
    now = utcnow()
    with unit_of_work(session):
        escalations.flag_breaches(session, now=now)
    return now


def open_escalation(
    session: Session,
    user: User,
    *,
    settings: ReviewSettings,
    kind: EscalationKind,
    title: str,
    priority: EscalationPriority,
    description: str = "",
    queue_item_id: int | None = None,
    strategy_id: str | None = None,
) -> Escalation:
    """Raise a case with the configured SLAs; an item case takes the item out of the queue."""
    with unit_of_work(session):
        return escalations.create(
            session,
            user,
            kind=kind,
            title=title,
            priority=priority,
            description=description,
            queue_item_id=queue_item_id,
            strategy_id=strategy_id,
            sla_hours=settings.sla_hours_by_priority(),
        )


def transition_escalation(
    session: Session,
    user: User,
    escalation_id: int,
    *,
    to_state: EscalationState,
    assignee_id: int | None = None,
    resolution: str | None = None,
) -> Escalation:
    """Move a case along its workflow, if the user's part in it allows the move."""
    with unit_of_work(session):
        return escalations.transition(
            session,
            user,
            escalation_id,
            to_state=to_state,
            assignee_id=assignee_id,
            resolution=resolution,
        )


def comment_escalation(session: Session, user: User, escalation_id: int, body: str) -> None:
    """Comment on a case the user is part of (or any case, for PMs and admins)."""
    with unit_of_work(session):
        escalations.comment(session, user, escalation_id, body)


def mark_read(session: Session, user: User, notification_id: int) -> Notification:
    """Mark one of the user's notifications read."""
    with unit_of_work(session):
        return escalations.mark_read(session, user, notification_id)


# -- suggestions, strategy versions, experiments ---------------------------------------------


def ingest_suggestions(
    session: Session, actor: User, suggestions: pd.DataFrame, *, source: str
) -> approvals.SuggestionIngestReport:
    """Put suggestions (rows of suggestions.parquet) up for review."""
    with unit_of_work(session):
        return approvals.ingest_suggestions(session, suggestions, source=source, actor=actor)


def decide_suggestion(
    session: Session,
    user: User,
    suggestion_pk: int,
    *,
    accept: bool,
    reason: str,
    store: StrategyStore,
) -> SuggestionDecision:
    """Accept (writes the next version in shadow status) or reject a suggestion."""
    with unit_of_work(session):
        return approvals.decide(
            session, user, suggestion_pk, accept=accept, reason=reason, store=store
        )


def set_version_status(
    session: Session,
    user: User,
    strategy_id: str,
    version: int,
    *,
    status: StrategyStatus,
    store: StrategyStore,
) -> list[StrategyVersion]:
    """Promote a shadow version to active (retiring the active one) or retire a version."""
    with unit_of_work(session):
        return approvals.set_version_status(
            session, user, strategy_id, version, status=status, store=store
        )


@contextmanager
def _experiment_errors() -> Iterator[None]:
    """Experiment errors as the review service's error families (404, 409, 422)."""
    from governance.experiments import store as experiments
    from governance.experiments.declaration import ExperimentError
    from governance.registry import StrategyNotFoundError
    from governance.strategy import StrategyError

    try:
        yield
    except experiments.ExperimentNotFoundError as err:
        raise NotFoundError(str(err)) from err
    except experiments.ExperimentStateError as err:
        raise ConflictError(str(err)) from err
    except (StrategyNotFoundError, ExperimentError, StrategyError, ValueError) as err:
        raise InvalidInputError(str(err)) from err


def get_experiment(session: Session, experiment_id: str) -> ExperimentRecord:
    """One experiment (404 when unknown)."""
    from governance.experiments import store as experiments

    with _experiment_errors():
        return experiments.get_experiment(session, experiment_id)


def experiment_suggestion(
    session: Session, user: User, suggestion_pk: int, *, store: StrategyStore
) -> ExperimentRecord:
    """Start an experiment of an accepted suggestion's shadow version against the active one."""
    from governance.experiments import store as experiments

    with unit_of_work(session):
        suggestion = approvals.get_suggestion(session, suggestion_pk)
        decision = approvals.decision_for(session, suggestion)
        version = decision.strategy_version if decision is not None else None
        if version is None:
            raise ConflictError(
                f"suggestion {suggestion_pk} has no shadow version yet; accept it first"
            )
        with _experiment_errors():
            return experiments.propose_experiment(
                session,
                f"{version.strategy_id}@v{version.version}",
                registry=store.registry(),
                actor=user,
            )


def ship_experiment(
    session: Session, user: User, experiment_id: str, *, reason: str, store: StrategyStore
) -> ExperimentRecord:
    """Promote the treatment version to active and mark the experiment shipped."""
    from governance.experiments import store as experiments

    with unit_of_work(session), _experiment_errors():
        return experiments.ship_experiment(
            session, experiment_id, reason=reason, registry=store.registry(), actor=user
        )


def stop_experiment(
    session: Session, user: User, experiment_id: str, *, reason: str
) -> ExperimentRecord:
    """Stop the experiment; the control version stays active."""
    from governance.experiments import store as experiments

    with unit_of_work(session), _experiment_errors():
        return experiments.stop_experiment(session, experiment_id, reason=reason, actor=user)
