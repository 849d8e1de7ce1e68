"""docs/features.md is the rendering of the declarations (regenerate: `govrisk features docs`)."""

from __future__ import annotations

from pathlib import Path

from features.catalog import all_feature_names
from features.feature_docs import render_features_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs" / "features.md"


def test_committed_docs_equal_the_rendering() -> None:
    assert DOCS.read_text() == render_features_markdown(), (
        "docs/features.md is stale: run `govrisk features docs`"
    )


def test_every_feature_is_documented() -> None:
    text = render_features_markdown()
    for name in all_feature_names():
        assert f"`{name}`" in text, name
