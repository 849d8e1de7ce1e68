from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.governance.monitoring.world import write_monitor_dir


@pytest.mark.parametrize("review_db_url", ["sqlite"], indirect=True)
def test_monitoring_page_shows_a_channel(review_app: SimpleNamespace, tmp_path: Path) -> None:
    client = review_app.client
    review_app.login(client, "pm")
    empty = client.get("/monitoring")
    assert empty.status_code == 200 and "No monitoring output" in empty.text
    write_monitor_dir(tmp_path / "monitor")
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
    write_monitor_dir(tmp_path / "monitor")
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
