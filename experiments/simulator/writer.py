"""Writing a simulation: contract tables and strategies under data/, the truth apart."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from experiments.simulator.simulation import SimulationResult


def write_simulation(result: SimulationResult, out_dir: Path | str) -> list[Path]:
    """Write `out_dir/data/{tables,strategies}` and `out_dir/ground_truth`; returns the paths.

    Tables go through `features.loader.write_tables`, so they are validated against the
    contract before anything is written.
    """
    from features.loader import write_tables
    from governance.strategy import dump_strategy

    out = Path(out_dir)
    data = out / "data"
    paths = list(write_tables(data, result.tables))
    strategies_dir = data / "strategies"
    strategies_dir.mkdir(parents=True, exist_ok=True)
    for old in strategies_dir.glob("*.yaml"):
        old.unlink()
    for strategy in result.strategies:
        path = strategies_dir / strategy.file_name
        path.write_text(dump_strategy(strategy), encoding="utf-8")
        paths.append(path)

    truth_dir = out / "ground_truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    gt = result.ground_truth
    for name, frame in (("items", gt.items), ("sellers", gt.sellers), ("labels", gt.labels)):
        path = truth_dir / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        paths.append(path)
    runs = pd.DataFrame(
        [
            {
                "as_of": r.as_of,
                "full": r.full,
                "n_evaluated": sum(r.n_evaluated.values()),
                "n_new_decisions": r.n_new_decisions,
            }
            for r in result.runs
        ]
    )
    if len(runs):
        runs["as_of"] = runs["as_of"].astype("datetime64[us]")
    path = truth_dir / "enforcement_runs.parquet"
    runs.to_parquet(path, index=False)
    paths.append(path)
    path = truth_dir / "timings.json"
    timings = {
        "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
        "runs": [
            {
                "as_of": r.as_of.isoformat(),
                "seconds_frames": round(r.seconds_frames, 3),
                "seconds_evaluate": round(r.seconds_evaluate, 3),
            }
            for r in result.runs
        ],
    }
    path.write_text(json.dumps(timings, indent=2) + "\n", encoding="utf-8")
    paths.append(path)
    path = truth_dir / "defects.yaml"
    path.write_text(yaml.safe_dump(gt.defects, sort_keys=False, width=100), encoding="utf-8")
    paths.append(path)
    path = truth_dir / "config.json"
    config = result.config.model_dump(mode="json")
    config["reviewer_noise"] = [round(float(x), 6) for x in gt.reviewer_noise]
    config["strategies"] = [s.ref for s in result.strategies]
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    paths.append(path)
    return paths
