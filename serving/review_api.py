"""JSON API of the review service under /api/review (bearer-token auth, role checks per route)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import pandas as pd
import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from features.vocabulary import StrategyStatus
from governance.review import (
    approvals,
    audit_log,
    dashboard,
    escalations,
    labels,
    queue,
    users,
)
from governance.review.db import begin_write
from governance.review.orm import ApiToken, Escalation, QueueItem, User, Verdict
from governance.review.strategy_store import StrategyStore
from governance.review.vocabulary import EscalationState, QueueFilter, Role, utcnow
from governance.strategy import Strategy, StrategyError
from serving.deps import (
    Admin,
    Analyst,
    AnyUser,
    Engineer,
    Manager,
    Moderator,
    SessionDep,
    StateDep,
    client_address,
    retry_after_header,
    throttle_message,
)
from serving.limits import Count, RowId
from serving.schemas_errors import REVIEW_RESPONSES
from serving.schemas_review import (
    AuditEventPublic,
    AuditLabelPublic,
    CaseEntryPublic,
    ClaimPublic,
    CommentCreate,
    DashboardPublic,
    EscalationCreate,
    EscalationDetail,
    EscalationPublic,
    EscalationTransition,
    EstimatePublic,
    FlagReasonPublic,
    FlagsIngest,
    IngestReportPublic,
    MetricPublic,
    NotificationPublic,
    QueueItemPublic,
    QueueStatsPublic,
    StatusChange,
    StrategyVersionPublic,
    SuggestionDecisionCreate,
    SuggestionDecisionPublic,
    SuggestionIngestPublic,
    SuggestionPublic,
    SuggestionsIngest,
    TokenCreate,
    TokenIssued,
    TokenPublic,
    UserCreate,
    UserPublic,
    VerdictCreate,
    VerdictPublic,
)

router = APIRouter(prefix="/api/review", tags=["review"], responses=REVIEW_RESPONSES)


# -- conversions -----------------------------------------------------------------------------


def user_public(user: User) -> UserPublic:
    """API view of a user."""
    return UserPublic(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        team=user.team.name if user.team else None,
        is_active=user.is_active,
    )


def item_public(item: QueueItem) -> QueueItemPublic:
    """API view of a queue item."""
    return QueueItemPublic(
        id=item.id,
        entity=item.entity,  # type: ignore[arg-type]
        item_id=item.item_id,
        policy=item.policy,  # type: ignore[arg-type]
        channel=item.channel,  # type: ignore[arg-type]
        kind=item.kind,
        priority=item.priority,
        p_error=item.p_error,
        inclusion_probability=item.inclusion_probability,
        strategies=list(item.strategies),
        reasons=[FlagReasonPublic.model_validate(r) for r in item.reasons],
        exposure=dict(item.exposure),
        team=item.team.name if item.team else None,
        status=item.status,
        leased_by=item.leased_by.username if item.leased_by else None,
        lease_expires_at=item.lease_expires_at,
        created_at=item.created_at,
        judged_at=item.judged_at,
    )


def verdict_public(verdict: Verdict) -> VerdictPublic:
    """API view of a verdict."""
    return VerdictPublic(
        id=verdict.id,
        label_id=verdict.label_id,
        queue_item_id=verdict.queue_item_id,
        verdict=verdict.verdict,  # type: ignore[arg-type]
        policy=verdict.policy,  # type: ignore[arg-type]
        confidence=verdict.confidence,
        note=verdict.note,
        reviewer=verdict.reviewer.username,
        created_at=verdict.created_at,
    )


def escalation_public(escalation: Escalation, *, now: datetime) -> EscalationPublic:
    """API view of an escalation (breach computed at `now`)."""
    return EscalationPublic(
        id=escalation.id,
        kind=escalation.kind,
        title=escalation.title,
        description=escalation.description,
        priority=escalation.priority,
        state=escalation.state,
        queue_item_id=escalation.queue_item_id,
        strategy_id=escalation.strategy_id,
        raised_by=escalation.raised_by.username,
        assignee=escalation.assignee.username if escalation.assignee else None,
        assignee_id=escalation.assignee_id,
        due_at=escalation.due_at,
        breached=escalation.is_breached(now),
        breached_at=escalation.breached_at,
        resolution=escalation.resolution,
        resolved_at=escalation.resolved_at,
        closed_at=escalation.closed_at,
        created_at=escalation.created_at,
        updated_at=escalation.updated_at,
    )


def version_public(strategy: Strategy) -> StrategyVersionPublic:
    """API view of a strategy version."""
    return StrategyVersionPublic(
        strategy_id=strategy.id,
        version=strategy.version,
        status=strategy.status,
        name=strategy.name,
        entity=strategy.entity,
        policy=strategy.policy,
        channels=list(strategy.channels),
        action=strategy.action.value,
        file_name=strategy.file_name,
    )


def strategy_scopes(store: StrategyStore) -> dict[str, tuple[str, str]]:
    """Strategy id -> (entity, policy) of its latest version; empty if the directory is broken."""
    try:
        return {s.id: (s.entity.value, s.policy.value) for s in store.all()}
    except StrategyError:
        return {}


def _metric(row: dashboard.MetricRow) -> MetricPublic:
    def est(e: dashboard.Estimate) -> EstimatePublic:
        return EstimatePublic(value=e.value, low=e.low, high=e.high, n_labels=e.n_labels)

    return MetricPublic(
        key=row.key,
        policy=row.policy,
        precision=est(row.precision),
        recall=est(row.recall),
        fp_impressions=row.fp_impressions,
        fn_impressions=row.fn_impressions,
    )


# -- users and tokens ------------------------------------------------------------------------


@router.post(
    "/tokens",
    status_code=status.HTTP_201_CREATED,
    response_model=TokenIssued,
    responses={
        429: {
            "description": "Too many failed sign-ins for the username or address; see Retry-After"
        }
    },
)
def create_token(
    body: TokenCreate, request: Request, state: StateDep, session: SessionDep
) -> TokenIssued:
    """Exchange a username and password for an API token (no token needed to call this).

    After too many failures for the username or the address, answers 429 without checking.
    """
    username, client = body.username.strip(), client_address(request)
    wait = state.throttle.retry_after(username=username, client=client)
    if wait > 0:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            throttle_message(wait),
            headers=retry_after_header(wait),
        )
    user = users.authenticate(session, body.username, body.password)  # argon2 outside the lock
    if user is None:
        state.throttle.record_failure(username=username, client=client)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown username or wrong password")
    state.throttle.record_success(username=username)
    begin_write(session)
    ttl_days = state.settings.token_lifetime().days_for(body.ttl_days, user.role)
    token, secret = users.issue_token(session, user, name=body.name, ttl_days=ttl_days)
    session.commit()
    return TokenIssued(
        token=secret,
        token_prefix=token.token_prefix,
        name=token.name,
        expires_at=token.expires_at,
        user=user_public(user),
    )


def token_public(token: ApiToken) -> TokenPublic:
    """API view of a token: its state now, never the secret."""
    return TokenPublic(
        id=token.id,
        name=token.name,
        token_prefix=token.token_prefix,
        username=token.user.username,
        created_at=token.created_at,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
        state=users.token_state(token),
    )


@router.get("/tokens", response_model=list[TokenPublic])
def list_tokens(
    session: SessionDep,
    user: AnyUser,
    username: Annotated[
        str | None, Query(description="Whose tokens (admins only; default: the caller's).")
    ] = None,
) -> list[TokenPublic]:
    """The caller's API tokens, newest first (admins: anyone's with `username`)."""
    owner = user
    if username is not None and username != user.username:
        if user.role != Role.ADMIN:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "only admins list other users' tokens")
        owner = users.user_by_username(session, username)
    return [token_public(t) for t in users.tokens_of(session, owner)]


@router.delete(
    "/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "No such token of the caller's (admins: of anyone's)"}},
)
def revoke_token(token_id: RowId, session: SessionDep, user: AnyUser) -> Response:
    """Revoke an API token now: the caller's own, or anyone's for admins (safe to repeat)."""
    begin_write(session)
    token = session.get(ApiToken, token_id)
    if token is None or (token.user_id != user.id and user.role != Role.ADMIN):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no API token with id {token_id}")
    users.revoke_token(session, token, actor=user)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=UserPublic)
def me(user: AnyUser) -> UserPublic:
    """The caller."""
    return user_public(user)


@router.get("/users", response_model=list[UserPublic])
def list_users(session: SessionDep, admin: Admin) -> list[UserPublic]:
    """Every user."""
    del admin
    return [user_public(u) for u in session.scalars(sa.select(User).order_by(User.username))]


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserPublic)
def create_user(body: UserCreate, session: SessionDep, admin: Admin) -> UserPublic:
    """Create a user."""
    begin_write(session)
    team = users.team_by_name(session, body.team) if body.team else None
    user = users.create_user(
        session,
        username=body.username,
        role=body.role,
        password=body.password,
        display_name=body.display_name,
        team=team,
        actor=admin,
    )
    session.commit()
    return user_public(user)


# -- queue -----------------------------------------------------------------------------------


@router.get("/queue", response_model=list[QueueItemPublic])
def list_queue(
    session: SessionDep,
    user: AnyUser,
    item_status: Annotated[QueueFilter, Query(alias="status")] = QueueFilter.PENDING,
    policy: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[Count, Query()] = 0,
) -> list[QueueItemPublic]:
    """Items the caller's teams may see, highest priority first."""
    items = queue.list_items(
        session, user, status=item_status.status, policy=policy, limit=limit, offset=offset
    )
    return [item_public(i) for i in items]


