"""Training on a BYO dataset: the spec's dataset source, the random split, labels to rows."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments import SPECS_DIR
from experiments.synthetic.fraud import write_fraud_files
from features.byo import build_dataset, load_spec
from features.byo_labels import draw_random, reveal
from features.store import read_dataset, write_dataset
from features.vocabulary import Entity
from training.byo import load_byo
from training.dataset import DatasetError
from training.fit import random_split
from training.spec import SpecError, SplitSpec, parse_spec
from training.spec import load_spec as load_training_spec

TRAIN_SPEC = SPECS_DIR / "ecommerce_fraud_train.yaml"


@pytest.fixture(scope="module")
def byo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("byo")
    tables = write_fraud_files(root / "raw", n=800, seed=5)
    write_dataset(
        build_dataset(load_spec(SPECS_DIR / "ecommerce_fraud.yaml"), overrides=tables),
        root / "features",
    )
    dataset = read_dataset(root / "features")
    labels = reveal(dataset, draw_random(dataset, size=300), reviewed_at=datetime(2016, 1, 1))
    labels.to_parquet(root / "labels.parquet")
    return root


def test_the_shipped_training_spec_takes_its_target_from_the_dataset(byo_dir: Path) -> None:
    spec = load_training_spec(
        TRAIN_SPEC, dataset=byo_dir / "features", labels=byo_dir / "labels.parquet"
    )
    assert spec.split.by == "random" and spec.data_dir is None
    filled, data, digest = load_byo(spec)
    assert filled.target_pairs() == [(Entity.LISTING, "engagement_fraud")]
    entity_data = data[Entity.LISTING]
    assert entity_data.declaration is not None
    assert entity_data.feature_names == entity_data.declaration.names
    assert set(entity_data.labels["policy"]) == {"engagement_fraud"}
    assert len(digest) == 32


def test_labels_of_another_dataset_are_refused(byo_dir: Path, tmp_path: Path) -> None:
    labels = pd.read_parquet(byo_dir / "labels.parquet")
    labels.loc[0, "item_id"] = "someone-else"
    labels.to_parquet(tmp_path / "labels.parquet")
    spec = load_training_spec(
        TRAIN_SPEC, dataset=byo_dir / "features", labels=tmp_path / "labels.parquet"
    )
    with pytest.raises(DatasetError, match=r"1 labeled item\(s\) are not rows of dataset"):
        load_byo(spec)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"data_dir": "w/data"}, "give data_dir (marketplace tables) or dataset"),
        ({"targets": [{"entity": "listing", "policies": ["any"]}]}, "drop it"),
        ({"split": {"by": "weekly"}}, "split.by: Input should be 'time' or 'random'"),
    ],
)
def test_dataset_spec_mistakes(changes: dict[str, object], message: str) -> None:
    raw = {"name": "x", "dataset": {"path": "f", "labels": "l.parquet"}, **changes}
    with pytest.raises(SpecError) as info:
        parse_spec(raw)
    assert message in str(info.value)


def test_missing_dataset_files_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not a `govrisk features byo` output folder"):
        load_training_spec(TRAIN_SPEC, dataset=tmp_path, labels=tmp_path / "l.parquet")


def test_the_random_split_partitions_every_row() -> None:
    spec = SplitSpec(by="random", test_fraction=0.25, cv_folds=4)
    split = random_split(1_000, spec=spec)
    parts = np.concatenate([split.train, split.validation, split.test])
    assert np.array_equal(np.sort(parts), np.arange(1_000))
    assert len(split.test) == pytest.approx(250, abs=45)
    assert (split.fold[split.test] == -1).all()
    assert set(split.fold[split.training_period]) == {0, 1, 2, 3}
    assert np.array_equal(random_split(1_000, spec=spec).test, split.test)
