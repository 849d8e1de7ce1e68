"""A fast, seeded generator of contract-valid marketplace tables for tests and benchmarks.

Not the simulated marketplace (that lives in `experiments/` and carries ground truth): this
only needs plausible shapes and volumes — shared image clusters, lexicon terms in text, daily
exposure, decisions with lifts and outcomes — and it must stay fast at a million listings.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.lexicon import LEXICON
from features.tables import TABLES
from features.vocabulary import (
    ENTITY_CHANNELS,
    Action,
    Entity,
    OutcomeKind,
    Policy,
    Sampling,
    Verdict,
    Verification,
    values,
)

_REGIONS = np.array(["us", "uk", "de", "fr", "cn", "br", "in", "jp"])
_CATEGORIES = np.array(
    [
        "bags",
        "watches",
        "shoes",
        "beauty",
        "supplements",
        "electronics",
        "toys",
        "home",
        "sports",
        "vape_accessories",
    ]
)
_BRANDS = np.array(["Lumen", "Arcadia", "Nordkap", "Veloce", "Maison Rue", "Kite"])
_WORDS = np.array(
    (
        "new premium classic leather cotton steel wireless portable mini smart soft "
        "gift set pack black white red blue large small luxury daily travel genuine"
    ).split()
)
_NOUNS = np.array(
    "bag watch sneaker serum capsule headphones drone lamp bottle jacket toy charger".split()
)
_PHRASES = np.array([t for terms in LEXICON.values() for t in terms])
_STRATEGIES = np.array(
    [
        "listing-counterfeit-terms",
        "listing-fake-discount",
        "listing-prohibited-terms",
        "video-claims",
        "live-claims",
        "seller-new-high-risk",
    ]
)


def _ids(prefix: str, n: int) -> np.ndarray:
    width = max(6, len(str(n)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(n)], dtype=object)


def _str(values: np.ndarray | pa.Array) -> pd.Series:
    return pd.Series(values, dtype="str")


def _ts(start: np.datetime64, offsets_us: np.ndarray) -> np.ndarray:
    return (start + offsets_us.astype("timedelta64[us]")).astype("datetime64[us]")


def _text(rng: np.random.Generator, n: int, n_words: int, p_phrase: np.ndarray) -> pa.Array:
    parts = [pa.array(_WORDS[rng.integers(0, len(_WORDS), n)]) for _ in range(n_words)]
    parts.insert(n_words // 2, pa.array(_NOUNS[rng.integers(0, len(_NOUNS), n)]))
    phrase = np.where(
        rng.random(n) < p_phrase, _PHRASES[rng.integers(0, len(_PHRASES), n)], "original"
    )
    parts.insert(1, pa.array(phrase))
    if n_words > 6:
        parts.append(pa.array(np.where(rng.random(n) < 0.1, "!!", "")))
    return pc.binary_join_element_wise(*parts, " ")


class _Sellers(NamedTuple):
    frame: pd.DataFrame
    ids: np.ndarray
    registered: np.ndarray
    bad: np.ndarray


class _Listings(NamedTuple):
    frame: pd.DataFrame
    ids: np.ndarray
    owner: np.ndarray
    created: np.ndarray
    p_phrase: np.ndarray


class _Content(NamedTuple):
    """Videos or live sessions: each promotes one listing."""

    frame: pd.DataFrame
    ids: np.ndarray
    listing: np.ndarray
    at: np.ndarray


def make_tables(
    n_listings: int,
    *,
    seed: int = 0,
    start: datetime = datetime(2025, 1, 1),
    days: int = 60,
) -> dict[str, pd.DataFrame]:
    """Every contract table for a marketplace of `n_listings` listings over `days` days."""
    if n_listings < 1 or days < 2:
        raise ValueError("need n_listings >= 1 and days >= 2")
    rng = np.random.default_rng(seed)
    t0 = np.datetime64(start, "us")
    span_us = days * 86_400_000_000
    # The parts draw from `rng` in this order; reordering them changes every table.
    sellers = _sellers(rng, max(4, n_listings // 20), t0, span_us)
    creators, creator_ids = _creators(rng, max(3, n_listings // 100), t0, span_us)
    listings = _listings(rng, n_listings, sellers, t0, span_us)
    n_videos, n_lives = max(2, n_listings // 5), max(2, n_listings // 20)
    videos = _videos(rng, n_videos, listings, creators, creator_ids, t0, span_us)
    lives = _live_sessions(rng, n_lives, listings, creators, creator_ids, t0, span_us)
    tables = {
        "sellers": sellers.frame,
        "creators": creators,
        "listings": listings.frame,
        "videos": videos.frame,
        "live_sessions": lives.frame,
        **_activity(rng, sellers, listings, videos, lives, t0, days),
    }
    return {name: df[TABLES[name].column_names] for name, df in tables.items()}


def _sellers(rng: np.random.Generator, n: int, t0: np.datetime64, span_us: int) -> _Sellers:
    """Sellers register up to a year before the window and during its first half."""
    seller_ids = _ids("S", n)
    seller_reg = _ts(t0, rng.integers(-365 * 86_400_000_000, span_us // 2, n))
    bad = rng.random(n) < 0.15
    sellers = pd.DataFrame(
        {
            "seller_id": _str(seller_ids),
            "registered_at": seller_reg,
            "region": _str(_REGIONS[rng.integers(0, len(_REGIONS), n)]),
            "verification": _str(np.array(values(Verification))[rng.integers(0, 3, n)]),
            "is_official_store": rng.random(n) < 0.05,
        }
    )
    return _Sellers(sellers, seller_ids, seller_reg, bad)


def _creators(
    rng: np.random.Generator, n: int, t0: np.datetime64, span_us: int
) -> tuple[pd.DataFrame, np.ndarray]:
    creator_ids = _ids("C", n)
    creators = pd.DataFrame(
        {
            "creator_id": _str(creator_ids),
            "registered_at": _ts(t0, rng.integers(-365 * 86_400_000_000, span_us // 2, n)),
            "region": _str(_REGIONS[rng.integers(0, len(_REGIONS), n)]),
            "follower_count": rng.lognormal(7, 2, n).astype(np.int64),
            "verified": rng.random(n) < 0.3,
        }
    )
    return creators, creator_ids


def _listings(
    rng: np.random.Generator, n: int, sellers: _Sellers, t0: np.datetime64, span_us: int
) -> _Listings:
    """Listings: created after their seller registered; bad sellers use lexicon terms more."""
    listing_ids = _ids("L", n)
    owner = rng.integers(0, len(sellers.ids), n)
    lo = np.maximum(sellers.registered[owner], t0)
    created = lo + (rng.random(n) * ((t0 + np.timedelta64(span_us, "us")) - lo)).astype(
        "timedelta64[us]"
    )
    category = rng.integers(0, len(_CATEGORIES), n)
    # The last category launches mid-window: its listings only appear in the second half.
    late = category == len(_CATEGORIES) - 1
    created[late] = np.maximum(created[late], t0 + np.timedelta64(span_us // 2, "us"))
    base_price = np.exp(rng.normal(3 + 0.3 * category, 0.6))
    price = np.round(base_price, 2)
    list_price = np.round(np.where(rng.random(n) < 0.5, price * rng.uniform(1.0, 3.0, n), price), 2)
    p_phrase = np.where(sellers.bad[owner], 0.5, 0.05)
    image_pool = max(2, int(n * 0.7))
    listings = pd.DataFrame(
        {
            "listing_id": _str(listing_ids),
            "seller_id": _str(sellers.ids[owner]),
            "created_at": created.astype("datetime64[us]"),
            "category": _str(_CATEGORIES[category]),
            "brand": _str(
                np.where(
                    rng.random(n) < 0.4,
                    _BRANDS[rng.integers(0, 6, n)].astype(object),
                    np.full(n, None, dtype=object),
                )
            ),
            "title": _str(_text(rng, n, 5, p_phrase)),
            "description": _str(_text(rng, n, 16, p_phrase / 2)),
            "price": price,
            "list_price": list_price,
            "image_hash": _str(
                np.char.add("img", rng.integers(0, image_pool, n).astype(str)).astype(object)
            ),
            "ships_from": _str(
                np.where(
                    rng.random(n) < 0.8,
                    sellers.frame["region"].to_numpy()[owner],
                    _REGIONS[rng.integers(0, len(_REGIONS), n)],
                )
            ),
        }
    )
    return _Listings(listings, listing_ids, owner, created, p_phrase)


def _content(
    rng: np.random.Generator,
    n: int,
    prefix: str,
    listings: _Listings,
    creators: pd.DataFrame,
    t0: np.datetime64,
    span_us: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(ids, linked listing, creator, time) of `n` promotions, each after its listing and
    its creator appeared."""
    ids = _ids(prefix, n)
    linked = rng.integers(0, len(listings.ids), n)
    creator = rng.integers(0, len(creators), n)
    begin = np.maximum(listings.created[linked], creators["registered_at"].to_numpy()[creator])
    end = t0 + np.timedelta64(span_us, "us")
    when = begin + (rng.random(n) * (end - begin) * 0.98).astype("timedelta64[us]")
    return ids, linked, creator, when.astype("datetime64[us]")


