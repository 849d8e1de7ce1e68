"""`govrisk evaluate-experiments`: experiment statistics measured where the truth is known."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def evaluate_experiments(
    runs: Annotated[
        int, typer.Option("--runs", min=10, help="A/A and SRM replications (synthetic).")
    ] = 200,
    units: Annotated[
        int, typer.Option("--units", min=100, help="Units per A/A experiment.")
    ] = 2_000,
    days: Annotated[
        int, typer.Option("--days", min=2, help="Daily looks per A/A experiment.")
    ] = 14,
    world_listings: Annotated[
        int, typer.Option("--world-listings", min=300, help="Listings per simulated world.")
    ] = 20_000,
    world_seeds: Annotated[
        int, typer.Option("--world-seeds", min=0, help="Simulated worlds (0: synthetic only).")
    ] = 5,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the table as CSV here.")
    ] = None,
) -> None:
    """Print the A/A false-positive rate of the ship decision with daily peeking (always-valid
    vs naive), SRM detection with a planted 45/55 split, CUPED variance reduction, item- vs
    seller-level bias under interference, agreement with gbstats, and experiments run in
    simulated worlds against their counterfactual truth."""
    from rich.console import Console
    from rich.table import Table

    from experiments.experiment_eval import ExperimentEvalConfig, run_experiment_eval

    console = Console()
    config = ExperimentEvalConfig(
        aa_runs=runs,
        srm_runs=runs,
        units=units,
        days=days,
        world_listings=world_listings,
        world_seeds=tuple(range(1, world_seeds + 1)),
    )
    with console.status("evaluating experiments") as status:
        result = run_experiment_eval(
            config, progress=lambda msg: status.update(msg), simulator=world_seeds > 0
        )
    table = Table(title="Strategy experiments: statistics vs known truth")
    for col in result.table.columns:
        table.add_column(col, overflow="fold")
    for row in result.table.itertuples(index=False):
        table.add_row(*[str(x) for x in row], style="red" if row.met == "NO" else None)
    console.print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        result.table.to_csv(out, index=False)
        console.print(f"  table: {out}")


def register(app: typer.Typer) -> None:
    """Add `govrisk evaluate-experiments` to the root app."""
    app.command("evaluate-experiments")(evaluate_experiments)