@router.get("/queue/stats", response_model=QueueStatsPublic)
def queue_stats(session: SessionDep, user: AnyUser) -> QueueStatsPublic:
    """Counts of open, leased, escalated and judged items."""
    return QueueStatsPublic(**queue.queue_stats(session, user))


@router.post(
    "/queue/claim",
    response_model=ClaimPublic,
    responses={204: {"description": "Nothing to claim right now."}},
)
def claim(session: SessionDep, state: StateDep, user: Moderator) -> ClaimPublic | Response:
    """Lease the next item (or renew the caller's current one); 204 when the queue is empty."""
    begin_write(session)
    result = queue.claim_next(session, user, lease_seconds=state.settings.lease_seconds)
    session.commit()
    if result is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return ClaimPublic(
        lease_id=result.lease.id,
        expires_at=result.lease.expires_at,
        resumed=result.resumed,
        item=item_public(result.item),
    )


@router.get("/queue/items/{item_pk}", response_model=QueueItemPublic)
def get_item(item_pk: RowId, session: SessionDep, user: AnyUser) -> QueueItemPublic:
    """One queue item."""
    return item_public(queue.get_item(session, user, item_pk))


@router.post("/queue/items/{item_pk}/release", response_model=QueueItemPublic)
def release_item(item_pk: RowId, session: SessionDep, user: Moderator) -> QueueItemPublic:
    """Give a held item back unjudged."""
    begin_write(session)
    item = queue.release(session, user, item_pk)
    session.commit()
    return item_public(item)


