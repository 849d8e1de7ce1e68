"""`govrisk evaluate-monitoring` prints its tables from a result (the simulation is faked)."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from typer.testing import CliRunner

import experiments.monitoring_eval as monitoring_eval
from experiments.monitoring_eval import MonitoringEvalConfig, MonitoringEvalResult
from govrisk import build_app


def _result(cfg: MonitoringEvalConfig, **_: object) -> MonitoringEvalResult:
    seeds = cfg.seeds
    return MonitoringEvalResult(
        detections=pd.DataFrame(
            [
                {"scenario": "jewelry returns surge", "seed": s, "delay_days": d, "other_alerts": 0}
                for s, d in zip(seeds, (None, 6), strict=True)
            ]
        ),
        false_alarms=pd.DataFrame(
            [
                {"seed": 1, "kind": "trust_cusum", "alerts": 2, "months": 2.0},
                {"seed": 2, "kind": "none", "alerts": 0, "months": 2.0},
            ]
        ),
        launch=pd.DataFrame(
            [
                {"seed": s, "launch_week": date(2026, 2, 2), "first_alert_week": pd.NaT}
                for s in seeds
            ]
        ),
        view_rates=pd.DataFrame(
            {
                "seed": [1, 1, 2],
                "policy": ["counterfeit", "counterfeit", "low_quality"],
                "channel": ["affiliate", "video", "shop_tab"],
                "vvr": [0.03, 0.02, 0.05],
                "vvr_low": [0.01, 0.0, 0.04],
                "vvr_high": [0.05, 0.03, 0.06],
                "vvr_true": [0.04, 0.05, 0.05],
                "covered": [True, False, True],
            }
        ),
        precisions=pd.DataFrame(
            {
                "seed": [1, 2],
                "entity": ["listing", "listing"],
                "policy": ["counterfeit", "counterfeit"],
                "flagged": [100, 120],
                "expected_precision": [0.9, 0.85],
                "expected_precision_sd": [0.03, 0.03],
                "precision_true": [0.92, 0.95],
                "error": [0.02, 0.10],
                "labelled_low": [0.85, 0.80],
                "labelled_high": [0.97, 0.90],
            }
        ),
        strategy_precisions=pd.DataFrame(
            {
                "seed": [1, 1, 2, 2],
                "strategy_id": ["cf", "cf", "cf", "lq"],
                "actioned": [40, 20, 30, 10],
                "expected_precision": [0.8, 0.7, 0.6, 0.5],
                "expected_precision_sd": [0.02, 0.05, 0.05, 0.1],
                "precision_true": [0.82, 0.9, 0.61, 0.5],
                "precision_p_true": [0.8, 0.8, 0.7, 0.5],
                "error": [0.02, 0.2, 0.01, 0.0],
            }
        ),
        config=cfg,
    )


def test_evaluate_monitoring_prints_every_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitoring_eval, "run_monitoring_eval", _result)
    out = CliRunner().invoke(
        build_app(), ["evaluate-monitoring", "--seeds", "1,2"], env={"COLUMNS": "200"}
    )
    assert out.exit_code == 0, out.output
    assert "jewelry returns surge" in out.output and "1/2" in out.output
    assert "trust_cusum" in out.output
    assert "covered by seed: 1: 1/2, 2: 1/1" in out.output
    assert "within 0.05 of the truth: 50% of 2" in out.output
    assert "within 0.05 by seed: 1: 1/1, 2: 0/1" in out.output
    assert "covers the truth: 1/2 = 50% (median width 0.110)" in " ".join(out.output.split())
    assert "weekly windows within 0.05 of the realised precision: 75% of 4" in out.output
    assert "within two of its own sd: 75%" in out.output
    assert "windows whose sd is at most 0.025: 100% of 1" in out.output
    assert "within 0.05 of the items' true mean probability: 50%" in out.output
    assert "any-violation models within 0.05: 0/0" in out.output
