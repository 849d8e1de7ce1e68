"""The feature catalogue: which declared features make up each target entity's scoring frame.

Strategies, models, explanations and docs read feature names, kinds and descriptions from here.
"""

from __future__ import annotations

from functools import cache

from features.creator import CREATOR
from features.exposure import LISTING_ACTIVITY, LIVE_ACTIVITY, SELLER_ACTIVITY, VIDEO_ACTIVITY
from features.listing import LISTING
from features.live import LIVE
from features.schema import Feature, FeatureKind, FeatureSet, FramePart, FrameSpec
from features.seller import SELLER
from features.video import VIDEO
from features.vocabulary import Entity

#: Linked-listing activity columns carried into video and live frames.
LINKED_ACTIVITY = (
    "exposure_impressions_7d",
    "strategy_hit_count",
    "outcome_complaint_count_30d",
    "outcome_complaint_rate_30d",
)


def _content_frame(
    entity: Entity, key: str, own: FeatureSet, activity: FeatureSet, noun: str, verb: str
) -> FrameSpec:
    return FrameSpec(
        entity=entity,
        key=key,
        description=(
            f"One row per {noun} {verb} before the cutoff: the {noun}, its creator, the listing "
            "it links to and that listing's seller."
        ),
        parts=(
            FramePart(own, via=f"the {noun}"),
            FramePart(activity, via=f"the {noun}", from_context="activity"),
            FramePart(CREATOR, via=f"the {noun}'s creator"),
            FramePart(
                LISTING,
                via="the linked listing",
                prefix="linked_",
                from_context="linked",
                description_prefix="Linked listing: ",
            ),
            FramePart(
                LISTING_ACTIVITY,
                via="the linked listing",
                prefix="linked_",
                only=LINKED_ACTIVITY,
                from_context="linked",
                description_prefix="Linked listing: ",
            ),
            FramePart(SELLER, via="the linked listing's seller"),
        ),
    )


#: The scoring frame of each target entity.
FRAMES: dict[Entity, FrameSpec] = {
    Entity.LISTING: FrameSpec(
        entity=Entity.LISTING,
        key="listing_id",
        description="One row per listing published before the cutoff, with its seller.",
        parts=(
            FramePart(LISTING, via="the listing"),
            FramePart(LISTING_ACTIVITY, via="the listing", from_context="activity"),
            FramePart(SELLER, via="the listing's seller"),
        ),
    ),
    Entity.VIDEO: _content_frame(
        Entity.VIDEO, "video_id", VIDEO, VIDEO_ACTIVITY, "video", "posted"
    ),
    Entity.LIVE: _content_frame(
        Entity.LIVE, "live_id", LIVE, LIVE_ACTIVITY, "live session", "started"
    ),
    Entity.SELLER: FrameSpec(
        entity=Entity.SELLER,
        key="seller_id",
        description="One row per seller registered before the cutoff.",
        parts=(
            FramePart(SELLER, via="the seller"),
            FramePart(SELLER_ACTIVITY, via="the seller", from_context="activity"),
        ),
    ),
}


def feature_sets() -> tuple[FeatureSet, ...]:
    """Every declared feature set, each once, in frame order."""
    seen: dict[str, FeatureSet] = {}
    for frame in FRAMES.values():
        for part in frame.parts:
            seen.setdefault(part.feature_set.name, part.feature_set)
    return tuple(seen.values())


def feature_set_versions() -> dict[str, int]:
    """Version of each feature set, by set name."""
    return {fs.name: fs.version for fs in feature_sets()}


def frame_spec(entity: Entity | str) -> FrameSpec:
    """The frame declaration of a target entity."""
    return FRAMES[Entity(entity)]


@cache
def frame_features(entity: Entity | str) -> tuple[Feature, ...]:
    """The features of an entity's frame, in column order (after `item_id`)."""
    return frame_spec(entity).features()


def feature_names(entity: Entity | str) -> list[str]:
    """Feature column names of an entity's frame, in model input order."""
    return [f.name for f in frame_features(entity)]


def feature_types(entity: Entity | str) -> dict[str, FeatureKind]:
    """Feature name -> kind (numeric, categorical or boolean) for an entity's frame."""
    return {f.name: f.kind for f in frame_features(entity)}


def feature_descriptions(entity: Entity | str) -> dict[str, str]:
    """Feature name -> one-line description (with unit) for explanation labels."""
    return {
        f.name: f.description + (f" [{f.unit}]" if f.unit else "") for f in frame_features(entity)
    }


def describe(entity: Entity | str, name: str) -> Feature:
    """The declaration of one feature of an entity's frame."""
    for feature in frame_features(entity):
        if feature.name == name:
            return feature
    raise KeyError(f"the {Entity(entity).value} frame has no feature {name!r}")


def all_feature_names() -> list[str]:
    """Every distinct feature column name across the frames."""
    names: dict[str, None] = {}
    for entity in FRAMES:
        names.update(dict.fromkeys(feature_names(entity)))
    return list(names)
