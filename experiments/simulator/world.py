"""The static marketplace: sellers, creators, listings, videos, live sessions and their truth.

Everything here comes from the world random stream only, so it is identical for a given
config whatever strategies later act on the marketplace. Items are sorted by creation time
and their ids follow that order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from experiments.simulator import policies as pol
from experiments.simulator import text
from experiments.simulator.categories import (
    CATEGORIES,
    LISTING_POLICIES,
    NEW_CATEGORY,
    REGION_WEIGHTS,
    REGIONS,
)
from experiments.simulator.config import SimulationConfig
from experiments.simulator.text import Wording
from features.vocabulary import Entity, Policy, Verification

US_PER_DAY = 86_400_000_000
_VERIFICATION = np.asarray([v.value for v in Verification], dtype=object)
_CF, _PR, _MC, _FD, _LQ = range(5)
_TEXT_POLICIES = (Policy.COUNTERFEIT, Policy.PROHIBITED_ITEM, Policy.MISLEADING_CLAIM)


@dataclass
class Items:
    """One entity's items: contract columns (`table`) plus hidden state and truth."""

    entity: Entity
    table: pd.DataFrame
    created_us: np.ndarray
    seller_idx: np.ndarray
    violates: np.ndarray
    p: np.ndarray
    hidden: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of items."""
        return int(self.created_us.size)


@dataclass
class World:
    """The generated marketplace before any traffic or enforcement."""

    config: SimulationConfig
    sellers: Items
    creators: pd.DataFrame
    creator_hidden: dict[str, np.ndarray]
    listings: Items
    videos: Items
    lives: Items

    def items(self, entity: Entity) -> Items:
        """The items of one entity."""
        return {
            Entity.LISTING: self.listings,
            Entity.VIDEO: self.videos,
            Entity.LIVE: self.lives,
            Entity.SELLER: self.sellers,
        }[entity]


def _ids(prefix: str, n: int) -> np.ndarray:
    width = max(6, len(str(n)))
    digits = pd.Series(np.arange(1, n + 1)).astype("str").str.zfill(width)
    return (prefix + digits).to_numpy(dtype=object)


def _to_us(start_us: int, days: np.ndarray) -> np.ndarray:
    return start_us + np.round(days * US_PER_DAY).astype(np.int64)


def _ts(us: np.ndarray) -> np.ndarray:
    return us.astype("datetime64[us]")


def _str(values: np.ndarray) -> pd.Series:
    return pd.Series(values, dtype="str")


def _none_where(values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    out = values.astype(object)
    out[missing] = None
    return out


def _round_price(x: np.ndarray) -> np.ndarray:
    rounded = np.where(x >= 2.0, np.floor(x) + 0.99, np.round(np.maximum(x, 0.5), 2))
    return np.asarray(rounded, dtype=np.float64)


def generate_world(config: SimulationConfig, seed_seq: np.random.SeedSequence) -> World:
    """Draw the whole static marketplace from `seed_seq` (the world stream)."""
    (s_sellers, s_listings, s_text, s_truth, s_creators, s_videos, s_lives, s_seller_truth) = (
        np.random.default_rng(s) for s in seed_seq.spawn(8)
    )
    start_us = int(np.datetime64(config.start, "us").astype(np.int64))
    sellers = _sellers(config, s_sellers, start_us)
    listings = _listings(config, sellers, s_listings, s_text, s_truth, start_us)
    violates, p = pol.seller_truth(
        sellers.hidden["_listing_seller"],
        listings.violates[:, : len(LISTING_POLICIES)],
        listings.p[:, : len(LISTING_POLICIES)],
        sellers.n,
        s_seller_truth,
    )
    del sellers.hidden["_listing_seller"]
    sellers.violates[:, : len(LISTING_POLICIES)] = violates
    sellers.p[:, : len(LISTING_POLICIES)] = p
    creators, creator_hidden = _creators(config, s_creators, start_us)
    videos = _promotions(
        Entity.VIDEO, config, listings, creators, creator_hidden, s_videos, start_us
    )
    lives = _promotions(Entity.LIVE, config, listings, creators, creator_hidden, s_lives, start_us)
    affiliate = np.zeros(listings.n, dtype=bool)
    affiliate[videos.hidden["listing_idx"]] = True
    affiliate[lives.hidden["listing_idx"]] = True
    listings.hidden["in_affiliate"] |= affiliate
    return World(config, sellers, creators, creator_hidden, listings, videos, lives)


def _sellers(config: SimulationConfig, rng: np.random.Generator, start_us: int) -> Items:
    n = max(20, round(config.n_listings / config.listings_per_seller))
    bad = rng.random(n) < 0.12
    specialty = np.zeros((n, len(LISTING_POLICIES)))
    primary = rng.choice(len(LISTING_POLICIES), n, p=[0.34, 0.10, 0.22, 0.18, 0.16])
    secondary = rng.choice(len(LISTING_POLICIES), n, p=[0.25, 0.10, 0.25, 0.2, 0.2])
    has_secondary = rng.random(n) < 0.4
    specialty[has_secondary, secondary[has_secondary]] = 0.6
    specialty[np.arange(n), primary] = 1.0
    specialty[~bad] = 0.0
    propensity = np.where(bad, rng.normal(1.0, 0.5, n), rng.normal(-1.0, 0.5, n))
    quality = rng.normal(0.0, 1.0, n) - 0.8 * bad

    new_in_period = rng.random(n) < np.where(bad, 0.35, 0.10)
    tenure = np.where(
        bad, rng.lognormal(np.log(90), 0.9, n), rng.lognormal(np.log(500), 0.9, n)
    ).clip(1, 3650)
    reg_days = np.where(new_in_period, rng.random(n) * 0.85 * config.days, -tenure)
    registered_us = _to_us(start_us, reg_days)

    ver_p = np.where(bad[:, None], [[0.5, 0.4, 0.1]], [[0.15, 0.45, 0.40]])
    verification = (rng.random(n)[:, None] > ver_p.cumsum(axis=1)).sum(axis=1)
    official = (~bad) & (verification == 2) & (rng.random(n) < 0.08)
    region = rng.choice(len(REGIONS), n, p=REGION_WEIGHTS)
    ads_buyer = rng.random(n) < np.where(bad, 0.45, 0.30)
    activity = (rng.pareto(1.6, n) + 1.0) * np.where(official, 3.0, 1.0) * np.where(bad, 1.3, 1.0)

    shares = np.asarray([c.share for c in CATEGORIES])
    risk = np.asarray([[c.risk.get(p, 0.0) for p in LISTING_POLICIES] for c in CATEGORIES])
    weights = shares[None, :] * np.exp(np.where(bad[:, None], 1.2 * risk[:, primary].T, 0.0))
    weights /= weights.sum(axis=1, keepdims=True)
    home_category = (rng.random(n)[:, None] > weights.cumsum(axis=1)).sum(axis=1)
    home_category = np.minimum(home_category, len(CATEGORIES) - 1)

    order = np.argsort(registered_us, kind="stable")
    table = pd.DataFrame(
        {
            "seller_id": _str(_ids("S", n)),
            "registered_at": _ts(registered_us[order]),
            "region": _str(np.asarray(REGIONS, dtype=object)[region[order]]),
            "verification": _str(_VERIFICATION[verification[order]]),
            "is_official_store": official[order],
        }
    )
    hidden = {
        "is_bad_actor": bad[order],
        "propensity": propensity[order],
        "quality": quality[order],
        "specialty": specialty[order],
        "ads_buyer": ads_buyer[order],
        "activity": activity[order],
        "home_category": home_category[order],
        "verification_code": verification[order],
        "region_code": region[order],
    }
    return Items(
        Entity.SELLER,
        table,
        registered_us[order],
        np.arange(n),
        np.zeros((n, len(Policy)), dtype=bool),
        np.zeros((n, len(Policy))),
        hidden,
    )


def _wording(
    rng: np.random.Generator, scheme: np.ndarray, probs: tuple[float, float, float]
) -> np.ndarray:
    """Wording per item: NONE unless in the scheme, then LEXICON/OBFUSCATED/NONE by `probs`."""
    u = rng.random(scheme.size)
    lex, obf, _ = probs
    w = np.where(u < lex, Wording.LEXICON, np.where(u < lex + obf, Wording.OBFUSCATED, 0))
    return np.where(scheme, w, Wording.NONE).astype(np.int8)


class _Offer(NamedTuple):
    """What a listing sells and at what price: brand, true price ratio and the discount."""

    has_brand: np.ndarray
    brand_pick: np.ndarray
    brand: np.ndarray
    ratio: np.ndarray
    price: np.ndarray
    list_price: np.ndarray
    discount: np.ndarray
    discount_pct: np.ndarray


class _ListingText(NamedTuple):
    """Wording per text policy and the text drawn from it."""

    wording: dict[Policy, np.ndarray]
    honest: np.ndarray
    spammy: np.ndarray
    title: np.ndarray
    description: np.ndarray


def _listings(
    config: SimulationConfig,
    sellers: Items,
    rng: np.random.Generator,
    rng_text: np.random.Generator,
    rng_truth: np.random.Generator,
    start_us: int,
) -> Items:
    """Listings with their text, hidden state and truth.

    The parts draw from `rng` in the order called here; reordering them changes every world.
    """
    sh = sellers.hidden
    new_idx = [c.code for c in CATEGORIES].index(NEW_CATEGORY)
    seller_idx, category, created_days = _listing_placement(config, sellers, rng, start_us)
    created_us = _to_us(start_us, created_days)

    official = sellers.table["is_official_store"].to_numpy()[seller_idx]
    verification = sh["verification_code"][seller_idx]
    cat_code = np.asarray([c.code for c in CATEGORIES], dtype=object)[category]
    health = np.isin(cat_code, pol.EMERGING_CATEGORIES)
    emerging_window = created_days >= config.emerging_pattern_day
    scheme = _listing_schemes(rng, sh, seller_idx, category, official, health & emerging_window)
    is_new_cat = category == new_idx
    emerging = scheme[:, _MC] & health & emerging_window

    offer = _offer(rng, category, scheme, official)
    shared_image, image_hash = _images(rng, category, seller_idx, offer, official, scheme)
    ships = _ships_from(rng, sh["region_code"][seller_idx], scheme)
    txt = _listing_text(rng_text, category, official, offer, scheme, is_new_cat, emerging)
    in_campaigns, in_ads, in_affiliate, appeal = _participation(
        rng, sh, seller_idx, offer, scheme, official
    )
    violates, p = _listing_truth(
        rng_truth,
        sh,
        seller_idx,
        scheme=scheme,
        offer=offer,
        wording=txt.wording,
        shared_image=shared_image,
        official=official,
        verification=verification,
        in_campaigns=in_campaigns,
        health=health,
        spammy=txt.spammy,
    )

    table = _listing_table(sellers, seller_idx, created_us, cat_code, offer, txt, image_hash, ships)
    sellers.hidden["_listing_seller"] = seller_idx
    hidden: dict[str, np.ndarray] = {
        "category_idx": category,
        "scheme": scheme,
        "wording_counterfeit": txt.wording[Policy.COUNTERFEIT],
        "wording_prohibited_item": txt.wording[Policy.PROHIBITED_ITEM],
        "wording_misleading_claim": txt.wording[Policy.MISLEADING_CLAIM],
        "emerging_pattern": emerging,
        "new_category": is_new_cat,
        "honest_lexicon_phrase": txt.honest != "",
        "spammy": txt.spammy,
        "price_ratio_true": offer.ratio,
        "discount_depth": offer.discount,
        "shared_image_pool": shared_image,
        "appeal": appeal,
        "in_campaigns": in_campaigns,
        "in_ads": in_ads,
        "in_affiliate": in_affiliate,
        "price": offer.price,
        "has_brand": offer.has_brand,
        "brand": offer.brand,
    }
    return Items(Entity.LISTING, table, created_us, seller_idx, violates, p, hidden)


def _listing_placement(
    config: SimulationConfig, sellers: Items, rng: np.random.Generator, start_us: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(seller, category, creation day) per listing, sorted by creation day."""
    n = config.n_listings
    sh = sellers.hidden
    new_idx = [c.code for c in CATEGORIES].index(NEW_CATEGORY)
    seller_idx = rng.choice(sellers.n, n, p=sh["activity"] / sh["activity"].sum())
    shares = np.asarray([c.share for c in CATEGORIES])
    random_cat = rng.choice(len(CATEGORIES), n, p=shares / shares.sum())
    category = np.where(rng.random(n) < 0.75, sh["home_category"][seller_idx], random_cat)
    seller_reg_days = (sellers.created_us[seller_idx] - start_us) / US_PER_DAY
    lower = np.maximum(seller_reg_days, 0.0)
    lower = np.where(category == new_idx, np.maximum(lower, config.new_category_launch_day), lower)
    created_days = lower + rng.random(n) * (config.days - lower)
    order = np.argsort(created_days, kind="stable")
    return seller_idx[order], category[order], created_days[order]