def _videos(
    rng: np.random.Generator,
    n: int,
    listings: _Listings,
    creators: pd.DataFrame,
    creator_ids: np.ndarray,
    t0: np.datetime64,
    span_us: int,
) -> _Content:
    video_ids, video_listing, video_creator, video_at = _content(
        rng, n, "V", listings, creators, t0, span_us
    )
    videos = pd.DataFrame(
        {
            "video_id": _str(video_ids),
            "creator_id": _str(creator_ids[video_creator]),
            "listing_id": _str(listings.ids[video_listing]),
            "created_at": video_at,
            "caption": _str(_text(rng, n, 8, listings.p_phrase[video_listing])),
            "duration_seconds": np.round(rng.uniform(5, 180, n), 1),
        }
    )
    return _Content(videos, video_ids, video_listing, video_at)


def _live_sessions(
    rng: np.random.Generator,
    n: int,
    listings: _Listings,
    creators: pd.DataFrame,
    creator_ids: np.ndarray,
    t0: np.datetime64,
    span_us: int,
) -> _Content:
    live_ids, live_listing, live_creator, live_at = _content(
        rng, n, "LV", listings, creators, t0, span_us
    )
    live_sessions = pd.DataFrame(
        {
            "live_id": _str(live_ids),
            "creator_id": _str(creator_ids[live_creator]),
            "listing_id": _str(listings.ids[live_listing]),
            "started_at": live_at,
            "ended_at": (
                live_at
                + rng.integers(10 * 60_000_000, 4 * 3_600_000_000, n).astype("timedelta64[us]")
            ).astype("datetime64[us]"),
            "title": _str(_text(rng, n, 6, listings.p_phrase[live_listing])),
        }
    )
    return _Content(live_sessions, live_ids, live_listing, live_at)


