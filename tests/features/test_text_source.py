"""Text sources: declared against the data contract, score features declared once."""

from __future__ import annotations

import pandas as pd
import pytest

from features.schema import Feature
from features.tables import TABLES
from features.text_source import (
    TEXT_POLICIES,
    TEXT_SOURCES,
    join_fields,
    text_score_names,
    text_source,
)
from features.vocabulary import Entity


@pytest.mark.parametrize("entity", list(TEXT_SOURCES))
def test_sources_name_contract_tables_and_string_columns(entity: Entity):
    source = TEXT_SOURCES[entity]
    table = TABLES[source.table]
    kinds = {c.name: c.kind for c in table.columns}
    assert kinds[source.key] == "string"
    for field in source.fields:
        assert kinds[field] == "string", field


def test_score_features_are_declared_numeric_log_odds():
    names = text_score_names(Entity.LISTING)
    assert names == [f"listing_text_score_{p}" for p in TEXT_POLICIES]
    feature = TEXT_SOURCES[Entity.LISTING].score_feature("counterfeit")
    assert isinstance(feature, Feature) and feature.kind == "numeric"
    assert feature.unit == "log-odds"
    assert text_source(Entity.SELLER) is None and text_score_names(Entity.SELLER) == []
    with pytest.raises(KeyError, match="no text model"):
        TEXT_SOURCES[Entity.LISTING].score_feature("fake_discount")


def test_documents_join_fields_and_read_missing_as_empty():
    table = pd.DataFrame(
        {"listing_id": ["a", "b"], "title": ["Replica bag", None], "description": [None, "x"]}
    )
    docs = TEXT_SOURCES[Entity.LISTING].documents(table)
    assert docs.to_dict() == {"a": "Replica bag\n", "b": "\nx"}
    assert join_fields([None, float("nan"), "z"]) == "\n\nz"
    with pytest.raises(KeyError, match="description"):
        TEXT_SOURCES[Entity.LISTING].documents(table.drop(columns=["description"]))


def test_with_text_fields_joins_raw_text_by_item_id():
    from features.text_source import with_text_fields

    tables = {
        "listings": pd.DataFrame(
            {"listing_id": ["b", "a"], "title": ["B", "A"], "description": ["db", None]}
        )
    }
    frame = pd.DataFrame({"item_id": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]})
    out = with_text_fields(frame, Entity.LISTING, tables)
    assert list(out.columns) == ["item_id", "x", "title", "description"]
    assert out["title"].iloc[:2].tolist() == ["A", "B"]
    assert pd.isna(out["title"].iloc[2]) and out["description"].iloc[1] == "db"
    assert with_text_fields(frame, Entity.SELLER, tables) is frame
