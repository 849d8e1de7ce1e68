"""Monitoring alerts become review-service escalations (kind `alert`), once each.

The alert id leads the escalation title (`[alert <id>] ...`), so loading the same alerts
again, or a later run that still shows an episode already raised, opens nothing new. Cases are
raised by a dedicated, disabled user (`govrisk-monitor`) that cannot sign in; the severity
sets the priority and so the SLA.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from governance.monitoring.tables import ALERTS, check_frame
from governance.monitoring.vocabulary import ALL, Severity
from governance.review import escalations, users
from governance.review.errors import InvalidInputError, NotFoundError
from governance.review.orm import Escalation, User
from governance.review.vocabulary import DEFAULT_SLA_HOURS, EscalationKind, EscalationPriority, Role

MONITOR_USERNAME = "govrisk-monitor"
#: Escalation priority of each alert severity.
PRIORITY: dict[Severity, EscalationPriority] = {
    Severity.CRITICAL: EscalationPriority.CRITICAL,
    Severity.HIGH: EscalationPriority.HIGH,
    Severity.MEDIUM: EscalationPriority.MEDIUM,
    Severity.LOW: EscalationPriority.LOW,
}
_PREFIX = "[alert "


@dataclass(frozen=True)
class OpenReport:
    """What `open_alert_escalations` did."""

    opened: int
    already_open: int
    actor: str
    escalation_ids: list[int] = field(default_factory=list)


def alert_title(alert_id: str, title: str) -> str:
    """The escalation title of an alert; its prefix is the idempotency key."""
    return f"{_PREFIX}{alert_id}] {title}"[:200]


def monitor_actor(session: Session) -> User:
    """The user alert escalations are raised by, created (disabled) on first use."""
    try:
        return users.user_by_username(session, MONITOR_USERNAME)
    except NotFoundError:
        user = users.create_user(
            session,
            username=MONITOR_USERNAME,
            role=Role.ML_ENGINEER,
            password=secrets.token_urlsafe(32),
            display_name="govrisk monitor (alerts)",
        )
        users.set_active(session, user, False, actor=None)
        return user


def raised_alert_ids(session: Session) -> set[str]:
    """Ids of the alerts that already have an escalation."""
    titles = session.scalars(
        sa.select(Escalation.title).where(
            Escalation.kind == EscalationKind.ALERT, Escalation.title.startswith(_PREFIX)
        )
    )
    return {t[len(_PREFIX) :].split("]", 1)[0] for t in titles}


def _description(a: Mapping[Any, Any]) -> str:
    return (
        f"{a['evidence']}\n\n"
        f"kind: {a['kind']} · severity: {a['severity']} · owner: {a['owner']}\n"
        f"channel: {a['channel']} · category: {a['category']} · strategy: {a['strategy_id']} · "
        f"metric: {a['metric']}\n"
        f"fired {pd.Timestamp(str(a['first_day'])):%Y-%m-%d} to "
        f"{pd.Timestamp(str(a['last_day'])):%Y-%m-%d} ({a['days_firing']} day(s)); "
        f"worst value {float(str(a['value'])):.3g} (threshold {float(str(a['threshold'])):.3g})"
    )


def open_alert_escalations(
    session: Session,
    alerts: pd.DataFrame,
    *,
    sla_hours: Mapping[EscalationPriority, float] = DEFAULT_SLA_HOURS,
    now: datetime | None = None,
) -> OpenReport:
    """Open one escalation per alert that has none yet; the caller commits."""
    problems = check_frame(alerts, ALERTS)
    if problems:
        raise InvalidInputError("alerts table: " + "; ".join(problems))
    actor = monitor_actor(session)
    seen = raised_alert_ids(session)
    ids: list[int] = []
    already = 0
    for a in alerts.to_dict("records"):
        if str(a["alert_id"]) in seen:
            already += 1
            continue
        case = escalations.create(
            session,
            actor,
            kind=EscalationKind.ALERT,
            title=alert_title(str(a["alert_id"]), str(a["title"])),
            priority=PRIORITY[Severity(str(a["severity"]))],
            description=_description(a),
            strategy_id=None if a["strategy_id"] == ALL else str(a["strategy_id"]),
            sla_hours=sla_hours,
            now=now,
        )
        seen.add(str(a["alert_id"]))
        ids.append(case.id)
    return OpenReport(
        opened=len(ids), already_open=already, actor=actor.username, escalation_ids=ids
    )
