"""The simulated marketplace: contract tables with a hidden ground truth and planted defects.

`simulate(config)` returns a `SimulationResult`; `write_simulation(result, out_dir)` writes
`out_dir/data/` (contract tables, strategies) and `out_dir/ground_truth/` apart.
"""

from experiments.simulator.config import SimulationConfig
from experiments.simulator.simulation import GroundTruth, SimulationResult, simulate
from experiments.simulator.writer import write_simulation

__all__ = ["GroundTruth", "SimulationConfig", "SimulationResult", "simulate", "write_simulation"]
