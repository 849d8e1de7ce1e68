"""JSON API of the review service under /api/review (bearer-token auth, role checks per route)."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status

from features.vocabulary import StrategyStatus
from governance.review import (
    approvals,
    audit_log,
    dashboard,
    escalations,
    labels,
    queue,
    service,
    users,
)
from governance.review.orm import Escalation
from governance.review.vocabulary import EscalationState, QueueFilter, Role, utcnow
from governance.strategy import Strategy
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
from serving.limits import Count, IsoDateTime, RowId, refuse_unknown_query
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

router = APIRouter(
    prefix="/api/review",
    tags=["review"],
    responses=REVIEW_RESPONSES,
    dependencies=[Depends(refuse_unknown_query)],
)


# -- conversions -----------------------------------------------------------------------------


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
    attempt = service.sign_in(
        session,
        state.throttle,
        username=body.username,
        password=body.password,
        client=client_address(request),
    )
    if attempt.retry_after_seconds > 0:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            throttle_message(attempt.retry_after_seconds),
            headers=retry_after_header(attempt.retry_after_seconds),
        )
    user = attempt.user
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown username or wrong password")
    token, secret = service.issue_token(
        session, user, name=body.name, ttl_days=body.ttl_days, settings=state.settings
    )
    return TokenIssued(
        token=secret,
        token_prefix=token.token_prefix,
        name=token.name,
        expires_at=token.expires_at,
        user=UserPublic.model_validate(user),
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
    return [TokenPublic.of(t) for t in users.tokens_of(session, owner)]


@router.delete(
    "/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "No such token of the caller's (admins: of anyone's)"}},
)
def revoke_token(token_id: RowId, session: SessionDep, user: AnyUser) -> Response:
    """Revoke an API token now: the caller's own, or anyone's for admins (safe to repeat)."""
    service.revoke_token(session, user, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", response_model=UserPublic)
def me(user: AnyUser) -> UserPublic:
    """The caller."""
    return UserPublic.model_validate(user)


@router.get("/users", response_model=list[UserPublic])
def list_users(session: SessionDep, admin: Admin) -> list[UserPublic]:
    """Every user."""
    del admin
    return [UserPublic.model_validate(u) for u in users.list_users(session)]


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserPublic)
def create_user(body: UserCreate, session: SessionDep, admin: Admin) -> UserPublic:
    """Create a user."""
    user = service.create_user(
        session,
        admin,
        username=body.username,
        role=body.role,
        password=body.password,
        display_name=body.display_name,
        team=body.team,
    )
    return UserPublic.model_validate(user)


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
    return [QueueItemPublic.model_validate(i) for i in items]


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
    result = service.claim_next(session, user, settings=state.settings)
    if result is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    return ClaimPublic(
        lease_id=result.lease.id,
        expires_at=result.lease.expires_at,
        resumed=result.resumed,
        item=QueueItemPublic.model_validate(result.item),
    )


@router.get("/queue/items/{item_pk}", response_model=QueueItemPublic)
def get_item(item_pk: RowId, session: SessionDep, user: AnyUser) -> QueueItemPublic:
    """One queue item."""
    return QueueItemPublic.model_validate(queue.get_item(session, user, item_pk))


@router.post("/queue/items/{item_pk}/release", response_model=QueueItemPublic)
def release_item(item_pk: RowId, session: SessionDep, user: Moderator) -> QueueItemPublic:
    """Give a held item back unjudged."""
    item = service.release(session, user, item_pk)
    return QueueItemPublic.model_validate(item)


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
    outcome = service.submit_verdict(
        session,
        user,
        item_pk,
        verdict=body.verdict,
        client_key=body.client_key,
        confidence=body.confidence,
        policy=body.policy.value if body.policy else None,
        note=body.note,
    )
    if not outcome.created:
        response.status_code = status.HTTP_200_OK
    return VerdictPublic.model_validate(outcome.verdict)


@router.post("/queue/flags", response_model=IngestReportPublic)
def ingest_flags(
    body: FlagsIngest, session: SessionDep, state: StateDep, user: Engineer
) -> IngestReportPublic:
    """Queue flags (rows of flags.parquet), de-duplicated by (entity, item_id, policy)."""
    if len(body.rows) > state.settings.max_ingest_rows:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"{len(body.rows)} rows; send at most {state.settings.max_ingest_rows} per call or "
            "use `govrisk queue load`",
        )
    df = pd.DataFrame([r.as_flags_row() for r in body.rows])
    report = service.ingest_flags(session, user, df, source=body.source)
    return IngestReportPublic.model_validate(report)


@router.get("/labels", response_model=list[AuditLabelPublic])
def list_labels(
    session: SessionDep, user: Analyst, since: IsoDateTime | None = None
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
    now = service.flag_breaches(session)
    found = escalations.list_for(session, user, states=tuple(state) if state else None)
    return [EscalationPublic.of(e, now=now) for e in found]


@router.post("/escalations", status_code=status.HTTP_201_CREATED, response_model=EscalationPublic)
def create_escalation(
    body: EscalationCreate, session: SessionDep, app_state: StateDep, user: AnyUser
) -> EscalationPublic:
    """Raise a case about an item (it leaves the queue until resolved) or a strategy."""
    escalation = service.open_escalation(
        session,
        user,
        settings=app_state.settings,
        kind=body.kind,
        title=body.title,
        priority=body.priority,
        description=body.description,
        queue_item_id=body.queue_item_id,
        strategy_id=body.strategy_id,
    )
    return EscalationPublic.of(escalation, now=utcnow())


def _detail(session: SessionDep, escalation: Escalation) -> EscalationDetail:
    history = escalations.case_history(session, escalation)
    return EscalationDetail(
        escalation=EscalationPublic.of(escalation, now=utcnow()),
        history=[CaseEntryPublic.model_validate(e) for e in history],
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
    escalation = service.transition_escalation(
        session,
        user,
        escalation_id,
        to_state=body.to_state,
        assignee_id=body.assignee_id,
        resolution=body.resolution,
    )
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
    service.comment_escalation(session, user, escalation_id, body.body)
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
    note = service.mark_read(session, user, notification_id)
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
    df = pd.DataFrame([r.model_dump() for r in body.rows])
    report = service.ingest_suggestions(session, user, df, source=body.source)
    return SuggestionIngestPublic.model_validate(report)


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
    decision = service.decide_suggestion(
        session,
        user,
        suggestion_pk,
        accept=body.decision == "accept",
        reason=body.reason,
        store=state.store,
    )
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
    service.set_version_status(
        session,
        user,
        strategy_id,
        version,
        status=StrategyStatus(body.status),
        store=state.store,
    )
    return [version_public(s) for s in state.store.versions(strategy_id)]


# -- dashboard and audit log -----------------------------------------------------------------


@router.get("/dashboard", response_model=DashboardPublic)
def get_dashboard(session: SessionDep, state: StateDep, user: Analyst) -> DashboardPublic:
    """Per-strategy and per-channel precision and recall with 95% intervals."""
    del user
    audit = dashboard.read_audit_metrics(state.settings.audit_dir)
    return DashboardPublic(
        strategies=[
            MetricPublic.model_validate(r)
            for r in dashboard.strategy_metrics(session, state.store.scopes())
        ],
        channels=[MetricPublic.model_validate(r) for r in dashboard.channel_metrics(session)],
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
