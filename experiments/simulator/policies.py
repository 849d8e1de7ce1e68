"""The latent violation model: hidden schemes, then true violation probabilities.

Two stages per item and policy. A hidden *scheme* (is this seller running a counterfeit,
claim, discount... play on this item?) is drawn from the seller's or creator's latent
propensity and the category's risk; the observable signals (text, price, images, traffic) are
then generated from the scheme. The true violation probability `p` combines the scheme with
non-linear interactions of observable signals and a hidden per-item factor, and the truth is
one Bernoulli draw from `p`. A model that sees only observables cannot recover the scheme,
so no model is perfect.
"""

from __future__ import annotations

import numpy as np

from experiments.simulator.categories import LISTING_POLICIES
from features.vocabulary import Entity, Policy

#: Policies an item of each entity can violate (random audits label each of them).
ENTITY_POLICIES: dict[Entity, tuple[Policy, ...]] = {
    Entity.LISTING: LISTING_POLICIES,
    Entity.VIDEO: (Policy.COUNTERFEIT, Policy.MISLEADING_CLAIM, Policy.ENGAGEMENT_FRAUD),
    Entity.LIVE: (Policy.COUNTERFEIT, Policy.MISLEADING_CLAIM, Policy.ENGAGEMENT_FRAUD),
    Entity.SELLER: LISTING_POLICIES,
}

#: Column position of each policy in the (n_items, 6) truth matrices.
POLICY_INDEX: dict[Policy, int] = {p: i for i, p in enumerate(Policy)}

#: Categories where the late weight-loss claim wording appears.
EMERGING_CATEGORIES: tuple[str, ...] = ("supplements", "skincare", "fitness")

#: Honest sellers below this latent quality are junk shops whose goods are mostly low quality.
JUNK_QUALITY = -1.4

