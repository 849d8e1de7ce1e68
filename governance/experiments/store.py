"""Experiments in the review database: the use cases the CLI and the pages call.

Each use case changes one experiment, appends its audit-log entry and leaves the commit to the
caller's unit of work (`governance.review.service.unit_of_work`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from governance.experiments.analysis import ExperimentAnalysis, MetricResult
from governance.experiments.declaration import (
    Experiment,
    Guardrail,
    check_against_registry,
    dump_experiment,
    parse_experiment,
)
from governance.experiments.label_effects import ErrorRateEffect
from governance.experiments.vocabulary import ExperimentStatus
from governance.review import audit_log
from governance.review.orm import ExperimentRecord, User
from governance.review.vocabulary import utcnow

if TYPE_CHECKING:
    from governance.registry import StrategyRegistry

#: Status changes a person may make; anything else is a conflict.
TRANSITIONS: dict[ExperimentStatus, frozenset[ExperimentStatus]] = {
    ExperimentStatus.DRAFT: frozenset({ExperimentStatus.RUNNING, ExperimentStatus.STOPPED}),
    ExperimentStatus.RUNNING: frozenset({ExperimentStatus.STOPPED, ExperimentStatus.SHIPPED}),
    ExperimentStatus.STOPPED: frozenset(),
    ExperimentStatus.SHIPPED: frozenset(),
}
_TARGET = "experiment"


class ExperimentNotFoundError(KeyError):
    """No experiment with that id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "experiment not found"


class ExperimentStateError(ValueError):
    """The experiment's status does not allow the change asked for."""


def create_experiment(
    session: Session,
    experiment: Experiment,
    *,
    registry: StrategyRegistry,
    actor: User | None,
    status: ExperimentStatus = ExperimentStatus.RUNNING,
) -> ExperimentRecord:
    """Check the declaration against the registry and store it; ValueError if the id exists."""
    check_against_registry(experiment, registry)
    existing = session.scalar(
        sa.select(ExperimentRecord).where(ExperimentRecord.experiment_id == experiment.id)
    )
    if existing is not None:
        raise ExperimentStateError(
            f"experiment {experiment.id!r} already exists ({existing.status.value}); "
            "choose another id"
        )
    now = utcnow()
    record = ExperimentRecord(
        experiment_id=experiment.id,
        name=experiment.name,
        owner=experiment.owner,
        control=experiment.control,
        treatment=experiment.treatment,
        unit=experiment.unit,
        traffic_share=experiment.traffic_share,
        start=experiment.start,
        end=experiment.end,
        primary_metric=experiment.primary_metric,
        definition_yaml=dump_experiment(experiment),
        status=status,
        last_analysis={},
        created_by_id=actor.id if actor is not None else None,
        created_at=now,
        updated_at=now,
    )
    session.add(record)
    session.flush()
    audit_log.record(
        session,
        actor=actor,
        action="experiment.create",
        target_type=_TARGET,
        target_id=experiment.id,
        after={
            "status": status.value,
            "control": experiment.control,
            "treatment": experiment.treatment,
        },
        now=now,
    )
    return record


#: Guardrails of an experiment proposed from a suggestion: buyers' trust and GMV.
DEFAULT_GUARDRAILS: tuple[tuple[str, float], ...] = (
    ("complaint_rate", 0.05),
    ("nps", 0.02),
    ("gmv", 0.02),
)


def propose_experiment(
    session: Session,
    treatment_ref: str,
    *,
    registry: StrategyRegistry,
    actor: User | None,
    days: int = 14,
    now: datetime | None = None,
) -> ExperimentRecord:
    """Start an experiment of a candidate version against its strategy's active version.

    Defaults: seller randomisation, 50% of units, from now for `days` days, impressions as the
    primary metric (what a strategy takes or gives back), complaint rate, NPS and GMV as
    guardrails. The id is `<strategy id>-v<version>` (a second experiment of it is refused).
    """
    from datetime import timedelta

    candidate = registry.get(treatment_ref)
    control = next((s for s in registry.active() if s.id == candidate.id), None)
    if control is None:
        raise ExperimentStateError(
            f"{candidate.id} has no active version to compare {candidate.ref} with"
        )
    start = (now or utcnow()).replace(microsecond=0)
    experiment = Experiment(
        id=f"{candidate.id}-v{candidate.version}"[:80].rstrip("-"),
        name=f"{candidate.name} (v{candidate.version} vs v{control.version})",
        owner=candidate.owner,
        hypothesis=candidate.notes or "",
        control=control.ref,
        treatment=candidate.ref,
        start=start,
        end=start + timedelta(days=days),
        primary_metric="impressions",
        guardrails=tuple(Guardrail(metric=m, margin=g) for m, g in DEFAULT_GUARDRAILS),
        mde=0.05,
    )
    return create_experiment(session, experiment, registry=registry, actor=actor)


def list_experiments(
    session: Session, *, status: ExperimentStatus | None = None
) -> list[ExperimentRecord]:
    """Experiments, newest first, optionally of one status."""
    query = sa.select(ExperimentRecord).order_by(ExperimentRecord.id.desc())
    if status is not None:
        query = query.where(ExperimentRecord.status == status)
    return list(session.scalars(query))


def get_experiment(session: Session, experiment_id: str) -> ExperimentRecord:
    """One experiment by its id; ExperimentNotFoundError otherwise."""
    record = session.scalar(
        sa.select(ExperimentRecord).where(ExperimentRecord.experiment_id == experiment_id)
    )
    if record is None:
        raise ExperimentNotFoundError(
            f"no experiment {experiment_id!r}; `govrisk experiments list` shows them"
        )
    return record


