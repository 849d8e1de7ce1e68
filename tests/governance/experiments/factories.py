"""Seeded experiment declarations and strategy registries for the experiment tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from governance.experiments.declaration import Experiment, experiment_from_dict
from governance.registry import StrategyRegistry
from governance.strategy import parse_strategy

_BASE = """
id: campaign-deep-discount
version: {version}
name: Limit campaign exposure of suspicious discounts
owner: campaigns-ops
description: Keeps listings with large advertised discounts from dominating campaign slots.
entity: listing
policy: fake_discount
channels: [campaigns]
action: limit_exposure
status: {status}
condition:
  all:
    - {{feature: listing_discount_depth, op: ">=", value: {threshold}}}
"""


def make_registry() -> StrategyRegistry:
    """campaign-deep-discount v1 (active, threshold 0.35) and v2 (shadow, the fix at 0.6)."""
    return StrategyRegistry(
        [
            parse_strategy(_BASE.format(version=1, status="active", threshold=0.35)),
            parse_strategy(_BASE.format(version=2, status="shadow", threshold=0.6)),
        ]
    )


def experiment_data(**overrides: Any) -> dict[str, Any]:
    """A valid experiment declaration as plain data."""
    data: dict[str, Any] = {
        "id": "deep-discount-threshold",
        "name": "Raise the deep-discount threshold to 60%",
        "owner": "campaigns-ops",
        "control": "campaign-deep-discount@v1",
        "treatment": "campaign-deep-discount@v2",
        "traffic_share": 0.5,
        "channels": ["campaigns"],
        "start": datetime(2026, 1, 19),
        "end": datetime(2026, 2, 2),
        "primary_metric": "gmv",
        "guardrails": [
            {"metric": "complaint_rate", "margin": 0.05},
            {"metric": "nps", "margin": 0.02},
        ],
        "mde": 0.03,
    }
    data.update(overrides)
    return data


def make_experiment(**overrides: Any) -> Experiment:
    """A valid experiment (see `experiment_data`)."""
    return experiment_from_dict(experiment_data(**overrides))
