"""Listing features: price against its category, discount, brand claim, text, category risk,
age and image-cluster duplicates.

`listing_columns` is the one function computing them, for a million listings in a build and
for one listing in an online request; the category, image and seller values it needs arrive
in the context from the snapshot tables `categories`, `images`, `image_sellers` and `sellers`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.columns import Columns, days_between, ratio
from features.lexicon import LEXICON
from features.schema import Feature, FeatureSet
from features.snapshot import TableInfo
from features.text import char_stats, encode, join, text_signals

LISTING_VERSION = 1
#: Dense text columns of listing title + description.
LISTING_TEXT_DIMS = 8
#: Pseudo-count pulling a category's risk prior towards the marketplace rate.
RISK_PRIOR_STRENGTH = 20
#: A category is high risk when its prior exceeds this multiple of the marketplace rate.
HIGH_RISK_MULTIPLE = 1.5

LISTING = FeatureSet(
    name="listing",
    entity="listing",
    join_key="listing_id",
    version=LISTING_VERSION,
    description="The listing itself: price, discount, brand claim, text, category and image.",
    features=(
        Feature("listing_category", "categorical", "Leaf category of the listing."),
        Feature("listing_price", "numeric", "Selling price.", "USD"),
        Feature("listing_list_price", "numeric", "Struck-through 'original' price shown.", "USD"),
        Feature(
            "listing_price_to_category_median",
            "numeric",
            "Price / median price of the category's listings published before the cutoff.",
            "ratio",
        ),
        Feature(
            "listing_price_category_percentile",
            "numeric",
            "Share of the category's listings priced strictly below this one.",
            "share",
        ),
        Feature(
            "listing_discount_depth",
            "numeric",
            "1 - price / list price, clipped to [0, 1] (0 without a list price).",
            "share",
        ),
        Feature(
            "listing_list_price_inflation",
            "numeric",
            "List price / category median price: how far the 'original' price sits above typical.",
            "ratio",
        ),
        Feature("listing_has_brand", "boolean", "The seller names a brand for the listing."),
        Feature(
            "listing_unofficial_brand_claim",
            "boolean",
            "A brand is named but the seller is not that brand's official store.",
        ),
        Feature(
            "listing_counterfeit_term_count",
            "numeric",
            "Counterfeit lexicon hits (replica, 1:1, dupe...) in title + description.",
            "hits",
        ),
        Feature(
            "listing_claim_term_count",
            "numeric",
            "Misleading-claim lexicon hits (miracle, cure...) in title + description.",
            "hits",
        ),
        Feature(
            "listing_prohibited_term_count",
            "numeric",
            "Prohibited-item lexicon hits (nicotine, steroid...) in title + description.",
            "hits",
        ),
        Feature(
            "listing_text_length",
            "numeric",
            "Characters in the normalised title + description.",
            "characters",
        ),
        Feature("listing_title_length", "numeric", "Characters in the title.", "characters"),
        Feature(
            "listing_title_uppercase_share",
            "numeric",
            "Share of the title's ASCII letters in upper case (empty without letters).",
            "share",
        ),
        Feature(
            "listing_exclamation_count",
            "numeric",
            "Exclamation marks in title + description.",
            "marks",
        ),
        *(
            Feature(
                f"listing_text_hash_{k}",
                "numeric",
                f"Dense text signal {k}: fixed random projection of hashed character "
                "3/4-grams of title + description.",
            )
            for k in range(LISTING_TEXT_DIMS)
        ),
        Feature(
            "listing_category_risk_prior",
            "numeric",
            "Share of the category's listings actioned or complained about before the cutoff, "
            "smoothed towards the marketplace rate.",
            "share",
        ),
        Feature(
            "listing_category_listing_count",
            "numeric",
            "Listings in the category published before the cutoff.",
            "listings",
        ),
        Feature(
            "listing_category_age_days",
            "numeric",
            "Days since the category's first listing (small for newly launched categories).",
            "days",
        ),
        Feature("listing_age_days", "numeric", "Days since the listing was published.", "days"),
        Feature(
            "listing_image_shared_sellers",
            "numeric",
            "Distinct other sellers with a listing in the same image cluster.",
            "sellers",
        ),
        Feature(
            "listing_image_other_listing_count",
            "numeric",
            "Other sellers' listings in the same image cluster.",
            "listings",
        ),
        Feature("listing_ships_from", "categorical", "Region the item ships from."),
        Feature(
            "listing_ships_cross_border",
            "boolean",
            "The item ships from outside the seller's home region.",
        ),
    ),
)

CATEGORIES_INFO = TableInfo(key=("category",), zero_fill=frozenset({"listing_count"}))
CATEGORY_PRICES_INFO = TableInfo(key=("category", "price"))
IMAGES_INFO = TableInfo(key=("image_hash",), zero_fill=frozenset({"seller_count", "listing_count"}))
IMAGE_SELLERS_INFO = TableInfo(
    key=("image_hash", "seller_id"), zero_fill=frozenset({"listing_count"})
)

#: Columns of each listing's item features that seller and creator aggregates read.
ITEM_AGGREGATE_INPUTS = {
    "discount_depth": "listing_discount_depth",
    "price_to_category_median": "listing_price_to_category_median",
    "counterfeit_term_count": "listing_counterfeit_term_count",
    "claim_term_count": "listing_claim_term_count",
    "prohibited_term_count": "listing_prohibited_term_count",
    "image_shared_sellers": "listing_image_shared_sellers",
    "ships_cross_border": "listing_ships_cross_border",
}


def listing_base_sql() -> dict[str, str]:
    """Name -> SELECT of the category, image, seller-profile and item-seller tables, in
    dependency order (`images` reads `snap_image_sellers`)."""
    return {
        "categories": f"""
