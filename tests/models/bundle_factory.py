"""Seeded synthetic listing-like feature frames and small bundles trained on them (tests only)."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from models.bundle import ModelBundle
from models.calibration import Calibration
from models.encoding import FeatureEncoder

CATEGORIES = ["bags", "beauty", "electronics", "health", "shoes", "toys", "watches"]
VERIFICATION = ["none", "basic", "verified"]
CATEGORICAL = ["listing_category", "seller_verification"]
NUMERIC = [
    "listing_price",
    "listing_discount_depth",
    "listing_counterfeit_term_count",
    "seller_tenure_days",
    "listing_has_brand",
    "exposure_impressions_7d",
]
DESCRIPTIONS = {
    "listing_category": "Listing category",
    "seller_verification": "Seller verification level",
    "listing_price": "Listing price (USD)",
    "listing_discount_depth": "Discount depth (1 - price / list price)",
    "listing_counterfeit_term_count": "Counterfeit terms in title and description",
    "seller_tenure_days": "Days since the seller joined",
    "listing_has_brand": "Listing names a brand",
    "exposure_impressions_7d": "Impressions over the last 7 days",
}


def make_frame(n: int = 400, *, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A scoring-frame-like table (item_id + features) and 0/1 labels."""
    rng = np.random.default_rng(seed)
    category = rng.choice(CATEGORIES, size=n)
    verification = rng.choice(VERIFICATION, size=n, p=[0.3, 0.5, 0.2])
    price = np.round(rng.lognormal(3.5, 1.0, size=n), 2)
    price[rng.random(n) < 0.08] = np.nan
    discount = np.clip(rng.beta(1.5, 5, size=n), 0, 1)
    terms = rng.poisson(0.4, size=n)
    tenure = rng.integers(0, 2000, size=n)
    has_brand = rng.random(n) < 0.4
    impressions = rng.poisson(300, size=n).astype(float)
    logit = (
        -2.0
        + 1.4 * terms
        + 1.0 * np.isin(category, ["bags", "watches"])
        + 2.0 * (discount > 0.5)
        - 0.001 * tenure
        + 0.8 * (verification == "none")
        + 0.6 * np.nan_to_num(price < 20)
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    category_col = pd.Series(category, dtype="str")
    category_col[rng.random(n) < 0.05] = None
    frame = pd.DataFrame(
        {
            "item_id": pd.Series([f"L{seed}-{i:06d}" for i in range(n)], dtype="str"),
            "listing_category": category_col,
            "seller_verification": pd.Series(verification, dtype="str"),
            "listing_price": price,
            "listing_discount_depth": discount,
            "listing_counterfeit_term_count": terms.astype(np.int64),
            "seller_tenure_days": tenure.astype(np.int64),
            "listing_has_brand": has_brand,
            "exposure_impressions_7d": impressions,
        }
    )
    return frame, y


def train_bundle(
    frame: pd.DataFrame,
    y: np.ndarray,
    *,
    n_trees: int = 40,
    calibration: str = "isotonic",
    seed: int = 0,
    metadata: dict[str, object] | None = None,
) -> ModelBundle:
    """A small seeded LightGBM model (one thread) wrapped in a bundle."""
    encoder = FeatureEncoder(categorical=CATEGORICAL, numeric=NUMERIC).fit(frame)
    X = encoder.transform(frame)
    booster = lgb.train(
        {
            "objective": "binary",
            "num_threads": 1,
            "verbosity": -1,
            "num_leaves": 15,
            "min_data_in_leaf": 5,
            "min_data_per_group": 5,
            "cat_smooth": 1.0,
            "seed": seed,
            "deterministic": True,
        },
        lgb.Dataset(
            X,
            label=y,
            feature_name=encoder.feature_names_,
            categorical_feature=encoder.categorical_indices_,
        ),
        num_boost_round=n_trees,
    )
    raw = booster.predict(X, raw_score=True, num_threads=1)
    if calibration == "isotonic":
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
        cal = Calibration.isotonic(iso.X_thresholds_, iso.y_thresholds_)
    else:
        cal = Calibration.platt(-1.0, 0.0)
    meta: dict[str, object] = {
        "run_id": None,
        "dataset_digest": "sha256:test",
        "feature_set_versions": {"listing": "1"},
        "entity": "listing",
        "policy": "counterfeit",
    }
    meta.update(metadata or {})
    return ModelBundle.build(
        booster, encoder=encoder, calibration=cal, features=DESCRIPTIONS, metadata=meta
    )


def saved_bundle(directory: Path, *, n: int = 400, seed: int = 0, n_trees: int = 40) -> Path:
    """Train and save a bundle under `directory`; returns the bundle directory."""
    frame, y = make_frame(n, seed=seed)
    bundle = train_bundle(frame, y, n_trees=n_trees, seed=seed)
    return bundle.save(directory / "bundle")


TEXT_SCORE = "listing_text_score_counterfeit"
TEXT_FIELDS = ("title", "description")
_TITLE_WORDS = ("soft", "cotton", "bag", "leather", "wallet", "watch", "garden", "kids", "lamp")
_COUNTERFEIT = ("replica", "r3plica", "1:1 mirror quality", "dupe", "inspired by")


def make_text_frame(n: int = 400, *, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """`make_frame` plus raw `title` and `description`; violating rows often say "replica"."""
    frame, y = make_frame(n, seed=seed)
    rng = np.random.default_rng(seed + 100)
    titles, descriptions = [], []
    for label in y:
        words = [str(w) for w in rng.choice(_TITLE_WORDS, size=3)]
        if (label and rng.random() < 0.7) or rng.random() < 0.05:
            words.insert(int(rng.integers(0, 3)), str(rng.choice(_COUNTERFEIT)))
        titles.append(" ".join(words).capitalize())
        descriptions.append(None if rng.random() < 0.1 else "Ships fast. Ünïcödé ok — 日本")
    frame["title"] = pd.Series(titles, dtype=object)
    frame["description"] = pd.Series(descriptions, dtype=object)
    return frame, y


def train_text_bundle(
    frame: pd.DataFrame, y: np.ndarray, *, n_trees: int = 40, seed: int = 0
) -> ModelBundle:
    """A bundle whose inputs include a text score computed by its text model from raw text."""
    from features.text_source import join_fields
    from models.text_model import TextModel

    docs = [join_fields(v) for v in zip(frame["title"], frame["description"], strict=True)]
    text_model = TextModel(min_df=1).fit(docs, y)
    frame = frame.assign(**{TEXT_SCORE: text_model.decision_function(docs)})
    numeric = [*NUMERIC, TEXT_SCORE]
    encoder = FeatureEncoder(categorical=CATEGORICAL, numeric=numeric).fit(frame)
    X = encoder.transform(frame)
    booster = lgb.train(
        {
            "objective": "binary",
            "num_threads": 1,
            "verbosity": -1,
            "num_leaves": 15,
            "min_data_in_leaf": 5,
            "seed": seed,
            "deterministic": True,
        },
        lgb.Dataset(
            X,
            label=y,
            feature_name=encoder.feature_names_,
            categorical_feature=encoder.categorical_indices_,
        ),
        num_boost_round=n_trees,
    )
    return ModelBundle.build(
        booster,
        encoder=encoder,
        calibration=Calibration.platt(-1.0, 0.0),
        features={**DESCRIPTIONS, TEXT_SCORE: "Log-odds of the counterfeit text model"},
        metadata={"run_id": None, "entity": "listing", "policy": "counterfeit"},
        text_models={TEXT_SCORE: text_model},
        text_fields=TEXT_FIELDS,
    )
