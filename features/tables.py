"""The data contract: every input table govrisk accepts, declared once.

Each declaration drives validation (`features.contract`), loading (`features.loader`) and the
generated reference in `docs/data-contract.md`. Timestamps are timezone-naive UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import pandas as pd

from features.vocabulary import (
    Action,
    Channel,
    Entity,
    OutcomeKind,
    Policy,
    Sampling,
    Verdict,
    Verification,
    values,
)

ColumnKind = Literal["string", "int", "float", "bool", "timestamp", "date"]


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a contract table."""

    name: str
    kind: ColumnKind
    description: str
    nullable: bool = False
    enum: tuple[str, ...] | None = None
    unit: str = ""
    min_value: float | None = None
    max_value: float | None = None
    #: Longest text a string column may hold (the review database's column width).
    max_length: int | None = None


@dataclass(frozen=True)
class TableSpec:
    """One contract table: its columns and the columns that form its unique key."""

    name: str
    description: str
    key: tuple[str, ...]
    columns: tuple[ColumnSpec, ...]
    time_column: str | None = None
    references: dict[str, str] = field(default_factory=dict)

    def column(self, name: str) -> ColumnSpec:
        """The column called `name`."""
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"table {self.name!r} has no column {name!r}")

    @property
    def column_names(self) -> list[str]:
        """Column names in declaration order."""
        return [col.name for col in self.columns]


def _enum(e: type[StrEnum]) -> tuple[str, ...]:
    return tuple(values(e))


def column_spec(
    name: str,
    kind: ColumnKind,
    description: str,
    *,
    nullable: bool = False,
    enum: type[StrEnum] | None = None,
    unit: str = "",
    min_value: float | None = None,
    max_value: float | None = None,
    max_length: int | None = None,
) -> ColumnSpec:
    """One column declaration (`enum` as the StrEnum whose values the column takes)."""
    return ColumnSpec(
        name=name,
        kind=kind,
        description=description,
        nullable=nullable,
        enum=_enum(enum) if enum is not None else None,
        unit=unit,
        min_value=min_value,
        max_value=max_value,
        max_length=max_length,
    )


_c = column_spec


SELLERS = TableSpec(
    name="sellers",
    description="Merchants who publish listings, one row per seller.",
    key=("seller_id",),
    time_column="registered_at",
    columns=(
        _c("seller_id", "string", "Seller identifier."),
        _c("registered_at", "timestamp", "When the seller account was created (UTC)."),
        _c("region", "string", "Seller's home region code."),
        _c("verification", "string", "Identity verification level.", enum=Verification),
        _c("is_official_store", "bool", "Brand-operated official store."),
    ),
)

CREATORS = TableSpec(
    name="creators",
    description="Affiliate creators who promote listings in videos and live sessions.",
    key=("creator_id",),
    time_column="registered_at",
    columns=(
        _c("creator_id", "string", "Creator identifier."),
        _c("registered_at", "timestamp", "When the creator account was created (UTC)."),
        _c("region", "string", "Creator's home region code."),
        _c(
            "follower_count",
            "int",
            "Followers at registration snapshot.",
            unit="accounts",
            min_value=0,
        ),
        _c("verified", "bool", "Creator identity verified."),
    ),
)

LISTINGS = TableSpec(
    name="listings",
    description="Product listings, one row per listing as published.",
    key=("listing_id",),
    time_column="created_at",
    references={"seller_id": "sellers"},
    columns=(
        _c("listing_id", "string", "Listing identifier."),
        _c("seller_id", "string", "Seller who published the listing."),
        _c("created_at", "timestamp", "When the listing was published (UTC)."),
        _c("category", "string", "Leaf category code."),
        _c("brand", "string", "Brand named by the seller, if any.", nullable=True),
        _c("title", "string", "Listing title as shown to buyers."),
        _c("description", "string", "Listing description text."),
        _c("price", "float", "Selling price.", unit="USD", min_value=0),
        _c(
            "list_price",
            "float",
            "Struck-through 'original' price shown next to the price.",
            unit="USD",
            min_value=0,
        ),
        _c("image_hash", "string", "Perceptual hash cluster of the main image."),
        _c("ships_from", "string", "Region the item ships from."),
    ),
)

VIDEOS = TableSpec(
    name="videos",
    description="Shoppable short videos; each promotes one listing.",
    key=("video_id",),
    time_column="created_at",
    references={"creator_id": "creators", "listing_id": "listings"},
    columns=(
        _c("video_id", "string", "Video identifier."),
        _c("creator_id", "string", "Creator who posted the video."),
        _c("listing_id", "string", "Listing the video links to."),
        _c("created_at", "timestamp", "When the video was posted (UTC)."),
        _c("caption", "string", "Caption and spoken-claim transcript text."),
        _c("duration_seconds", "float", "Video length.", unit="s", min_value=0),
    ),
)

LIVE_SESSIONS = TableSpec(
    name="live_sessions",
    description="Live-stream shopping sessions; each features one listing.",
    key=("live_id",),
    time_column="started_at",
    references={"creator_id": "creators", "listing_id": "listings"},
    columns=(
        _c("live_id", "string", "Live session identifier."),
        _c("creator_id", "string", "Creator hosting the session."),
        _c("listing_id", "string", "Listing featured in the session."),
        _c("started_at", "timestamp", "Session start (UTC)."),
        _c("ended_at", "timestamp", "Session end (UTC)."),
        _c("title", "string", "Session title and pinned claim text."),
    ),
)

