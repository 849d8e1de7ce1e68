"""A tiny unenforced simulated marketplace written as a data directory (once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.registry import strategies_dir, write_version
from tests.governance.experiments.factories import make_registry


@pytest.fixture(scope="session")
def market_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """W/data with contract tables (600 listings, 21 days) and campaign-deep-discount v1, v2."""
    from experiments.simulator import SimulationConfig, simulate
    from experiments.simulator.writer import write_simulation

    out = tmp_path_factory.mktemp("market")
    config = SimulationConfig(n_listings=600, days=21, seed=3, label_budget=100)
    write_simulation(simulate(config, strategies=[]), out)
    for strategy in make_registry():
        write_version(strategy, strategies_dir(out / "data"))
    return out / "data"
