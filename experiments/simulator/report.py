"""Console front end of `govrisk simulate`: progress bar, then summary tables and paths."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from experiments.simulator.config import SimulationConfig
from experiments.simulator.policies import ENTITY_POLICIES
from experiments.simulator.simulation import SimulationResult, simulate
from experiments.simulator.writer import write_simulation
from features.vocabulary import Entity, Policy

if TYPE_CHECKING:
    from governance.experiments.declaration import Experiment
    from governance.strategy import Strategy

_STAGES = {"world": "Generating the world", "days": "Simulating days"}


def run_and_report(
    *,
    out: Path,
    n_listings: int,
    days: int,
    seed: int,
    label_budget: int,
    random_audit_share: float,
    strategies_dir: Path | None = None,
    full_evaluation_every_days: int = 1,
    console: Console | None = None,
    candidates: Sequence[Strategy] = (),
    experiment: Experiment | None = None,
) -> SimulationResult:
    """Simulate with a progress bar, write everything under `out`, print the summary.

    `candidates` are extra (draft or shadow) versions added to the strategy set; `experiment`
    runs one of them on its treatment arm (experiments/simulator/arms.py).
    """
    console = console or Console()
    config = SimulationConfig(
        n_listings=n_listings,
        days=days,
        seed=seed,
        label_budget=label_budget,
        random_audit_share=random_audit_share,
        full_evaluation_every_days=full_evaluation_every_days,
    )
    strategies = None
    if strategies_dir is not None:
        from governance.registry import StrategyRegistry, catalog_feature_types

        registry = StrategyRegistry.from_directory(
            strategies_dir, feature_types=catalog_feature_types()
        )
        strategies = list(registry)
    if candidates:
        from experiments.simulator.strategy_set import starter_strategies

        strategies = [*(strategies if strategies is not None else starter_strategies())]
        strategies += list(candidates)

    tick = time.perf_counter()
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(_STAGES.get(stage, stage), total=total)
            progress.update(tasks[stage], completed=done, total=total)

        result = simulate(
            config, strategies=strategies, progress=on_progress, experiment=experiment
        )
        writing = progress.add_task("Validating and writing", total=1)
        paths = write_simulation(result, out)
        progress.update(writing, completed=1)
    seconds = time.perf_counter() - tick
    _print_summary(console, result, out, paths, seconds)
    return result


def _print_summary(
    console: Console, result: SimulationResult, out: Path, paths: list[Path], seconds: float
) -> None:
    tables = Table(title=f"Contract tables ({out / 'data' / 'tables'})")
    tables.add_column("table")
    tables.add_column("rows", justify="right")
    for name, df in result.tables.items():
        tables.add_row(name, f"{len(df):,}")
    console.print(tables)

    items = result.ground_truth.items
    truth = Table(title="True violation rates (ground truth)")
    truth.add_column("entity")
    truth.add_column("items", justify="right")
    for policy in Policy:
        truth.add_column(policy.value, justify="right")
    for entity in Entity:
        rows = items[items["entity"] == entity.value]
        cells = [
            f"{rows[f'violates_{p.value}'].mean():.1%}" if p in ENTITY_POLICIES[entity] else "-"
            for p in Policy
        ]
        truth.add_row(entity.value, f"{len(rows):,}", *cells)
    console.print(truth)

    decisions = result.tables["strategy_decisions"]
    labels = result.tables["audit_labels"]
    enforcement = Table(title="Enforcement and audit")
    enforcement.add_column("what")
    enforcement.add_column("count", justify="right")
    active = sum(1 for s in result.strategies if s.status == "active")
    enforcement.add_row("strategies (active / written)", f"{active} / {len(result.strategies)}")
    enforcement.add_row("nightly enforcement runs", f"{len(result.runs):,}")
    enforcement.add_row("decisions (item x channel)", f"{len(decisions):,}")
    enforcement.add_row(
        "  lifted after an upheld appeal", f"{decisions['lifted_at'].notna().sum():,}"
    )
    for sampling, n in labels["sampling"].value_counts().sort_index().items():
        enforcement.add_row(f"audit labels: {sampling}", f"{n:,}")
    enforcement.add_row(
        "planted strategy defects", f"{len(result.ground_truth.defects['planted'])}"
    )
    enforcement.add_row("seconds", f"{seconds:,.1f}")
    console.print(enforcement)

    written = Table(title="Written")
    written.add_column("path", overflow="fold")
    written.add_column("files", justify="right")
    for folder in (out / "data" / "tables", out / "data" / "strategies", out / "ground_truth"):
        n = sum(1 for p in paths if p.parent == folder)
        written.add_row(str(folder), str(n))
    console.print(written)