def _listing_schemes(
    rng: np.random.Generator,
    sh: dict[str, np.ndarray],
    seller_idx: np.ndarray,
    category: np.ndarray,
    official: np.ndarray,
    emerging: np.ndarray,
) -> np.ndarray:
    """(n, listing policies) whether each listing is run as a scheme of each policy."""
    risk = np.asarray([[c.risk.get(p, 0.0) for p in LISTING_POLICIES] for c in CATEGORIES])
    logits = pol.listing_scheme_logits(
        category_risk=risk[category],
        seller_bad=sh["is_bad_actor"][seller_idx],
        seller_specialty=sh["specialty"][seller_idx],
        seller_propensity=sh["propensity"][seller_idx],
        seller_quality=sh["quality"][seller_idx],
        emerging=emerging.astype(float),
    )
    logits[official] -= 3.0
    return np.asarray(rng.random(logits.shape) < pol.sigmoid(logits))


def _offer(
    rng: np.random.Generator, category: np.ndarray, scheme: np.ndarray, official: np.ndarray
) -> _Offer:
    n = category.size
    brand_share = np.asarray([c.brand_share for c in CATEGORIES])[category]
    has_brand = rng.random(n) < np.where(scheme[:, _CF] | official, 0.97, brand_share)
    brand_pick = rng.integers(0, 3, n)
    brands = np.asarray([list(c.brands) for c in CATEGORIES], dtype=object)
    brand = np.where(has_brand, brands[category, brand_pick], "").astype(object)
    median = np.asarray([c.median_price for c in CATEGORIES])[category]
    ratio = rng.lognormal(0.0, 0.45, n)
    ratio = np.where(scheme[:, _LQ], rng.lognormal(np.log(0.55), 0.35, n), ratio)
    ratio = np.where(scheme[:, _FD], rng.lognormal(np.log(1.05), 0.3, n), ratio)
    ratio = np.where(scheme[:, _CF], rng.lognormal(np.log(0.32), 0.35, n), ratio)
    ratio = np.where(official, ratio * 1.15, ratio)
    price = _round_price(median * ratio)
    u = rng.random(n)
    depth = np.where(
        u < 0.55, 0.0, np.where(u < 0.92, rng.uniform(0.05, 0.35, n), rng.uniform(0.35, 0.65, n))
    )
    depth = np.where(scheme[:, _FD], rng.uniform(0.6, 0.85, n), depth)
    list_price = np.where(depth > 0, np.maximum(np.round(price / (1 - depth)) - 0.01, price), price)
    discount = 1.0 - price / list_price
    discount_pct = np.round(100 * discount).astype(np.int64)
    return _Offer(has_brand, brand_pick, brand, ratio, price, list_price, discount, discount_pct)