@router.post(
    "/queue/items/{item_pk}/verdict",
    status_code=status.HTTP_201_CREATED,
    response_model=VerdictPublic,
    responses={200: {"description": "Replay: this client_key already recorded this verdict."}},
)
def submit_verdict(
    item_pk: RowId, body: VerdictCreate, response: Response, session: SessionDep, user: Moderator
) -> VerdictPublic:
    """Record the caller's verdict on an item they hold (201; 200 for an idempotent replay)."""
    begin_write(session)
    outcome = queue.submit_verdict(
        session,
        user,
        item_pk,
        verdict=body.verdict,
        client_key=body.client_key,
        confidence=body.confidence,
        policy=body.policy.value if body.policy else None,
        note=body.note,
    )
    session.commit()
    if not outcome.created:
        response.status_code = status.HTTP_200_OK
    return verdict_public(outcome.verdict)


@router.post("/queue/flags", response_model=IngestReportPublic)
def ingest_flags(
    body: FlagsIngest, session: SessionDep, state: StateDep, user: Engineer
) -> IngestReportPublic:
    """Queue flags (rows of flags.parquet), de-duplicated by (entity, item_id, policy)."""
    begin_write(session)
    if len(body.rows) > state.settings.max_ingest_rows:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"{len(body.rows)} rows; send at most {state.settings.max_ingest_rows} per call or "
            "use `govrisk queue load`",
        )
    df = pd.DataFrame([r.as_flags_row() for r in body.rows])
    report = queue.ingest_flags(session, df, source=body.source, actor=user)
    session.commit()
    return IngestReportPublic(**report.__dict__)


