"""Server-rendered pages of the review service: queue, item, escalations, dashboard, approvals.

Pages sign in with a session cookie; every form posts a CSRF token. Role checks use the same
rules as the JSON API. Charts are inline SVG rendered here; the only script is the keyboard
shortcut helper in /static/review.js.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

import sqlalchemy as sa
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import TypeAdapter, ValidationError

from features.vocabulary import StrategyStatus
from governance.review import (
    approvals,
    audit_log,
    compare,
    dashboard,
    escalations,
    item_view,
    policy_guide,
    queue,
    service,
    users,
)
from governance.review.errors import InvalidInputError, NotFoundError
from governance.review.orm import User
from governance.review.vocabulary import (
    Confidence,
    EscalationKind,
    EscalationPriority,
    EscalationState,
    QueueFilter,
    QueueStatus,
    Role,
    utcnow,
)
from governance.strategy import StrategyError
from serving.deps import (
    CsrfChecked,
    PageAdmin,
    PageAnalyst,
    PageAnyUser,
    PageManager,
    PageModerator,
    ReviewState,
    SessionDep,
    StateDep,
    client_address,
    csrf_token,
    retry_after_header,
    start_page_session,
    throttle_message,
)
from serving.limits import RowId, parse_row_id
from serving.review_charts import (
    IntervalPoint,
    contribution_chart,
    interval_chart,
    sparkline,
    trend_chart,
)
from serving.schemas_review import (
    AlertEscalationCreate,
    AssignTransition,
    CommentCreate,
    EscalationCreate,
    EscalationPublic,
    EscalationTransition,
    ItemEscalationCreate,
    OtherTransition,
    ResolveTransition,
    StatusChange,
    StrategyEscalationCreate,
    SuggestionDecisionCreate,
    VerdictCreate,
)

router = APIRouter(include_in_schema=False)
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
_HOME = {
    Role.MODERATOR: "/queue",
    Role.PM: "/suggestions",
    Role.ML_ENGINEER: "/dashboard",
    Role.ADMIN: "/queue",
}
#: A form field.
Text = Annotated[str, Form()]


@lru_cache(maxsize=1)
def templates() -> Jinja2Templates:
    """The Jinja2 environment of the pages (autoescaping on)."""
    env = Jinja2Templates(directory=TEMPLATES_DIR)
    env.env.filters["pct"] = lambda v: "–" if v is None else f"{v:.0%}"
    env.env.filters["num"] = lambda v: "–" if v is None else f"{v:,.0f}"
    env.env.filters["dt"] = _time_element
    env.env.filters["ci"] = lambda e: (
        "–" if e.low is None or e.high is None else f"{e.low:.0%} – {e.high:.0%}"
    )
    return env


def _time_element(value: datetime | None) -> Markup | str:
    """A UTC time for people: `<time>` with its ISO instant, which review.js adds local time to."""
    if value is None:
        return "–"
    utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return Markup(
        f'<time datetime="{utc.isoformat().replace("+00:00", "Z")}">{utc:%Y-%m-%d %H:%M} UTC</time>'
    )


_Form = TypeVar("_Form")
#: Page forms are validated with the API's schemas, so both refuse the same input.
VERDICT_FORM = TypeAdapter(VerdictCreate)
ESCALATION_FORM: TypeAdapter[
    ItemEscalationCreate | StrategyEscalationCreate | AlertEscalationCreate
] = TypeAdapter(EscalationCreate)
TRANSITION_FORM: TypeAdapter[AssignTransition | ResolveTransition | OtherTransition] = TypeAdapter(
    EscalationTransition
)
COMMENT_FORM = TypeAdapter(CommentCreate)
DECISION_FORM = TypeAdapter(SuggestionDecisionCreate)
STATUS_FORM = TypeAdapter(StatusChange)


def parse_form(schema: TypeAdapter[_Form], **fields: object) -> _Form:
    """A page form validated by the API's schema; invalid input is a 422 naming the field."""
    try:
        return schema.validate_python(fields)
    except ValidationError as err:
        first = err.errors(include_url=False, include_input=False)[0]
        # Forms are flat; a tagged union puts its tag first ("assigned", "assignee_id").
        field = str(first["loc"][-1]) if first["loc"] else "form"
        raise InvalidInputError(f"{field}: {first['msg']}") from err


