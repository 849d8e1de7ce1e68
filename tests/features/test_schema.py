"""Declaration types reject malformed features, sets and frame parts."""

from __future__ import annotations

import pytest

from features.schema import Feature, FeatureSet, FramePart, FrameSpec
from features.vocabulary import Entity


def _set(*features: Feature) -> FeatureSet:
    return FeatureSet(
        name="demo",
        entity="listing",
        join_key="listing_id",
        version=1,
        description="d",
        features=features,
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad-Name"}, "snake_case"),
        ({"kind": "text"}, "kind"),
        ({"description": "two\nlines"}, "one non-empty line"),
        ({"description": "  "}, "one non-empty line"),
        ({"version": 0}, "version"),
    ],
)
def test_feature_rejects_bad_declarations(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"name": "ok_name", "kind": "numeric", "description": "Fine."}
    with pytest.raises(ValueError, match=message):
        Feature(**{**base, **kwargs})  # type: ignore[arg-type]


def test_feature_set_rejects_duplicate_names() -> None:
    f = Feature("x", "numeric", "X.")
    with pytest.raises(ValueError, match=r"\['x'\] more than once"):
        _set(f, f)


def test_frame_part_prefixes_names_and_descriptions_and_selects() -> None:
    fs = _set(Feature("a", "numeric", "A.", "USD"), Feature("b", "boolean", "B."))
    part = FramePart(fs, via="x", prefix="linked_", only=("b",), description_prefix="Linked: ")
    (feature,) = part.features()
    assert (feature.name, feature.kind, feature.description) == (
        "linked_b",
        "boolean",
        "Linked: B.",
    )
    frame = FrameSpec(Entity.LISTING, "listing_id", "d", (FramePart(fs, via="x"), part))
    assert frame.names == ["a", "b", "linked_b"]
    with pytest.raises(KeyError, match="no feature 'c'"):
        FramePart(fs, via="x", only=("c",)).features()