def _activity(
    rng: np.random.Generator,
    sellers: _Sellers,
    listings: _Listings,
    videos: _Content,
    lives: _Content,
    t0: np.datetime64,
    days: int,
) -> dict[str, pd.DataFrame]:
    """Exposure, decisions, outcomes and audit labels of every item (and seller)."""
    n_listings, n_videos, n_lives = len(listings.ids), len(videos.ids), len(lives.ids)
    item_entity = np.concatenate(
        [
            np.full(n_listings, Entity.LISTING.value),
            np.full(n_videos, Entity.VIDEO.value),
            np.full(n_lives, Entity.LIVE.value),
        ]
    ).astype(object)
    item_ids = np.concatenate([listings.ids, videos.ids, lives.ids])
    item_created = np.concatenate([listings.created, videos.at, lives.at])
    owner = listings.owner
    item_seller = np.concatenate([owner, owner[videos.listing], owner[lives.listing]])
    bad = sellers.bad
    exposure = _exposure(rng, item_entity, item_ids, item_created, t0, days)
    decisions = _decisions(rng, item_entity, item_ids, item_created, bad[item_seller], t0, days)
    seller_decisions = _seller_decisions(rng, sellers.ids, sellers.registered, bad, t0, days)
    decisions = pd.concat([decisions, seller_decisions], ignore_index=True)
    decisions["decision_id"] = _str(_ids("D", len(decisions)))
    outcomes = _outcomes(
        rng,
        item_entity,
        item_ids,
        item_created,
        sellers.ids[item_seller],
        bad[item_seller],
        t0,
        days,
    )
    audit_labels = _labels(rng, item_entity, item_ids, item_created, t0, days)
    return {
        "channel_exposure": exposure,
        "strategy_decisions": decisions,
        "audit_labels": audit_labels,
        "outcomes": outcomes,
    }