def _images(
    rng: np.random.Generator,
    category: np.ndarray,
    seller_idx: np.ndarray,
    offer: _Offer,
    official: np.ndarray,
    scheme: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(shared with other listings, image hash): own photos, the brand's official photos
    (resellers), counterfeit stock photos."""
    n = category.size
    brand_id = category * 3 + offer.brand_pick
    k_official = max(2, round(n / 8000))
    k_fake = max(2, round(n / 10000))
    unique_hash = rng.integers(0, 2**48, n)
    seller_hash = (seller_idx.astype(np.int64) * 7919 + 2**47) % 2**48
    official_hash = 2**48 + brand_id * 1000 + rng.integers(0, k_official, n)
    fake_hash = 2**49 + brand_id * 1000 + rng.integers(0, k_fake, n)
    u = rng.random(n)
    image = np.where(rng.random(n) < 0.15, seller_hash, unique_hash)
    reseller = offer.has_brand & ~official & ~scheme[:, _CF]
    image = np.where(reseller & (u < 0.2), official_hash, image)
    image = np.where(official & (u < 0.8), official_hash, image)
    cf_img = offer.has_brand & scheme[:, _CF]
    image = np.where(cf_img & (u < 0.3), official_hash, image)
    image = np.where(cf_img & (u >= 0.3) & (u < 0.85), fake_hash, image)
    shared_image = np.isin(image, np.concatenate([official_hash, fake_hash]))
    image_hash = np.char.add("p", np.char.zfill(np.char.mod("%x", image), 13)).astype(object)
    return shared_image, image_hash


def _ships_from(
    rng: np.random.Generator, home_region: np.ndarray, scheme: np.ndarray
) -> np.ndarray:
    """Region code each listing ships from: the seller's, or another for cross-border ones."""
    cross_border = rng.random(home_region.size) < np.where(scheme[:, _CF], 0.6, 0.1)
    return np.where(
        cross_border,
        (home_region + rng.integers(1, len(REGIONS), home_region.size)) % len(REGIONS),
        home_region,
    )


def _listing_text(
    rng_text: np.random.Generator,
    category: np.ndarray,
    official: np.ndarray,
    offer: _Offer,
    scheme: np.ndarray,
    is_new_cat: np.ndarray,
    emerging: np.ndarray,
) -> _ListingText:
    n = category.size
    wording = {
        Policy.COUNTERFEIT: _wording(rng_text, scheme[:, _CF], (0.5, 0.35, 0.15)),
        Policy.PROHIBITED_ITEM: _wording(rng_text, scheme[:, _PR], (0.6, 0.3, 0.1)),
        Policy.MISLEADING_CLAIM: _wording(rng_text, scheme[:, _MC], (0.55, 0.3, 0.15)),
    }
    u = rng_text.random(n)
    cf_w = wording[Policy.COUNTERFEIT]
    wording[Policy.COUNTERFEIT] = np.where(
        is_new_cat & scheme[:, _CF],
        np.where(u < 0.8, Wording.NOVEL, np.where(u < 0.9, Wording.OBFUSCATED, Wording.NONE)),
        cf_w,
    ).astype(np.int8)
    mc_w = wording[Policy.MISLEADING_CLAIM]
    wording[Policy.MISLEADING_CLAIM] = np.where(emerging & (u < 0.8), Wording.NOVEL, mc_w).astype(
        np.int8
    )
    honest = text.honest_phrases(category, official, rng_text)
    spammy = rng_text.random(n) < np.where(scheme[:, _LQ], 0.6, 0.04)
    title, description = text.listing_text(
        rng_text,
        category_idx=category,
        brand=offer.brand,
        wording=wording,
        honest_phrase=honest,
        discount_pct=offer.discount_pct,
        spammy=spammy,
    )
    return _ListingText(wording, honest, spammy, title, description)


def _participation(
    rng: np.random.Generator,
    sh: dict[str, np.ndarray],
    seller_idx: np.ndarray,
    offer: _Offer,
    scheme: np.ndarray,
    official: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(in campaigns, in ads, in affiliate, appeal) per listing: traffic participation and
    appeal, hidden from the contract tables."""
    n = seller_idx.size
    in_campaigns = rng.random(n) < (0.15 + 0.3 * (offer.discount_pct >= 20) + 0.35 * scheme[:, _FD])
    in_ads = sh["ads_buyer"][seller_idx] & (rng.random(n) < 0.6)
    in_affiliate = rng.random(n) < 0.1
    appeal = rng.lognormal(-0.6, 1.1, n)
    appeal *= np.where(scheme[:, _CF], 1.6, 1.0) * np.where(scheme[:, _FD], 1.3, 1.0)
    appeal *= np.where(official, 2.5, 1.0)
    return in_campaigns, in_ads, in_affiliate, appeal


def _listing_truth(
    rng_truth: np.random.Generator,
    sh: dict[str, np.ndarray],
    seller_idx: np.ndarray,
    *,
    scheme: np.ndarray,
    offer: _Offer,
    wording: dict[Policy, np.ndarray],
    shared_image: np.ndarray,
    official: np.ndarray,
    verification: np.ndarray,
    in_campaigns: np.ndarray,
    health: np.ndarray,
    spammy: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(violates, p), each (n, policies): the true violations and their probabilities."""
    n = seller_idx.size
    lexicon = {p: wording[p] == Wording.LEXICON for p in _TEXT_POLICIES}
    truth_logits = pol.listing_truth_logits(
        scheme=scheme,
        has_brand=offer.has_brand,
        price_ratio=offer.ratio,
        discount_depth=offer.discount,
        term_lexicon=lexicon,
        shared_image=shared_image,
        is_official=official,
        verification_business=verification == 2,
        verification_none=verification == 0,
        in_campaigns=in_campaigns,
        health_category=health,
        spammy=spammy,
        seller_propensity=sh["propensity"][seller_idx],
        seller_quality=sh["quality"][seller_idx],
        hidden=rng_truth.normal(0.0, 0.45, (n, len(LISTING_POLICIES))),
    )
    p5 = pol.sigmoid(truth_logits)
    v5 = rng_truth.random(p5.shape) < p5
    p = np.zeros((n, len(Policy)))
    violates = np.zeros((n, len(Policy)), dtype=bool)
    idx = [pol.POLICY_INDEX[q] for q in LISTING_POLICIES]
    p[:, idx] = p5
    violates[:, idx] = v5
    return violates, p


def _listing_table(
    sellers: Items,
    seller_idx: np.ndarray,
    created_us: np.ndarray,
    cat_code: np.ndarray,
    offer: _Offer,
    txt: _ListingText,
    image_hash: np.ndarray,
    ships: np.ndarray,
) -> pd.DataFrame:
    table = pd.DataFrame(
        {
            "listing_id": _str(_ids("L", seller_idx.size)),
            "seller_id": sellers.table["seller_id"].to_numpy()[seller_idx],
            "created_at": _ts(created_us),
            "category": _str(cat_code),
            "brand": pd.Series(_none_where(offer.brand, ~offer.has_brand), dtype="str"),
            "title": _str(txt.title),
            "description": _str(txt.description),
            "price": offer.price,
            "list_price": offer.list_price,
            "image_hash": _str(image_hash),
            "ships_from": _str(np.asarray(REGIONS, dtype=object)[ships]),
        }
    )
    table["seller_id"] = table["seller_id"].astype("str")
    return table


def _creators(
    config: SimulationConfig, rng: np.random.Generator, start_us: int
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    n = max(10, round(config.n_listings / config.listings_per_creator))
    fraud = rng.random(n) < 0.08
    claim = rng.random(n) < 0.10
    followers = (
        np.where(fraud, rng.lognormal(np.log(800), 1.2, n), rng.lognormal(np.log(3000), 1.6, n))
        .clip(10, 2_000_000)
        .astype(np.int64)
    )
    verified = rng.random(n) < np.where(fraud, 0.08, np.where(followers > 10_000, 0.6, 0.25))
    tenure = np.where(
        fraud, rng.lognormal(np.log(60), 1.0, n), rng.lognormal(np.log(400), 1.0, n)
    ).clip(1, 3650)
    registered_us = _to_us(start_us, -tenure)
    order = np.argsort(registered_us, kind="stable")
    region = rng.choice(len(REGIONS), n, p=REGION_WEIGHTS)
    activity = rng.lognormal(0.0, 0.9, n) * np.where(fraud | claim, 1.5, 1.0)
    table = pd.DataFrame(
        {
            "creator_id": _str(_ids("C", n)),
            "registered_at": _ts(registered_us[order]),
            "region": _str(np.asarray(REGIONS, dtype=object)[region[order]]),
            "follower_count": followers[order],
            "verified": verified[order],
        }
    )
    hidden = {
        "fraud_prone": fraud[order],
        "claim_pusher": claim[order],
        "followers": followers[order],
        "verified": verified[order],
        "activity": activity[order],
        "registered_us": registered_us[order],
    }
    return table, hidden


def _promotions(
    entity: Entity,
    config: SimulationConfig,
    listings: Items,
    creators: pd.DataFrame,
    ch: dict[str, np.ndarray],
    rng: np.random.Generator,
    start_us: int,
) -> Items:
    """Videos or live sessions: a creator promoting one listing.

    The parts draw from `rng` in the order called here; reordering them changes every world.
    """
    live = entity is Entity.LIVE
    rate = config.lives_per_listing if live else config.videos_per_listing
    n = round(rate * listings.n)
    lh = listings.hidden
    creator_idx, listing_idx, created_us = _promotion_placement(
        config, listings, len(creators), ch, n, rng, start_us
    )
    created_days = (created_us - start_us) / US_PER_DAY

    linked_scheme = lh["scheme"][listing_idx]
    category = lh["category_idx"][listing_idx]
    cat_code = np.asarray([c.code for c in CATEGORIES], dtype=object)[category]
    health = np.isin(cat_code, pol.EMERGING_CATEGORIES)
    emerging_window = (created_days >= config.emerging_pattern_day) & health
    logits = pol.video_scheme_logits(
        linked_scheme_cf=linked_scheme[:, _CF].astype(float),
        linked_scheme_mc=linked_scheme[:, _MC].astype(float),
        creator_claim_pusher=ch["claim_pusher"][creator_idx].astype(float),
        creator_fraud_prone=ch["fraud_prone"][creator_idx].astype(float),
        emerging=emerging_window.astype(float),
        live=live,
    )
    scheme = rng.random(logits.shape) < pol.sigmoid(logits)
    emerging = scheme[:, 1] & emerging_window
    wcf, wmc, body = _promotion_text(rng, live, lh, listing_idx, scheme, emerging)
    followers = ch["followers"][creator_idx]
    violates, p = _promotion_truth(
        rng,
        entity,
        listings,
        listing_idx,
        scheme=scheme,
        wcf=wcf,
        wmc=wmc,
        followers=followers,
        creator_verified=ch["verified"][creator_idx],
    )
    table, minutes = _promotion_table(
        rng,
        live,
        creator_ids=creators["creator_id"].to_numpy()[creator_idx],
        listing_ids=listings.table["listing_id"].to_numpy()[listing_idx],
        created_us=created_us,
        body=body,
    )
    hidden: dict[str, np.ndarray] = {
        "creator_idx": creator_idx,
        "listing_idx": listing_idx,
        "scheme": scheme,
        "wording_counterfeit": wcf.astype(np.int8),
        "wording_misleading_claim": wmc.astype(np.int8),
        "emerging_pattern": emerging,
        "new_category": lh["new_category"][listing_idx],
        "followers": followers,
        **_promotion_traffic(rng, live, scheme),
        "price": lh["price"][listing_idx],
        "duration_minutes": minutes,
    }
    seller_idx = listings.seller_idx[listing_idx]
    return Items(entity, table, created_us, seller_idx, violates, p, hidden)


def _promotion_placement(
    config: SimulationConfig,
    listings: Items,
    n_creators: int,
    ch: dict[str, np.ndarray],
    n: int,
    rng: np.random.Generator,
    start_us: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(creator, listing, creation time) per promotion, sorted by creation time; claim
    pushers mostly promote misleading-claim listings."""
    lh = listings.hidden
    creator_idx = rng.choice(n_creators, n, p=ch["activity"] / ch["activity"].sum())
    weights = lh["appeal"] / lh["appeal"].sum()
    listing_idx = rng.choice(listings.n, n, p=weights)
    mc_pool = np.flatnonzero(lh["scheme"][:, _MC])
    if mc_pool.size:
        push = ch["claim_pusher"][creator_idx] & (rng.random(n) < 0.6)
        listing_idx[push] = mc_pool[rng.integers(0, mc_pool.size, int(push.sum()))]
    end_us = start_us + config.days * US_PER_DAY
    lc = listings.created_us[listing_idx]
    created_us = lc + ((end_us - lc) * rng.beta(1.0, 4.0, n)).astype(np.int64)
    created_us = np.minimum(created_us, end_us - 1_000_000)
    order = np.argsort(created_us, kind="stable")
    return creator_idx[order], listing_idx[order], created_us[order]


def _promotion_text(
    rng: np.random.Generator,
    live: bool,
    lh: dict[str, np.ndarray],
    listing_idx: np.ndarray,
    scheme: np.ndarray,
    emerging: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(counterfeit wording, misleading-claim wording, caption or live title)."""
    u = rng.random(listing_idx.size)
    wcf = _wording(rng, scheme[:, 0], (0.45, 0.35, 0.2))
    wcf = np.where(scheme[:, 0] & lh["new_category"][listing_idx] & (u < 0.8), Wording.NOVEL, wcf)
    wmc = _wording(rng, scheme[:, 1], (0.55, 0.3, 0.15))
    wmc = np.where(emerging & (u < 0.8), Wording.NOVEL, wmc)
    wording = {
        Policy.COUNTERFEIT: wcf.astype(np.int8),
        Policy.MISLEADING_CLAIM: wmc.astype(np.int8),
    }
    noun = text.nouns_for(lh["category_idx"][listing_idx], rng)
    if live:
        body = text.live_titles(rng, noun=noun, wording=wording)
    else:
        body = text.video_captions(rng, noun=noun, brand=lh["brand"][listing_idx], wording=wording)
    return wcf, wmc, body


def _promotion_truth(
    rng: np.random.Generator,
    entity: Entity,
    listings: Items,
    listing_idx: np.ndarray,
    *,
    scheme: np.ndarray,
    wcf: np.ndarray,
    wmc: np.ndarray,
    followers: np.ndarray,
    creator_verified: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(violates, p), each (n, policies): the true violations and their probabilities."""
    n = listing_idx.size
    truth_logits = pol.video_truth_logits(
        scheme=scheme,
        term_lexicon_cf=wcf == Wording.LEXICON,
        term_lexicon_mc=wmc == Wording.LEXICON,
        linked_violates_cf=listings.violates[listing_idx, pol.POLICY_INDEX[Policy.COUNTERFEIT]],
        linked_violates_mc=listings.violates[
            listing_idx, pol.POLICY_INDEX[Policy.MISLEADING_CLAIM]
        ],
        small_creator=followers < 1000,
        creator_verified=creator_verified,
        hidden=rng.normal(0.0, 0.4, (n, 3)),
    )
    p3 = pol.sigmoid(truth_logits)
    v3 = rng.random(p3.shape) < p3
    cols = [pol.POLICY_INDEX[q] for q in pol.ENTITY_POLICIES[entity]]
    p = np.zeros((n, len(Policy)))
    violates = np.zeros((n, len(Policy)), dtype=bool)
    p[:, cols] = p3
    violates[:, cols] = v3
    return violates, p


def _promotion_table(
    rng: np.random.Generator,
    live: bool,
    *,
    creator_ids: np.ndarray,
    listing_ids: np.ndarray,
    created_us: np.ndarray,
    body: np.ndarray,
) -> tuple[pd.DataFrame, np.ndarray]:
    """(contract table, duration in minutes) of the videos or live sessions."""
    n = created_us.size
    ids = _str(_ids("LV" if live else "V", n))
    if live:
        minutes = rng.lognormal(np.log(75), 0.5, n).clip(15, 300)
        ended_us = created_us + (minutes * 60e6).astype(np.int64)
        table = pd.DataFrame(
            {
                "live_id": ids,
                "creator_id": _str(creator_ids),
                "listing_id": _str(listing_ids),
                "started_at": _ts(created_us),
                "ended_at": _ts(ended_us),
                "title": _str(body),
            }
        )
    else:
        minutes = rng.lognormal(np.log(35), 0.6, n).clip(5, 600) / 60.0
        table = pd.DataFrame(
            {
                "video_id": ids,
                "creator_id": _str(creator_ids),
                "listing_id": _str(listing_ids),
                "created_at": _ts(created_us),
                "caption": _str(body),
                "duration_seconds": np.round(minutes * 60.0, 1),
            }
        )
    return table, minutes


def _promotion_traffic(
    rng: np.random.Generator, live: bool, scheme: np.ndarray
) -> dict[str, np.ndarray]:
    """Hidden traffic factors: reach, a viral burst, bought views and likes, affiliate."""
    n = len(scheme)
    return {
        "reach": rng.lognormal(np.log(0.15 if live else 0.08), 0.8, n),
        "viral": (~scheme[:, 2]) & (rng.random(n) < (0.02 if live else 0.04)),
        "viral_day": rng.integers(1, 5, n),
        "viral_boost": rng.uniform(6.0, 25.0, n),
        "bot_day": rng.integers(0 if live else 1, 1 if live else 4, n),
        "bot_boost": rng.uniform(5.0, 30.0, n),
        "bought_likes": rng.random(n) < 0.3,
        "like_factor": rng.lognormal(0.0, 0.35, n),
        "in_affiliate": rng.random(n) < (0.4 if live else 0.5),
    }