WITH flagged AS (
  SELECT item_id FROM decisions WHERE entity = 'listing'
  UNION
  SELECT item_id FROM outcomes WHERE entity = 'listing' AND kind = 'complaint'
), per AS (
  SELECT l.category, count(*) AS n, count(f.item_id) AS k, median(l.price) AS median_price,
    min(l.created_at) AS first_listed_at
  FROM listings l LEFT JOIN flagged f ON f.item_id = l.listing_id
  GROUP BY l.category
), marketplace AS (SELECT CAST(sum(k) AS DOUBLE) / sum(n) AS rate FROM per)
SELECT per.category, per.median_price, CAST(per.n AS DOUBLE) AS listing_count,
  per.first_listed_at,
  (per.k + {RISK_PRIOR_STRENGTH} * m.rate) / (per.n + {RISK_PRIOR_STRENGTH}) AS risk_prior,
  coalesce((per.k + {RISK_PRIOR_STRENGTH} * m.rate) / (per.n + {RISK_PRIOR_STRENGTH})
    > {HIGH_RISK_MULTIPLE} * m.rate, false) AS is_high_risk
FROM per, marketplace m""",
        "category_prices": "SELECT category, price FROM listings",
        "image_sellers": """
SELECT image_hash, seller_id, CAST(count(*) AS DOUBLE) AS listing_count
FROM listings GROUP BY image_hash, seller_id""",
        "images": """
SELECT image_hash, CAST(count(*) AS DOUBLE) AS seller_count, sum(listing_count) AS listing_count
FROM snap_image_sellers GROUP BY image_hash""",
        "seller_profiles": """
SELECT seller_id, registered_at, region, verification, is_official_store FROM sellers""",
        "item_seller": """
