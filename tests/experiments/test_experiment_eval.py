"""evaluate-experiments on a tiny budget: every row present, the measurable claims hold."""

from __future__ import annotations

from typer.testing import CliRunner

from experiments.experiment_eval import (
    ExperimentEvalConfig,
    aa_false_positives,
    gbstats_agreement,
    interference_bias,
    run_experiment_eval,
    srm_detection,
)
from govrisk import build_app

TINY = ExperimentEvalConfig(
    aa_runs=12,
    srm_runs=100,
    units=400,
    days=5,
    pre_days=7,
    srm_units=(5_000,),
    bias_runs=5,
    world_listings=600,
    world_days=14,
    world_seeds=(1,),
)


def test_peeking_inflates_naive_not_sequential() -> None:
    aa = aa_false_positives(TINY)
    assert aa["significant_sequential"] <= aa["significant_naive"]
    assert aa["ship_sequential"] <= aa["ship_naive"]


def test_srm_found_with_planted_split() -> None:
    detect, alarms = srm_detection(TINY)[5_000]
    assert detect >= 0.95 and alarms <= 0.05


def test_item_level_randomisation_is_more_biased() -> None:
    bias = interference_bias(TINY)
    assert abs(bias["item"] - bias["true"]) > abs(bias["seller"] - bias["true"])


def test_agrees_with_gbstats() -> None:
    worst = gbstats_agreement(TINY)
    assert worst is not None and worst <= 1e-6


def test_report_has_every_measure() -> None:
    result = run_experiment_eval(TINY)
    measures = " ".join(result.table["measure"])
    for needle in ("A/A ship rate", "SRM", "CUPED", "item-level", "seller-level", "gbstats"):
        assert needle in measures
    assert "simulated_seller" in result.details


def test_command_prints_the_table() -> None:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        build_app(),
        [
            "evaluate-experiments",
            "--runs",
            "10",
            "--units",
            "200",
            "--days",
            "3",
            "--world-seeds",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "A/A ship rate" in result.output