@router.get("/labels", response_model=list[AuditLabelPublic])
def list_labels(
    session: SessionDep, user: Analyst, since: datetime | None = None
) -> list[AuditLabelPublic]:
    """Verdicts as audit_labels rows (the data contract table training and the audit read)."""
    del user
    df = labels.audit_labels(session, since=since)
    return [AuditLabelPublic.model_validate(r) for r in df.to_dict("records")]


# -- escalations -----------------------------------------------------------------------------


@router.get("/escalations", response_model=list[EscalationPublic])
def list_escalations(
    session: SessionDep,
    user: AnyUser,
    state: Annotated[list[EscalationState] | None, Query()] = None,
) -> list[EscalationPublic]:
    """Cases the caller may see, earliest due first; newly breached SLAs are flagged first."""
    begin_write(session)
    now = utcnow()
    escalations.flag_breaches(session, now=now)
    session.commit()
    found = escalations.list_for(session, user, states=tuple(state) if state else None)
    return [escalation_public(e, now=now) for e in found]


@router.post("/escalations", status_code=status.HTTP_201_CREATED, response_model=EscalationPublic)
def create_escalation(
    body: EscalationCreate, session: SessionDep, app_state: StateDep, user: AnyUser
) -> EscalationPublic:
    """Raise a case about an item (it leaves the queue until resolved) or a strategy."""
    begin_write(session)
    sla = {p: app_state.settings.sla_hours(p.value) for p in escalations.DEFAULT_SLA_HOURS}
    escalation = escalations.create(
        session,
        user,
        kind=body.kind,
        title=body.title,
        priority=body.priority,
        description=body.description,
        queue_item_id=body.queue_item_id,
        strategy_id=body.strategy_id,
        sla_hours=sla,
    )
    session.commit()
    return escalation_public(escalation, now=utcnow())


def _detail(session: SessionDep, escalation: Escalation) -> EscalationDetail:
    history = escalations.case_history(session, escalation)
    return EscalationDetail(
        escalation=escalation_public(escalation, now=utcnow()),
        history=[CaseEntryPublic(**e.__dict__) for e in history],
    )


@router.get("/escalations/{escalation_id}", response_model=EscalationDetail)
def get_escalation(escalation_id: RowId, session: SessionDep, user: AnyUser) -> EscalationDetail:
    """One case with its full history."""
    return _detail(session, escalations.get(session, user, escalation_id))


@router.post("/escalations/{escalation_id}/transitions", response_model=EscalationDetail)
def transition_escalation(
    escalation_id: RowId, body: EscalationTransition, session: SessionDep, user: AnyUser
) -> EscalationDetail:
    """Move a case along its workflow (who may do which move depends on their part in it)."""
    begin_write(session)
    escalation = escalations.transition(
        session,
        user,
        escalation_id,
        to_state=body.to_state,
        assignee_id=body.assignee_id,
        resolution=body.resolution,
    )
    session.commit()
    return _detail(session, escalation)


@router.post(
    "/escalations/{escalation_id}/comments",
    status_code=status.HTTP_201_CREATED,
    response_model=EscalationDetail,
)
def comment_escalation(
    escalation_id: RowId, body: CommentCreate, session: SessionDep, user: AnyUser
) -> EscalationDetail:
    """Comment on a case."""
    begin_write(session)
    escalations.comment(session, user, escalation_id, body.body)
    session.commit()
    return _detail(session, escalations.get(session, user, escalation_id))


@router.get("/notifications", response_model=list[NotificationPublic])
def list_notifications(
    session: SessionDep, user: AnyUser, unread: bool = False
) -> list[NotificationPublic]:
    """The caller's notifications, newest first."""
    found = escalations.notifications_for(session, user, unread_only=unread)
    return [NotificationPublic.model_validate(n) for n in found]


@router.post("/notifications/{notification_id}/read", response_model=NotificationPublic)
def read_notification(
    notification_id: RowId, session: SessionDep, user: AnyUser
) -> NotificationPublic:
    """Mark a notification read."""
    begin_write(session)
    note = escalations.mark_read(session, user, notification_id)
    session.commit()
    return NotificationPublic.model_validate(note)


# -- suggestions and strategy versions -------------------------------------------------------