def declaration(record: ExperimentRecord) -> Experiment:
    """The stored declaration."""
    return parse_experiment(record.definition_yaml, source=f"experiment {record.experiment_id}")


def _transition(
    session: Session,
    record: ExperimentRecord,
    to: ExperimentStatus,
    *,
    actor: User | None,
    action: str,
    reason: str,
) -> ExperimentRecord:
    if to not in TRANSITIONS[record.status]:
        raise ExperimentStateError(
            f"experiment {record.experiment_id!r} is {record.status.value}; it cannot become "
            f"{to.value}"
        )
    before = record.status
    now = utcnow()
    record.status = to
    record.stop_reason = reason
    record.updated_at = now
    record.stopped_at = now
    audit_log.record(
        session,
        actor=actor,
        action=action,
        target_type=_TARGET,
        target_id=record.experiment_id,
        before={"status": before.value},
        after={"status": to.value, "reason": reason},
        now=now,
    )
    return record


def stop_experiment(
    session: Session, experiment_id: str, *, reason: str, actor: User | None
) -> ExperimentRecord:
    """Stop a draft or running experiment: the control version stays; reason required."""
    if not reason.strip():
        raise ValueError("give a reason for stopping the experiment")
    record = get_experiment(session, experiment_id)
    return _transition(
        session,
        record,
        ExperimentStatus.STOPPED,
        actor=actor,
        action="experiment.stop",
        reason=reason,
    )


def ship_experiment(
    session: Session,
    experiment_id: str,
    *,
    reason: str,
    registry: StrategyRegistry,
    actor: User | None,
) -> ExperimentRecord:
    """Promote the treatment version to active (retiring the control) and mark it shipped."""
    if not reason.strip():
        raise ValueError("give a reason for shipping the treatment")
    record = get_experiment(session, experiment_id)
    if ExperimentStatus.SHIPPED not in TRANSITIONS[record.status]:
        raise ExperimentStateError(
            f"experiment {experiment_id!r} is {record.status.value}; only a running experiment "
            "can ship"
        )
    registry.set_status(record.treatment, "active")
    return _transition(
        session,
        record,
        ExperimentStatus.SHIPPED,
        actor=actor,
        action="experiment.ship",
        reason=reason,
    )


def record_analysis(
    session: Session,
    experiment_id: str,
    analysis: ExperimentAnalysis,
    *,
    actor: User | None,
    channels: Mapping[str, MetricResult] | None = None,
    errors: Mapping[str, ErrorRateEffect] | None = None,
    now: datetime | None = None,
) -> ExperimentRecord:
    """Keep the latest analysis on the experiment (and its recommendation in the audit log).

    `channels` is the optional per-channel breakdown of the primary metric, `errors` the FP /
    FN rates per arm from the audit labels.
    """
    record = get_experiment(session, experiment_id)
    now = now or utcnow()
    summary = analysis_summary(analysis)
    summary["channels"] = {c: metric_summary(r) for c, r in (channels or {}).items()}
    summary["errors"] = {k: error_summary(e) for k, e in (errors or {}).items()}
    history = list(record.last_analysis.get("history", []))
    history.append(
        {
            "at": now.isoformat(),
            "lift": summary["primary"]["lift"],
            "lift_low": summary["primary"]["lift_low"],
            "lift_high": summary["primary"]["lift_high"],
        }
    )
    summary["history"] = history[-120:]
    record.last_analysis = summary
    record.analysed_at = now
    record.updated_at = now
    audit_log.record(
        session,
        actor=actor,
        action="experiment.analyze",
        target_type=_TARGET,
        target_id=experiment_id,
        after={"recommendation": summary["recommendation"], "reason": summary["reason"]},
        now=now,
    )
    return record


def _finite(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else float(value)


def metric_summary(result: MetricResult) -> dict[str, Any]:
    """One metric's effect as JSON-ready data (NaN as null)."""
    e = result.effect
    return {
        "metric": result.metric.name,
        "role": result.role,
        "direction": result.metric.direction.value,
        "control_mean": _finite(e.control.mean),
        "treatment_mean": _finite(e.treatment.mean),
        "difference": _finite(e.difference),
        "difference_low": _finite(e.difference_low),
        "difference_high": _finite(e.difference_high),
        "lift": _finite(e.lift),
        "lift_low": _finite(e.lift_low),
        "lift_high": _finite(e.lift_high),
        "p_value": _finite(e.p_value),
        "cuped": result.cuped,
        "margin": result.margin,
        "non_inferior": result.non_inferior,
        "improved": result.improved,
        "deteriorated": result.deteriorated,
    }


def error_summary(effect: ErrorRateEffect) -> dict[str, Any]:
    """An FP / FN rate comparison as JSON-ready data (NaN as null)."""
    return {
        "kind": effect.kind,
        "control": _finite(effect.control),
        "treatment": _finite(effect.treatment),
        "difference": _finite(effect.difference),
        "low": _finite(effect.low),
        "high": _finite(effect.high),
        "n_labels": effect.n_labels,
    }


def analysis_summary(analysis: ExperimentAnalysis) -> dict[str, Any]:
    """The analysis as JSON-ready data, with the settings it ran with."""
    c = analysis.config
    return {
        "n_control": analysis.n_control,
        "n_treatment": analysis.n_treatment,
        "srm_p_value": analysis.srm_p_value,
        "srm": analysis.srm,
        "primary": metric_summary(analysis.primary),
        "guardrails": [metric_summary(g) for g in analysis.guardrails],
        "recommendation": analysis.recommendation.value,
        "reason": analysis.reason,
        "config": {
            "alpha": c.alpha,
            "sequential": c.sequential,
            "sequential_tuning": c.sequential_tuning,
            "cuped": c.cuped,
            "srm_alpha": c.srm_alpha,
        },
    }
