"""Experiment specs: the shipped specs parse, and every kind of mistake gets a precise message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from features.vocabulary import Entity
from training.spec import (
    ANY,
    MAX_OPTUNA_TRIALS,
    FeatureSelection,
    SpecError,
    flat_params,
    load_spec,
    parse_spec,
)

SPECS = Path(__file__).resolve().parents[2] / "experiments" / "specs"


@pytest.mark.parametrize("name", ["demo.yaml", "full.yaml"])
def test_shipped_specs_parse(name: str) -> None:
    spec = load_spec(SPECS / name, check_paths=False)
    assert spec.targets[0].entity is Entity.LISTING
    assert ANY in spec.targets[0].policies
    assert spec.lightgbm.deterministic and spec.lightgbm.num_threads >= 1


def test_overrides_replace_paths(tmp_path: Path) -> None:
    data = tmp_path / "w" / "data"
    (data / "tables").mkdir(parents=True)
    spec = load_spec(SPECS / "demo.yaml", data_dir=data, output_dir=tmp_path / "o")
    assert spec.data_dir == data
    assert spec.output_dir == tmp_path / "o"


def _problems(raw: object, **kwargs: object) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(raw, **kwargs)  # type: ignore[arg-type]
    return [str(p) for p in info.value.problems]


def test_unknown_key_names_the_known_keys(
    tmp_path: Path, raw_spec: Callable[..., dict[str, Any]]
) -> None:
    raw = raw_spec(lightgbm={"num_leafs": 31})
    (problem,) = _problems(raw)
    assert problem.startswith("lightgbm.num_leafs: unknown key")
    assert "num_leaves" in problem


def test_unknown_top_level_key(tmp_path: Path, raw_spec: Callable[..., dict[str, Any]]) -> None:
    raw = {**raw_spec(), "tragets": []}
    (problem,) = _problems(raw)
    assert problem.startswith("tragets: unknown key") and "targets" in problem


def test_bad_policy_names_the_choices(
    tmp_path: Path, raw_spec: Callable[..., dict[str, Any]]
) -> None:
    raw = raw_spec(targets=[{"entity": "listing", "policies": ["counterfeet"]}])
    (problem,) = _problems(raw)
    assert problem.startswith("targets[0].policies:")
    assert "'counterfeet'" in problem and "fake_discount" in problem and "any" in problem


def test_bad_entity_and_duplicates(raw_spec: Callable[..., dict[str, Any]]) -> None:
    raw = raw_spec(
        targets=[
            {"entity": "listings", "policies": ["any"]},
            {"entity": "video", "policies": ["any", "any"]},
        ],
    )
    problems = _problems(raw)
    assert any(p.startswith("targets[0].entity: unknown entity 'listings'") for p in problems)
    assert any(p.startswith("targets[1].policies: policy listed twice") for p in problems)


def test_every_problem_reported_at_once(raw_spec: Callable[..., dict[str, Any]]) -> None:
    raw = raw_spec(
        lightgbm={"learning_rate": 0},
        optuna={"n_trials": MAX_OPTUNA_TRIALS + 1},
        split={"test_weeks": 0},
    )
    problems = _problems(raw)
    locations = {p.split(":")[0] for p in problems}
    assert {"lightgbm.learning_rate", "optuna.n_trials", "split.test_weeks"} <= locations


def test_missing_data_dir_is_reported_with_the_fix(
    tmp_path: Path, raw_spec: Callable[..., dict[str, Any]]
) -> None:
    raw = raw_spec(data_dir=str(tmp_path / "nowhere"))
    (problem,) = _problems(raw, check_paths=True)
    assert problem.startswith("data_dir: data directory") and "govrisk simulate" in problem


def test_data_dir_without_tables_folder(
    tmp_path: Path, raw_spec: Callable[..., dict[str, Any]]
) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    (problem,) = _problems(raw_spec(data_dir=str(bare)), check_paths=True)
    assert "has no tables/ folder" in problem


def test_two_validation_rules_conflict(
    tmp_path: Path, raw_spec: Callable[..., dict[str, Any]]
) -> None:
    raw = raw_spec(split={"validation_weeks": 1, "validation_fraction": 0.2})
    (problem,) = _problems(raw)
    assert "validation_weeks or validation_fraction" in problem


def test_validation_fraction_alone_is_fine(
    tmp_path: Path, raw_spec: Callable[..., dict[str, Any]]
) -> None:
    spec = parse_spec(raw_spec(split={"validation_fraction": 0.25}))
    assert spec.split.validation_weeks is None and spec.split.validation_fraction == 0.25


def test_required_keys(tmp_path: Path, raw_spec: Callable[..., dict[str, Any]]) -> None:
    raw = raw_spec()
    del raw["targets"], raw["name"]
    problems = _problems(raw)
    assert "targets: required key missing" in problems
    assert "name: required key missing" in problems


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="spec file not found"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(SpecError, match="expected a mapping"):
        load_spec(listy)


def test_feature_selection_globs_keep_declared_order() -> None:
    selection = FeatureSelection(include=("listing_*", "seller_tenure_days"), exclude=("*_id",))
    names = ["seller_tenure_days", "listing_price", "listing_item_id", "exposure_impressions_7d"]
    assert selection.select(names) == ["seller_tenure_days", "listing_price"]


def test_flat_params_are_strings(tmp_path: Path, raw_spec: Callable[..., dict[str, Any]]) -> None:
    params = flat_params(parse_spec(raw_spec()))
    assert params["lightgbm.num_threads"] == "1"
    assert params["targets.0.policies"] == "counterfeit,any"
    assert all(isinstance(v, str) for v in params.values())