def flash(request: Request, message: str, kind: str = "info") -> None:
    """A message shown once on the next page rendered (kind: info, ok, error)."""
    request.session.setdefault("flash", []).append([kind, message])


def render(
    request: Request,
    name: str,
    user: User | None,
    *,
    status_code: int = 200,
    session: Any = None,
    **context: Any,
) -> HTMLResponse:
    """Render a page with the layout's shared context (user, CSRF token, flash, unread count)."""
    unread = escalations.unread_count(session, user) if session is not None and user else 0
    return templates().TemplateResponse(
        request,
        name,
        {
            "user": user,
            "csrf_token": csrf_token(request),
            "flashes": request.session.pop("flash", []),
            "unread": unread,
            "Role": Role,
            **context,
        },
        status_code=status_code,
    )


def render_error(request: Request, status_code: int, message: str) -> Response:
    """The error page (used by the app's exception handlers)."""
    return render(
        request, "error.html", None, status_code=status_code, code=status_code, message=message
    )


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths may be redirect targets after login."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return ""
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else ""


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


# -- sign in ---------------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, next: str = "") -> HTMLResponse:
    """The sign-in form."""
    return render(request, "login.html", None, next=_safe_next(next))


@router.post("/login")
def login(
    request: Request,
    state: StateDep,
    session: SessionDep,
    _csrf: CsrfChecked,
    username: Text,
    password: Text,
    next: Text = "",
) -> Response:
    """Check the password and start a signed session (a fresh CSRF token too).

    After too many failures for the username or the address, answers 429 without checking.
    """
    attempt = service.sign_in(
        session,
        state.throttle,
        username=username,
        password=password,
        client=client_address(request),
    )
    if attempt.retry_after_seconds > 0:
        refused = render(
            request,
            "login.html",
            None,
            status_code=429,
            next=_safe_next(next),
            error=throttle_message(attempt.retry_after_seconds),
        )
        refused.headers.update(retry_after_header(attempt.retry_after_seconds))
        return refused
    user = attempt.user
    if user is None:
        return render(
            request,
            "login.html",
            None,
            status_code=401,
            next=_safe_next(next),
            error="Unknown username or wrong password.",
        )
    start_page_session(request, user)
    return _redirect(_safe_next(next) or _HOME[user.role])


@router.post("/logout")
def logout(
    request: Request, session: SessionDep, user: PageAnyUser, _csrf: CsrfChecked
) -> Response:
    """End the user's page sessions on every browser (a copied cookie stops working too)."""
    service.end_sessions(session, user)
    request.session.clear()
    return _redirect("/login")


@router.get("/")
def home(user: PageAnyUser) -> Response:
    """Each role's start page."""
    return _redirect(_HOME[user.role])


# -- queue -----------------------------------------------------------------------------------


@router.get("/queue")
def queue_page(
    request: Request,
    session: SessionDep,
    user: PageAnyUser,
    status: QueueFilter = QueueFilter.PENDING,
    policy: str = "",
) -> HTMLResponse:
    """The moderator queue: counts, the caller's held item and the next items by priority."""
    items = queue.list_items(session, user, status=status.status, policy=policy or None, limit=100)
    now = utcnow()
    held = [
        i
        for i in items
        if i.leased_by_id == user.id and i.lease_expires_at and i.lease_expires_at > now
    ]
    return render(
        request,
        "queue.html",
        user,
        session=session,
        items=items,
        verdicts=queue.verdicts_by_item(session, items),
        held=held,
        stats=queue.queue_stats(session, user, now=now),
        status=status,
        queue_filters=list(QueueFilter),
        policy=policy,
        now=now,
        can_judge=user.role in (Role.MODERATOR, Role.ADMIN),
    )


