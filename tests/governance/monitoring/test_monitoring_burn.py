from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from governance.monitoring.alerts import burn_alerts
from governance.monitoring.burn import objective_status
from governance.monitoring.objectives import ObjectiveSet, default_rules, load_objectives
from governance.monitoring.tables import ALERTS, OBJECTIVE_STATUS, check_frame
from governance.monitoring.trust import compute_trust_metrics
from tests.governance.monitoring.world import START, connect, end_of, make_tables

OBJECTIVES = ObjectiveSet.model_validate(
    {
        "window_days": 28,
        "objectives": [
            {"channel": "all", "metric": "complaints_per_1k_orders", "target": 40, "owner": "ops"},
            {
                "channel": "affiliate",
                "metric": "complaints_per_1k_orders",
                "target": 40,
                "owner": "affiliate-trust",
            },
        ],
    }
)


def _status(incident: tuple[str, int, float] | None, seed: int = 3) -> tuple[pd.DataFrame, ...]:
    tables = make_tables(n_listings=30, n_days=42, seed=seed, incident=incident)
    trust = compute_trust_metrics(connect(tables), as_of=end_of(42))
    status = objective_status(trust.base, trust.delays, OBJECTIVES, as_of=end_of(42))
    rules = default_rules(OBJECTIVES.window_days)
    return status, burn_alerts(status, trust.base, rules)


def test_incident_raises_an_alert_on_its_channel_within_days() -> None:
    status, alerts = _status(("affiliate", 20, 0.2))
    assert check_frame(status, OBJECTIVE_STATUS) == []
    assert check_frame(alerts, ALERTS) == []
    hit = alerts[alerts["channel"] == "affiliate"]
    assert len(hit) >= 1
    first = hit["first_day"].min()
    delay_days = (first - pd.Timestamp(START)).days - 20
    assert 0 <= delay_days <= 3
    assert (hit["owner"] == "affiliate-trust").all()
    assert hit["severity"].iloc[0] in ("critical", "high")
    assert "shop_tab" not in set(alerts["channel"])


@pytest.mark.parametrize("seed", [3, 4])
def test_no_alert_without_incident(seed: int) -> None:
    status, alerts = _status(None, seed=seed)
    assert len(alerts) == 0
    assert status["budget_spent"].dropna().max() < 1.0


def test_every_channel_gets_the_all_objective_unless_it_has_its_own() -> None:
    expanded = {(o.channel, o.metric.value): o.owner for o in OBJECTIVES.expanded()}
    assert expanded[("affiliate", "complaints_per_1k_orders")] == "affiliate-trust"
    assert expanded[("live", "complaints_per_1k_orders")] == "ops"


def test_rules_follow_the_workbook_budget_shares() -> None:
    rules = default_rules(28)
    # a rule's threshold spends its budget share within its long window
    assert [round(r.burn * r.long_days / 28, 2) for r in rules] == [0.2, 0.3, 0.5]
    assert all(r.short_days < r.long_days for r in rules)


def test_bad_objectives_file_names_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "objectives.yaml"
    path.write_text(
        "objectives:\n  - {channel: tv, metric: complaints_per_1k_orders, target: 1, owner: x}\n"
    )
    with pytest.raises(ValueError, match=r"(?s)objectives.yaml.*tv"):
        load_objectives(path)


def test_packaged_objectives_load() -> None:
    assert len(load_objectives().objectives) >= 4


def test_the_watch_list_is_read_with_its_windows(tmp_path: Path) -> None:
    from datetime import date

    path = tmp_path / "objectives.yaml"
    path.write_text(
        "objectives:\n  - {channel: all, metric: complaints_per_1k_orders, target: 50, owner: x}\n"
        "watch:\n  - {category: jewelry, reason: recall, owner: jewelry-pm, until: 2026-03-31}\n"
    )
    (watch,) = load_objectives(path).watch
    assert watch.owner == "jewelry-pm" and watch.active(date(2026, 3, 31))
    assert not watch.active(date(2026, 4, 1))
    path.write_text(path.read_text().replace("until:", "untill:"))
    with pytest.raises(ValueError, match="untill"):  # a misspelt key is an error, not ignored
        load_objectives(path)
    assert load_objectives().watch == ()  # the packaged file watches nothing by default
