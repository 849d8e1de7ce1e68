"""`govrisk train`: run one experiment spec (subcommand owned by the `training` package)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import click
import typer

if TYPE_CHECKING:
    from rich.console import Console

    from training.pipeline import TrainResult


def train_command(
    spec: Annotated[
        Path,
        typer.Option("--spec", help="Experiment spec YAML, e.g. experiments/specs/demo.yaml."),
    ],
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri",
            help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db).",
        ),
    ] = None,
    optuna: Annotated[
        bool | None,
        typer.Option("--optuna/--no-optuna", help="Run the spec's Optuna search (default: spec)."),
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="Data directory; overrides the spec's data_dir.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Output directory; overrides the spec's.")
    ] = None,
    dataset: Annotated[
        Path | None,
        typer.Option(
            "--dataset",
            help="Bring-your-own feature build (`govrisk features byo` output); overrides the "
            "spec's dataset.path.",
        ),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            help="Audit labels of that dataset (`govrisk labels draw --reveal`); overrides the "
            "spec's dataset.labels.",
        ),
    ] = None,
) -> None:
    """Train, calibrate, evaluate, log to MLflow and register every target of a spec.

    Exits 1 when a target failed (the others are still trained and registered), 2 on a bad spec.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )

    from features.byo import SpecError as ByoSpecError
    from features.contract import ContractError
    from training.dataset import DatasetError
    from training.pipeline import train
    from training.spec import SpecError, load_spec

    console = Console()
    try:
        experiment = load_spec(spec, data_dir=data, output_dir=out, dataset=dataset, labels=labels)
    except SpecError as err:
        raise click.ClickException(str(err)) from err
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        tasks: dict[str, TaskID] = {}

        def on_progress(phase: str, done: int, total: int, description: str) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(description, total=total)
            progress.update(tasks[phase], completed=done, total=total, description=description)

        try:
            result = train(
                experiment,
                tracking_uri=tracking_uri,
                use_optuna=optuna,
                spec_text=spec.read_text(encoding="utf-8"),
                on_progress=on_progress,
            )
        except (ContractError, DatasetError, ByoSpecError) as err:
            raise click.ClickException(str(err)) from err
    _print_summary(console, result)
    if result.failed:
        raise typer.Exit(1)


def _print_summary(console: Console, result: TrainResult) -> None:
    from rich.table import Table

    table = Table(title=f"Spec {result.spec_name}: holdout metrics (weighted)")
    for col in ("model", "status"):
        table.add_column(col)
    for col in ("labels", "violating", "PR-AUC", "ROC-AUC", "R@90P", "Brier", "ECE"):
        table.add_column(col, justify="right")
    for col in ("calibration", "version", "run"):
        table.add_column(col)

    def fmt(value: float) -> str:
        return "–" if math.isnan(value) else f"{value:.3f}"

    for t in result.targets:
        m = t.metrics
        table.add_row(
            t.model_name,
            t.status if t.status == "trained" else f"[yellow]{t.status}[/yellow]",
            f"{t.n_labels:,}",
            f"{t.n_positive:,}",
            *(
                fmt(m.get(k, math.nan))
                for k in ("pr_auc", "roc_auc", "recall_at_90_precision", "brier", "ece")
            ),
            t.calibration,
            f"v{t.model_version} (challenger)" if t.model_version else "–",
            (t.run_id or "")[:12],
        )
    console.print(table)
    for t in result.targets:
        if t.reason:
            console.print(f"[yellow]{t.model_name}[/yellow]: {t.reason}")
    console.print(f"tracking: {result.tracking_uri} (parent run {result.parent_run_id})")
    if result.oof_path is not None:
        console.print(f"wrote {result.oof_path}")
    console.print(f"wrote {result.summary_path}")
    for t in result.targets:
        if t.output_dir is not None:
            console.print(f"wrote {t.output_dir}/ (plots, model card, metrics)")
    console.print(
        f"browse: mlflow ui --backend-store-uri {result.tracking_uri}; "
        "promote: govrisk models promote NAME"
    )


def register(app: typer.Typer) -> None:
    """Add this package's subcommands to the root app."""
    app.command("train")(train_command)