@router.post("/queue/claim")
def claim_page(
    request: Request, session: SessionDep, state: StateDep, user: PageModerator, _csrf: CsrfChecked
) -> Response:
    """Lease the next item and open it."""
    claim = service.claim_next(session, user, settings=state.settings)
    if claim is None:
        flash(request, "Nothing to claim: the queue is empty for your teams.")
        return _redirect("/queue")
    return _redirect(f"/queue/items/{claim.item.id}")


@router.get("/queue/items/{item_pk}")
def item_page(
    request: Request, item_pk: RowId, session: SessionDep, state: StateDep, user: PageAnyUser
) -> HTMLResponse:
    """One item: reasons, strategy hits, exposure, history and the verdict form."""
    item = queue.get_item(session, user, item_pk)
    reasons = item_view.reasons_in_words(item.reasons, item.entity)
    shown = reasons.raised + reasons.lowered
    chart = contribution_chart(
        [(r.label, r.contribution) for r in shown],
        title="Push on the risk score (log-odds): red raised it, blue lowered it",
    )
    now = utcnow()
    holds = item.leased_by_id == user.id and item.status == QueueStatus.PENDING
    leased = item.leased_by is not None and (item.lease_expires_at or now) > now
    return render(
        request,
        "item.html",
        user,
        session=session,
        item=item,
        view=item_view.load_item_view(
            state.settings.resolved_marketplace_dir(),
            item.entity,
            item.item_id,
            item_view.model_phrases(item.reasons),
        ),
        guide=policy_guide.guide_for(item.policy),
        reasons=reasons,
        chart=chart if shown else None,
        verdict=queue.verdict_for(session, item),
        history=queue.item_history(session, item),
        holds=holds,
        lease_holder=item.leased_by.username if leased and item.leased_by else None,
        lease_live=holds and item.lease_expires_at is not None and item.lease_expires_at > now,
        client_key=uuid.uuid4().hex,
        confidences=list(Confidence),
        priorities=list(EscalationPriority),
        can_judge=user.role in (Role.MODERATOR, Role.ADMIN),
        analyst=user.role != Role.MODERATOR,
    )


@router.post("/queue/items/{item_pk}/verdict")
def verdict_page(
    request: Request,
    item_pk: RowId,
    session: SessionDep,
    state: StateDep,
    user: PageModerator,
    _csrf: CsrfChecked,
    verdict: Text,
    client_key: Text,
    confidence: Text = Confidence.HIGH.value,
    note: Text = "",
) -> Response:
    """Record the verdict, then claim and open the next item."""
    body = parse_form(
        VERDICT_FORM, verdict=verdict, client_key=client_key, confidence=confidence, note=note
    )
    outcome = service.submit_verdict(
        session,
        user,
        item_pk,
        verdict=body.verdict,
        client_key=body.client_key,
        confidence=body.confidence,
        note=body.note,
    )
    label = body.verdict.value.replace("_", " ")
    flash(request, f"Item {outcome.verdict.queue_item_id} judged {label}.", "ok")
    claim = service.claim_next(session, user, settings=state.settings)
    if claim is None:
        flash(request, "That was the last item for your teams.")
        return _redirect("/queue")
    return _redirect(f"/queue/items/{claim.item.id}")


@router.post("/queue/items/{item_pk}/release")
def release_page(
    request: Request, item_pk: RowId, session: SessionDep, user: PageModerator, _csrf: CsrfChecked
) -> Response:
    """Give the item back unjudged."""
    service.release(session, user, item_pk)
    flash(request, f"Item {item_pk} released back to the queue.")
    return _redirect("/queue")


@router.post("/queue/items/{item_pk}/escalate")
def escalate_item_page(
    request: Request,
    item_pk: RowId,
    session: SessionDep,
    state: StateDep,
    user: PageAnyUser,
    _csrf: CsrfChecked,
    title: Text,
    priority: Text = EscalationPriority.MEDIUM.value,
    description: Text = "",
) -> Response:
    """Escalate the item; it leaves the queue until the case is resolved."""
    return _open_escalation(
        request,
        session,
        state,
        user,
        kind=EscalationKind.ITEM.value,
        title=title,
        priority=priority,
        description=description,
        queue_item_id=item_pk,
    )


