from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from governance.monitoring.alerts import alert_id
from governance.monitoring.escalation import MONITOR_USERNAME, open_alert_escalations
from governance.monitoring.tables import ALERTS, conform
from governance.review.db import make_engine, make_session_factory
from governance.review.orm import Escalation, User
from governance.review.vocabulary import EscalationKind


def _alerts() -> pd.DataFrame:
    day = pd.Timestamp("2026-02-03")
    rows = [
        {
            "alert_id": alert_id("burn_rate", "complaints_per_1k_orders", "affiliate", "all", day),
            "kind": "burn_rate",
            "severity": "critical",
            "title": "affiliate: complaints budget burning 6.1x",
            "metric": "complaints_per_1k_orders",
            "channel": "affiliate",
            "category": "bags",
            "strategy_id": "all",
            "owner": "affiliate-trust",
            "first_day": day,
            "last_day": day,
            "days_firing": 1,
            "value": 6.1,
            "threshold": 2.8,
            "evidence": "complaints in affiliate: burn rate 6.1x over 2 days",
        },
        {
            "alert_id": alert_id("strategy_decay", "hits", "shop_tab", "rule-a", day),
            "kind": "strategy_decay",
            "severity": "medium",
            "title": "rule-a: hit rate fell",
            "metric": "hits_per_1k_new_items",
            "channel": "shop_tab",
            "category": "all",
            "strategy_id": "rule-a",
            "owner": "team-a",
            "first_day": day,
            "last_day": day,
            "days_firing": 2,
            "value": 0.1,
            "threshold": 0.0,
            "evidence": "rule-a stopped hitting",
        },
    ]
    return conform(pd.DataFrame(rows), ALERTS)


@pytest.mark.parametrize("review_db_url", ["sqlite"], indirect=True)
def test_alerts_open_once_with_priority(review_db_url: str, cheap_password_hashing: None) -> None:
    engine = make_engine(review_db_url, pool_size=1)
    factory = make_session_factory(engine)
    with factory() as session:
        first = open_alert_escalations(session, _alerts())
        session.commit()
    with factory() as session:
        again = open_alert_escalations(session, _alerts())
        session.commit()
        cases = list(session.scalars(sa.select(Escalation).order_by(Escalation.id)))
        actor = session.scalar(sa.select(User).where(User.username == MONITOR_USERNAME))
    engine.dispose()
    assert (first.opened, first.already_open) == (2, 0)
    assert (again.opened, again.already_open) == (0, 2)
    assert [c.kind for c in cases] == [EscalationKind.ALERT, EscalationKind.ALERT]
    assert [c.priority.value for c in cases] == ["critical", "medium"]
    assert cases[0].strategy_id is None and cases[1].strategy_id == "rule-a"
    assert "affiliate-trust" in cases[0].description
    assert actor is not None and not actor.is_active
    assert cases[0].due_at < cases[1].due_at