def _channel_choice(rng: np.random.Generator, entity: np.ndarray) -> np.ndarray:
    out = np.empty(len(entity), dtype=object)
    for e in (Entity.LISTING, Entity.VIDEO, Entity.LIVE):
        rows = entity == e.value
        channels = np.array([c.value for c in ENTITY_CHANNELS[e]], dtype=object)
        out[rows] = channels[rng.integers(0, len(channels), int(rows.sum()))]
    return out


def _exposure(
    rng: np.random.Generator,
    entity: np.ndarray,
    item_ids: np.ndarray,
    created: np.ndarray,
    t0: np.datetime64,
    days: int,
) -> pd.DataFrame:
    # Each item runs on one channel for a streak of consecutive days after it is created.
    n = len(item_ids)
    first_day = (created.astype("datetime64[D]") - t0.astype("datetime64[D]")).astype(np.int64)
    streak = np.minimum(rng.geometric(0.15, n), np.maximum(days - first_day, 0))
    rows = np.repeat(np.arange(n), streak)
    offsets = np.arange(len(rows)) - np.repeat(np.cumsum(streak) - streak, streak)
    day = t0.astype("datetime64[D]") + (first_day[rows] + offsets).astype("timedelta64[D]")
    channel = _channel_choice(rng, entity)[rows]
    m = len(rows)
    impressions = rng.negative_binomial(2, 0.01, m)
    spike = rng.random(m) < 0.01
    impressions[spike] *= 20
    clicks = rng.binomial(impressions, 0.03)
    orders = rng.binomial(clicks, 0.1)
    social = entity[rows] != Entity.LISTING.value
    return pd.DataFrame(
        {
            "entity": _str(entity[rows]),
            "item_id": _str(item_ids[rows]),
            "channel": _str(channel),
            "day": day.astype("datetime64[us]"),
            "impressions": impressions.astype(np.int64),
            "clicks": clicks.astype(np.int64),
            "orders": orders.astype(np.int64),
            "gmv": np.round(orders * rng.uniform(5, 80, m), 2),
            "likes": np.where(social, rng.binomial(impressions, 0.05), 0).astype(np.int64),
            "comments": np.where(social, rng.binomial(impressions, 0.005), 0).astype(np.int64),
            "shares": np.where(social, rng.binomial(impressions, 0.002), 0).astype(np.int64),
        }
    )


def _after(
    rng: np.random.Generator, created: np.ndarray, t0: np.datetime64, days: int
) -> np.ndarray:
    end = t0 + np.timedelta64(days * 86_400_000_000, "us")
    gap = np.maximum(end - created, np.timedelta64(1, "us"))
    offsets = (rng.random(len(created)) * gap).astype("timedelta64[us]")
    out: np.ndarray = (created + offsets).astype("datetime64[us]")
    return out


def _decisions(
    rng: np.random.Generator,
    entity: np.ndarray,
    item_ids: np.ndarray,
    created: np.ndarray,
    bad: np.ndarray,
    t0: np.datetime64,
    days: int,
) -> pd.DataFrame:
    hit = rng.random(len(item_ids)) < np.where(bad, 0.25, 0.03)
    idx = np.flatnonzero(hit)
    decided = _after(rng, created[idx], t0, days)
    lifted = np.where(
        rng.random(len(idx)) < 0.2,
        decided
        + rng.integers(3_600_000_000, 10 * 86_400_000_000, len(idx)).astype("timedelta64[us]"),
        np.datetime64("NaT"),
    ).astype("datetime64[us]")
    return pd.DataFrame(
        {
            "decision_id": _str(np.full(len(idx), "")),
            "entity": _str(entity[idx]),
            "item_id": _str(item_ids[idx]),
            "channel": _str(_channel_choice(rng, entity[idx])),
            "strategy_id": _str(_STRATEGIES[rng.integers(0, 5, len(idx))]),
            "strategy_version": rng.integers(1, 3, len(idx)).astype(np.int64),
            "action": _str(np.array(values(Action))[rng.integers(0, 3, len(idx))]),
            "decided_at": decided,
            "lifted_at": lifted,
        }
    )


