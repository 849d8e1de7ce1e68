"""`govrisk features ...` and `govrisk data ...` subcommands owned by the `features` package."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

data_app = typer.Typer(help="Check input tables against the data contract.", no_args_is_help=True)


@data_app.command("validate")
def validate(
    data: Annotated[Path, typer.Option("--data", help="Data directory holding tables/*.parquet.")],
) -> None:
    """Load every contract table from DATA and report contract violations (exit 1 if any)."""
    from features.contract import ContractError
    from features.loader import load_tables

    console = Console()
    try:
        tables = load_tables(data)
    except ContractError as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(1) from err
    summary = Table(title=f"Contract tables in {data}")
    summary.add_column("table")
    summary.add_column("rows", justify="right")
    for name, df in tables.items():
        summary.add_row(name, f"{len(df):,}")
    console.print(summary)
    console.print("[green]All tables conform to the data contract.[/green]")


@data_app.command("contract")
def contract_docs(
    out: Annotated[
        Path, typer.Option("--out", help="Where to write the Markdown reference.")
    ] = Path("docs/data-contract.md"),
) -> None:
    """Regenerate the data contract reference (docs/data-contract.md) from the declarations."""
    from features.contract_docs import render_contract_markdown

    out.write_text(render_contract_markdown())
    Console().print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Add this package's subcommands to the root app."""
    app.add_typer(data_app, name="data")
