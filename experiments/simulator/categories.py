"""The simulated catalogue: leaf categories with their prices, brands, nouns and policy risks."""

from __future__ import annotations

from dataclasses import dataclass, field

from features.vocabulary import Policy

#: Policies a listing can violate (engagement fraud is a video / live policy).
LISTING_POLICIES: tuple[Policy, ...] = (
    Policy.COUNTERFEIT,
    Policy.PROHIBITED_ITEM,
    Policy.MISLEADING_CLAIM,
    Policy.FAKE_DISCOUNT,
    Policy.LOW_QUALITY,
)


@dataclass(frozen=True)
class Category:
    """One leaf category; `risk` holds log-odds offsets on each policy's scheme rate."""

    code: str
    share: float
    median_price: float
    brand_share: float
    nouns: tuple[str, ...]
    brands: tuple[str, ...]
    risk: dict[Policy, float] = field(default_factory=dict)
    launches_mid_period: bool = False


_CF, _PR, _MC, _FD, _LQ = LISTING_POLICIES

#: Every category of the simulated marketplace; `collectible_cards` opens mid-period.
CATEGORIES: tuple[Category, ...] = (
    Category(
        "bags",
        0.06,
        60,
        0.70,
        ("tote bag", "crossbody bag", "backpack", "clutch", "shoulder bag"),
        ("Maison Verel", "Castellane", "Orvane"),
        {_CF: 1.1, _FD: 0.2, _LQ: -0.2},
    ),
    Category(
        "watches",
        0.04,
        120,
        0.80,
        ("chronograph watch", "dive watch", "dress watch", "smartwatch band"),
        ("Helvetix", "Regnault", "Kestrel"),
        {_CF: 1.5, _FD: 0.4},
    ),
    Category(
        "sneakers",
        0.06,
        90,
        0.85,
        ("running shoes", "high-top sneakers", "court sneakers", "trail runners"),
        ("Stridex", "Aerion", "Vantage"),
        {_CF: 1.3, _LQ: 0.1},
    ),
    Category(
        "perfume",
        0.05,
        55,
        0.85,
        ("eau de parfum", "cologne", "perfume gift set", "travel spray"),
        ("Lumiere Paris", "Noctis", "Ambrelle"),
        {_CF: 2.4, _FD: 0.3},
    ),
    Category(
        "cosmetics",
        0.06,
        25,
        0.60,
        ("gel nail kit", "lipstick set", "eyeshadow palette", "foundation", "nail lamp"),
        ("Rosalind", "Glossier Lab", "Veluxe"),
        {_CF: 0.6, _MC: 0.2, _LQ: 0.2},
    ),
    Category(
        "skincare",
        0.06,
        30,
        0.50,
        ("face serum", "night cream", "eye cream", "retinol cream", "sunscreen"),
        ("Dermavie", "Clarity Labs", "Seraphine"),
        {_MC: 1.2, _CF: 0.2},
    ),
    Category(
        "supplements",
        0.05,
        35,
        0.40,
        ("protein powder", "multivitamin", "fat burner", "collagen capsules", "detox tea"),
        ("NutraCore", "VitaPeak", "Pure Origin"),
        {_MC: 1.8, _PR: 0.6, _LQ: 0.3},
    ),
    Category(
        "fitness",
        0.04,
        45,
        0.30,
        ("resistance bands", "yoga mat", "massage gun", "waist trainer", "boxing gloves"),
        ("IronPeak", "FlexCore", "Kinetica"),
        {_MC: 0.9, _LQ: 0.3},
    ),
    Category(
        "phone_accessories",
        0.07,
        15,
        0.40,
        ("charging cable", "phone case", "power bank", "wireless charger", "earbuds"),
        ("Voltix", "Nexo", "Aurora Tech"),
        {_CF: 0.7, _LQ: 1.3, _FD: 0.3},
    ),
    Category(
        "electronics",
        0.06,
        150,
        0.70,
        ("bluetooth speaker", "game controller", "tv remote", "smart plug", "headphones"),
        ("Sonara", "Pixelon", "Quantra"),
        {_CF: 0.6, _FD: 1.0, _LQ: 0.6},
    ),
    Category(
        "home_kitchen",
        0.07,
        40,
        0.30,
        ("knife set", "air fryer", "cookware set", "blender", "storage jars"),
        ("CasaNova", "ChefLine", "Hearth & Co"),
        {_LQ: 0.8, _FD: 0.3},
    ),
    Category(
        "toys",
        0.05,
        25,
        0.40,
        ("building blocks", "rc car", "plush toy", "puzzle set", "doll house"),
        ("Brickly", "Funvale", "Toyverse"),
        {_LQ: 0.9, _CF: 0.3},
    ),
    Category(
        "apparel",
        0.08,
        30,
        0.40,
        ("hoodie", "denim jacket", "summer dress", "t-shirt", "cargo pants"),
        ("Northline", "Velora", "Urban Fable"),
        {_LQ: 0.8, _CF: 0.4, _FD: 0.3},
    ),
    Category(
        "jewelry",
        0.04,
        80,
        0.30,
        ("pendant necklace", "silver ring", "hoop earrings", "tennis bracelet"),
        ("Aurelis", "Cartena", "Lunara"),
        {_CF: 0.8, _FD: 1.2},
    ),
    Category(
        "outdoor_gear",
        0.04,
        60,
        0.40,
        ("camping tent", "hiking backpack", "multi-tool", "headlamp", "trekking poles"),
        ("Trailmark", "Summitra", "Wildgrove"),
        {_PR: 0.9, _LQ: 0.2},
    ),
    Category(
        "eyewear",
        0.03,
        70,
        0.60,
        ("sunglasses", "blue light glasses", "optical frames", "sports goggles"),
        ("Ocula", "Vistaire", "Rayden"),
        {_CF: 0.9, _FD: 0.2},
    ),
    Category(
        "smoking_accessories",
        0.02,
        20,
        0.20,
        ("vape pen", "rolling tray", "grinder", "pod kit", "ashtray"),
        ("Cloudline", "Emberly", "Zephyr"),
        {_PR: 2.6, _LQ: 0.4},
    ),
    Category(
        "pet_supplies",
        0.04,
        25,
        0.30,
        ("dog bed", "cat tree", "pet fountain", "chew toys", "dog harness"),
        ("Pawsome", "Furrow", "Tailwise"),
        {_LQ: 0.3, _MC: 0.2},
    ),
    Category(
        "books",
        0.03,
        15,
        0.10,
        ("paperback novel", "cookbook", "study guide", "coloring book"),
        ("Inkwell Press", "Larkspur Books", "Meridian"),
        {_LQ: -0.8, _CF: -0.5},
    ),
    Category(
        "home_decor",
        0.05,
        35,
        0.20,
        ("wall art", "table lamp", "throw pillow", "scented candle", "area rug"),
        ("Lumen & Oak", "Nestly", "Haven Row"),
        {_FD: 0.8, _LQ: 0.3},
    ),
    Category(
        "collectible_cards",
        0.06,
        40,
        0.90,
        ("booster box", "graded card", "starter deck", "holo rare card", "card binder"),
        ("Mythara TCG", "Duelforge", "Starbound Cards"),
        {_CF: 2.0, _FD: 0.3},
        launches_mid_period=True,
    ),
)

#: Categories whose genuine goods are commonly counterfeited (luxury / brand-driven).
LUXURY_CATEGORIES: tuple[str, ...] = ("bags", "watches", "sneakers", "jewelry")

#: The category that opens mid-period and that no starter strategy covers.
NEW_CATEGORY = "collectible_cards"

#: Seller / creator home regions and the cross-border hub counterfeiters ship from.
REGIONS: tuple[str, ...] = ("NA", "EU", "UK", "LATAM", "APAC-N", "APAC-S", "MENA")
REGION_WEIGHTS: tuple[float, ...] = (0.30, 0.22, 0.10, 0.12, 0.12, 0.09, 0.05)


def category_codes() -> list[str]:
    """Category codes in declaration order."""
    return [c.code for c in CATEGORIES]
