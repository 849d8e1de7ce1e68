"""A tiny seeded marketplace with known truth for the audit tests (`make_world`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from features.vocabulary import Entity, Policy
from governance.audit.population import Population, build_populations
from governance.evaluator import evaluate_strategies
from governance.strategy import Strategy, strategy_from_dict

START = datetime(2026, 1, 5)
DAYS = 14
CHANNELS = ("shop_tab", "campaigns", "shop_ads")


@dataclass
class World:
    """Contract-shaped tables plus the truth only tests may read."""

    tables: dict[str, pd.DataFrame]
    strategies: list[Strategy]
    frame: pd.DataFrame
    predictions: pd.DataFrame
    truth: pd.DataFrame
    flip_rate: float


def _strategies() -> list[Strategy]:
    base = {
        "owner": "brand-protection",
        "description": "Test strategy.",
        "entity": "listing",
        "policy": "counterfeit",
        "action": "block",
        "status": "active",
    }
    return [
        strategy_from_dict(
            {
                **base,
                "id": "cf-terms",
                "version": 1,
                "name": "Counterfeit wording",
                "channels": ["shop_tab", "campaigns"],
                "condition": {
                    "all": [{"feature": "listing_counterfeit_term_count", "op": ">=", "value": 1}]
                },
            }
        ),
        strategy_from_dict(
            {
                **base,
                "id": "cf-bags",
                "version": 2,
                "name": "Bags from new sellers",
                "channels": ["shop_tab", "campaigns", "shop_ads"],
                "action": "demote",
                "condition": {
                    "all": [
                        {"feature": "listing_category", "op": "in", "value": ["bags"]},
                        {
                            "any": [
                                {"feature": "seller_tenure_days", "op": "<", "value": 60},
                                # Irrelevant clause: fires on every unverified seller.
                                {"feature": "seller_verification", "op": "==", "value": "none"},
                            ]
                        },
                    ]
                },
            }
        ),
    ]


def make_world(n: int = 3000, seed: int = 0, flip_rate: float = 0.04) -> World:
    """Listings judged against `counterfeit`, two strategies (one with an irrelevant clause)."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"L{i:06d}" for i in range(n)], dtype=object)
    category = rng.choice(["bags", "watches", "toys", "cards"], size=n, p=[0.3, 0.3, 0.3, 0.1])
    verification = rng.choice(["none", "basic", "business"], size=n, p=[0.4, 0.4, 0.2])
    tenure = rng.gamma(2.0, 90.0, size=n)
    hidden = rng.normal(size=n)
    logit = (
        -3.0
        + 1.6 * (category == "bags")
        + 1.2 * (category == "cards")
        + 1.0 * (tenure < 60)
        + 1.2 * hidden
    )
    p_true = 1 / (1 + np.exp(-logit))
    y = rng.random(n) < p_true
    terms = rng.poisson(np.where(y, 1.2, 0.15))
    price_ratio = np.exp(rng.normal(np.where(y, -0.6, 0.0), 0.4))
    frame = pd.DataFrame(
        {
            "item_id": pd.Series(ids, dtype="str"),
            "listing_category": pd.Series(category, dtype="str"),
            "listing_counterfeit_term_count": terms.astype(np.int64),
            "listing_price_to_category_median": price_ratio,
            "seller_tenure_days": tenure,
            "seller_verification": pd.Series(verification, dtype="str"),
            "listing_has_brand": rng.random(n) < 0.5,
        }
    )
    # A calibrated-ish model of the noisy verdict, sharper than the prior but not perfect.
    lr_terms = np.where(terms > 0, 1.5, -0.4)
    lr_price = -1.5 * np.log(price_ratio)
    score = logit - 1.2 * hidden + lr_terms + lr_price + rng.normal(0, 0.5, n)
    p_clean = 1 / (1 + np.exp(-(score * 0.9)))
    p_model = flip_rate + (1 - 2 * flip_rate) * p_clean
    predictions = pd.DataFrame(
        {"entity": "listing", "item_id": ids, "policy": "counterfeit", "p": p_model}
    )
    strategies = _strategies()
    created = START + pd.to_timedelta(rng.integers(0, DAYS // 2, n), unit="D")
    hits = evaluate_strategies(strategies, {Entity.LISTING: frame})
    pos = pd.Index(ids).get_indexer(hits["item_id"].astype(object))
    decisions = pd.DataFrame(
        {
            "decision_id": pd.Series([f"D{i}" for i in range(len(hits))], dtype="str"),
            "entity": hits["entity"].astype("str"),
            "item_id": hits["item_id"].astype("str"),
            "channel": hits["channel"].astype("str"),
            "strategy_id": hits["strategy_id"].astype("str"),
            "strategy_version": hits["strategy_version"].astype("int64"),
            "action": hits["action"].astype("str"),
            "decided_at": pd.Series(created[pos], dtype="datetime64[us]"),
            "lifted_at": pd.Series([pd.NaT] * len(hits), dtype="datetime64[us]"),
        }
    )
    blocked = set(zip(hits["item_id"], hits["channel"], strict=True))
    base_rate = rng.lognormal(3.0, 1.0, n)
    rows = []
    for ch_i, ch in enumerate(CHANNELS):
        shown = rng.random(n) < (0.9, 0.5, 0.3)[ch_i]
        for i in np.flatnonzero(shown):
            if (ids[i], ch) in blocked:
                continue
            for d in range(2):
                rows.append((ids[i], ch, created[i] + timedelta(days=d), base_rate[i]))
    ex = pd.DataFrame(rows, columns=["item_id", "channel", "day", "rate"])
    imps = rng.poisson(ex["rate"].to_numpy())
    exposure = pd.DataFrame(
        {
            "entity": pd.Series(["listing"] * len(ex), dtype="str"),
            "item_id": ex["item_id"].astype("str"),
            "channel": ex["channel"].astype("str"),
            "day": pd.Series(ex["day"], dtype="datetime64[us]"),
            "impressions": imps.astype(np.int64),
            "clicks": (imps // 10).astype(np.int64),
            "orders": (imps // 50).astype(np.int64),
            "gmv": (imps // 50) * 30.0,
            "likes": np.zeros(len(ex), dtype=np.int64),
            "comments": np.zeros(len(ex), dtype=np.int64),
            "shares": np.zeros(len(ex), dtype=np.int64),
        }
    )
    actioned = np.isin(ids, hits["item_id"].astype(object).to_numpy())
    pi_random = np.full(n, 0.04)
    pi_flag = np.where(actioned, 0.25, 0.0)
    appealed = actioned & ~y & (rng.random(n) < 0.3)
    draws = [
        ("random", np.flatnonzero(rng.random(n) < pi_random), pi_random),
        ("strategy_flagged", np.flatnonzero(rng.random(n) < pi_flag), pi_flag),
        ("appeal", np.flatnonzero(appealed), np.ones(n)),
    ]
    lab_rows = []
    for sampling, idx, pi in draws:
        for i in idx:
            v = bool(y[i]) ^ bool(rng.random() < flip_rate)
            lab_rows.append((ids[i], "violating" if v else "not_violating", sampling, pi[i], "R0"))
            if sampling != "appeal" and rng.random() < 0.3:
                # Double review of the same draw by another moderator (same design, same pi).
                v2 = bool(y[i]) ^ bool(rng.random() < flip_rate)
                lab_rows.append(
                    (ids[i], "violating" if v2 else "not_violating", sampling, pi[i], "R1")
                )
    lab = pd.DataFrame(lab_rows, columns=["item_id", "verdict", "sampling", "pi", "reviewer"])
    labels = pd.DataFrame(
        {
            "label_id": pd.Series([f"A{i}" for i in range(len(lab))], dtype="str"),
            "entity": pd.Series(["listing"] * len(lab), dtype="str"),
            "item_id": lab["item_id"].astype("str"),
            "policy": pd.Series(["counterfeit"] * len(lab), dtype="str"),
            "verdict": lab["verdict"].astype("str"),
            "reviewer_id": lab["reviewer"].astype("str"),
            "reviewed_at": pd.Series(
                [START + timedelta(days=DAYS)] * len(lab), dtype="datetime64[us]"
            ),
            "sampling": lab["sampling"].astype("str"),
            "inclusion_probability": lab["pi"].astype(float),
        }
    )
    truth = pd.DataFrame(
        {"entity": "listing", "item_id": ids, "policy": "counterfeit", "violating": y}
    )
    return World(
        tables={
            "channel_exposure": exposure,
            "strategy_decisions": decisions,
            "audit_labels": labels,
        },
        strategies=strategies,
        frame=frame,
        predictions=predictions,
        truth=truth,
        flip_rate=flip_rate,
    )


#: Design frames of the world's label samplings (appeals left out of the estimates).
DESIGN_FRAMES = {"random": "population", "strategy_flagged": "actioned", "appeal": "exclude"}


def world_populations(
    world: World, *, design_frames: dict[str, str] | None = None
) -> dict[tuple[Entity, Policy], Population]:
    """The audit populations of a test world with its predictions and flip rate."""
    return build_populations(
        world.tables,
        world.strategies,
        world.predictions,
        items={Entity.LISTING: world.frame["item_id"]},
        flip_rate=world.flip_rate,
        design_frames=design_frames if design_frames is not None else DESIGN_FRAMES,
    )