def _open_escalation(
    request: Request, session: sa.orm.Session, state: ReviewState, user: User, **fields: object
) -> Response:
    """Open a case (validated as the API's `EscalationCreate`) with the configured SLAs."""
    body = parse_form(ESCALATION_FORM, **fields)
    escalation = service.open_escalation(
        session,
        user,
        settings=state.settings,
        kind=body.kind,
        title=body.title,
        priority=body.priority,
        description=body.description,
        queue_item_id=body.queue_item_id,
        strategy_id=body.strategy_id,
    )
    flash(request, f"Escalation #{escalation.id} opened.", "ok")
    return _redirect(f"/escalations/{escalation.id}")


# -- escalations -----------------------------------------------------------------------------


@router.get("/escalations")
def escalations_page(
    request: Request, session: SessionDep, state: StateDep, user: PageAnyUser
) -> HTMLResponse:
    """The escalations board: one column per state, breached SLAs marked."""
    now = service.flag_breaches(session)
    cases = [EscalationPublic.of(e, now=now) for e in escalations.list_for(session, user)]
    columns = {s: [c for c in cases if c.state == s] for s in EscalationState}
    return render(
        request,
        "escalations.html",
        user,
        session=session,
        columns=columns,
        priorities=list(EscalationPriority),
        strategy_ids=sorted(state.store.scopes()),
    )


@router.post("/escalations")
def create_strategy_escalation_page(
    request: Request,
    session: SessionDep,
    state: StateDep,
    user: PageAnyUser,
    _csrf: CsrfChecked,
    title: Text,
    strategy_id: Text,
    priority: Text = EscalationPriority.MEDIUM.value,
    description: Text = "",
) -> Response:
    """Raise a case about a strategy."""
    return _open_escalation(
        request,
        session,
        state,
        user,
        kind=EscalationKind.STRATEGY.value,
        title=title,
        priority=priority,
        description=description,
        strategy_id=strategy_id,
    )


@router.get("/escalations/{escalation_id}")
def escalation_page(
    request: Request, escalation_id: RowId, session: SessionDep, user: PageAnyUser
) -> HTMLResponse:
    """One case: details, allowed moves, history and comments."""
    escalation = escalations.get(session, user, escalation_id)
    return render(
        request,
        "escalation.html",
        user,
        session=session,
        case=EscalationPublic.of(escalation, now=utcnow()),
        history=escalations.case_history(session, escalation),
        moves=escalations.allowed_moves(user, escalation),
        can_act=escalations.can_act(user, escalation),
        assignable=users.list_users(session, active_only=True),
    )


@router.post("/escalations/{escalation_id}/transition")
def transition_page(
    request: Request,
    escalation_id: RowId,
    session: SessionDep,
    user: PageAnyUser,
    _csrf: CsrfChecked,
    to_state: Text,
    assignee_id: Text = "",
    resolution: Text = "",
) -> Response:
    """Move the case."""
    move = parse_form(
        TRANSITION_FORM,
        to_state=to_state,
        assignee_id=parse_row_id(assignee_id),
        resolution=resolution or None,
    )
    service.transition_escalation(
        session,
        user,
        escalation_id,
        to_state=move.to_state,
        assignee_id=move.assignee_id,
        resolution=move.resolution,
    )
    flash(request, f"Escalation #{escalation_id} is now {to_state.replace('_', ' ')}.", "ok")
    return _redirect(f"/escalations/{escalation_id}")


@router.post("/escalations/{escalation_id}/comments")
def comment_page(
    request: Request,
    escalation_id: RowId,
    session: SessionDep,
    user: PageAnyUser,
    _csrf: CsrfChecked,
    body: Text,
) -> Response:
    """Comment on the case."""
    del request
    comment = parse_form(COMMENT_FORM, body=body)
    service.comment_escalation(session, user, escalation_id, comment.body)
    return _redirect(f"/escalations/{escalation_id}")


