"""`govrisk experiments create|list|show|analyze|stop`: strategy experiments on the command line."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from rich.console import Console
from rich.table import Table

from governance.experiments.vocabulary import ExperimentStatus
from governance.review.cli import DatabaseOpt, DataDirOpt, _session

if TYPE_CHECKING:
    from governance.experiments.declaration import Experiment
    from governance.registry import StrategyRegistry
    from governance.strategy import Strategy

experiments_app = typer.Typer(
    help="Strategy experiments: A/B tests of a candidate strategy version against the active one.",
    no_args_is_help=True,
)
IdArgument = Annotated[str, typer.Argument(help="Experiment id.")]


def _registry(data_dir: Path | None, strategies: Path | None = None) -> StrategyRegistry:
    from governance.registry import StrategyRegistry
    from governance.review.settings import ReviewSettings

    settings = ReviewSettings()
    if data_dir is not None:
        settings.data_dir = data_dir
    if strategies is not None:
        settings.strategies_dir = strategies
    return StrategyRegistry.from_directory(settings.resolved_strategies_dir())


def _register_candidate(registry: StrategyRegistry, path: Path, console: Console) -> None:
    """Add the candidate version (as shadow) unless the same version is already in the set;
    a different file under the same version is refused (versions are immutable)."""
    from features.vocabulary import StrategyStatus
    from governance.strategy import load_strategy, with_status

    strategy = with_status(load_strategy(path), StrategyStatus.SHADOW)
    if strategy.ref in registry:
        if registry.get(strategy.ref).condition != strategy.condition:
            raise FileExistsError(
                f"{strategy.ref} is already in the strategy set with another condition; give "
                f"the candidate version {registry.next_version(strategy.id)}"
            )
        return
    registry.add(strategy)
    console.print(f"added {strategy.ref} to the strategy set as shadow")


def _fail(err: Exception) -> click.ClickException:
    """The error as the one-line message the root command prints (exit code 2)."""
    return click.ClickException(str(err))


@experiments_app.command("create")
def create(
    file: Annotated[Path, typer.Option("--file", help="Experiment declaration (YAML).")],
    strategies: Annotated[
        Path | None,
        typer.Option(
            "--strategies",
            help="Strategies directory (default GOVRISK_STRATEGIES_DIR or DATA_DIR/strategies).",
        ),
    ] = None,
    candidate: Annotated[
        Path | None,
        typer.Option(
            "--candidate",
            help="Strategy file of the treatment version to add to the strategy set first (as "
            "shadow), when it is not there yet: shipping promotes it in this set.",
        ),
    ] = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Validate a declaration against the strategy registry and store it as running."""
    from governance.experiments.declaration import ExperimentError, parse_experiment
    from governance.experiments.store import ExperimentStateError, create_experiment
    from governance.strategy import StrategyError

    console = Console()
    try:
        experiment = parse_experiment(file.read_text(encoding="utf-8"), source=str(file))
        registry = _registry(data_dir, strategies)
        if candidate is not None:
            _register_candidate(registry, candidate, console)
        with _session(database_url, data_dir) as session:
            record = create_experiment(session, experiment, registry=registry, actor=None)
            session.commit()
    except (OSError, ExperimentError, ExperimentStateError, StrategyError) as err:
        raise _fail(err) from err
    console.print(
        f"[green]experiment {record.experiment_id} created ({record.status.value}): "
        f"{record.control} vs {record.treatment}, {record.unit.value}-level, "
        f"{record.traffic_share:.0%} of units[/green]"
    )


