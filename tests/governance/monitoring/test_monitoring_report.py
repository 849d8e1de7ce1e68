"""The offline HTML report renders every section from a small monitor run."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from governance.monitoring.pipeline import MonitorConfig, MonitorResult, compute_monitor
from governance.monitoring.report import coverage_matrix, render_report
from governance.monitoring.settings import MonitorSettings
from governance.monitoring.tables import (
    LAUNCH_COVERAGE,
    MODEL_PRECISION,
    PREDICTION_DRIFT,
    STRATEGY_EXPECTED_PRECISION,
    STRATEGY_PRECISION,
    VIOLATIVE_VIEW_RATE,
    conform,
)
from tests.governance.monitoring.world import START, end_of, make_tables


def _decisions(n_days: int) -> pd.DataFrame:
    rows = [
        {
            "decision_id": f"d{d}-{k}",
            "entity": "listing",
            "item_id": f"l{d}-{k}",
            "channel": "shop_tab",
            "strategy_id": "rule-a",
            "strategy_version": 1,
            "action": "block",
            "decided_at": pd.Timestamp(START) + pd.Timedelta(days=d),
            "lifted_at": pd.Timestamp(START) + pd.Timedelta(days=d + 2) if k == 0 else pd.NaT,
        }
        for d in range(1, n_days)
        for k in range(3)
    ]
    return pd.DataFrame(rows)


def _precision() -> pd.DataFrame:
    weeks = pd.date_range(pd.Timestamp(START), periods=4, freq="W-MON")
    return conform(
        pd.DataFrame(
            {
                "week_start": np.tile(weeks, 2),
                "strategy_id": ["rule-a"] * 4 + ["rule-b"] * 4,
                "labels": 12,
                "violating": 9,
                "precision": 0.75,
                "precision_low": 0.5,
                "precision_high": 0.95,
                "confidence": 0.95,
            }
        ),
        STRATEGY_PRECISION,
    )


def _coverage() -> pd.DataFrame:
    return conform(
        pd.DataFrame(
            {
                "category": "cards",
                "policy": ["fake_discount", "fake_discount", "counterfeit"],
                "channel": ["campaigns", "affiliate", "campaigns"],
                "items_shown": [10, 4, 10],
                "impressions": [500, 80, 500],
                "strategies": ["campaign-deep-discount", "", "listing-counterfeit"],
                "strategies_firing": ["campaign-deep-discount", "", ""],
                "items_actioned": [3, 0, 0],
                "actioned_share": [0.3, 0.0, 0.0],
            }
        ),
        LAUNCH_COVERAGE,
    )


def _model_tables() -> dict[str, pd.DataFrame]:
    vvr = pd.DataFrame(
        {
            "policy": ["counterfeit", "counterfeit"],
            "channel": ["shop_tab", "affiliate"],
            "impressions": [1e5, 2e4],
            "violative_impressions": [3e3, 1e3],
            "vvr": [0.03, 0.05],
            "vvr_low": [0.01, 0.0],
            "vvr_high": [0.06, 0.12],
            "vvr_model": [0.025, 0.04],
            "labels": [120, 30],
            "confidence": 0.95,
        }
    )
    mp = pd.DataFrame(
        {
            "entity": ["listing"],
            "policy": ["counterfeit"],
            "threshold": [0.5],
            "items": [400],
            "flagged": [25],
            "expected_precision": [0.71],
            "expected_precision_sd": [0.08],
            "expected_true_positives": [17.8],
            "labelled_precision": [0.64],
            "labelled_low": [0.41],
            "labelled_high": [0.87],
            "labels_flagged": [11],
            "confidence": [0.95],
        }
    )
    drift = pd.DataFrame(
        {
            "entity": "listing",
            "policy": "counterfeit",
            "week_start": pd.date_range(pd.Timestamp(START), periods=2, freq="W-MON"),
            "n_reference": 800,
            "n_week": 400,
            "psi": [0.02, 0.4],
            "n_bins": 10,
            "mean_reference": 0.1,
            "mean_week": [0.1, 0.2],
            "top_bin": ">= 0.3",
            "top_bin_shift": [0.01, 0.15],
            "alert_threshold": 0.1,
        }
    )
    expected = pd.DataFrame(
        {
            "week_start": pd.date_range(pd.Timestamp(START), periods=2, freq="W-MON"),
            "strategy_id": "cf-terms",
            "policy": "counterfeit",
            "actioned": [1200, 14],
            "scored": [1190, 14],
            "expected_precision": [0.8125, 0.64],
            "expected_precision_sd": [0.011, 0.12],
            "expected_true_positives": [966.9, 9.0],
        }
    )
    return {
        VIOLATIVE_VIEW_RATE.name: conform(vvr, VIOLATIVE_VIEW_RATE),
        MODEL_PRECISION.name: conform(mp, MODEL_PRECISION),
        STRATEGY_EXPECTED_PRECISION.name: conform(expected, STRATEGY_EXPECTED_PRECISION),
        PREDICTION_DRIFT.name: conform(drift, PREDICTION_DRIFT),
    }


@pytest.fixture(scope="module")
def small_run() -> MonitorResult:
    tables = make_tables(n_listings=20, n_days=28, seed=5, incident=("affiliate", 14, 0.3))
    tables["strategy_decisions"] = _decisions(28)
    config = replace(MonitorConfig.from_settings(MonitorSettings(), as_of=end_of(28)), threads=1)
    result = compute_monitor(tables, config, owners={}, with_drift=False)
    result.tables["strategy_precision"] = _precision()
    result.tables["launch_coverage"] = _coverage()
    return result


def test_report_without_predictions_renders_precision_and_launch_watch(
    small_run: MonitorResult,
) -> None:
    html = render_report(small_run)
    precision = html.split('id="strategy-precision"', 1)[1].split("</section>", 1)[0]
    assert precision.count("<svg") == 1 and "rule-b" in precision and "[0.50, 0.95]" in precision
    appeals = html.split('id="strategy-appeals"', 1)[1].split("</section>", 1)[0]
    assert appeals.count("<svg") == 1 and "rule-a" in appeals and "filling in" in appeals
    assert ">21<" in appeals and "built-in method" not in appeals  # 7 days x 3 items
    launch = html.split('id="launch-coverage"', 1)[1].split("</section>", 1)[0]
    assert launch.count('class="cov-gap"') == 1 and launch.count('class="cov-idle"') == 1
    assert ">30%<" in launch and "cards" in launch
    model = html.split('id="model-side"', 1)[1].split("</section>", 1)[0]
    assert "<svg" not in model and "--predictions" in model


def test_report_with_predictions_renders_view_rates_and_model_precision(
    small_run: MonitorResult,
) -> None:
    tables = {**small_run.tables, **_model_tables()}
    result = MonitorResult(config=small_run.config, tables=tables, delays=small_run.delays)
    model = render_report(result).split('id="model-side"', 1)[1].split("</section>", 1)[0]
    assert model.count("<svg") == 2 and "Prediction drift" in model
    assert "5.00% [0.00%, 12.00%]" in model and "0.710 ± 0.080" in model
    assert ">400<" in model and "built-in method" not in model
    assert "0.640 [0.410, 0.870] (11 labels)" in model
    strategies = model.split("Label-free strategy precision", 1)[1]
    assert "(2 strategy-weeks)" in strategies and ">1,190<" in strategies
    assert "0.812 ± 0.011" in strategies and "0.640 ± 0.120" in strategies


def test_coverage_matrix_has_a_cell_per_channel_even_where_not_shown() -> None:
    m = coverage_matrix(_coverage())
    assert m["channels"] == ["affiliate", "campaigns"]
    counterfeit = next(r for r in m["rows"] if r["policy"] == "counterfeit")
    assert [c["cls"] for c in counterfeit["cells"]] == ["cov-none", "cov-idle"]
