"""Seeded synthetic labeled feature frames, for tests and benchmarks (no simulator needed).

`make_labeled_frames` returns what `training.dataset.assemble` takes: weekly listing feature
frames, raw `audit_labels` in the contract's shape, channel memberships and feature types. The
labels follow a known logistic truth with a hidden factor, are sampled with rule-biased inclusion
probabilities and carry reviewer noise, so weighting, calibration and slices have work to do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.vocabulary import Entity
from training.dataset import FeatureKind, feature_cutoff

_CATEGORIES = ("bags", "watches", "shoes", "beauty", "toys", "phones")
_CHANNELS = ("shop_tab", "campaigns", "shop_ads", "affiliate")


@dataclass(frozen=True)
class SyntheticData:
    """Inputs of `training.dataset.assemble` plus the hidden truth."""

    frames: dict[pd.Timestamp, pd.DataFrame]
    audit_labels: pd.DataFrame
    channels: pd.DataFrame
    feature_types: dict[str, FeatureKind]
    items: pd.DataFrame
    new_categories: tuple[str, ...]


def feature_types(extra_numeric: int = 0) -> dict[str, FeatureKind]:
    """Declared listing features of the synthetic frames."""
    kinds: dict[str, FeatureKind] = {
        "listing_category": "categorical",
        "seller_verification": "categorical",
        "listing_price_to_category_median": "numeric",
        "listing_discount_depth": "numeric",
        "listing_counterfeit_term_count": "numeric",
        "listing_has_brand": "boolean",
        "listing_age_days": "numeric",
        "seller_tenure_days": "numeric",
        "seller_complaint_rate_30d": "numeric",
        "strategy_hit_count": "numeric",
    }
    for i in range(extra_numeric):
        kinds[f"signal_{i:02d}"] = "numeric"
    return kinds


def make_items(
    n_items: int,
    *,
    n_weeks: int = 8,
    seed: int = 0,
    extra_numeric: int = 0,
    start: str = "2025-01-06",
) -> pd.DataFrame:
    """Static item attributes and the hidden truth (p_counterfeit, p_fake_discount)."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start)
    span_s = n_weeks * 7 * 86_400
    created = t0 + pd.to_timedelta(np.sort(rng.integers(0, span_s, n_items)), unit="s")
    category = rng.choice(np.array(_CATEGORIES), size=n_items, p=[0.2, 0.15, 0.25, 0.2, 0.1, 0.1])
    # The last category launches halfway through the period.
    late = created > t0 + pd.Timedelta(days=n_weeks * 7 / 2)
    category = np.where(late & (rng.random(n_items) < 0.25), "phones", category)
    category = np.where(~late & (category == "phones"), "toys", category)
    bad_seller = rng.random(n_items) < 0.15
    terms = rng.poisson(np.where(bad_seller, 1.2, 0.15))
    discount = np.clip(rng.beta(2, 6, n_items) + np.where(bad_seller, 0.2, 0.0), 0, 1)
    ratio = np.exp(rng.normal(np.where(bad_seller, -0.4, 0.0), 0.35))
    tenure0 = rng.gamma(2.0, np.where(bad_seller, 30.0, 200.0))
    hidden = rng.normal(0, 1, n_items)
    logit_cf = (
        -3.6
        + 1.3 * terms
        + 1.0 * np.isin(category, ["bags", "watches"])
        + 1.4 * (category == "phones")
        - 0.8 * np.log1p(tenure0 / 30)
        + 1.2 * (ratio < 0.6)
        + 0.9 * hidden
    )
    logit_fd = -3.0 + 5.0 * (discount > 0.45) * (ratio > 0.9) + 1.5 * bad_seller + 0.7 * hidden
    items = pd.DataFrame(
        {
            "item_id": pd.array([f"L{i:07d}" for i in range(n_items)], dtype="str"),
            "created_at": created.astype("datetime64[us]"),
            "listing_category": pd.array(category, dtype="str"),
            "seller_verification": pd.array(
                rng.choice(np.array(["none", "basic", "business"]), size=n_items), dtype="str"
            ),
            "listing_price_to_category_median": ratio,
            "listing_discount_depth": discount,
            "listing_counterfeit_term_count": terms.astype("float64"),
            "listing_has_brand": rng.random(n_items) < 0.4,
            "tenure0": tenure0,
            "seller_complaint_rate_30d": np.clip(
                rng.normal(np.where(bad_seller, 0.08, 0.02), 0.02), 0, 1
            ),
            "strategy_hit_count": (
                (terms >= 1) & (rng.random(n_items) < 0.8) | (rng.random(n_items) < 0.03)
            ).astype("float64"),
            "p_counterfeit": 1 / (1 + np.exp(-logit_cf)),
            "p_fake_discount": 1 / (1 + np.exp(-logit_fd)),
        }
    )
    for i in range(extra_numeric):
        items[f"signal_{i:02d}"] = rng.normal(0, 1, n_items) + (0.3 * hidden if i % 5 == 0 else 0)
    return items


