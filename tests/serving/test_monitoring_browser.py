"""The monitoring page in a real browser: a PM walks the channels, reads the charts, the
objectives, the alerts and the violative view rates.

Same setup as tests/serving/test_browser.py (a uvicorn server, Debian's headless Chromium;
skipped when /usr/bin/chromium is missing, a failure under CI=true).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from experiments.benchmarks.review_load import serve
from governance.monitoring.tables import (
    LAUNCH_RISK,
    MODEL_PRECISION,
    STRATEGY_EXPECTED_PRECISION,
    STRATEGY_PRECISION,
    VIOLATIVE_VIEW_RATE,
    conform,
)
from governance.review import users
from governance.review.db import make_engine, make_session_factory, upgrade
from tests.governance.monitoring.world import write_monitor_dir
from tests.serving.test_browser import PASSWORD
from tests.serving.test_browser import browser as browser  # noqa: F401  (module fixture)

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("review-browser")]

#: The page's budget: from navigation start to the load event, server render included.
LOAD_BUDGET_MS = 1000.0


def _write_view_rates(out: Path) -> None:
    rows = [
        ("counterfeit", channel, 1e5, 3e3, 0.03, 0.01, 0.05, 0.04, 120, 0.95)
        for channel in ("affiliate", "shop_tab")
    ]
    pd.DataFrame(rows, columns=VIOLATIVE_VIEW_RATE.column_names).to_parquet(
        out / "violative_view_rate.parquet"
    )


def _write_strategy_precision(out: Path) -> None:
    """A strategy's labelled precision of one week and, for the same week, its label-free
    expectation."""
    week = pd.to_datetime(["2026-01-12"])
    labelled = pd.DataFrame(
        {
            "week_start": week,
            "strategy_id": "listing-counterfeit-terms",
            "labels": 9,
            "violating": 5,
            "precision": 0.55,
            "precision_low": 0.2,
            "precision_high": 0.9,
            "confidence": 0.95,
        }
    )
    conform(labelled, STRATEGY_PRECISION).to_parquet(out / "strategy_precision.parquet")
    expected = pd.DataFrame(
        {
            "week_start": week,
            "strategy_id": "listing-counterfeit-terms",
            "policy": "counterfeit",
            "actioned": 31,
            "scored": 31,
            "expected_precision": 0.62,
            "expected_precision_sd": 0.07,
            "expected_true_positives": 19.2,
        }
    )
    conform(expected, STRATEGY_EXPECTED_PRECISION).to_parquet(
        out / "strategy_expected_precision.parquet"
    )
    models = pd.DataFrame(
        {
            "entity": ["listing", "listing"],
            "policy": ["any", "counterfeit"],
            "threshold": 0.5,
            "items": 20_000,
            "flagged": [3_125, 412],
            "expected_precision": [0.694, 0.81],
            "expected_precision_sd": [0.008, 0.02],
            "expected_true_positives": [2_168.0, 333.7],
            "labelled_precision": [float("nan"), 0.78],
            "labelled_low": [float("nan"), 0.66],
            "labelled_high": [float("nan"), 0.90],
            "labels_flagged": [0, 48],
            "confidence": 0.95,
        }
    )
    conform(models, MODEL_PRECISION).to_parquet(out / "model_precision.parquet")
    risk = pd.DataFrame(
        {
            "category": "collectible_cards",
            "entity": "listing",
            "policy": ["counterfeit", "fake_discount"],
            "items": 967,
            "mean_probability": [0.171, 0.104],
            "established": 20,
            "established_median": [0.080, 0.107],
            "established_max": [0.157, 0.175],
            "riskiest_established": "perfume",
            "rank": [1, 12],
        }
    )
    conform(risk, LAUNCH_RISK).to_parquet(out / "launch_risk.parquet")


@pytest.fixture
def service(
    review_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SimpleNamespace]:
    """A running review service with a PM and a monitor directory with a planted affiliate
    complaint flood."""
    write_monitor_dir(tmp_path / "monitor")
    _write_view_rates(tmp_path / "monitor")
    _write_strategy_precision(tmp_path / "monitor")
    monkeypatch.setenv("GOVRISK_MONITOR_DIR", str(tmp_path / "monitor"))
    engine = make_engine(review_db_url, pool_size=2)
    upgrade(engine)
    factory = make_session_factory(engine)
    with factory() as session:
        users.create_user(session, username="pat", role="pm", password=PASSWORD)
        session.commit()
    try:
        with serve(review_db_url, tmp_path, lease_seconds=300) as base_url:
            yield SimpleNamespace(url=base_url)
    finally:
        engine.dispose()


def _load_ms(page: Any) -> float:
    timing = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return n.loadEventEnd - n.startTime; }"
    )
    return float(timing)


def test_pm_walks_the_monitoring_page(browser: Any, service: SimpleNamespace) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{service.url}/login")
    page.fill("input[name=username]", "pat")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/suggestions$"))
    page.goto(f"{service.url}/monitoring")
    page.wait_for_load_state("load")
    assert page.locator("h1").inner_text() == "Trust monitoring: all"
    assert page.locator("svg.chart").count() == 3  # complaints, and drift of the 2 models
    assert _load_ms(page) < LOAD_BUDGET_MS
    page.click("a[href='/monitoring?channel=affiliate']")
    page.wait_for_url(re.compile(r"channel=affiliate$"))
    page.wait_for_load_state("load")
    assert page.locator("h1").inner_text() == "Trust monitoring: affiliate"
    assert page.locator("a[aria-current=page]").inner_text() == "affiliate"
    assert _load_ms(page) < LOAD_BUDGET_MS
    assert page.locator("svg.chart circle").count() >= 3  # weekly points with their tooltips
    assert "affiliate-trust" in page.locator("main").inner_text()  # the objective's owner
    assert page.get_by_text("complaints_per_1k_orders budget burning").count() >= 1
    rates = page.locator("#view-rates tbody tr")
    assert rates.count() == 1  # the affiliate row only
    assert "3.0%" in rates.inner_text() and "1.0% – 5.0%" in rates.inner_text()
    shots = Path(os.environ.get("GOVRISK_SCREENSHOT_DIR", "test-output/screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "monitoring-affiliate.png"), full_page=True)
    assert "No returns recorded in this window" in page.locator("#trust-charts").inner_text()
    page.locator("#trust-charts").screenshot(path=str(shots / "monitoring-trust-charts.png"))
    appeals = page.locator("#strategy-appeals tbody tr")
    assert appeals.count() == 1  # the fake-discount strategy; the shop-tab one does not act here
    assert page.locator("#strategy-appeals thead th").count() == 5  # strategy and 4 weeks
    filling = page.locator("#strategy-appeals td.filling")
    assert filling.count() == 1 and "still filling in" in filling.inner_text()
    page.locator("#appeals").screenshot(path=str(shots / "monitoring-appeals.png"))
    drift = page.locator("#prediction-drift tbody tr")
    assert drift.count() == 4 and "drifted" in drift.nth(1).inner_text()
    assert page.locator("#model-health svg.chart").count() == 2
    page.locator("#model-health").screenshot(path=str(shots / "monitoring-model-health.png"))
    precision = page.locator("#strategy-precision tbody tr")
    assert precision.count() == 1 and "62% ± 7%" in precision.inner_text()
    page.locator("#strategy-precision").screenshot(path=str(shots / "monitoring-precision.png"))
    models = page.locator("#model-precision-table tbody tr")
    assert models.count() == 2 and "3,125" in models.nth(0).inner_text()
    assert "69% ± 1%" in models.nth(0).inner_text()
    checked = models.nth(1).inner_text()
    assert "78% [66% – 90%]" in checked and "48 labels" in checked and "outside" not in checked
    page.locator("#model-precision").screenshot(path=str(shots / "monitoring-models.png"))
    launch = page.locator("#launch-risk-table tbody tr")
    assert launch.count() == 2 and "1 of 21" in launch.nth(0).inner_text()
    assert launch.nth(0).locator(".warn").count() == 1  # riskier than every established one
    assert "17.1%" in launch.nth(0).inner_text() and "(perfume)" in launch.nth(0).inner_text()
    page.locator("#launch-risk").screenshot(path=str(shots / "monitoring-launch-risk.png"))
    objectives = page.locator("#objectives").inner_text()
    assert "returns_per_1k_orders" in objectives  # shown, its budget unmeasured ("–")
    page.locator("#objectives").screenshot(path=str(shots / "monitoring-objectives.png"))
    page.locator("#categories").screenshot(path=str(shots / "monitoring-categories.png"))
    page.click("a[href='/monitoring?channel=video']")
    page.wait_for_url(re.compile(r"channel=video$"))
    assert page.locator("#view-rates").count() == 0  # no rate for the channel: no table
    page.close()
