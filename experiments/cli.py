"""`govrisk` subcommands owned by the `experiments` package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer


def simulate(
    out: Annotated[
        Path,
        typer.Option("--out", help="Output folder: writes OUT/data/ and OUT/ground_truth/."),
    ],
    listings: Annotated[
        int, typer.Option("--listings", min=200, help="Listings published over the period.")
    ] = 20_000,
    days: Annotated[
        int, typer.Option("--days", min=7, max=366, help="Length of the period in days.")
    ] = 56,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of every random stream.")] = 1,
    audit_labels: Annotated[
        int,
        typer.Option(
            "--audit-labels",
            min=0,
            help="Audit label budget (random + strategy-flagged); appeals are reviewed on top.",
        ),
    ] = 2_000,
    random_audit_share: Annotated[
        float,
        typer.Option(
            "--random-audit-share", min=0.0, max=1.0, help="Share of the budget audited at random."
        ),
    ] = 0.25,
    strategies: Annotated[
        Path | None,
        typer.Option(
            "--strategies",
            help="Folder of ID@vN.yaml strategies to run instead of the starter set.",
        ),
    ] = None,
    full_evaluation_every_days: Annotated[
        int,
        typer.Option(
            "--full-evaluation-every-days",
            min=1,
            help="Evaluate every item every N nights (other nights: items of the last week).",
        ),
    ] = 1,
    candidate: Annotated[
        list[Path] | None,
        typer.Option(
            "--candidate",
            help="A draft or shadow strategy version (YAML) to add to the set; repeatable.",
        ),
    ] = None,
    experiment: Annotated[
        Path | None,
        typer.Option(
            "--experiment",
            help="Run this experiment (YAML): its treatment acts on its treatment arm only.",
        ),
    ] = None,
) -> None:
    """Simulate a marketplace: contract tables, starter strategies and a separate ground truth.

    Writes `OUT/data/tables/*.parquet` (validated against the data contract),
    `OUT/data/strategies/*.yaml` and `OUT/ground_truth/` (true violations, hidden factors,
    the planted strategy defects), which only evaluation code may read.
    """
    from pydantic import ValidationError

    from experiments.simulator.report import run_and_report
    from governance.experiments.declaration import ExperimentError, parse_experiment
    from governance.strategy import StrategyError, load_strategy

    try:
        out.mkdir(parents=True, exist_ok=True)  # fail before simulating, not after
    except OSError as err:
        message = f"cannot create the output folder {out}: {err.strerror}"
        raise click.ClickException(message) from err
    try:
        candidates = [load_strategy(path) for path in candidate or []]
        declared = None
        if experiment is not None:
            text = experiment.read_text(encoding="utf-8")
            declared = parse_experiment(text, source=str(experiment))
        run_and_report(
            out=out,
            n_listings=listings,
            days=days,
            seed=seed,
            label_budget=audit_labels,
            random_audit_share=random_audit_share,
            strategies_dir=strategies,
            full_evaluation_every_days=full_evaluation_every_days,
            candidates=candidates,
            experiment=declared,
        )
    except (ValidationError, StrategyError, ExperimentError, OSError, ValueError) as err:
        raise click.ClickException(str(err)) from err


def evaluate_byo(
    out: Annotated[Path, typer.Option("--out", help="Work directory (one folder per draw).")],
    base_dir: Annotated[
        Path,
        typer.Option(
            "--base-dir",
            help="Where the fraud spec's paths resolve (the repository root when "
            "../shared/data/ecommerce_fraud sits beside it).",
        ),
    ] = Path("."),
    draws: Annotated[int, typer.Option("--draws", min=1, help="Label draws (seeds 0..N-1).")] = 10,
    labels: Annotated[
        int, typer.Option("--labels", min=20, help="Labels per draw (half uniform).")
    ] = 1_000,
) -> None:
    """Run docs/byo-walkthrough.md on the fraud data once per label draw and print how its
    audit's estimates compare with the truth and with the fraud evaluation's."""
    from rich.console import Console
    from rich.table import Table

    from experiments.byo_walkthrough import measure_walkthrough, summary_table

    console = Console()
    with console.status(f"{draws} walkthroughs"):
        measured = measure_walkthrough(out, base_dir=base_dir, draws=draws, labels=labels)
    path = out / "measured.parquet"
    measured.to_parquet(path, index=False)
    table = Table(title="BYO walkthrough vs fraud evaluation: mean abs. error (coverage)")
    summary = summary_table(measured)
    for col in summary.columns:
        table.add_column(str(col))
    for row in summary.itertuples(index=False):
        table.add_row(*(str(v) for v in row))
    console.print(table)
    console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add this package's subcommands to the root app."""
    app.command("simulate")(simulate)
    app.command("evaluate-byo")(evaluate_byo)
