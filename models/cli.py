"""`govrisk models ...` subcommands owned by the `models` package: list and promote."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

models_app = typer.Typer(
    help="Registered risk models: list them, promote a challenger to champion.",
    no_args_is_help=True,
)

TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db).",
    ),
]


def require_tracking_store(tracking_uri: str | None) -> str:
    """Point MLflow at an existing tracking store and return its URI; if there is none, say
    which in one line and exit with code 2 (shared by every command that reads models)."""
    from models.registry import RegistryError, use_existing_tracking_store

    try:
        return use_existing_tracking_store(tracking_uri)
    except RegistryError as err:
        raise click.ClickException(str(err)) from err


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "–" if value is None or value == "" else str(value)


def _rich_table(df: pd.DataFrame, *, title: str) -> Table:
    from rich.table import Table

    table = Table(title=title)
    for col in df.columns:
        table.add_column(str(col), justify="right" if df[col].dtype.kind in "fi" else "left")
    for row in df.itertuples(index=False):
        table.add_row(*(_fmt(v) for v in row))
    return table


@models_app.command("list")
def list_command(
    tracking_uri: TrackingUri = None,
    prefix: Annotated[str, typer.Option("--prefix", help="Registered-name prefix.")] = "govrisk",
) -> None:
    """List registered models with their champion and challenger versions and PR-AUC."""
    from rich.console import Console

    from models.registry import list_models

    uri = require_tracking_store(tracking_uri)
    df = list_models(prefix=prefix)
    console = Console()
    if df.empty:
        console.print(f"no registered models named {prefix}-* in {uri}; run `govrisk train`")
        return
    console.print(_rich_table(df, title=f"Registered models in {uri}"))


@models_app.command("promote")
def promote_command(
    names: Annotated[
        list[str],
        typer.Argument(
            help="Registered models, e.g. govrisk-listing-any (each is gated on its own).",
            metavar="NAME...",
        ),
    ],
    margin: Annotated[
        float | None,
        typer.Option(
            "--margin",
            help="Largest PR-AUC drop allowed on any slice (default: the training spec's gate).",
            min=0.0,
            max=1.0,
        ),
    ] = None,
    min_gain: Annotated[
        float | None,
        typer.Option(
            "--min-gain",
            help="PR-AUC gain over the champion required (default: the training spec's gate).",
            min=0.0,
        ),
    ] = None,
    if_trained: Annotated[
        bool,
        typer.Option(
            "--if-trained",
            help="Do nothing (exit 0) when there is no challenger: training skipped this model "
            "(too few labels, as in a small simulated world).",
        ),
    ] = False,
    exit_zero: Annotated[
        bool,
        typer.Option(
            "--exit-zero",
            help="Exit 0 even when a model is refused (its decision is still printed and "
            "logged); for pipelines that go on with the models that passed.",
        ),
    ] = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Move each model's champion alias to its challenger if it passes the gate (better than
    chance on its holdout, better than the champion, no slice much worse); exit 1 if any is
    refused."""
    from rich.console import Console

    require_tracking_store(tracking_uri)
    console = Console()
    refused = [
        name
        for name in names
        if not _promote_one(console, name, margin=margin, min_gain=min_gain, if_trained=if_trained)
    ]
    if refused and not exit_zero:
        raise typer.Exit(1)


def _promote_one(
    console: Any, name: str, *, margin: float | None, min_gain: float | None, if_trained: bool
) -> bool:
    """Gate and promote one model, printing the decision; False if it was refused."""
    from models.registry import NoChallengerError, RegistryError, promote

    try:
        decision = promote(name, slice_margin=margin, min_gain=min_gain)
    except NoChallengerError as err:
        if not if_trained:
            raise click.ClickException(str(err)) from err
        console.print(f"{name}: no challenger (training skipped it); nothing to promote")
        return True
    except RegistryError as err:
        raise click.ClickException(str(err)) from err
    if decision.rows:
        console.print(
            _rich_table(
                decision.table(),
                title=f"{name}: challenger v{decision.challenger_version} vs champion "
                f"v{decision.champion_version or '–'} ({decision.basis})",
            )
        )
    if decision.promoted:
        console.print(
            f"[green]promoted[/green] {name} v{decision.challenger_version} to champion: "
            f"{decision.reason}"
        )
    else:
        console.print(
            f"[red]refused[/red] {name} v{decision.challenger_version}: {decision.reason}"
        )
    if decision.log_run_id:
        console.print(f"decision logged in MLflow run {decision.log_run_id}")
    return bool(decision.promoted or decision.basis == "same version")


def register(app: typer.Typer) -> None:
    """Add this package's subcommands to the root app."""
    app.add_typer(models_app, name="models")
