from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.governance.monitoring.world import write_monitor_dir


def _rows(page: str, table_id: str) -> list[str]:
    """The body rows of the page's table `table_id`, as HTML."""
    body = page.split(f'id="{table_id}"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return body.split("<tr")[1:]


def _row(page: str, table_id: str, *cells: str) -> str:
    """The one row of table `table_id` holding every one of `cells`."""
    found = [r for r in _rows(page, table_id) if all(f">{c}<" in r for c in cells)]
    assert len(found) == 1, (cells, _rows(page, table_id))
    return found[0]


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
    # complaints, and one prediction-drift chart per model; no answer or return recorded
    assert page.text.count("<svg") == 3
    assert "No returns recorded in this window" in page.text
    assert 'aria-label="Returns per 1,000' not in page.text
    # no return recorded anywhere: the categories' return rates are unknown, not 0.0
    rows = page.text.split('id="categories"', 1)[1].split("</table>", 1)[0].split("<tr>")[2:]
    assert rows and all(r.split('<td class="num">')[3].startswith("–") for r in rows)
    assert not all(r.split('<td class="num">')[2].startswith("–") for r in rows)
    objectives = page.text.split('id="objectives"', 1)[1].split("</table>", 1)[0]
    budgets = {
        r.split("</td>", 1)[0].removeprefix("<td>"): r.split('<td class="num">')[2].split("<")[0]
        for r in objectives.split("<tr>")[2:]
    }
    assert budgets["returns_per_1k_orders"] == "–"  # unmeasured, not 0% of its budget
    assert budgets["complaints_per_1k_orders"].endswith("%")
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
    # the world recorded no return: its rates and budgets are unknown, not exported as 0
    assert 'govrisk_monitor_trust{channel="affiliate",metric="returns_per_1k_orders"}' not in text
    assert 'metric="returns_per_1k_orders"' not in text and 'metric="refund_per_gmv"' not in text
    assert 'govrisk_monitor_trust{channel="affiliate",metric="low_star_share"}' in text


@pytest.mark.parametrize("review_db_url", ["sqlite"], indirect=True)
def test_monitoring_page_shows_strategy_precision_and_launch_gaps(
    review_app: SimpleNamespace, tmp_path: Path
) -> None:
    import pandas as pd

    from governance.monitoring.tables import (
        LAUNCH_COVERAGE,
        STRATEGY_EXPECTED_PRECISION,
        STRATEGY_PRECISION,
        conform,
    )

    out = tmp_path / "monitor"
    write_monitor_dir(out)
    weeks = pd.to_datetime(["2026-01-05", "2026-01-12"])
    precision = pd.DataFrame(
        {
            "week_start": weeks,
            "strategy_id": "listing-counterfeit-terms",
            "labels": [12, 9],
            "violating": [10, 5],
            "precision": [0.83, 0.55],
            "precision_low": [0.6, 0.2],
            "precision_high": [1.0, 0.9],
            "confidence": 0.9,  # the audit's level, not a fixed 95%
        }
    )
    conform(precision, STRATEGY_PRECISION).to_parquet(out / "strategy_precision.parquet")
    cells = pd.DataFrame(
        {
            "category": "collectible_cards",
            "policy": ["counterfeit", "fake_discount"],
            "channel": ["affiliate", "shop_tab"],
            "items_shown": [74, 176],
            "impressions": [75924, 17667],
            "strategies": ["listing-counterfeit-terms-affiliate", "listing-fake-discount"],
            "strategies_firing": ["", "listing-fake-discount"],
            "items_actioned": [0, 20],
            "actioned_share": [0.0, 0.11],
        }
    )
    conform(cells, LAUNCH_COVERAGE).to_parquet(out / "launch_coverage.parquet")
    review_app.state.settings.monitor_dir = out
    client = review_app.client
    review_app.login(client, "pm")
    page = client.get("/monitoring?channel=affiliate").text
    assert 'id="strategy-precision"' in page and "2026-01-12" in page  # the latest week
    assert "55%" in page
    head = page.split('id="strategy-precision"', 1)[1].split("</thead>", 1)[0]
    assert ">90% interval<" in head
    assert 'id="launch-gaps"' in page and "listing-counterfeit-terms-affiliate" in page
    assert "listing-fake-discount" not in page.split('id="launch-gaps"')[1]  # it fired
    table = page.split('id="strategy-precision"', 1)[1].split("</table>", 1)[0]
    assert "Without labels" in table and table.count('<td class="num">–</td>') == 1
    expected = pd.DataFrame(
        {
            "week_start": weeks,
            "strategy_id": "listing-counterfeit-terms",
            "policy": "counterfeit",
            "actioned": [40, 31],
            "scored": [40, 31],
            "expected_precision": [0.8, 0.62],
            "expected_precision_sd": [0.05, 0.07],
            "expected_true_positives": [32.0, 19.2],
        }
    )
    conform(expected, STRATEGY_EXPECTED_PRECISION).to_parquet(
        out / "strategy_expected_precision.parquet"
    )
    page = client.get("/monitoring?channel=affiliate").text
    table = page.split('id="strategy-precision"', 1)[1].split("</table>", 1)[0]
    assert "62% ± 7%" in table and "80%" not in table  # the latest labelled week's
    assert "outside the interval" not in table  # 62% is within the labelled 20% - 90%
    expected["expected_precision"] = [0.8, 0.95]  # the model now expects far more
    conform(expected, STRATEGY_EXPECTED_PRECISION).to_parquet(
        out / "strategy_expected_precision.parquet"
    )
    page = client.get("/monitoring?channel=affiliate").text
    table = page.split('id="strategy-precision"', 1)[1].split("</table>", 1)[0]
    assert "95% ± 7%" in table and "outside the interval" in table


@pytest.mark.parametrize("review_db_url", ["sqlite"], indirect=True)
def test_metrics_carry_overturn_rates_and_prediction_psi(
    review_app: SimpleNamespace, tmp_path: Path
) -> None:
    import pandas as pd

    from governance.monitoring.tables import PREDICTION_DRIFT, STRATEGY_APPEALS, conform

    out = tmp_path / "monitor"
    write_monitor_dir(out)
    appeals = pd.DataFrame(
        {
            "week_start": pd.to_datetime(["2026-01-05", "2026-01-12", "2026-01-19"]),
            "strategy_id": "listing-fake-discount",
            "items_actioned": 40,
            "appeals": [4, 6, 9],
            "overturned": [2, 5, 8],
            "appeal_rate": [0.1, 0.15, 0.225],
            "overturn_rate": [0.05, 0.125, 0.2],
            "overturn_rate_low": 0.0,
            "overturn_rate_high": 0.4,
            "overturned_share_of_appeals": [0.5, 0.83, 0.89],
            "complete": [True, True, False],
            "confidence": 0.95,
        }
    )
    conform(appeals, STRATEGY_APPEALS).to_parquet(out / "strategy_appeals.parquet")
    drift = pd.DataFrame(
        {
            "entity": "video",
            "policy": "counterfeit",
            "week_start": pd.to_datetime(["2026-01-19", "2026-01-26"]),
            "n_reference": 60,
            "n_week": 150,
            "psi": [0.04, 0.18],
            "n_bins": 4,
            "mean_reference": 0.01,
            "mean_week": [0.02, 0.06],
            "top_bin": ">= 0.01",
            "top_bin_shift": [0.05, 0.2],
            "alert_threshold": 0.1,
        }
    )
    conform(drift, PREDICTION_DRIFT).to_parquet(out / "prediction_drift.parquet")
    review_app.state.settings.monitor_dir = out
    text = review_app.client.get("/metrics").text
    # the latest complete week, not the one still filling in
    assert 'govrisk_monitor_strategy_overturn_rate{strategy="listing-fake-discount"} 0.125' in text
    assert 'govrisk_monitor_prediction_psi{entity="video",policy="counterfeit"} 0.18' in text


def _appeal_cell(page: str, strategy_id: str, week: str) -> str:
    """The appeals table's cell of the strategy's decisions of `week`, as HTML."""
    (row,) = [r for r in _rows(page, "strategy-appeals") if f">{strategy_id}<" in r]
    (cell,) = [c for c in row.split("<td")[1:] if f'data-week="{week}"' in c]
    return cell


@pytest.mark.parametrize("review_db_url", ["sqlite"], indirect=True)
def test_monitoring_page_shows_appeals_of_the_channels_strategies(
    review_app: SimpleNamespace, tmp_path: Path
) -> None:
    write_monitor_dir(tmp_path / "monitor")
    review_app.state.settings.monitor_dir = tmp_path / "monitor"
    client = review_app.client
    review_app.login(client, "pm")
    page = client.get("/monitoring?channel=affiliate").text
    assert 'id="strategy-appeals"' in page and "95% exact interval" in page
    # the world's fake-discount strategy: 8 of 40 items appealed, 5 lifted, in its first week
    first = _appeal_cell(page, "listing-fake-discount", "2026-01-05")
    assert "<strong>12.5%</strong> overturned" in first and "20.0% appealed" in first
    assert "95%: 4.2% – 26.8%" in first  # Clopper-Pearson
    assert "40 items" in first and "still filling in" not in first
    # its last week's decisions are younger than the decision horizon
    last = _appeal_cell(page, "listing-fake-discount", "2026-01-26")
    assert "still filling in" in last and "filling" in last.split(">", 1)[0]
    assert "<strong>3.3%</strong>" in last
    # the shop-tab-only strategy does not act in affiliate
    assert "listing-counterfeit-terms-shop" not in page
    shop = client.get("/monitoring?channel=shop_tab").text
    cell = _appeal_cell(shop, "listing-counterfeit-terms-shop", "2026-01-19")
    assert "<strong>9.1%</strong>" in cell and "13.6% appealed" in cell
    # busiest strategy first: fake-discount actioned 170 items, counterfeit-terms 85
    rows = _rows(shop, "strategy-appeals")
    assert "listing-fake-discount" in rows[0] and "listing-counterfeit-terms-shop" in rows[1]
    # without strategy health nobody can tell who acts where: every strategy is shown
    (tmp_path / "monitor" / "strategy_health.parquet").unlink()
    page = client.get("/monitoring?channel=affiliate").text
    assert len(_rows(page, "strategy-appeals")) == 2


@pytest.mark.parametrize("review_db_url", ["sqlite"], indirect=True)
def test_monitoring_page_shows_prediction_drift_against_its_threshold(
    review_app: SimpleNamespace, tmp_path: Path
) -> None:
    import pandas as pd

    write_monitor_dir(tmp_path / "monitor")
    drift = pd.read_parquet(tmp_path / "monitor" / "prediction_drift.parquet")
    review_app.state.settings.monitor_dir = tmp_path / "monitor"
    client = review_app.client
    review_app.login(client, "pm")
    page = client.get("/monitoring?channel=video").text  # models score every channel
    assert 'id="model-health"' in page
    assert "as the monitoring run set it" in page
    shifted = drift[(drift["policy"] == "counterfeit")].sort_values("week_start").iloc[-1]
    row = _row(page, "prediction-drift", "listing counterfeit", "2026-01-26")
    assert f">{shifted['psi']:.2f}<" in row and shifted["psi"] > 0.2
    assert ">0.10<" in row and "drifted" in row  # 800 vs 400 items: noise stays below 0.10
    means = f"{shifted['mean_reference']:.1%} → {shifted['mean_week']:.1%}"
    assert means == "3.2% → 3.7%" and means in row  # mean probability, reference -> week
    steady = _row(page, "prediction-drift", "listing fake_discount", "2026-01-26")
    assert "stable" in steady and "drifted" not in steady
    assert 'aria-label="listing counterfeit model: PSI per week' in page


def test_drift_threshold_on_the_page_is_the_one_the_run_used(
    review_app: SimpleNamespace, tmp_path: Path
) -> None:
    import pandas as pd

    write_monitor_dir(tmp_path / "monitor")
    path = tmp_path / "monitor" / "prediction_drift.parquet"
    drift = pd.read_parquet(path)
    drift["alert_threshold"] = 0.9  # a run with psi_medium 0.9: nothing drifted
    drift.to_parquet(path)
    review_app.state.settings.monitor_dir = tmp_path / "monitor"
    client = review_app.client
    review_app.login(client, "pm")
    page = client.get("/monitoring?channel=video").text
    row = _row(page, "prediction-drift", "listing counterfeit", "2026-01-26")
    assert ">0.90<" in row and "stable" in row and "drifted" not in row


def test_band_chart_draws_weeks_with_outcomes_and_notes_a_window_without() -> None:
    from governance.monitoring.view import WeekPoint
    from serving.monitoring_pages import band_chart

    week = WeekPoint(week="01-05", value=2.0, low=1.0, high=4.0, mature=True, orders=900)
    drawn = band_chart([week], title="Returns", outcome="returns")
    assert "<svg" not in drawn and "No returns recorded in this window" in drawn  # 0 events
    drawn = band_chart([week, week], title="Returns", outcome="returns")
    assert "(2 weeks, 1,800 orders)" in drawn
    seen = WeekPoint(week="01-05", value=2.0, low=1.0, high=4.0, mature=True, orders=900, events=2)
    assert "<svg" in band_chart([seen], title="Returns", outcome="returns")


@pytest.mark.parametrize("review_db_url", ["sqlite"], indirect=True)
def test_monitoring_page_shows_each_models_precision_without_labels(
    review_app: SimpleNamespace, tmp_path: Path
) -> None:
    import pandas as pd

    from governance.monitoring.tables import MODEL_PRECISION, conform

    write_monitor_dir(tmp_path / "monitor")
    client = review_app.client
    review_app.login(client, "pm")
    review_app.state.settings.monitor_dir = tmp_path / "monitor"
    assert 'id="model-precision"' not in client.get("/monitoring").text  # no predictions
    precision = pd.DataFrame(
        {
            "entity": ["listing", "video"],
            "policy": ["any", "any"],
            "threshold": [0.5, 0.5],
            "items": [20_000, 3_100],
            "flagged": [412, 0],
            "expected_precision": [0.734, float("nan")],
            "expected_precision_sd": [0.021, float("nan")],
            "expected_true_positives": [302.4, 0.0],
            "labelled_precision": [0.52, float("nan")],
            "labelled_low": [0.44, float("nan")],
            "labelled_high": [0.60, float("nan")],
            "labels_flagged": [57, 12],
            "confidence": 0.99,
        }
    )
    conform(precision, MODEL_PRECISION).to_parquet(tmp_path / "monitor" / "model_precision.parquet")
    page = client.get("/monitoring?channel=live").text  # models score every channel
    row = _row(page, "model-precision-table", "listing any")
    assert ">p ≥ 0.50<" in row and ">20,000<" in row and ">412<" in row
    assert ">73% ± 2%<" in row
    assert "with its 99% interval" in page
    # the audit's labels put it at 52% [44% - 60%]: the expectation is outside, flagged
    assert "52% [44% – 60%]" in row and ">57 labels<" in row and "outside the interval" in row
    unchecked = _row(page, "model-precision-table", "video any")  # flagged nothing
    assert ">–<" in unchecked and "12 labels, not across its flagged items" in unchecked


@pytest.mark.parametrize("review_db_url", ["sqlite"], indirect=True)
def test_monitoring_page_ranks_a_launch_against_the_established_categories(
    review_app: SimpleNamespace, tmp_path: Path
) -> None:
    import pandas as pd

    from governance.monitoring.tables import LAUNCH_RISK, conform

    out = tmp_path / "monitor"
    write_monitor_dir(out)
    review_app.state.settings.monitor_dir = out
    client = review_app.client
    review_app.login(client, "pm")
    assert 'id="launch-risk"' not in client.get("/monitoring").text  # no predictions
    risk = pd.DataFrame(
        {
            "category": "collectible_cards",
            "entity": "listing",
            "policy": ["counterfeit", "any"],
            "items": [412, 412],
            "mean_probability": [0.214, 0.35],
            "established": [15, 15],
            "established_median": [0.031, 0.2],
            "established_max": [0.12, 0.41],
            "riskiest_established": ["bags", "jewelry"],
            "rank": [1, 3],
        }
    )
    conform(risk, LAUNCH_RISK).to_parquet(out / "launch_risk.parquet")
    page = client.get("/monitoring").text
    row = _row(page, "launch-risk-table", "listing counterfeit")
    assert ">21.4%<" in row and ">3.1%<" in row and "12.0%" in row and "(bags)" in row
    assert "1 of 16" in row and "warn" in row  # riskier than every established category
    other = _row(page, "launch-risk-table", "listing any")
    assert "3 of 16" in other and "warn" not in other
