"""`run_monitoring_eval` end to end on tiny worlds (one seed, few days)."""

from __future__ import annotations

import pytest

from experiments.monitoring_eval import (
    SCENARIOS,
    WATCHED_SCENARIOS,
    MonitoringEvalConfig,
    run_monitoring_eval,
)

#: Four simulated worlds and a dozen monitor runs: about a minute of CPU.
pytestmark = pytest.mark.slow


def test_every_table_of_the_evaluation_is_filled() -> None:
    cfg = MonitoringEvalConfig(
        seeds=(5,), listings=600, days=28, max_delay_days=2, label_budget=300
    )
    steps: list[str] = []
    result = run_monitoring_eval(cfg, on_step=steps.append)
    det = result.detections.set_index("scenario")
    assert set(det.index) == set(SCENARIOS) | set(WATCHED_SCENARIOS)
    watched = det.loc["jewelry returns surge, jewelry watched"]
    assert watched["watched_false_alarms"] >= 0
    assert watched["evidence_with"] == det.loc["jewelry returns surge", "evidence_with"]
    surges = det.loc[["affiliate complaint flood", "jewelry returns surge"]]
    # a surge only raises its outcomes' probability: never fewer than its counterfactual
    assert (surges["evidence_with"] >= surges["evidence_without"]).all()
    assert det.loc[["broken deployment", "broken clause"], "evidence_with"].isna().all()
    assert {"seed", "kind", "alerts", "months"} <= set(result.false_alarms.columns)
    assert len(result.launch) == 1
    vvr = result.view_rates
    assert len(vvr) and vvr["vvr_true"].between(0, 1).all()
    assert vvr["covered"].dtype == bool
    prec = result.precisions
    assert len(prec) and {"expected_precision", "precision_true", "error"} <= set(prec.columns)
    assert "any" in set(prec["policy"])  # the any-violation models are checked too
    sp = result.strategy_precisions
    assert len(sp) and sp["precision_true"].between(0, 1).all()
    assert (sp["error"] == (sp["expected_precision"] - sp["precision_true"]).abs()).all()
    assert any("view rates" in s for s in steps)