@experiments_app.command("list")
def list_(
    status: Annotated[
        ExperimentStatus | None, typer.Option("--status", help="Only this status.")
    ] = None,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """List experiments, newest first."""
    from governance.experiments.store import list_experiments

    with _session(database_url, data_dir) as session:
        rows = list_experiments(session, status=status)
    table = Table(title=f"{len(rows)} experiment(s)")
    for col in ("id", "status", "control", "treatment", "unit", "share", "window", "last"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.experiment_id,
            r.status.value,
            r.control,
            r.treatment,
            r.unit.value,
            f"{r.traffic_share:.0%}",
            f"{r.start:%Y-%m-%d} to {r.end:%Y-%m-%d}",
            str(r.last_analysis.get("recommendation", "-")),
        )
    Console().print(table)


@experiments_app.command("show")
def show(
    experiment_id: IdArgument,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Show an experiment: its declaration, status and latest analysis."""
    from rich.syntax import Syntax

    from governance.experiments.store import ExperimentNotFoundError, get_experiment

    console = Console()
    try:
        with _session(database_url, data_dir) as session:
            record = get_experiment(session, experiment_id)
    except ExperimentNotFoundError as err:
        raise _fail(err) from err
    console.print(f"[bold]{record.experiment_id}[/bold]: {record.name} — {record.status.value}")
    if record.stop_reason:
        console.print(f"reason: {record.stop_reason}")
    console.print(Syntax(record.definition_yaml, "yaml", word_wrap=True))
    if record.last_analysis:
        _print_summary(record.last_analysis, console)


@experiments_app.command("analyze")
def analyze_command(
    experiment_id: IdArgument,
    data: Annotated[Path, typer.Option("--data", help="Data directory holding tables/*.parquet.")],
    as_of: Annotated[
        datetime | None, typer.Option("--as-of", help="Analyse data before this time (UTC).")
    ] = None,
    fixed_horizon: Annotated[
        bool,
        typer.Option("--fixed-horizon", help="Fixed-horizon intervals (only valid at the end)."),
    ] = False,
    no_cuped: Annotated[bool, typer.Option("--no-cuped", help="No pre-period adjustment.")] = False,
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Analyse an experiment on the tables, print every metric and record the recommendation."""
    from features.contract import ContractError
    from features.loader import load_tables
    from governance.experiments.analysis import AnalysisConfig, analyze, channel_effects
    from governance.experiments.label_effects import error_rate_effects
    from governance.experiments.store import (
        ExperimentNotFoundError,
        analysis_summary,
        declaration,
        error_summary,
        get_experiment,
        metric_summary,
        record_analysis,
    )
    from governance.experiments.unit_data import unit_metrics

    console = Console()
    try:
        names = ["listings", "videos", "live_sessions", "channel_exposure", "outcomes"]
        tables = load_tables(data, [*names, "strategy_decisions", "audit_labels"])
        with _session(database_url, data_dir) as session:
            experiment = declaration(get_experiment(session, experiment_id))
            units = unit_metrics(tables, experiment, as_of=as_of)
            config = AnalysisConfig(
                alpha=experiment.alpha, sequential=not fixed_horizon, cuped=not no_cuped
            )
            last_day = as_of or _traffic_end(tables)
            result = analyze(experiment, units, config=config, finished=last_day >= experiment.end)
            treatment = _treatment_version(experiment, data)
            measured = list(experiment.channels) or list(treatment.channels if treatment else [])
            by_channel = {
                c.value: unit_metrics(tables, experiment, as_of=as_of, channels=[c])
                for c in measured
            }
            channels = channel_effects(experiment, by_channel, config=config)
            errors = {}
            if treatment is not None and treatment.entity.value != "seller":
                errors = error_rate_effects(
                    tables, experiment, entity=treatment.entity.value, policy=treatment.policy.value
                )
            record_analysis(
                session, experiment_id, result, actor=None, channels=channels, errors=errors
            )
            session.commit()
    except (ContractError, ExperimentNotFoundError, ValueError) as err:
        raise _fail(err) from err
    summary = analysis_summary(result)
    summary["channels"] = {c: metric_summary(r) for c, r in channels.items()}
    summary["errors"] = {k: error_summary(e) for k, e in errors.items()}
    _print_summary(summary, console)


def _treatment_version(experiment: Experiment, data: Path) -> Strategy | None:
    """The treatment strategy version from the data directory's registry (None: unreadable)."""
    from governance.registry import StrategyRegistry

    try:
        return StrategyRegistry.load(data).get(experiment.treatment)
    except (KeyError, ValueError):
        return None


def _traffic_end(tables: dict[str, Any]) -> datetime:
    """The end of the last day of traffic in the tables."""
    import pandas as pd

    last = pd.to_datetime(tables["channel_exposure"]["day"]).max()
    return (pd.Timestamp(last) + pd.Timedelta(days=1)).to_pydatetime()


@experiments_app.command("stop")
def stop(
    experiment_id: IdArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")],
    database_url: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Stop an experiment: the control version stays active."""
    from governance.experiments.store import (
        ExperimentNotFoundError,
        ExperimentStateError,
        stop_experiment,
    )

    console = Console()
    try:
        with _session(database_url, data_dir) as session:
            record = stop_experiment(session, experiment_id, reason=reason, actor=None)
            session.commit()
    except (ExperimentNotFoundError, ExperimentStateError, ValueError) as err:
        raise _fail(err) from err
    console.print(f"[green]experiment {record.experiment_id} stopped[/green]")


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _print_summary(summary: dict[str, Any], console: Console) -> None:
    config = summary["config"]
    kind = "always-valid" if config["sequential"] else "fixed-horizon"
    table = Table(
        title=(
            f"control {summary['n_control']:,} vs treatment {summary['n_treatment']:,} units; "
            f"{kind} {1 - config['alpha']:.0%} intervals"
        )
    )
    for col in ("metric", "role", "control", "treatment", "lift", "interval", "cuped", "verdict"):
        table.add_column(col)
    for m in [summary["primary"], *summary["guardrails"]]:
        if m["role"] == "primary":
            verdict = "better" if m["improved"] else "worse" if m["deteriorated"] else "-"
        else:
            verdict = (
                "non-inferior" if m["non_inferior"] else f"not shown (margin {m['margin']:.0%})"
            )
        table.add_row(
            m["metric"],
            m["role"],
            _fmt(m["control_mean"], ".4g"),
            _fmt(m["treatment_mean"], ".4g"),
            _fmt(m["lift"], "+.2%"),
            f"[{_fmt(m['lift_low'], '+.2%')}, {_fmt(m['lift_high'], '+.2%')}]",
            "yes" if m["cuped"] else "no",
            verdict,
        )
    console.print(table)
    if summary.get("channels"):
        by_channel = Table(title=f"{summary['primary']['metric']} by channel")
        for col in ("channel", "control", "treatment", "lift", "interval"):
            by_channel.add_column(col)
        for channel, m in summary["channels"].items():
            by_channel.add_row(
                channel,
                _fmt(m["control_mean"], ".4g"),
                _fmt(m["treatment_mean"], ".4g"),
                _fmt(m["lift"], "+.2%"),
                f"[{_fmt(m['lift_low'], '+.2%')}, {_fmt(m['lift_high'], '+.2%')}]",
            )
        console.print(by_channel)
    if summary.get("errors"):
        errors = Table(title="Errors per item from the random audit (honest actioned: fp)")
        for col in ("error", "control", "treatment", "difference", "interval", "labels"):
            errors.add_column(col)
        for kind, e in summary["errors"].items():
            errors.add_row(
                kind,
                _fmt(e["control"], ".2%"),
                _fmt(e["treatment"], ".2%"),
                _fmt(e["difference"], "+.2%"),
                f"[{_fmt(e['low'], '+.2%')}, {_fmt(e['high'], '+.2%')}]",
                str(e["n_labels"]),
            )
        console.print(errors)
    srm = "[red]MISMATCH[/red]" if summary["srm"] else "ok"
    console.print(f"sample ratio: {srm} (p = {summary['srm_p_value']:.3g})")
    console.print(f"[bold]recommendation: {summary['recommendation']}[/bold] — {summary['reason']}")


def register(app: typer.Typer) -> None:
    """Add this package's subcommands to the root app."""
    app.add_typer(experiments_app, name="experiments")
