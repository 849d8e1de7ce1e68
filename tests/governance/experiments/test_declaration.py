"""Experiment declarations: validated like strategies, every problem at once, round-trip YAML."""

from __future__ import annotations

import pytest

from governance.experiments.declaration import (
    ExperimentError,
    check_against_registry,
    dump_experiment,
    experiment_from_dict,
    parse_experiment,
)
from governance.experiments.vocabulary import RandomisationUnit
from tests.governance.experiments.factories import experiment_data, make_experiment, make_registry


def test_defaults_to_seller_randomisation() -> None:
    data = experiment_data()
    data.pop("traffic_share")
    experiment = experiment_from_dict(data)
    assert experiment.unit is RandomisationUnit.SELLER
    assert experiment.traffic_share == 0.5
    assert experiment.duration_days == 14


def test_yaml_round_trip() -> None:
    experiment = make_experiment(unit="item")
    assert parse_experiment(dump_experiment(experiment)) == experiment


def test_every_problem_reported_at_once() -> None:
    with pytest.raises(ExperimentError) as info:
        experiment_from_dict(
            experiment_data(
                id="Bad Id",
                primary_metric="revenue",
                traffic_share=1.5,
                unit="shop",
                guardrails=[{"metric": "nps", "margin": 0}],
            )
        )
    paths = {p.split(":")[0] for p in info.value.problems}
    assert {"id", "primary_metric", "traffic_share", "unit", "guardrails.0.margin"} <= paths
    assert "revenue" in str(info.value)


def test_cross_field_rules() -> None:
    with pytest.raises(ExperimentError, match="end must be after start"):
        experiment_from_dict(experiment_data(end=experiment_data()["start"]))
    with pytest.raises(ExperimentError, match="primary metric and a guardrail"):
        experiment_from_dict(experiment_data(guardrails=[{"metric": "gmv", "margin": 0.01}]))
    with pytest.raises(ExperimentError, match="listed twice"):
        experiment_from_dict(
            experiment_data(
                guardrails=[{"metric": "nps", "margin": 0.01}, {"metric": "nps", "margin": 0.02}]
            )
        )


def test_refs_normalised() -> None:
    assert make_experiment(treatment="campaign-deep-discount@2").treatment == (
        "campaign-deep-discount@v2"
    )
    with pytest.raises(ExperimentError, match="names no version"):
        make_experiment(treatment="campaign-deep-discount")


def test_registry_check_passes_for_active_vs_shadow() -> None:
    check_against_registry(make_experiment(), make_registry())


def test_registry_check_names_missing_and_wrong_status() -> None:
    registry = make_registry()
    with pytest.raises(ExperimentError) as info:
        check_against_registry(
            make_experiment(control="campaign-deep-discount@v2", treatment="nope@v1"), registry
        )
    text = str(info.value)
    assert "nope@v1 is not in the registry" in text
    assert "control must be the active version" in text
    with pytest.raises(ExperimentError, match="draft or shadow"):
        check_against_registry(
            make_experiment(
                control="campaign-deep-discount@v2", treatment="campaign-deep-discount@v1"
            ),
            registry,
        )
    with pytest.raises(ExperimentError, match="shop_tab not among"):
        check_against_registry(make_experiment(channels=["shop_tab"]), registry)