def _seller_decisions(
    rng: np.random.Generator,
    seller_ids: np.ndarray,
    registered: np.ndarray,
    bad: np.ndarray,
    t0: np.datetime64,
    days: int,
) -> pd.DataFrame:
    idx = np.flatnonzero(bad & (rng.random(len(seller_ids)) < 0.3))
    decided = _after(rng, np.maximum(registered[idx], t0), t0, days)
    return pd.DataFrame(
        {
            "decision_id": _str(np.full(len(idx), "")),
            "entity": _str(np.full(len(idx), Entity.SELLER.value)),
            "item_id": _str(seller_ids[idx]),
            "channel": _str(np.full(len(idx), "shop_ads")),
            "strategy_id": _str(np.full(len(idx), "seller-new-high-risk")),
            "strategy_version": np.ones(len(idx), dtype=np.int64),
            "action": _str(np.full(len(idx), Action.LIMIT_EXPOSURE.value)),
            "decided_at": decided,
            "lifted_at": np.full(len(idx), np.datetime64("NaT"), dtype="datetime64[us]"),
        }
    )


def _outcomes(
    rng: np.random.Generator,
    entity: np.ndarray,
    item_ids: np.ndarray,
    created: np.ndarray,
    seller_ids: np.ndarray,
    bad: np.ndarray,
    t0: np.datetime64,
    days: int,
) -> pd.DataFrame:
    counts = rng.poisson(np.where(bad, 1.0, 0.25))
    idx = np.repeat(np.arange(len(item_ids)), counts)
    kinds = np.array(values(OutcomeKind), dtype=object)
    kind = kinds[rng.integers(0, len(kinds), len(idx))]
    value = np.full(len(idx), np.nan)
    review = kind == OutcomeKind.REVIEW.value
    value[review] = rng.integers(1, 6, int(review.sum()))
    nps = kind == OutcomeKind.NPS.value
    value[nps] = rng.integers(0, 11, int(nps.sum()))
    refund = kind == OutcomeKind.REFUND.value
    value[refund] = np.round(rng.uniform(5, 100, int(refund.sum())), 2)
    channel = _channel_choice(rng, entity[idx])
    channel[rng.random(len(idx)) < 0.2] = None
    return pd.DataFrame(
        {
            "outcome_id": _str(_ids("O", len(idx))),
            "entity": _str(entity[idx]),
            "item_id": _str(item_ids[idx]),
            "seller_id": _str(seller_ids[idx]),
            "channel": _str(channel),
            "kind": _str(kind),
            "occurred_at": _after(rng, created[idx], t0, days),
            "value": value,
        }
    )


def _labels(
    rng: np.random.Generator,
    entity: np.ndarray,
    item_ids: np.ndarray,
    created: np.ndarray,
    t0: np.datetime64,
    days: int,
) -> pd.DataFrame:
    idx = np.flatnonzero(rng.random(len(item_ids)) < 0.05)
    policies = np.array(values(Policy), dtype=object)
    return pd.DataFrame(
        {
            "label_id": _str(_ids("A", len(idx))),
            "entity": _str(entity[idx]),
            "item_id": _str(item_ids[idx]),
            "policy": _str(policies[rng.integers(0, len(policies), len(idx))]),
            "verdict": _str(np.array(values(Verdict))[rng.integers(0, 2, len(idx))]),
            "reviewer_id": _str(np.char.add("R", rng.integers(0, 20, len(idx)).astype(str))),
            "reviewed_at": _after(rng, created[idx], t0, days),
            "sampling": _str(np.full(len(idx), Sampling.RANDOM.value)),
            "inclusion_probability": np.full(len(idx), 0.05),
        }
    )
