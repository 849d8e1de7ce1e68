"""Strategy files naming unknown features are caught before a build."""

from __future__ import annotations

from pathlib import Path

from features.references import strategy_problems

GOOD = """\
id: listing-counterfeit-terms
version: 1
entity: listing
condition:
  all:
    - {feature: listing_counterfeit_term_count, op: ">=", value: 1}
    - any:
        - {feature: seller_tenure_days, op: "<", value: 90}
        - {feature: p_counterfeit, op: ">", value: 0.5}
"""


def test_known_features_and_score_columns_pass(tmp_path: Path) -> None:
    (tmp_path / "a@v1.yaml").write_text(GOOD)
    assert strategy_problems(tmp_path) == []
    assert strategy_problems(tmp_path / "absent") == []


def test_unknown_feature_and_entity_are_named_with_suggestions(tmp_path: Path) -> None:
    (tmp_path / "a@v1.yaml").write_text(GOOD.replace("seller_tenure_days", "seller_tenure_dayz"))
    (tmp_path / "b@v1.yaml").write_text(GOOD.replace("entity: listing", "entity: shop"))
    (tmp_path / "c@v1.yaml").write_text("id: [unclosed")
    problems = strategy_problems(tmp_path)
    assert len(problems) == 3
    assert (
        "a@v1.yaml (listing-counterfeit-terms@v1): unknown feature 'seller_tenure_dayz'"
        in problems[0]
    )
    assert "did you mean seller_tenure_days" in problems[0]
    assert "entity 'shop' is not one of" in problems[1]
    assert "not valid YAML" in problems[2]