@router.get("/suggestions", response_model=list[SuggestionPublic])
def list_suggestions(session: SessionDep, user: Analyst) -> list[SuggestionPublic]:
    """Suggested strategy changes by rank."""
    del user
    return [SuggestionPublic.model_validate(s) for s in approvals.list_suggestions(session)]


@router.post("/suggestions", response_model=SuggestionIngestPublic)
def ingest_suggestions(
    body: SuggestionsIngest, session: SessionDep, user: Engineer
) -> SuggestionIngestPublic:
    """Put suggestions (rows of suggestions.parquet) up for review."""
    begin_write(session)
    df = pd.DataFrame([r.model_dump() for r in body.rows])
    report = approvals.ingest_suggestions(session, df, source=body.source, actor=user)
    session.commit()
    return SuggestionIngestPublic(**report.__dict__)


@router.get("/suggestions/{suggestion_pk}", response_model=SuggestionPublic)
def get_suggestion(suggestion_pk: RowId, session: SessionDep, user: Analyst) -> SuggestionPublic:
    """One suggestion."""
    del user
    return SuggestionPublic.model_validate(approvals.get_suggestion(session, suggestion_pk))


@router.post("/suggestions/{suggestion_pk}/decision", response_model=SuggestionDecisionPublic)
def decide_suggestion(
    suggestion_pk: RowId,
    body: SuggestionDecisionCreate,
    session: SessionDep,
    state: StateDep,
    user: Manager,
) -> SuggestionDecisionPublic:
    """Accept (writes the next version in shadow status) or reject a suggestion."""
    begin_write(session)
    decision = approvals.decide(
        session,
        user,
        suggestion_pk,
        accept=body.decision == "accept",
        reason=body.reason,
        store=state.store,
    )
    session.commit()
    version = decision.strategy_version
    return SuggestionDecisionPublic(
        suggestion_id=approvals.get_suggestion(session, suggestion_pk).suggestion_id,
        decision=decision.decision,
        reason=decision.reason,
        decided_by=user.username,
        created_at=decision.created_at,
        strategy_version=(
            version_public(state.store.get(version.strategy_id, version.version))
            if version is not None
            else None
        ),
    )


@router.get("/strategies", response_model=list[StrategyVersionPublic])
def list_strategy_versions(state: StateDep, user: Analyst) -> list[StrategyVersionPublic]:
    """Every strategy version in the strategies directory."""
    del user
    return [version_public(s) for s in state.store.all()]


@router.post(
    "/strategies/{strategy_id}/versions/{version}/status",
    response_model=list[StrategyVersionPublic],
)
def change_version_status(
    strategy_id: str,
    version: RowId,
    body: StatusChange,
    session: SessionDep,
    state: StateDep,
    user: Manager,
) -> list[StrategyVersionPublic]:
    """Promote a shadow version to active (retiring the old one) or retire a version."""
    begin_write(session)
    approvals.set_version_status(
        session,
        user,
        strategy_id,
        version,
        status=StrategyStatus(body.status),
        store=state.store,
    )
    session.commit()
    return [version_public(s) for s in state.store.versions(strategy_id)]


# -- dashboard and audit log -----------------------------------------------------------------


@router.get("/dashboard", response_model=DashboardPublic)
def get_dashboard(session: SessionDep, state: StateDep, user: Analyst) -> DashboardPublic:
    """Per-strategy and per-channel precision and recall with 95% intervals."""
    del user
    audit = dashboard.read_audit_metrics(state.settings.audit_dir)
    return DashboardPublic(
        strategies=[
            _metric(r) for r in dashboard.strategy_metrics(session, strategy_scopes(state.store))
        ],
        channels=[_metric(r) for r in dashboard.channel_metrics(session)],
        audit_metrics=dashboard.audit_metric_records(audit) if audit is not None else None,
    )


@router.get("/audit-log", response_model=list[AuditEventPublic])
def list_audit_log(
    session: SessionDep,
    user: Admin,
    target_type: str | None = None,
    target_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    before_id: RowId | None = None,
) -> list[AuditEventPublic]:
    """Audit log entries, newest first (read-only: there is no way to change them)."""
    del user
    found = audit_log.entries(
        session, target_type=target_type, target_id=target_id, limit=limit, before_id=before_id
    )
    return [AuditEventPublic.model_validate(e) for e in found]
