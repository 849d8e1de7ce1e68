from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from governance.monitoring.alerts import burn_alerts
from governance.monitoring.burn import objective_status
from governance.monitoring.objectives import default_rules, load_objectives
from governance.monitoring.trust import compute_trust_metrics
from tests.governance.monitoring.world import connect, end_of, make_tables


def _write_monitor(out: Path) -> None:
    tables = make_tables(n_listings=20, n_days=28, seed=5, incident=("affiliate", 14, 0.3))
    trust = compute_trust_metrics(connect(tables), as_of=end_of(28))
    objectives = load_objectives()
    status = objective_status(trust.base, trust.delays, objectives, as_of=end_of(28))
    alerts = burn_alerts(status, trust.base, default_rules(objectives.window_days))
    out.mkdir()
    trust.metrics.to_parquet(out / "trust_metrics.parquet")
    status.to_parquet(out / "objective_status.parquet")
    alerts.to_parquet(out / "alerts.parquet")


@pytest.mark.parametrize("review_db_url", ["sqlite"], indirect=True)
def test_monitoring_page_shows_a_channel(review_app: SimpleNamespace, tmp_path: Path) -> None:
    client = review_app.client
    review_app.login(client, "pm")
    empty = client.get("/monitoring")
    assert empty.status_code == 200 and "No monitoring output" in empty.text
    _write_monitor(tmp_path / "monitor")
    review_app.state.settings.monitor_dir = tmp_path / "monitor"
    page = client.get("/monitoring?channel=affiliate")
    assert page.status_code == 200
    assert "Trust monitoring: affiliate" in page.text
    assert page.text.count("<svg") == 3
    assert "affiliate-trust" in page.text  # the objective's owner
    assert "complaints_per_1k_orders budget burning" in page.text  # the planted incident
    assert client.get("/monitoring?channel=tv").status_code in (404, 422)


@pytest.mark.parametrize("review_db_url", ["sqlite"], indirect=True)
def test_metrics_carry_the_current_monitoring_values(
    review_app: SimpleNamespace, tmp_path: Path
) -> None:
    client = review_app.client
    assert "govrisk_monitor_" not in client.get("/metrics").text
    _write_monitor(tmp_path / "monitor")
    review_app.state.settings.monitor_dir = tmp_path / "monitor"
    text = client.get("/metrics").text
    assert 'govrisk_monitor_trust{channel="affiliate",metric="complaints_per_1k_orders"}' in text
    assert (
        'govrisk_monitor_budget_spent{channel="affiliate",metric="complaints_per_1k_orders"}'
        in (text)
    )
    firing = [
        line
        for line in text.splitlines()
        if line.startswith('govrisk_monitor_alerts_firing{channel="affiliate",kind="burn_rate"')
    ]
    assert firing and float(firing[0].rsplit(" ", 1)[1]) >= 1  # the planted incident
    assert "govrisk_score_requests" in text  # the scoring metrics are still there