SELECT 'listing' AS entity, listing_id AS item_id, seller_id, category FROM listings
UNION ALL
SELECT 'video', v.video_id, l.seller_id, l.category
FROM videos v JOIN listings l ON l.listing_id = v.listing_id
UNION ALL
SELECT 'live', s.live_id, l.seller_id, l.category
FROM live_sessions s JOIN listings l ON l.listing_id = s.listing_id
UNION ALL
SELECT 'seller', seller_id, seller_id, NULL FROM sellers""",
    }


def _rows_by_value(values: np.ndarray) -> list[tuple[object, np.ndarray]]:
    if len(values) <= 64:
        groups: dict[object, list[int]] = {}
        for i, value in enumerate(values):
            groups.setdefault(value, []).append(i)
        return [(v, np.array(rows, dtype=np.int64)) for v, rows in groups.items()]
    codes, uniques = pd.factorize(values)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    return [(u, order[bounds[k] : bounds[k + 1]]) for k, u in enumerate(uniques)]


def price_percentile(
    categories: np.ndarray, prices: np.ndarray, sorted_prices: dict[str, np.ndarray]
) -> np.ndarray:
    """Share of each listing's category priced strictly below it (NaN for unknown categories)."""
    out = np.full(len(prices), np.nan)
    for category, rows in _rows_by_value(categories):
        reference = sorted_prices.get(category) if isinstance(category, str) else None
        if reference is None or len(reference) == 0:
            continue
        below = np.searchsorted(reference, prices[rows], side="left")
        out[rows] = below / len(reference)
    return out


def listing_columns(
    ctx: Columns, *, as_of: np.datetime64, sorted_prices: dict[str, np.ndarray]
) -> Columns:
    """The listing set from raw listing columns plus `category.*`, `image.*`,
    `image_seller.*` and `seller.*` context columns."""
    price = ctx["price"]
    list_price = ctx["list_price"]
    median = ctx["category.median_price"]
    title = encode(ctx["title"])
    text = join(title, encode(ctx["description"]))
    signals = text_signals(text, prefix="listing", n_dims=LISTING_TEXT_DIMS)
    title_stats = char_stats(title)
    has_brand = char_stats(encode(ctx["brand"]))["visible"] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        discount = np.where(list_price > 0, np.clip(1.0 - price / list_price, 0.0, 1.0), 0.0)
    own_image_listings = ctx["image_seller.listing_count"]
    seller_region = ctx["seller.region"]
    ships_from = ctx["ships_from"]
    known_region = np.asarray(~pd.isna(seller_region), dtype=bool)
    out: Columns = {
        "listing_category": ctx["category"],
        "listing_price": price,
        "listing_list_price": list_price,
        "listing_price_to_category_median": ratio(price, median, when_zero=np.nan),
        "listing_price_category_percentile": price_percentile(
            ctx["category"], price, sorted_prices
        ),
        "listing_discount_depth": discount,
        "listing_list_price_inflation": ratio(list_price, median, when_zero=np.nan),
        "listing_has_brand": has_brand,
        "listing_unofficial_brand_claim": has_brand & ~ctx["seller.is_official_store"],
        **{f"listing_{g}_term_count": signals[f"listing_{g}_term_count"] for g in LEXICON},
        "listing_text_length": signals["listing_text_length"],
        "listing_title_length": title_stats["chars"],
        "listing_title_uppercase_share": ratio(
            title_stats["upper"], title_stats["letters"], when_zero=np.nan
        ),
        "listing_exclamation_count": char_stats(text, mark="!")["marks"],
        **{
            f"listing_text_hash_{k}": signals[f"listing_text_hash_{k}"]
            for k in range(LISTING_TEXT_DIMS)
        },
        "listing_category_risk_prior": ctx["category.risk_prior"],
        "listing_category_listing_count": ctx["category.listing_count"],
        "listing_category_age_days": days_between(as_of, ctx["category.first_listed_at"]),
        "listing_age_days": days_between(as_of, ctx["created_at"]),
        "listing_image_shared_sellers": ctx["image.seller_count"]
        - (own_image_listings > 0).astype(np.float64),
        "listing_image_other_listing_count": ctx["image.listing_count"] - own_image_listings,
        "listing_ships_from": ships_from,
        "listing_ships_cross_border": known_region & np.not_equal(ships_from, seller_region),
    }
    return out
