"""Closed vocabularies shared by every table, strategy and model: channels, entities, policies."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    """Traffic channels through which the marketplace shows items."""

    SHOP_TAB = "shop_tab"
    CAMPAIGNS = "campaigns"
    SHOP_ADS = "shop_ads"
    AFFILIATE = "affiliate"
    VIDEO = "video"
    LIVE = "live"


class Entity(StrEnum):
    """Kinds of things a strategy or model can target."""

    LISTING = "listing"
    VIDEO = "video"
    LIVE = "live"
    SELLER = "seller"


class Policy(StrEnum):
    """Governance policies an item can violate."""

    COUNTERFEIT = "counterfeit"
    PROHIBITED_ITEM = "prohibited_item"
    MISLEADING_CLAIM = "misleading_claim"
    FAKE_DISCOUNT = "fake_discount"
    LOW_QUALITY = "low_quality"
    ENGAGEMENT_FRAUD = "engagement_fraud"


class Action(StrEnum):
    """What a traffic control strategy does to a matching item in a channel."""

    BLOCK = "block"
    DEMOTE = "demote"
    LIMIT_EXPOSURE = "limit_exposure"


class StrategyStatus(StrEnum):
    """Lifecycle of a strategy version: only `active` versions act on traffic."""

    DRAFT = "draft"
    SHADOW = "shadow"
    ACTIVE = "active"
    RETIRED = "retired"


class Verdict(StrEnum):
    """A moderator's judgement of an item against one policy."""

    VIOLATING = "violating"
    NOT_VIOLATING = "not_violating"


class Sampling(StrEnum):
    """How an audited item came to be reviewed; drives inverse-probability weights.

    `model_ranked` is the audit's importance-sampled slice (a probability design with the
    inclusion probability it was drawn with); `ranked_list` is a take-all pick from the audit's
    likely-FP / likely-FN lists (chosen by rank, not drawn: not a probability design).
    """

    RANDOM = "random"
    STRATEGY_FLAGGED = "strategy_flagged"
    APPEAL = "appeal"
    MODEL_RANKED = "model_ranked"
    RANKED_LIST = "ranked_list"


class OutcomeKind(StrEnum):
    """Trust signals that follow an item after it was shown."""

    COMPLAINT = "complaint"
    RETURN = "return"
    REFUND = "refund"
    REVIEW = "review"
    NPS = "nps"
    APPEAL = "appeal"


class Verification(StrEnum):
    """Seller identity verification level."""

    NONE = "none"
    BASIC = "basic"
    BUSINESS = "business"


#: Channels each target entity can appear in.
ENTITY_CHANNELS: dict[Entity, tuple[Channel, ...]] = {
    Entity.LISTING: (Channel.SHOP_TAB, Channel.CAMPAIGNS, Channel.SHOP_ADS, Channel.AFFILIATE),
    Entity.VIDEO: (Channel.VIDEO, Channel.AFFILIATE),
    Entity.LIVE: (Channel.LIVE, Channel.AFFILIATE),
    Entity.SELLER: tuple(Channel),
}


def values(enum: type[StrEnum]) -> list[str]:
    """The string values of an enum, in declaration order."""
    return [member.value for member in enum]
