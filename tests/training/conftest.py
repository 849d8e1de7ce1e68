"""Fixtures of the training tests: seeded synthetic labeled frames and throwaway MLflow stores."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from experiments.synthetic.labeled_frames import SyntheticData, make_labeled_frames
from features.vocabulary import Entity
from training.dataset import EntityData, assemble, prepare_labels
from training.spec import ExperimentSpec, parse_spec


@pytest.fixture(scope="session")
def synthetic() -> SyntheticData:
    """3,000 listings over eight weeks with rule-biased, noisy audit labels."""
    return make_labeled_frames(3000, seed=0)


@pytest.fixture(scope="session")
def entity_data(synthetic: SyntheticData) -> EntityData:
    """The synthetic labels joined to their weekly feature frames."""
    labels = prepare_labels(synthetic.audit_labels, entity=Entity.LISTING)
    return assemble(
        synthetic.frames,
        labels,
        entity=Entity.LISTING,
        feature_types=synthetic.feature_types,
        channels=synthetic.channels,
        new_categories=synthetic.new_categories,
    )


@pytest.fixture(scope="session")
def partial_entity_data(entity_data: EntityData) -> EntityData:
    """`entity_data` with the fake_discount verdicts of 100 fully clean items forgotten, so
    those items are judged clean on counterfeit only (partially judged)."""
    from dataclasses import replace

    labels = entity_data.labels
    clean = labels.loc[labels["y"] == 0]
    both_clean = set(clean.loc[clean["policy"] == "counterfeit", "item_id"]) & set(
        clean.loc[clean["policy"] == "fake_discount", "item_id"]
    )
    forget = sorted(both_clean)[:100]
    keep = ~((labels["policy"] == "fake_discount") & labels["item_id"].isin(forget))
    return replace(entity_data, labels=labels.loc[keep].reset_index(drop=True))


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated MLflow SQLite store, created once and copied per test (migrations
    take seconds)."""
    import mlflow

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{path}")
    mlflow.search_experiments()
    mlflow.set_tracking_uri(previous)
    return path


def fresh_store(template: Path, directory: Path) -> str:
    """Copy the template store into `directory`; returns its tracking URI."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "mlflow.db"
    shutil.copy(template, target)
    return f"sqlite:///{target}"


@pytest.fixture(scope="session")
def new_store(mlflow_template: Path) -> Callable[[Path], str]:
    """Function copying the template store into a directory; returns its tracking URI."""
    return lambda directory: fresh_store(mlflow_template, directory)


@pytest.fixture
def tracking_uri(
    mlflow_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh SQLite tracking store in tmp_path, the working directory for the test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    yield fresh_store(mlflow_template, tmp_path / "store")


def spec_dict(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    """A small valid spec mapping writing under tmp_path; keyword sections override."""
    data_dir = tmp_path / "data"
    (data_dir / "tables").mkdir(parents=True, exist_ok=True)
    base: dict[str, Any] = {
        "name": "unit",
        "data_dir": str(data_dir),
        "output_dir": str(tmp_path / "out"),
        "targets": [{"entity": "listing", "policies": ["counterfeit", "any"]}],
        "labels": {"min_positives": 10},
        "lightgbm": {"num_threads": 1, "num_boost_round": 150, "num_leaves": 15},
        "split": {"cv_folds": 3},
        "mlflow": {"experiment": "unit", "artifact_location": str(tmp_path / "artifacts")},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return base


@pytest.fixture
def raw_spec(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """A small valid spec mapping (before validation); keyword sections override."""

    def build(**sections: Any) -> dict[str, Any]:
        return spec_dict(tmp_path, **sections)

    return build


@pytest.fixture
def make_spec(tmp_path: Path) -> Callable[..., ExperimentSpec]:
    """Build a validated small spec; keyword sections override the defaults."""

    def build(**sections: Any) -> ExperimentSpec:
        return parse_spec(spec_dict(tmp_path, **sections))

    return build
