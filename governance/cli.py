"""`govrisk strategies ...` subcommands owned by the `governance` package."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import click
import typer

from features.vocabulary import Channel, Entity, StrategyStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rich.console import Console
    from rich.tree import Tree

    from governance.backtest import BacktestResult
    from governance.evaluator import FeatureType
    from governance.registry import StrategyRegistry
    from governance.strategy import Condition

strategies_app = typer.Typer(
    help="Traffic control strategies: list, show, validate and backtest their versions.",
    no_args_is_help=True,
)

DataOption = Annotated[
    Path,
    typer.Option(
        "--data",
        help="Data directory holding strategies/ID@vN.yaml (and tables/ for backtests).",
    ),
]
RefArgument = Annotated[
    str, typer.Argument(help="ID (its active, else latest version), ID@N or ID@vN.")
]


def _console() -> Console:
    from rich.console import Console

    return Console()


def _load_registry(
    data: Path, *, check_features: bool = False, dataset: Path | None = None
) -> StrategyRegistry:
    """Load the registry; any problem is the command's error (exit 2). Features are checked
    against the catalogue, or a bring-your-own `dataset`'s declaration."""
    from governance.registry import StrategyRegistry, catalog_feature_types
    from governance.strategy import StrategyError

    feature_types: Mapping[Entity, Mapping[str, FeatureType]] | None = None
    if dataset is not None:
        from features.store import read_dataset
        from governance.audit.byo import byo_feature_types

        feature_types = byo_feature_types(read_dataset(dataset))
    elif check_features:
        try:
            feature_types = catalog_feature_types()
        except ImportError as err:
            _console().print(f"[yellow]warning:[/yellow] {err}", soft_wrap=True)
    try:
        return StrategyRegistry.load(data, feature_types=feature_types)
    except StrategyError as err:
        raise click.ClickException(str(err)) from err


@strategies_app.command("list")
def list_strategies(
    data: DataOption,
    status: Annotated[
        StrategyStatus | None, typer.Option("--status", help="Only this status.")
    ] = None,
    entity: Annotated[
        Entity | None, typer.Option("--entity", help="Only strategies on this entity.")
    ] = None,
    channel: Annotated[
        Channel | None, typer.Option("--channel", help="Only strategies acting in this channel.")
    ] = None,
) -> None:
    """List every strategy version in the registry, filtered by status, entity or channel."""
    from rich.table import Table

    registry = _load_registry(data)
    rows = registry.select(status=status, entity=entity, channel=channel)
    table = Table(title=f"{len(rows)} strategy version(s) in {data}")
    table.add_column("strategy / name", overflow="fold", ratio=1)
    for col in ("status", "entity", "policy", "action"):
        table.add_column(col, no_wrap=True)
    table.add_column("channels")
    colours = {"active": "green", "shadow": "cyan", "draft": "yellow", "retired": "dim"}
    for s in rows:
        table.add_row(
            f"[bold]{s.ref}[/bold]\n[dim]{s.name}[/dim]",
            f"[{colours[s.status.value]}]{s.status.value}[/]",
            s.entity.value,
            s.policy.value,
            s.action.value,
            "\n".join(c.value for c in s.channels),
        )
    _console().print(table)


def _condition_tree(condition: Condition, tree: Tree) -> None:
    from governance.strategy import AllOf, Not, Predicate, render_condition

    if isinstance(condition, Predicate):
        tree.add(f"[bold]{render_condition(condition)}[/bold]")
    elif isinstance(condition, Not):
        _condition_tree(condition.not_, tree.add("[magenta]NOT[/magenta]"))
    else:
        members = condition.all if isinstance(condition, AllOf) else condition.any
        label = "ALL of" if isinstance(condition, AllOf) else "ANY of"
        branch = tree.add(f"[magenta]{label}[/magenta]")
        for member in members:
            _condition_tree(member, branch)