#: A seller violates a policy when at least this many of its listings do ...
SELLER_MIN_VIOLATING = 2
#: ... and they are at least this share of its listings.
SELLER_MIN_SHARE = 0.25


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function."""
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


def listing_scheme_logits(
    *,
    category_risk: np.ndarray,
    seller_bad: np.ndarray,
    seller_specialty: np.ndarray,
    seller_propensity: np.ndarray,
    seller_quality: np.ndarray,
    emerging: np.ndarray,
) -> np.ndarray:
    """(n_listings, 5) log-odds that the seller runs each listing-policy scheme on the item."""
    bad = seller_bad[:, None]
    honest_logit = -4.7 + 0.5 * (seller_propensity[:, None] + 1.0)
    bad_logit = -3.1 + 3.6 * seller_specialty
    logits = category_risk + np.where(bad, bad_logit, honest_logit)
    # low quality is mostly a seller trait: honest "junk" shops (very low quality) ship it too
    lq = LISTING_POLICIES.index(Policy.LOW_QUALITY)
    junk = ~seller_bad & (seller_quality < JUNK_QUALITY)
    logits[:, lq] = (
        category_risk[:, lq]
        + np.where(seller_bad, bad_logit[:, lq], np.where(junk, 0.6, -4.9))
        - 0.3 * seller_quality
    )
    mc = LISTING_POLICIES.index(Policy.MISLEADING_CLAIM)
    logits[:, mc] += 1.6 * emerging
    return logits


def listing_truth_logits(
    *,
    scheme: np.ndarray,
    has_brand: np.ndarray,
    price_ratio: np.ndarray,
    discount_depth: np.ndarray,
    term_lexicon: dict[Policy, np.ndarray],
    shared_image: np.ndarray,
    is_official: np.ndarray,
    verification_business: np.ndarray,
    verification_none: np.ndarray,
    in_campaigns: np.ndarray,
    health_category: np.ndarray,
    spammy: np.ndarray,
    seller_propensity: np.ndarray,
    seller_quality: np.ndarray,
    hidden: np.ndarray,
) -> np.ndarray:
    """(n_listings, 5) true violation log-odds: scheme + signal interactions + hidden factors."""
    s = scheme.astype(float)
    cf, pr, mc, fd, lq = (s[:, i] for i in range(5))
    out = np.empty_like(s)
    cheap_brand = has_brand & (price_ratio < 0.45)
    out[:, 0] = (
        -4.9
        + 6.0 * cf
        + 0.7 * (term_lexicon[Policy.COUNTERFEIT] & has_brand)
        + 0.9 * cheap_brand
        + 0.5 * shared_image * ~is_official
        - 2.5 * is_official
        - 0.4 * verification_business
        - 0.8 * ~has_brand
    )
    out[:, 1] = -5.8 + 6.8 * pr + 0.4 * verification_none
    out[:, 2] = (
        -5.0
        + 6.2 * mc
        + 0.6 * (term_lexicon[Policy.MISLEADING_CLAIM] & health_category & ~is_official)
        + 0.4 * verification_none
        - 1.5 * is_official
    )
    deep_full_price = (discount_depth > 0.55) & (price_ratio > 0.9)
    out[:, 3] = (
        -5.0
        + 6.2 * fd
        + 0.9 * deep_full_price
        + 0.4 * (deep_full_price & in_campaigns)
        - 1.0 * is_official
    )
    out[:, 4] = (
        -4.4
        + 5.6 * lq
        + 0.6 * (price_ratio < 0.5) * ~has_brand
        + 0.5 * spammy
        + 0.35 * np.maximum(-seller_quality, 0.0)
    )
    return np.asarray(out + 0.35 * seller_propensity[:, None] + hidden, dtype=np.float64)


def video_scheme_logits(
    *,
    linked_scheme_cf: np.ndarray,
    linked_scheme_mc: np.ndarray,
    creator_claim_pusher: np.ndarray,
    creator_fraud_prone: np.ndarray,
    emerging: np.ndarray,
    live: bool,
) -> np.ndarray:
    """(n, 3) scheme log-odds for videos or lives: counterfeit, claim, engagement fraud."""
    cf = -5.2 + 5.5 * linked_scheme_cf + 0.4 * creator_claim_pusher
    mc = -4.7 + 3.2 * linked_scheme_mc + 2.4 * creator_claim_pusher + 1.4 * emerging
    ef = -5.2 + 5.3 * creator_fraud_prone + (0.3 if live else 0.0)
    return np.stack([cf, mc, ef], axis=1)


def video_truth_logits(
    *,
    scheme: np.ndarray,
    term_lexicon_cf: np.ndarray,
    term_lexicon_mc: np.ndarray,
    linked_violates_cf: np.ndarray,
    linked_violates_mc: np.ndarray,
    small_creator: np.ndarray,
    creator_verified: np.ndarray,
    hidden: np.ndarray,
) -> np.ndarray:
    """(n, 3) true log-odds for videos or lives: counterfeit, claim, engagement fraud."""
    s = scheme.astype(float)
    cf = -5.2 + 5.8 * s[:, 0] + 3.0 * linked_violates_cf + 0.5 * term_lexicon_cf
    mc = -5.0 + 6.0 * s[:, 1] + 0.5 * term_lexicon_mc + 0.6 * linked_violates_mc
    ef = -5.0 + 6.4 * s[:, 2] + 0.5 * small_creator - 0.4 * creator_verified
    return np.asarray(np.stack([cf, mc, ef], axis=1) + hidden, dtype=np.float64)


def seller_truth(
    seller_idx: np.ndarray,
    listing_violates: np.ndarray,
    listing_p: np.ndarray,
    n_sellers: int,
    rng: np.random.Generator,
    *,
    n_draws: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Seller-level truth from its listings: (violates, p) arrays of shape (n_sellers, 5).

    A seller violates a policy when >= SELLER_MIN_VIOLATING of its listings do and they are
    >= SELLER_MIN_SHARE of its listings; `p` is that rule's probability under the listings'
    true probabilities (Monte Carlo over `n_draws` draws).
    """
    n_listings = np.bincount(seller_idx, minlength=n_sellers)
    need = np.maximum(SELLER_MIN_VIOLATING, np.ceil(SELLER_MIN_SHARE * n_listings)).astype(int)
    k = listing_violates.shape[1]
    violates = np.zeros((n_sellers, k), dtype=bool)
    p = np.zeros((n_sellers, k))
    for j in range(k):
        count = np.bincount(seller_idx, weights=listing_violates[:, j], minlength=n_sellers)
        violates[:, j] = count >= need
        hits = np.zeros(n_sellers)
        for _ in range(n_draws):
            draw = rng.random(listing_p.shape[0]) < listing_p[:, j]
            c = np.bincount(seller_idx, weights=draw, minlength=n_sellers)
            hits += c >= need
        p[:, j] = hits / n_draws
    return violates, p