@router.get("/notifications")
def notifications_page(request: Request, session: SessionDep, user: PageAnyUser) -> HTMLResponse:
    """The caller's notifications, e.g. resolutions of cases they raised."""
    return render(
        request,
        "notifications.html",
        user,
        session=session,
        notes=escalations.notifications_for(session, user),
    )


@router.post("/notifications/{notification_id}/read")
def read_notification_page(
    request: Request,
    notification_id: RowId,
    session: SessionDep,
    user: PageAnyUser,
    _csrf: CsrfChecked,
) -> Response:
    """Mark a notification read."""
    del request
    service.mark_read(session, user, notification_id)
    return _redirect("/notifications")


# -- strategies, dashboard, approvals --------------------------------------------------------


@router.get("/dashboard")
def dashboard_page(
    request: Request, session: SessionDep, state: StateDep, user: PageAnalyst
) -> HTMLResponse:
    """Per-strategy and per-channel precision / recall with intervals, error cost and trends."""
    strategies = dashboard.strategy_metrics(session, state.store.scopes())
    channels = dashboard.channel_metrics(session)

    def chart(rows: list[dashboard.MetricRow], which: str, title: str) -> Any:
        points = []
        for row in rows:
            est = row.precision if which == "precision" else row.recall
            points.append(
                IntervalPoint(row.key, est.value, est.low, est.high, f" (n={est.n_labels})")
            )
        return interval_chart(
            points,
            title=title,
            empty="no random-audit verdicts yet: load flags (govrisk queue load) and judge "
            "random-audit items",
        )

    trend = dashboard.weekly_trend(session, now=utcnow())
    audit = dashboard.read_audit_metrics(state.settings.audit_dir)
    return render(
        request,
        "dashboard.html",
        user,
        session=session,
        strategies=strategies,
        channels=channels,
        charts=[
            chart(strategies, "precision", "Precision per strategy (random audit, 95% CI)"),
            chart(strategies, "recall", "Recall per strategy (random audit, 95% CI)"),
            chart(channels, "precision", "Precision per channel (all strategies)"),
            chart(channels, "recall", "Recall per channel (all strategies)"),
        ],
        trend=trend_chart(
            [(p.week.strftime("%m-%d"), p.violating_share, p.n_verdicts) for p in trend],
            title="Share of verdicts violating, per week",
        ),
        audit_rows=dashboard.audit_rows(audit) if audit is not None else None,
        sparks={
            ref: sparkline(counts, title=f"{ref}: strategy decisions per week, last 8 weeks")
            for ref, counts in dashboard.weekly_hits(
                state.settings.resolved_marketplace_dir()
            ).items()
        },
        pinned_width=dashboard.pinned_max_width(),
        audit_dir=state.settings.audit_dir,
    )


@router.get("/suggestions")
def suggestions_page(request: Request, session: SessionDep, user: PageAnalyst) -> HTMLResponse:
    """Suggested strategy changes by rank, with projected effects."""
    return render(
        request,
        "suggestions.html",
        user,
        session=session,
        suggestions=approvals.list_suggestions(session),
    )


@router.get("/suggestions/{suggestion_pk}")
def suggestion_page(
    request: Request, suggestion_pk: RowId, session: SessionDep, state: StateDep, user: PageAnalyst
) -> HTMLResponse:
    """One suggestion: effect with intervals, evidence, YAML diff and the decision form."""
    suggestion = approvals.get_suggestion(session, suggestion_pk)
    try:
        diff = approvals.proposed_diff(suggestion, state.store)
    except StrategyError as err:
        diff = f"(cannot read the base version: {err})"
    return render(
        request,
        "suggestion.html",
        user,
        session=session,
        s=suggestion,
        diff=diff,
        decision=approvals.decision_for(session, suggestion),
        can_decide=user.role in (Role.PM, Role.ADMIN),
    )


