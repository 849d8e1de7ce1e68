"""Declaration types: a feature, a versioned feature set, and a scoring frame built from sets.

Every feature is declared once, in the module of the entity it describes. The declarations
drive the build (output columns and their order), the catalogue strategies and models read,
the explanation labels and the generated `docs/features.md`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from features.vocabulary import Entity

FeatureKind = Literal["numeric", "categorical", "boolean"]

#: Kinds a feature may have, in documentation order.
FEATURE_KINDS: tuple[FeatureKind, ...] = ("numeric", "categorical", "boolean")

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Feature:
    """One model input: a typed column with a one-line meaning and a unit."""

    name: str
    kind: FeatureKind
    description: str
    unit: str = ""
    version: int = 1
    #: A numeric feature with a unit (money, time, a count, a rate) is never negative unless
    #: declared signed (a difference such as a trend).
    signed: bool = False

    @property
    def minimum(self) -> float | None:
        """Smallest valid value (the domain scoring checks), or None when unbounded."""
        return 0.0 if self.kind == "numeric" and self.unit and not self.signed else None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"feature name {self.name!r} must be snake_case ([a-z][a-z0-9_]*)")
        if self.kind not in FEATURE_KINDS:
            raise ValueError(
                f"feature {self.name!r}: kind {self.kind!r} is not one of {list(FEATURE_KINDS)}"
            )
        if not self.description.strip() or "\n" in self.description:
            raise ValueError(f"feature {self.name!r}: description must be one non-empty line")
        if self.version < 1:
            raise ValueError(f"feature {self.name!r}: version must be >= 1")


def feature_to_dict(feature: Feature) -> dict[str, object]:
    """A feature as plain JSON data (what a model bundle records of its inputs)."""
    return {
        "name": feature.name,
        "kind": feature.kind,
        "description": feature.description,
        "unit": feature.unit,
        "version": feature.version,
        "signed": feature.signed,
    }


def feature_from_dict(data: dict[str, object]) -> Feature:
    """The inverse of `feature_to_dict`."""
    return Feature(
        name=str(data["name"]),
        kind=data["kind"],  # type: ignore[arg-type]  # checked by Feature itself
        description=str(data["description"]),
        unit=str(data.get("unit", "")),
        version=int(data.get("version", 1)),  # type: ignore[call-overload]
        signed=bool(data.get("signed", False)),
    )


@dataclass(frozen=True)
class FeatureSet:
    """Features describing one entity, keyed by `join_key`, versioned as a whole."""

    name: str
    entity: str
    join_key: str
    version: int
    description: str
    features: tuple[Feature, ...]

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"feature set {self.name!r} declares {duplicates} more than once")
        if self.version < 1:
            raise ValueError(f"feature set {self.name!r}: version must be >= 1")

    @property
    def names(self) -> list[str]:
        """Feature names in declaration order."""
        return [f.name for f in self.features]

    def feature(self, name: str) -> Feature:
        """The feature called `name`."""
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(f"feature set {self.name!r} has no feature {name!r}")


@dataclass(frozen=True)
class FramePart:
    """A feature set joined into a scoring frame, optionally renamed with a prefix.

    `from_context` names the snapshot lookup whose columns already hold the set's values
    (`<from_context>.<feature>`); when None the set is computed from the item's context.
    """

    feature_set: FeatureSet
    via: str
    prefix: str = ""
    only: tuple[str, ...] | None = None
    from_context: str | None = None
    description_prefix: str = ""

    def source_features(self) -> tuple[Feature, ...]:
        """The set's features this part takes, under their declared names."""
        if self.only is None:
            return self.feature_set.features
        return tuple(self.feature_set.feature(name) for name in self.only)

    def features(self) -> tuple[Feature, ...]:
        """The part's features as they appear in the frame (prefixed names and descriptions)."""
        return tuple(
            Feature(
                name=self.prefix + f.name,
                kind=f.kind,
                description=self.description_prefix + f.description,
                unit=f.unit,
                version=f.version,
                signed=f.signed,
            )
            for f in self.source_features()
        )


@dataclass(frozen=True)
class FrameSpec:
    """The scoring frame of one target entity: `item_id`, then every part's features in order."""

    entity: Entity
    key: str
    description: str
    parts: tuple[FramePart, ...]

    def features(self) -> tuple[Feature, ...]:
        """Every feature of the frame in column order (after `item_id`)."""
        out: list[Feature] = []
        for part in self.parts:
            out.extend(part.features())
        return tuple(out)

    @property
    def names(self) -> list[str]:
        """Feature names in column order (after `item_id`)."""
        return [f.name for f in self.features()]
