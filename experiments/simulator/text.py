"""Titles, descriptions, captions and live titles assembled from templates, vectorized.

Policy signals come in three wordings: phrases from the policy lexicon (what the features'
term counts see), obfuscated variants a lexicon misses (`rep`, `1to1`, `mirror-grade`), and
novel wording (the late weight-loss claims, the new category's `proxy` cards). Honest listings
sometimes use a lexicon word innocently (`AAA batteries`, `gel cure lamp`,
`prescription lenses`), which is where naive term rules earn their false positives.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from experiments.simulator.categories import CATEGORIES
from features.vocabulary import Policy


class Wording(IntEnum):
    """How a policy signal is phrased in an item's text."""

    NONE = 0
    LEXICON = 1
    OBFUSCATED = 2
    NOVEL = 3


#: Phrases per policy and wording. LEXICON phrases each contain a term of the features lexicon;
#: OBFUSCATED and NOVEL phrases contain none.
PHRASES: dict[Policy, dict[Wording, tuple[str, ...]]] = {
    Policy.COUNTERFEIT: {
        Wording.LEXICON: (
            "replica",
            "1:1 copy",
            "AAA grade",
            "mirror quality",
            "inspired by the designer original",
            "dupe",
            "unbranded original",
            "factory direct luxury",
            "replica, mirror quality",
        ),
        Wording.OBFUSCATED: (
            "rep",
            "1to1",
            "r3plica",
            "mirror-grade",
            "top tier batch",
            "UA version",
            "same factory as retail",
            "d-u-p-e",
        ),
        Wording.NOVEL: (
            "proxy card",
            "custom reprint",
            "orica print",
            "fan-made print",
            "not tournament legal",
        ),
    },
    Policy.PROHIBITED_ITEM: {
        Wording.LEXICON: (
            "high nicotine salts 50mg",
            "vape juice refills",
            "pepper spray keychain",
            "no prescription needed",
            "steroid cycle kit",
            "brass knuckle",
        ),
        Wording.OBFUSCATED: (
            "n1c salts 50mg",
            "e-liquid refills",
            "self-defense OC mist",
            "no rx needed",
            "anabolic stack",
            "k-duster ring",
        ),
        Wording.NOVEL: ("tianeptine drops", "kratom extract shots", "delta-8 gummies"),
    },
    Policy.MISLEADING_CLAIM: {
        Wording.LEXICON: (
            "miracle formula",
            "guaranteed results in 7 days",
            "100% effective",
            "lose 10kg in a month",
            "doctor approved",
            "clinically proven",
            "anti-aging instantly",
            "a cure for joint pain",
        ),
        Wording.OBFUSCATED: (
            "m1racle formula",
            "works every time",
            "drop 20 lbs fast",
            "heals from within",
            "dermatologist-level results",
            "reverse aging overnight",
        ),
        Wording.NOVEL: (
            "GLP-1 effect without the jab",
            "ozempic-like results",
            "metabolic reset",
            "melts fat while you sleep",
            "fat-burning shot",
            "appetite off switch",
        ),
    },
}

#: Innocent phrases that contain a lexicon term, per category: (phrase, probability).
HONEST_LEXICON_PHRASES: dict[str, tuple[tuple[str, float], ...]] = {
    "electronics": (("runs on 2 AAA batteries", 0.15),),
    "toys": (("needs 3 AAA batteries", 0.12),),
    "home_kitchen": (("timer uses one AAA battery", 0.04),),
    "apparel": (("inspired by 70s workwear", 0.06),),
    "home_decor": (("inspired by nordic cabins", 0.08),),
    "jewelry": (("inspired by art deco", 0.05),),
    "bags": (("inspired by vintage travel trunks", 0.03),),
    "cosmetics": (("works with any LED gel cure lamp", 0.20),),
    "skincare": (("clinically proven hydration", 0.02),),
    "supplements": (("doctor approved dosage guide included", 0.02),),
    "eyewear": (("frames ready for prescription lenses", 0.15),),
    "outdoor_gear": (("padded knuckle protection", 0.06),),
    "fitness": (("padded knuckle protection", 0.06),),
    "smoking_accessories": (("nicotine-free herbal blend", 0.30),),
}

#: Official brand stores use `clinically proven` far more often (and truthfully).
OFFICIAL_CLAIM_PHRASE = "clinically proven hydration"

_ADJECTIVES = (
    "Premium",
    "New",
    "Classic",
    "Original",
    "Genuine",
    "Deluxe",
    "Everyday",
    "Limited",
    "Best Seller",
    "Essential",
    "Pro",
    "2026",
)
_OPENERS = (
    "Brand new",
    "Carefully packed",
    "Our best-selling",
    "Hand-checked",
    "Fresh stock of our",
    "Customer favourite",
)
_MIDDLES = (
    "with a one year warranty",
    "made from durable materials",
    "in several colours",
    "for everyday use",
    "that makes a great gift",
    "with fast dispatch",
    "exactly as pictured",
)
_CLOSERS = (
    "Ships within 24 hours.",
    "Free returns within 30 days.",
    "Tracked shipping on every order.",
    "Questions? Message us any time.",
    "Stock is limited.",
)
_SPAM = (
    " HOT SALE cheap best quality free shipping!!!",
    " BUY NOW lowest price wholesale!!",
    " cheap cheap cheap best deal",
)
_HOOKS = (
    "Obsessed with this",
    "You need this",
    "Unboxing my new",
    "Honest review of the",
    "Link in bio for the",
    "Day 3 using the",
    "Why everyone is buying the",
)
_TAGS = ("#ad", "#tiktokmademebuyit", "#haul", "#deal", "#review", "#fyp")
_LIVE_OPENERS = (
    "LIVE now:",
    "Flash deals live:",
    "Restock live:",
    "Q&A and deals:",
    "Live unboxing:",
)