def frame_as_of(
    items: pd.DataFrame, as_of: pd.Timestamp, *, extra_numeric: int = 0
) -> pd.DataFrame:
    """The listing feature frame as of `as_of`: items created strictly before it."""
    rows = items.loc[items["created_at"] < as_of]
    age_days = (as_of - rows["created_at"]).dt.total_seconds() / 86_400
    frame = pd.DataFrame({"item_id": rows["item_id"]})
    for name in feature_types(extra_numeric):
        if name == "listing_age_days":
            frame[name] = age_days
        elif name == "seller_tenure_days":
            frame[name] = rows["tenure0"] + age_days
        else:
            frame[name] = rows[name]
    return frame.reset_index(drop=True)


def make_labeled_frames(
    n_items: int = 3000,
    *,
    n_weeks: int = 8,
    seed: int = 0,
    extra_numeric: int = 0,
    random_rate: float = 0.12,
    flagged_rate: float = 0.9,
    noise: float = 0.03,
    start: str = "2025-01-06",
    policies: tuple[str, ...] = ("counterfeit", "fake_discount"),
    label_all: bool = False,
    compact: bool = False,
) -> SyntheticData:
    """Items, rule-biased audit labels and weekly frames.

    `label_all` reviews every item (inclusion probabilities still follow the routes);
    `compact` keeps in each weekly frame only the items labeled as of it (what
    `training.dataset.load_entity_data` keeps anyway), which bounds memory at scale.
    """
    rng = np.random.default_rng(seed + 1)
    items = make_items(
        n_items, n_weeks=n_weeks, seed=seed, extra_numeric=extra_numeric, start=start
    )
    n = len(items)
    flagged = items["strategy_hit_count"].to_numpy() > 0
    p_incl = np.where(flagged, flagged_rate, random_rate)
    chosen = np.ones(n, dtype=bool) if label_all else rng.random(n) < p_incl
    # Reviews mostly come one to three weeks after creation, some within days or the hour.
    delay_s = rng.integers(7 * 86_400, 21 * 86_400, n)
    draw = rng.random(n)
    delay_s = np.where(draw < 0.15, rng.integers(86_400, 6 * 86_400, n), delay_s)
    delay_s = np.where(draw < 0.02, rng.integers(60, 3_600, n), delay_s)
    reviewed = items["created_at"] + pd.to_timedelta(delay_s, unit="s")
    labels = []
    for policy in policies:
        col = f"p_{policy}"
        truth = rng.random(n) < items[col].to_numpy()
        flip = rng.random(n) < noise
        verdict = truth ^ flip
        idx = np.flatnonzero(chosen)
        labels.append(
            pd.DataFrame(
                {
                    "item_id": items["item_id"].to_numpy()[idx],
                    "policy": policy,
                    "verdict": np.where(verdict[idx], "violating", "not_violating"),
                    "reviewed_at": reviewed.to_numpy()[idx],
                    "sampling": np.where(flagged[idx], "strategy_flagged", "random"),
                    "inclusion_probability": p_incl[idx],
                }
            )
        )
    audit = pd.concat(labels, ignore_index=True)
    audit = audit.sort_values(["reviewed_at", "item_id", "policy"], ignore_index=True)
    label_ids = pd.Series([f"A{i:08d}" for i in range(len(audit))], dtype="str")
    audit.insert(0, "label_id", label_ids)
    audit.insert(1, "entity", Entity.LISTING.value)
    audit["reviewer_id"] = pd.array(
        rng.choice(np.array(["r1", "r2", "r3"]), size=len(audit)), dtype="str"
    )
    audit["reviewed_at"] = audit["reviewed_at"].astype("datetime64[us]")
    for col in ("entity", "item_id", "policy", "verdict", "sampling"):
        audit[col] = audit[col].astype("str")
    cutoff = feature_cutoff(audit["reviewed_at"])
    frames = {}
    for t in sorted(cutoff.unique()):
        as_of = pd.Timestamp(t)
        source = items
        if compact:
            wanted = audit.loc[(cutoff == as_of).to_numpy(), "item_id"].unique()
            source = items.loc[items["item_id"].isin(wanted)]
        frames[as_of] = frame_as_of(source, as_of, extra_numeric=extra_numeric)
    ch = rng.choice(np.array(_CHANNELS), size=n)
    channels = pd.DataFrame(
        {"item_id": items["item_id"].to_numpy(), "channel": pd.array(ch, dtype="str")}
    )
    return SyntheticData(
        frames=frames,
        audit_labels=audit,
        channels=channels,
        feature_types=feature_types(extra_numeric),
        items=items,
        new_categories=("phones",),
    )