@strategies_app.command("show")
def show(
    ref: RefArgument,
    data: DataOption,
) -> None:
    """Show one strategy version: its YAML, a readable condition and its other versions."""
    from rich.panel import Panel
    from rich.syntax import Syntax
    from rich.tree import Tree

    from governance.registry import StrategyNotFoundError
    from governance.strategy import dump_strategy, render_condition

    console = _console()
    registry = _load_registry(data)
    try:
        strategy = registry.get(ref)
    except (StrategyNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    source = registry.source(strategy.ref)
    text = source.read_text(encoding="utf-8") if source is not None else dump_strategy(strategy)
    others = ", ".join(
        f"{s.ref} ({s.status.value})" for s in registry.versions(strategy.id) if s != strategy
    )
    console.print(
        Panel(
            f"[bold]{strategy.name}[/bold]\n{strategy.description.strip()}\n\n"
            f"{strategy.action.value} {strategy.entity.value} items for {strategy.policy.value} "
            f"in {', '.join(c.value for c in strategy.channels)} — status "
            f"[bold]{strategy.status.value}[/bold], owner {strategy.owner}"
            + (f"\nderived from {strategy.parent}" if strategy.parent else "")
            + (f"\nother versions: {others}" if others else ""),
            title=strategy.ref,
            subtitle=str(source) if source is not None else None,
        )
    )
    tree = Tree(f"[bold]condition[/bold]: {render_condition(strategy.condition)}")
    _condition_tree(strategy.condition, tree)
    console.print(tree)
    console.print(Syntax(text, "yaml", line_numbers=False, word_wrap=True))


@strategies_app.command("validate")
def validate(
    data: DataOption,
    dataset: Annotated[
        Path | None,
        typer.Option(
            "--dataset",
            help="Check features and types against this bring-your-own feature build "
            "(`govrisk features byo` output) instead of the marketplace catalogue.",
        ),
    ] = None,
) -> None:
    """Check every strategy file (structure, features, types, duplicates); exit 1 on errors.

    Every problem is listed (exit 1); a missing strategies directory is an error (exit 2).
    """
    from rich.markup import escape

    from governance.registry import strategies_dir

    console = _console()
    if not strategies_dir(data).is_dir():
        _load_registry(data)  # says which directory is missing
    try:
        registry = _load_registry(data, check_features=True, dataset=dataset)
    except click.ClickException as err:
        console.print(f"[red]{escape(err.message)}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from err
    console.print(
        f"[green]{len(registry)} strategy version(s) of {len(registry.ids())} strategies in "
        f"{data} are valid.[/green]"
    )


@strategies_app.command("backtest")
def backtest(
    ref: RefArgument,
    data: DataOption,
    days: Annotated[
        int, typer.Option("--days", min=1, help="Replay the last N days of traffic.")
    ] = 14,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Also write hits, daily, channels and overlap Parquet here."),
    ] = None,
) -> None:
    """Replay any version (draft and shadow too) on past days: hits, exposure, overlap."""
    from rich.progress import Progress

    from features.contract import ContractError
    from features.loader import load_tables
    from governance.backtest import backtest_tables
    from governance.evaluator import EvaluationError
    from governance.registry import StrategyNotFoundError

    console = _console()
    registry = _load_registry(data)
    try:
        strategy = registry.get(ref)
        tables = load_tables(data)
        others = [s for s in registry.active(entity=strategy.entity) if s.ref != strategy.ref]
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"building {strategy.entity.value} frames", total=days)
            result = backtest_tables(
                strategy,
                tables,
                days=days,
                others=others,
                on_day=lambda _day: progress.advance(task),
            )
    except (StrategyNotFoundError, ContractError, EvaluationError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    _print_backtest(result, console)
    if out is not None:
        from governance.backtest import write_backtest

        for path in write_backtest(result, out):
            console.print(f"wrote {path}")


def _print_backtest(result: BacktestResult, console: Console) -> None:
    from rich.table import Table

    s = result.strategy
    first, last = result.days[0].date(), result.days[-1].date()
    console.print(
        f"[bold]{s.ref}[/bold] ({s.status.value}, {s.action.value}) replayed on "
        f"{len(result.days)} day(s), {first} to {last}"
    )
    pivot = result.daily.pivot(index="day", columns="channel", values="items_hit")
    daily = Table(title="Items hit per day and channel")
    daily.add_column("day")
    for channel in pivot.columns:
        daily.add_column(str(channel), justify="right")
    for day, row in pivot.iterrows():
        daily.add_row(str(day.date()), *(f"{int(v):,}" for v in row))  # type: ignore[attr-defined]
    console.print(daily)
    channels = Table(title="Exposure affected per channel (whole period)")
    for col, justify in (
        ("channel", "left"),
        ("item-days", "right"),
        ("items", "right"),
        ("impressions", "right"),
        ("share of impr.", "right"),
        ("GMV (USD)", "right"),
        ("share of GMV", "right"),
    ):
        channels.add_column(col, justify=justify)  # type: ignore[arg-type]
    for c in result.channels.itertuples(index=False):
        channels.add_row(
            str(c.channel),
            f"{c.item_days:,}",
            f"{c.items:,}",
            f"{c.impressions:,}",
            f"{c.impressions_share:.2%}",
            f"{c.gmv:,.0f}",
            f"{c.gmv_share:.2%}",
        )
    console.print(channels)
    if s.status.value == "active":
        console.print(
            "[dim]This version was live: items it blocked or demoted show little traffic, so the "
            "exposure affected is a floor.[/dim]"
        )
    overlap = Table(title=f"Overlap with {len(result.overlap)} other active strategies")
    for col in ("strategy", "action", "both", "jaccard", "this in other", "other in this", "flag"):
        left = col in ("strategy", "action", "flag")
        overlap.add_column(col, justify="left" if left else "right")
    for o in result.overlap.itertuples(index=False):
        flags = [f for f, on in (("redundant", o.redundant), ("conflict", o.conflicting)) if on]
        overlap.add_row(
            str(o.strategy),
            str(o.action),
            f"{o.n_both:,}",
            f"{o.jaccard:.2f}",
            f"{o.self_in_other:.0%}",
            f"{o.other_in_self:.0%}",
            "[red]" + ", ".join(flags) + "[/red]" if flags else "",
        )
    console.print(overlap)
    for ref, reason in result.skipped.items():
        console.print(f"[yellow]not compared with {ref}:[/yellow] {reason}")


def register(app: typer.Typer) -> None:
    """Add this package's subcommands to the root app."""
    app.add_typer(strategies_app, name="strategies")
