"""Marketplace inputs of the review pages: contract tables, a feature frame, audit metrics.

Tiny and hand-written so a test can name exactly what a page must show.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd


def write_audit_metrics(tmp_path: Path) -> Path:
    """strategy_metrics.parquet of two audited strategies and a policy row; returns its folder."""
    from governance.audit.metrics import METRIC_COLUMNS

    base = dict.fromkeys(METRIC_COLUMNS, 0.0)
    rows = [
        base
        | {
            "strategy": "listing-counterfeit-terms@v3",
            "policy": "counterfeit",
            "channel": "all",
            "n_actioned": 1234,
            "precision": 0.91,
            "precision_low": 0.86,
            "precision_high": 0.95,
            "recall": 0.62,
            "recall_low": 0.55,
            "recall_high": 0.7,
            "fp": 111.0,
            "fn": 302.3963,
            "fn_confirmed": 12.0,
            "error_cost": 4567.8,
            "n_labels": 140,
            "n_labels_population": 64,
        },
        base
        | {
            "strategy": "campaign-deep-discount@v1",
            "policy": "fake_discount",
            "channel": "all",
            "n_actioned": 80,
            "precision": 0.5,
            "precision_low": 0.1,
            "precision_high": 0.9,
            "n_labels": 25,
            "recall": float("nan"),
            "recall_low": float("nan"),
            "recall_high": float("nan"),
            "error_cost": 12.0,
        },
        base | {"strategy": "*", "policy": "counterfeit", "channel": "all"},
    ]
    frame = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    for col in ("strategy", "strategy_id", "entity", "policy", "channel"):
        frame[col] = frame[col].astype(str)
    frame.to_parquet(tmp_path / "strategy_metrics.parquet")
    return tmp_path


def write_marketplace(tmp_path: Path, listing_id: str, others: Sequence[str] = ()) -> Path:
    """tables/ with `listing_id` (a replica tote from a new unverified seller), "other" and
    `others` (plain listings of the same seller), two past decisions; returns the data folder."""
    extra = list(others)
    tables = tmp_path / "market" / "tables"
    tables.mkdir(parents=True)
    pd.DataFrame(
        {
            "listing_id": [listing_id, "other", *extra],
            "seller_id": ["S1"] * (2 + len(extra)),
            "created_at": [datetime(2026, 3, 28, 8)] + [datetime(2026, 3, 2)] * (1 + len(extra)),
            "category": ["bags_luxury"] * (2 + len(extra)),
            "brand": ["Gucci"] + [None] * (1 + len(extra)),
            "title": ["GUCCI 1:1 Replica tote <b>bag</b>", "tote", *("tote" for _ in extra)],
            "description": ["Mirror quality, ships fast. Café-grade stitching"]
            + ["plain"] * (1 + len(extra)),
            "price": [3671.734] + [20.0] * (1 + len(extra)),
            "list_price": [9999.0] + [20.0] * (1 + len(extra)),
            "image_hash": ["img-42"] + ["img-1"] * (1 + len(extra)),
            "ships_from": ["HK"] * (2 + len(extra)),
        }
    ).to_parquet(tables / "listings.parquet")
    pd.DataFrame(
        {
            "seller_id": ["S1"],
            "registered_at": [datetime(2026, 3, 1, 12)],
            "region": ["HK"],
            "verification": ["unverified"],
            "is_official_store": [False],
        }
    ).to_parquet(tables / "sellers.parquet")
    pd.DataFrame(
        {
            "decision_id": ["d1", "d2"],
            "entity": ["listing", "listing"],
            "item_id": ["other", "other"],
            "channel": ["shop_tab", "affiliate"],
            "strategy_id": ["listing-counterfeit-terms", "listing-counterfeit-terms"],
            "strategy_version": [3, 3],
            "action": ["block", "block"],
            "decided_at": [datetime(2026, 3, 2), datetime(2026, 3, 2)],
        }
    ).to_parquet(tables / "strategy_decisions.parquet")
    return tmp_path / "market"


def write_features(tmp_path: Path) -> Path:
    """features/listing.parquet of six listings with 0-3 counterfeit terms; returns the folder."""
    folder = tmp_path / "features"
    folder.mkdir()
    counts = [0, 1, 1, 2, 3, 0]
    pd.DataFrame(
        {
            "item_id": [f"L{i}" for i in range(6)],
            "listing_counterfeit_term_count": counts,
            "listing_price": [10.0, 20, 30, 40, 50, 60],
            "exposure_impressions_7d_shop_tab": [100, 200, 300, 400, 500, 600],
            "exposure_impressions_7d_campaigns": [1, 2, 3, 4, 5, 6],
            "exposure_gmv_30d": [1.0, 2, 3, 4, 5, 6],
        }
    ).to_parquet(folder / "listing.parquet")
    return folder