@router.post("/suggestions/{suggestion_pk}/decision")
def decide_page(
    request: Request,
    suggestion_pk: RowId,
    session: SessionDep,
    state: StateDep,
    user: PageManager,
    _csrf: CsrfChecked,
    decision: Text,
    reason: Text,
) -> Response:
    """Accept (writes a shadow version) or reject the suggestion."""
    body = parse_form(DECISION_FORM, decision=decision, reason=reason)
    record = service.decide_suggestion(
        session,
        user,
        suggestion_pk,
        accept=body.decision == "accept",
        reason=body.reason,
        store=state.store,
    )
    version = record.strategy_version
    if version is not None:
        flash(
            request,
            f"Accepted: {version.strategy_id}@v{version.version} written in shadow status.",
            "ok",
        )
        return _redirect(f"/strategies?highlight={version.strategy_id}@v{version.version}")
    flash(request, "Suggestion rejected.", "ok")
    return _redirect("/suggestions")


@router.get("/strategies")
def strategies_page(
    request: Request, session: SessionDep, state: StateDep, user: PageAnalyst, highlight: str = ""
) -> HTMLResponse:
    """Every strategy version and its status; PMs promote shadow versions here."""
    try:
        versions = state.store.all()
        problem = ""
    except StrategyError as err:
        versions, problem = [], str(err)
    return render(
        request,
        "strategies.html",
        user,
        session=session,
        versions=versions,
        records=approvals.version_records(session),
        problem=problem,
        highlight=highlight,
        can_promote=user.role in (Role.PM, Role.ADMIN),
        Status=StrategyStatus,
    )


@router.get("/strategies/{strategy_id}/compare")
def compare_page(
    request: Request,
    strategy_id: str,
    session: SessionDep,
    state: StateDep,
    user: PageAnalyst,
    a: int | None = None,
    b: int | None = None,
) -> HTMLResponse:
    """Two versions side by side: what each acts on per channel, errors, overlap."""
    versions = state.store.versions(strategy_id)
    if not versions:
        raise NotFoundError(f"strategy {strategy_id!r} is not in {state.store.directory}")
    first, second = compare.default_pair(versions)
    version_a = state.store.get(strategy_id, a if a is not None else first.version)
    version_b = state.store.get(strategy_id, b if b is not None else second.version)
    result = compare.compare_versions(
        version_a,
        version_b,
        frame=compare.read_frame(state.settings.features_dir, version_a.entity.value),
        metrics=dashboard.read_audit_metrics(state.settings.audit_dir),
        suggestion=approvals.suggestion_behind(session, strategy_id, version_b.version),
        others=state.store.registry().active(entity=version_a.entity),
    )
    return render(
        request,
        "compare.html",
        user,
        session=session,
        c=result,
        versions=versions,
        can_promote=user.role in (Role.PM, Role.ADMIN),
        Status=StrategyStatus,
    )


@router.post("/strategies/{strategy_id}/versions/{version}/status")
def version_status_page(
    request: Request,
    strategy_id: str,
    version: RowId,
    session: SessionDep,
    state: StateDep,
    user: PageManager,
    _csrf: CsrfChecked,
    status: Text,
) -> Response:
    """Promote a shadow version (retiring the active one) or retire a version."""
    change = parse_form(STATUS_FORM, status=status)
    service.set_version_status(
        session, user, strategy_id, version, status=StrategyStatus(change.status), store=state.store
    )
    flash(request, f"{strategy_id}@v{version} is now {status}.", "ok")
    return _redirect(f"/strategies?highlight={strategy_id}@v{version}")


@router.get("/audit-log")
def audit_log_page(
    request: Request, session: SessionDep, user: PageAdmin, before_id: RowId | None = None
) -> HTMLResponse:
    """The audit log, newest first."""
    return render(
        request,
        "audit_log.html",
        user,
        session=session,
        entries=audit_log.entries(session, limit=100, before_id=before_id),
    )
