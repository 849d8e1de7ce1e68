"""Text sources: which raw text fields an entity's n-gram text models read, and the model-score
features they produce.

A text score is not built by `features.build` (it needs a model trained on audit labels): the
training pipeline fits one n-gram text model per (entity, text policy) and adds its out-of-fold
log-odds to the entity's rows as the declared feature below; the model bundle carries the
fitted text models and computes the same column from the raw fields when it scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import pandas as pd

from features.lexicon import GROUP_POLICY
from features.schema import Feature
from features.vocabulary import Entity

#: Policies with a text model: the ones the policy lexicon speaks for.
TEXT_POLICIES: Final = tuple(p.value for p in GROUP_POLICY.values())
#: Separator between an item's text fields in the document a text model reads.
FIELD_SEPARATOR: Final = "\n"
#: Version of the text score features; bump when their meaning changes.
TEXT_SCORE_VERSION: Final = 1


@dataclass(frozen=True)
class TextSource:
    """The raw text of one entity: contract table, its key and the fields read, in order."""

    entity: Entity
    table: str
    key: str
    fields: tuple[str, ...]
    description: str  # "the listing title and description"

    def score_feature(self, policy: str) -> Feature:
        """The declared feature holding the `policy` text model's log-odds."""
        if policy not in TEXT_POLICIES:
            raise KeyError(f"no text model for policy {policy!r}; text policies: {TEXT_POLICIES}")
        return Feature(
            f"{self.entity.value}_text_score_{policy}",
            "numeric",
            f"Log-odds of the {policy} n-gram text model on {self.description} "
            "(out of fold for training rows).",
            "log-odds",
            TEXT_SCORE_VERSION,
        )

    @property
    def score_features(self) -> tuple[Feature, ...]:
        return tuple(self.score_feature(p) for p in TEXT_POLICIES)

    def documents(self, table: pd.DataFrame) -> pd.Series:
        """item_id -> the document a text model reads (fields joined by a newline)."""
        missing = [c for c in (self.key, *self.fields) if c not in table.columns]
        if missing:
            raise KeyError(f"table {self.table} lacks column(s) {missing} the text models read")
        values = zip(*(table[c].tolist() for c in self.fields), strict=True)
        docs = [join_fields(row) for row in values]
        return pd.Series(docs, index=table[self.key].astype(str).to_numpy(), dtype=object)


TEXT_SOURCES: Final = MappingProxyType(
    {
        Entity.LISTING: TextSource(
            Entity.LISTING,
            "listings",
            "listing_id",
            ("title", "description"),
            "the listing title and description",
        ),
        Entity.VIDEO: TextSource(
            Entity.VIDEO, "videos", "video_id", ("caption",), "the video caption and transcript"
        ),
        Entity.LIVE: TextSource(
            Entity.LIVE, "live_sessions", "live_id", ("title",), "the live title and pinned claims"
        ),
    }
)


def join_fields(values: Sequence[object]) -> str:
    """The document of one item: its text fields joined by a newline; missing reads as empty."""
    return FIELD_SEPARATOR.join(v if isinstance(v, str) else "" for v in values)


def text_fields_of(entity: Entity | str, tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame | None:
    """The entity's raw text fields indexed by item id (None: no text source or no table)."""
    source = text_source(entity)
    if source is None or source.table not in tables:
        return None
    table = tables[source.table]
    raw = table.set_index(table[source.key].astype(str))[list(source.fields)]
    return raw.loc[~raw.index.duplicated()]


def with_text_fields(
    frame: pd.DataFrame, entity: Entity | str, tables: Mapping[str, pd.DataFrame]
) -> pd.DataFrame:
    """`frame` (with `item_id`) plus the entity's raw text fields, for scoring with a model
    bundle that has text models; unchanged for entities without text."""
    raw = text_fields_of(entity, tables)
    if raw is None:
        return frame
    values = raw.reindex(frame["item_id"].astype(str).to_numpy())
    text = pd.DataFrame(
        {c: values[c].to_numpy(dtype=object) for c in raw.columns}, index=frame.index
    )
    return pd.concat([frame.drop(columns=list(raw.columns), errors="ignore"), text], axis=1)


def text_source(entity: Entity | str) -> TextSource | None:
    """The entity's text source, or None for entities without text (sellers)."""
    return TEXT_SOURCES.get(Entity(entity))


def text_score_names(entity: Entity | str) -> list[str]:
    """Text score feature names of an entity, in model input order (empty without text)."""
    source = text_source(entity)
    return [] if source is None else [f.name for f in source.score_features]
