"""`policy_scores`: every audited policy gets a score, borrowed when it has no model."""

from __future__ import annotations

import pandas as pd
import pytest

from features.vocabulary import Entity, Policy
from governance.monitoring.prevalence import policy_scores


def _rows(entity: str, policy: str, items: list[str], p: float) -> pd.DataFrame:
    return pd.DataFrame({"entity": entity, "item_id": items, "policy": policy, "p": p})


@pytest.fixture
def labels() -> pd.DataFrame:
    """Video misleading-claim verdicts: 1 of 4 violating, the violating one drawn at 1/3."""
    return pd.DataFrame(
        {
            "entity": "video",
            "policy": "misleading_claim",
            "verdict": ["violating", "compliant", "compliant", "compliant"],
            "inclusion_probability": [1 / 3, 1.0, 1.0, 1.0],
        }
    )


def test_a_policy_with_its_own_model_keeps_its_scores(labels: pd.DataFrame) -> None:
    preds = pd.concat(
        [_rows("listing", "counterfeit", ["a", "b"], 0.3), _rows("listing", "any", ["a"], 0.9)]
    )
    out = policy_scores(preds, {(Entity.LISTING, Policy.COUNTERFEIT)}, labels)
    assert len(out) == len(preds)
    assert out.loc[out["policy"] == "counterfeit", "p"].tolist() == [0.3, 0.3]


def test_a_policy_without_a_model_borrows_the_any_violation_scores(
    labels: pd.DataFrame,
) -> None:
    preds = pd.concat(
        [_rows("listing", "any", ["a", "b"], 0.7), _rows("listing", "counterfeit", ["a"], 0.1)]
    )
    pairs = {(Entity.LISTING, Policy.PROHIBITED_ITEM), (Entity.LISTING, Policy.COUNTERFEIT)}
    out = policy_scores(preds, pairs, labels)
    borrowed = out[out["policy"] == "prohibited_item"]
    assert sorted(borrowed["item_id"]) == ["a", "b"] and (borrowed["p"] == 0.7).all()
    assert out.loc[out["policy"] == "counterfeit", "p"].tolist() == [0.1]


def test_without_any_model_the_weighted_label_prevalence_scores_every_item(
    labels: pd.DataFrame,
) -> None:
    preds = pd.concat(
        [
            _rows("video", "engagement_fraud", ["v1", "v2"], 0.2),
            _rows("video", "engagement_fraud", ["v2"], 0.2),
        ]
    )
    out = policy_scores(preds, {(Entity.VIDEO, Policy.MISLEADING_CLAIM)}, labels)
    filled = out[out["policy"] == "misleading_claim"]
    assert sorted(filled["item_id"]) == ["v1", "v2"]
    # weights 3, 1, 1, 1: one violating of weight 3 in 6
    assert filled["p"].tolist() == pytest.approx([0.5, 0.5])


def test_an_entity_without_any_scores_is_left_out(labels: pd.DataFrame) -> None:
    preds = _rows("listing", "any", ["a"], 0.7)
    out = policy_scores(preds, {(Entity.SELLER, Policy.ENGAGEMENT_FRAUD)}, labels)
    assert out.equals(preds)
