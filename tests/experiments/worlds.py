"""Tiny simulation configs shared by the experiments tests."""

from __future__ import annotations

from experiments.simulator import SimulationConfig


def tiny_config(**overrides: object) -> SimulationConfig:
    """A small world: big enough for every planted defect to show, fast to enforce."""
    base: dict[str, object] = {"n_listings": 4_000, "days": 21, "seed": 7, "label_budget": 1_000}
    base.update(overrides)
    return SimulationConfig.model_validate(base)
