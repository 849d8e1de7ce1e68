"""Shared tiny simulated marketplaces (built once per test session)."""

from __future__ import annotations

import pytest

from experiments.simulator import SimulationResult, simulate
from tests.experiments.worlds import tiny_config


@pytest.fixture(scope="session")
def enforced() -> SimulationResult:
    """The starter strategies acting on a tiny world (real feature build and evaluator)."""
    return simulate(tiny_config(), keep_world=True)


@pytest.fixture(scope="session")
def unenforced() -> SimulationResult:
    """The same world with no strategy acting."""
    return simulate(tiny_config(), strategies=[], keep_world=True)
