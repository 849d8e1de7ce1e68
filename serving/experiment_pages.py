"""Pages of strategy experiments: the list, one experiment's decision page, ship and stop.

Kept apart from serving/pages.py; it reuses that module's renderer and the same role rules:
PMs, ML engineers and admins read; PMs and admins ship or stop, with a reason that goes to the
audit log.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from governance.experiments import store
from governance.review import service
from governance.review.vocabulary import Role
from serving.deps import CsrfChecked, PageAnalyst, PageManager, SessionDep, StateDep
from serving.experiment_charts import history_chart, lift_chart
from serving.limits import RowId
from serving.pages import Text, flash, render

router = APIRouter(include_in_schema=False)


@router.get("/experiments")
def experiments_page(request: Request, session: SessionDep, user: PageAnalyst) -> HTMLResponse:
    """Every experiment with its status and latest recommendation."""
    return render(
        request,
        "experiments.html",
        user,
        session=session,
        experiments=store.list_experiments(session),
    )


@router.get("/experiments/{experiment_id}")
def experiment_page(
    request: Request, experiment_id: str, session: SessionDep, user: PageAnalyst
) -> HTMLResponse:
    """Arms, effects with intervals, SRM, guardrail verdicts, recommendation, ship / stop."""
    record = service.get_experiment(session, experiment_id)
    summary = record.last_analysis
    metrics = [summary["primary"], *summary["guardrails"]] if summary else []
    return render(
        request,
        "experiment.html",
        user,
        session=session,
        e=record,
        summary=summary,
        metrics=metrics,
        lifts=lift_chart(metrics, title="Relative lift, treatment vs control") if metrics else "",
        history=history_chart(
            summary.get("history", []) if summary else [],
            title=f"{record.primary_metric}: lift at each analysis",
        ),
        can_decide=user.role in (Role.PM, Role.ADMIN),
        is_running=record.status.value == "running",
    )


@router.post("/suggestions/{suggestion_pk}/experiment")
def experiment_suggestion_page(
    request: Request,
    suggestion_pk: RowId,
    session: SessionDep,
    state: StateDep,
    user: PageManager,
    _csrf: CsrfChecked,
) -> Response:
    """Experiment this: run the accepted suggestion's shadow version against the active one."""
    record = service.experiment_suggestion(session, user, suggestion_pk, store=state.store)
    flash(request, f"Experiment {record.experiment_id} started: {record.treatment} on 50%.", "ok")
    return RedirectResponse(f"/experiments/{record.experiment_id}", status_code=303)


@router.post("/experiments/{experiment_id}/ship")
def ship_page(
    request: Request,
    experiment_id: str,
    session: SessionDep,
    state: StateDep,
    user: PageManager,
    _csrf: CsrfChecked,
    reason: Text,
) -> Response:
    """Promote the treatment version to active and mark the experiment shipped."""
    record = service.ship_experiment(session, user, experiment_id, reason=reason, store=state.store)
    flash(request, f"Shipped: {record.treatment} is now active.", "ok")
    return RedirectResponse(f"/experiments/{experiment_id}", status_code=303)


@router.post("/experiments/{experiment_id}/stop")
def stop_page(
    request: Request,
    experiment_id: str,
    session: SessionDep,
    user: PageManager,
    _csrf: CsrfChecked,
    reason: Text,
) -> Response:
    """Stop the experiment; the control version stays active."""
    service.stop_experiment(session, user, experiment_id, reason=reason)
    flash(request, "Experiment stopped.", "ok")
    return RedirectResponse(f"/experiments/{experiment_id}", status_code=303)