def _pick(pool: tuple[str, ...], rng: np.random.Generator, n: int) -> np.ndarray:
    return np.asarray(pool, dtype=object)[rng.integers(0, len(pool), n)]


def _nouns(category_idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    u = rng.random(category_idx.size)
    out = np.empty(category_idx.size, dtype=object)
    for i, cat in enumerate(CATEGORIES):
        mask = category_idx == i
        pool = np.asarray(cat.nouns, dtype=object)
        out[mask] = pool[(u[mask] * len(pool)).astype(np.int64)]
    return out


def _signal(policy: Policy, wording: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One phrase per item for its wording of `policy` ('' where none)."""
    out = np.full(wording.size, "", dtype=object)
    for w, pool in PHRASES[policy].items():
        mask = wording == w
        n = int(mask.sum())
        if n:
            out[mask] = _pick(pool, rng, n)
    return out


def _join(*parts: np.ndarray, sep: str = " ") -> np.ndarray:
    """Join object arrays of strings element-wise, skipping empty parts."""
    out = np.full(parts[0].size, "", dtype=object)
    for part in parts:
        nonempty = part != ""
        both = nonempty & (out != "")
        out = np.where(both, out + sep + part, np.where(nonempty, part, out))
    return out


def honest_phrases(
    category_idx: np.ndarray, is_official: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Innocent lexicon-bearing phrases per listing ('' for most)."""
    out = np.full(category_idx.size, "", dtype=object)
    u = rng.random(category_idx.size)
    for i, cat in enumerate(CATEGORIES):
        for phrase, prob in HONEST_LEXICON_PHRASES.get(cat.code, ()):
            mask = (category_idx == i) & (u < prob) & (out == "")
            out[mask] = phrase
    official_skincare = (is_official) & (
        category_idx == [c.code for c in CATEGORIES].index("skincare")
    )
    out[official_skincare & (u < 0.5)] = OFFICIAL_CLAIM_PHRASE
    return out


def listing_text(
    rng: np.random.Generator,
    *,
    category_idx: np.ndarray,
    brand: np.ndarray,
    wording: dict[Policy, np.ndarray],
    honest_phrase: np.ndarray,
    discount_pct: np.ndarray,
    spammy: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(title, description) object arrays for listings."""
    n = category_idx.size
    noun = _nouns(category_idx, rng)
    brand_part = brand.astype(object)
    adjective = _pick(_ADJECTIVES, rng, n)
    signals = {p: _signal(p, w, rng) for p, w in wording.items()}
    # the most telling signal goes into the title half of the time, the rest into the body
    in_title = rng.random(n) < 0.5
    title_signal = np.full(n, "", dtype=object)
    for p in (Policy.COUNTERFEIT, Policy.PROHIBITED_ITEM, Policy.MISLEADING_CLAIM):
        s = signals[p]
        take = in_title & (title_signal == "") & (s != "")
        title_signal[take] = s[take]
    sale = np.where(discount_pct >= 20, "-" + discount_pct.astype(str).astype(object) + "% OFF", "")
    title = _join(adjective, brand_part, noun, title_signal.astype(object), sale.astype(object))
    spam = np.where(spammy, _pick(_SPAM, rng, n), "").astype(object)
    title = np.where(spammy, title + spam, title).astype(object)

    body_signals = [np.where(s == title_signal, "", s).astype(object) for s in signals.values()]
    opener = _pick(_OPENERS, rng, n)
    middle = _pick(_MIDDLES, rng, n)
    closer = _pick(_CLOSERS, rng, n)
    first = _join(opener, noun, middle) + "."
    sig = _join(*body_signals, sep=", ")
    sig = np.where(sig != "", sig + ".", "").astype(object)
    honest = np.where(honest_phrase != "", honest_phrase + ".", "").astype(object)
    desc = _join(first, sig, honest, closer)
    short = spammy & (rng.random(n) < 0.7)
    desc = np.where(short, _join(noun, sig), desc).astype(object)
    return title, desc


def video_captions(
    rng: np.random.Generator,
    *,
    noun: np.ndarray,
    brand: np.ndarray,
    wording: dict[Policy, np.ndarray],
) -> np.ndarray:
    """Caption + transcript text for shoppable videos."""
    n = noun.size
    hook = _pick(_HOOKS, rng, n)
    brand_part = brand.astype(object)
    signals = [_signal(p, w, rng) for p, w in wording.items()]
    first = rng.integers(0, len(_TAGS), n)
    second = (first + rng.integers(1, len(_TAGS), n)) % len(_TAGS)
    pool = np.asarray(_TAGS, dtype=object)
    tags = _join(pool[first], pool[second])
    return _join(hook, brand_part, noun + "!", _join(*signals, sep=", "), tags)


def live_titles(
    rng: np.random.Generator,
    *,
    noun: np.ndarray,
    wording: dict[Policy, np.ndarray],
) -> np.ndarray:
    """Session title + pinned claim text for live sessions."""
    n = noun.size
    opener = _pick(_LIVE_OPENERS, rng, n)
    signals = [_signal(p, w, rng) for p, w in wording.items()]
    pinned = _join(*signals, sep=" | ")
    pinned = np.where(pinned != "", "Pinned: " + pinned, "").astype(object)
    return _join(opener, noun, np.full(n, "deals", dtype=object), pinned)


def nouns_for(category_idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A product noun per item of the given categories."""
    return _nouns(category_idx, rng)