CHANNEL_EXPOSURE = TableSpec(
    name="channel_exposure",
    description="Daily traffic per item and channel: what buyers were shown and did.",
    key=("entity", "item_id", "channel", "day"),
    time_column="day",
    columns=(
        _c("entity", "string", "Kind of item.", enum=Entity),
        _c("item_id", "string", "Listing, video or live identifier."),
        _c("channel", "string", "Traffic channel.", enum=Channel),
        _c("day", "date", "Calendar day (UTC)."),
        _c("impressions", "int", "Times the item was shown.", unit="views", min_value=0),
        _c("clicks", "int", "Clicks on the item.", unit="clicks", min_value=0),
        _c("orders", "int", "Orders attributed to the item.", unit="orders", min_value=0),
        _c("gmv", "float", "Gross merchandise value of those orders.", unit="USD", min_value=0),
        _c("likes", "int", "Likes (videos and lives; 0 for listings).", min_value=0),
        _c("comments", "int", "Comments (videos and lives; 0 for listings).", min_value=0),
        _c("shares", "int", "Shares (videos and lives; 0 for listings).", min_value=0),
    ),
)

STRATEGY_DECISIONS = TableSpec(
    name="strategy_decisions",
    description="Actions traffic control strategies took on items, per channel.",
    key=("decision_id",),
    time_column="decided_at",
    columns=(
        _c("decision_id", "string", "Decision identifier."),
        _c("entity", "string", "Kind of item actioned.", enum=Entity),
        _c("item_id", "string", "Item actioned."),
        _c("channel", "string", "Channel the action applies to.", enum=Channel),
        _c("strategy_id", "string", "Strategy that fired."),
        _c("strategy_version", "int", "Version of that strategy.", min_value=1),
        _c("action", "string", "What the strategy did.", enum=Action),
        _c("decided_at", "timestamp", "When the action took effect (UTC)."),
        _c(
            "lifted_at",
            "timestamp",
            "When the action was lifted (appeal upheld), if ever.",
            nullable=True,
        ),
    ),
)

AUDIT_LABELS = TableSpec(
    name="audit_labels",
    description="Moderator verdicts on sampled items, with how each item was sampled.",
    key=("label_id",),
    time_column="reviewed_at",
    columns=(
        _c("label_id", "string", "Label identifier."),
        _c("entity", "string", "Kind of item reviewed.", enum=Entity),
        _c("item_id", "string", "Item reviewed."),
        _c("policy", "string", "Policy judged.", enum=Policy),
        _c("verdict", "string", "Moderator verdict.", enum=Verdict),
        _c("reviewer_id", "string", "Moderator who judged."),
        _c("reviewed_at", "timestamp", "When the verdict was given (UTC)."),
        _c("sampling", "string", "How the item entered the audit.", enum=Sampling),
        _c(
            "inclusion_probability",
            "float",
            "Probability the item was drawn into this audit sample.",
            min_value=0.0,
            max_value=1.0,
        ),
    ),
)

OUTCOMES = TableSpec(
    name="outcomes",
    description=(
        "Trust signals after exposure: complaints, returns, refunds, reviews, NPS, appeals."
    ),
    key=("outcome_id",),
    time_column="occurred_at",
    columns=(
        _c("outcome_id", "string", "Outcome identifier."),
        _c("entity", "string", "Kind of item the outcome concerns.", enum=Entity),
        _c("item_id", "string", "Item the outcome concerns."),
        _c("seller_id", "string", "Seller of the item."),
        _c(
            "channel",
            "string",
            "Channel the buyer came through, if known.",
            nullable=True,
            enum=Channel,
        ),
        _c("kind", "string", "Kind of outcome.", enum=OutcomeKind),
        _c("occurred_at", "timestamp", "When it happened (UTC)."),
        _c(
            "value",
            "float",
            "Review rating 1-5, NPS score 0-10, refund amount in USD; empty otherwise.",
            nullable=True,
        ),
    ),
)

#: Every contract table, in load order.
TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        SELLERS,
        CREATORS,
        LISTINGS,
        VIDEOS,
        LIVE_SESSIONS,
        CHANNEL_EXPOSURE,
        STRATEGY_DECISIONS,
        AUDIT_LABELS,
        OUTCOMES,
    )
}

#: The table holding each entity's items: its key is the item id, its time column the
#: moment the item was published (listed, posted, went live, registered).
ITEM_TABLES: dict[Entity, TableSpec] = {
    Entity.LISTING: LISTINGS,
    Entity.VIDEO: VIDEOS,
    Entity.LIVE: LIVE_SESSIONS,
    Entity.SELLER: SELLERS,
}


def published_at(tables: Mapping[str, pd.DataFrame], entity: Entity) -> pd.Series:
    """When each of the entity's items was published (timestamps indexed by item id as
    str); empty when its table is not in `tables`."""
    spec = ITEM_TABLES[entity]
    df = tables.get(spec.name)
    if df is None:
        return pd.Series(dtype="datetime64[ns]")
    times = pd.to_datetime(df[str(spec.time_column)]).array
    return pd.Series(times, index=df[spec.key[0]].astype(str).to_numpy(), name="published_at")


# Decisions are an enumeration value check; keep Policy etc. referenced for readers.
__all__ = [
    "ITEM_TABLES",
    "TABLES",
    "ColumnSpec",
    "TableSpec",
    "Action",
    "Policy",
    "Sampling",
    "Verdict",
    "published_at",
]
