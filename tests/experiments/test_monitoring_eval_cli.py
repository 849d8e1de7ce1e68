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
                {
                    "scenario": "jewelry returns surge",
                    "seed": s,
                    "delay_days": d,
                    "other_alerts": 0,
                    "evidence_without": lo,
                    "evidence_with": hi,
                }
                for s, d, lo, hi in zip(seeds, (None, 6), (10, 18), (13, 40), strict=True)
            ]
            + [
                {
                    "scenario": "jewelry returns surge, jewelry watched",
                    "seed": s,
                    "delay_days": d,
                    "other_alerts": 0,
                    "evidence_without": lo,
                    "evidence_with": hi,
                    "watched_false_alarms": n,
                }
                for s, d, lo, hi, n in zip(seeds, (7, 5), (10, 18), (13, 40), (1, 0), strict=True)
            ]
            + [
                {
                    "scenario": "broken clause",
                    "seed": s,
                    "delay_days": 1,
                    "other_alerts": 0,
                    "evidence_without": None,
                    "evidence_with": None,
                }
                for s in seeds
            ]
        ),
        false_alarms=pd.DataFrame(
            [
                {
                    "seed": 1,
                    "kind": "trust_cusum",
                    "alerts": 2,
                    "months": 2.0,
                    "on_launch_category": 1,
                },
                {"seed": 2, "kind": "none", "alerts": 0, "months": 2.0, "on_launch_category": 0},
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
                "confidence": 0.9,
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
    # 1 of the 2 alerts on the launch: 1 / 2 months / 2 worlds / 6 channels
    assert "of these, 1 were on the planted launch category collectible_cards" in out.output
    assert "without them 0.04 per month per channel" in " ".join(out.output.split())
    assert "covered by seed: 1: 1/2, 2: 1/1" in out.output
    assert "within 0.05 of the truth: 50% of 2" in out.output
    assert "within 0.05 by seed: 1: 1/1, 2: 0/1" in out.output
    assert "(90% interval) covers the truth: 1/2 = 50% (median width 0.110)" in " ".join(
        out.output.split()
    )
    assert "weekly windows within 0.05 of the realised precision: 75% of 4" in out.output
    assert "within two of its own sd: 75%" in out.output
    assert "windows whose sd is at most 0.025: 100% of 1" in out.output
    assert "within 0.05 of the items' true mean probability: 50%" in out.output
    assert "any-violation models within 0.05: 0/0" in out.output
    # the evidence table: a Poisson(10) count reaches 13 with p 0.21, Poisson(18) 40 with 5.3e-06
    flat = " ".join(out.output.split())
    assert "10 -> 13 (p 0.21)" in flat and "18 -> 40 (p 5.3e-06)" in flat
    assert "realised precision on 50% of the windows" in flat
    assert "jewelry returns surge, jewelry watched" in flat and "2/2" in flat
    # 2 worlds of 56 days: 3.7 world-months
    assert "raised 1 sequential alerts in 3.7 world-months (0.27 per month)" in flat
    assert flat.count("10 -> 13") == 1  # the watched scenario's worlds are its base's


def test_slice_arrivals_counts_the_incidents_kind_slice_and_days() -> None:
    from datetime import datetime

    from experiments.monitoring_eval import slice_arrivals
    from experiments.simulator.config import Incident

    tables = {
        "listings": pd.DataFrame({"listing_id": ["l1", "l2"], "category": ["jewelry", "shoes"]}),
        "videos": pd.DataFrame({"video_id": ["v1"], "listing_id": ["l1"]}),
        "live_sessions": pd.DataFrame({"live_id": ["s1"], "listing_id": ["l2"]}),
        "outcomes": pd.DataFrame(
            {
                "entity": ["listing", "video", "live", "listing", "listing", "listing"],
                "item_id": ["l1", "v1", "s1", "l1", "l1", "l2"],
                "channel": ["shop_tab", "video", "live", "affiliate", "shop_tab", "affiliate"],
                "kind": ["return", "return", "return", "complaint", "return", "complaint"],
                "occurred_at": [
                    datetime(2026, 1, 7, 1),  # day of the start: counted
                    datetime(2026, 1, 13, 23),  # last of the 7 days: counted
                    datetime(2026, 1, 8),  # shoes, through its live session: not jewelry
                    datetime(2026, 1, 8),
                    datetime(2026, 1, 14),  # the 8th day: not counted
                    datetime(2026, 1, 6, 23),  # before the start: not counted
                ],
            }
        ),
    }
    start = date(2026, 1, 5)
    jewelry = Incident(kind="return_surge", start_day=2, category="jewelry")
    assert slice_arrivals(tables, jewelry, start=start) == 2
    flood = Incident(kind="complaint_surge", start_day=2, channel="affiliate")
    assert slice_arrivals(tables, flood, start=start) == 1
    outage = Incident(kind="strategy_outage", start_day=2, strategy_id="x")
    assert slice_arrivals(tables, outage, start=start) is None
