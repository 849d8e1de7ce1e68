"""How each scoring frame is assembled from an item's context, the same way in batch and online.

An item's *context* is its raw columns plus the snapshot rows looked up for it (`JOINS`): in a
build DuckDB joins them, online `Lookup.take` fetches them. `compute_frame` then turns a
context into the frame's feature columns with the same pure functions either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from features.catalog import FRAMES
from features.columns import Columns
from features.creator import CREATORS_INFO, creator_columns
from features.exposure import activity_info, activity_table
from features.listing import (
    CATEGORIES_INFO,
    CATEGORY_PRICES_INFO,
    IMAGE_SELLERS_INFO,
    IMAGES_INFO,
    listing_columns,
)
from features.live import live_columns
from features.seller import PROFILE, SELLERS_INFO, seller_columns
from features.snapshot import FeatureSnapshot, LookupJoin, TableInfo
from features.video import video_columns
from features.vocabulary import Entity

#: Snapshot table holding the listing frame, looked up for a video's or live's linked listing.
LISTINGS_TABLE = "listings"

#: Every snapshot table and its layout.
SNAPSHOT_TABLES: dict[str, TableInfo] = {
    "categories": CATEGORIES_INFO,
    "category_prices": CATEGORY_PRICES_INFO,
    "images": IMAGES_INFO,
    "image_sellers": IMAGE_SELLERS_INFO,
    "sellers": SELLERS_INFO,
    "creators": CREATORS_INFO,
    **{activity_table(e): activity_info(e) for e in Entity},
    LISTINGS_TABLE: TableInfo(key=("listing_id",)),
}


def _content_joins(entity: Entity, key: str) -> tuple[LookupJoin, ...]:
    return (
        LookupJoin(activity_table(entity), "activity", (key,)),
        LookupJoin("creators", "creator", ("creator_id",)),
        LookupJoin(LISTINGS_TABLE, "linked", ("listing_id",)),
        LookupJoin("sellers", "seller", ("linked.seller_id",)),
    )


#: Snapshot lookups forming each target entity's context, in join order.
JOINS: dict[Entity, tuple[LookupJoin, ...]] = {
    Entity.LISTING: (
        LookupJoin("categories", "category", ("category",)),
        LookupJoin("images", "image", ("image_hash",)),
        LookupJoin("image_sellers", "image_seller", ("image_hash", "seller_id")),
        LookupJoin("sellers", "seller", ("seller_id",)),
        LookupJoin(activity_table(Entity.LISTING), "activity", ("listing_id",)),
    ),
    Entity.VIDEO: _content_joins(Entity.VIDEO, "video_id"),
    Entity.LIVE: _content_joins(Entity.LIVE, "live_id"),
    Entity.SELLER: (
        LookupJoin("sellers", "seller", ("seller_id",)),
        LookupJoin(activity_table(Entity.SELLER), "activity", ("seller_id",)),
    ),
}

SetCompute = Callable[[Columns, np.datetime64, FeatureSnapshot], Columns]

_SET_COMPUTE: dict[str, SetCompute] = {
    "listing": lambda ctx, as_of, snap: listing_columns(
        ctx, as_of=as_of, sorted_prices=snap.category_prices()
    ),
    "seller": lambda ctx, as_of, _snap: seller_columns(ctx, as_of=as_of),
    "creator": lambda ctx, as_of, _snap: creator_columns(ctx, as_of=as_of),
    "video": lambda ctx, as_of, _snap: video_columns(ctx, as_of=as_of),
    "live": lambda ctx, as_of, _snap: live_columns(ctx, as_of=as_of),
}


def compute_frame(
    entity: Entity,
    ctx: Columns,
    *,
    as_of: np.datetime64,
    snapshot: FeatureSnapshot,
    precomputed: Mapping[str, Columns] | None = None,
) -> Columns:
    """Feature columns of `entity`'s frame, in declared order, from a full context.

    `precomputed` maps a feature-set name to columns already computed from this same context
    (a build computes the listing set before the seller aggregates exist).
    """
    if entity is Entity.SELLER:
        # The seller frame's own row is the profile: it wins over the looked-up copy.
        ctx = {**ctx, **{f"seller.{p}": ctx[p] for p in PROFILE}}
    out: Columns = {}
    for part in FRAMES[entity].parts:
        name = part.feature_set.name
        if part.from_context is not None:
            for feature in part.source_features():
                out[part.prefix + feature.name] = ctx[f"{part.from_context}.{feature.name}"]
            continue
        if precomputed is not None and name in precomputed:
            values = precomputed[name]
        else:
            values = _SET_COMPUTE[name](ctx, as_of, snapshot)
        for feature in part.source_features():
            out[part.prefix + feature.name] = values[feature.name]
    return out
