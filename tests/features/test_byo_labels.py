"""Review samples of a BYO dataset: known inclusion probabilities, revealed verdicts."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from experiments import SPECS_DIR
from experiments.synthetic.fraud import write_fraud_files
from features.byo import ByoDataset, build_dataset, load_spec
from features.byo_labels import (
    append_labels,
    draw_random,
    reveal,
    sample_from_draws,
)
from features.contract import ContractError

WHEN = datetime(2016, 1, 1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> ByoDataset:
    tables = write_fraud_files(tmp_path_factory.mktemp("raw"), n=1_000, seed=3)
    return build_dataset(load_spec(SPECS_DIR / "ecommerce_fraud.yaml"), overrides=tables)


def test_a_uniform_draw_has_its_inclusion_probability(dataset: ByoDataset) -> None:
    sample = draw_random(dataset, size=200, seed=1)
    assert len(sample) == pytest.approx(200, abs=45)
    assert (sample["inclusion_probability"] == 0.2).all()
    assert set(sample["sampling"]) == {"random"}
    assert set(sample["entity"]) == {"listing"} and set(sample["policy"]) == {"engagement_fraud"}
    assert sample["item_id"].is_unique
    assert sample.equals(draw_random(dataset, size=200, seed=1))


def test_revealed_verdicts_are_the_label_column(dataset: ByoDataset) -> None:
    labels = reveal(dataset, draw_random(dataset, size=300, seed=2), reviewed_at=WHEN)
    truth = dataset.frame.set_index("item_id")["label"].reindex(labels["item_id"]).to_numpy()
    assert ((labels["verdict"] == "violating").to_numpy() == (truth > 0.5)).all()
    assert (labels["reviewed_at"] == pd.Timestamp(WHEN)).all()


def test_drawn_rows_must_belong_to_the_dataset(dataset: ByoDataset) -> None:
    draws = pd.DataFrame(
        {"item_id": ["nope"], "sampling": ["model_ranked"], "inclusion_probability": [0.5]}
    )
    with pytest.raises(ValueError, match=r"1 drawn item\(s\) are not rows of dataset"):
        sample_from_draws(dataset, draws)


def test_appending_the_same_draw_twice_is_refused(dataset: ByoDataset) -> None:
    labels = reveal(dataset, draw_random(dataset, size=50, seed=4), reviewed_at=WHEN)
    with pytest.raises(ValueError, match="already in the labels file"):
        append_labels(labels, labels)


def test_bad_sizes_and_inclusion_probabilities(dataset: ByoDataset) -> None:
    with pytest.raises(ValueError, match="--size must be between 1 and the dataset's 1,000"):
        draw_random(dataset, size=5_000)
    draws = pd.DataFrame(
        {
            "item_id": dataset.frame["item_id"].iloc[:2],
            "sampling": "model_ranked",
            "inclusion_probability": [0.5, 1.5],
        }
    )
    with pytest.raises(ContractError, match="inclusion_probability"):
        reveal(dataset, sample_from_draws(dataset, draws), reviewed_at=WHEN)


def test_a_spec_without_governance_says_to_add_it(dataset: ByoDataset) -> None:
    bare = ByoDataset(
        spec=dataset.spec.model_copy(update={"governance": None}),
        feature_set=dataset.feature_set,
        frame=dataset.frame,
        inputs={},
        digests={},
    )
    with pytest.raises(ValueError, match="has no governance section"):
        draw_random(bare, size=10)
