"""`govrisk monitor` and `govrisk alerts load`: trust monitoring and its alerts."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import click
import typer

alerts_app = typer.Typer(
    help="Monitoring alerts: open them as escalations in the review service.",
    no_args_is_help=True,
)


def monitor(
    data: Annotated[
        Path, typer.Option("--data", help="Data directory holding tables/ and strategies/.")
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Directory to write the tables and report into.")
    ],
    as_of: Annotated[
        datetime | None,
        typer.Option("--as-of", help="Monitor the days before this one (default: period end)."),
    ] = None,
    objectives: Annotated[
        Path | None,
        typer.Option("--objectives", help="YAML of channel objectives (default: packaged)."),
    ] = None,
    predictions: Annotated[
        Path | None,
        typer.Option(
            "--predictions",
            help="Parquet of model predictions (entity, item_id, policy, p; optional "
            "scored_at: a scoring log, as `govrisk audit` writes): adds violative view rates, "
            "label-free precisions and prediction drift.",
        ),
    ] = None,
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip the HTML report.")] = False,
    open_escalations: Annotated[
        bool,
        typer.Option(
            "--open-escalations",
            help="Open one review-service escalation per new alert (database of --data-dir).",
        ),
    ] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Review-service data directory (default: --data)."),
    ] = None,
) -> None:
    """Trust metrics per channel, objectives and burn rates, strategy health, feature drift
    and alerts, written as Parquet tables and one offline HTML report."""
    import pandas as pd
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from features.contract import ContractError
    from governance.monitoring.objectives import load_objectives
    from governance.monitoring.pipeline import run_monitor

    console = Console()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("loading", total=7)

        def step(name: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=name)

        try:
            result = run_monitor(
                data,
                out_dir=out,
                as_of=as_of.date() if as_of is not None else None,
                objectives=load_objectives(objectives) if objectives is not None else None,
                predictions=pd.read_parquet(predictions) if predictions is not None else None,
                write_report=not no_report,
                on_progress=step,
            )
        except (ValueError, FileNotFoundError, KeyError, ContractError) as err:
            raise click.ClickException(str(err)) from err
    _print_summary(console, result)
    if open_escalations:
        _open(console, result.alerts, data_dir or data)


def _print_summary(console: object, result: object) -> None:
    from rich.console import Console
    from rich.table import Table

    from governance.monitoring.pipeline import MonitorResult
    from governance.monitoring.vocabulary import ALL, Dimension, Grain

    assert isinstance(console, Console) and isinstance(result, MonitorResult)
    m = result.tables["trust_metrics"]
    weeks = m[(m["grain"] == Grain.WEEK) & (m["dimension"] == Dimension.NONE)]
    mature = weeks[weeks["mature"]]
    last_week = mature["period_start"].max() if len(mature) else weeks["period_start"].max()
    rows = weeks[weeks["period_start"] == last_week].sort_values("channel")
    status = result.tables["objective_status"].dropna(subset=["value", "budget_spent"])
    spent = (
        status.sort_values("day")
        .groupby(["channel", "metric"])
        .tail(1)
        .groupby("channel")["budget_spent"]
        .max()
    )
    alerts = result.alerts
    table = Table(title=f"Trust per channel, week of {last_week:%Y-%m-%d} (latest mature week)")
    for col in (
        "channel",
        "orders",
        "complaints/1k [95%]",
        "returns/1k",
        "refund/GMV",
        "1-2 stars",
        "NPS",
        "max budget spent",
        "alerts",
    ):
        table.add_column(col, justify="left" if col == "channel" else "right")
    for _, r in rows.iterrows():
        ch = str(r["channel"])
        n_alerts = int((alerts["channel"] == ch).sum()) if ch != ALL else len(alerts)
        table.add_row(
            ch,
            f"{int(r['orders']):,}",
            f"{r['complaints_per_1k_orders']:.1f} [{r['complaints_per_1k_low']:.1f}, "
            f"{r['complaints_per_1k_high']:.1f}]",
            f"{r['returns_per_1k_orders']:.1f}",
            f"{r['refund_per_gmv']:.3f}",
            f"{r['low_star_share']:.1%}",
            f"{r['nps']:.0f}",
            f"{spent.get(ch, float('nan')):.0%}",
            str(n_alerts),
        )
    console.print(table)
    if len(alerts):
        at = Table(title=f"{len(alerts)} alerts")
        for col in ("severity", "kind", "channel", "category", "strategy", "first day", "title"):
            at.add_column(col)
        for _, a in alerts.head(15).iterrows():
            at.add_row(
                str(a["severity"]),
                str(a["kind"]),
                str(a["channel"]),
                str(a["category"]),
                str(a["strategy_id"]),
                f"{a['first_day']:%Y-%m-%d}",
                str(a["title"]),
            )
        console.print(at)
    else:
        console.print("no alerts")
    for key, path in result.paths.items():
        console.print(f"  {key}: {path}")


def _open(console: object, alerts: object, data_dir: Path) -> None:
    import pandas as pd
    from rich.console import Console

    from governance.monitoring.escalation import open_alert_escalations
    from governance.review.cli import review_session
    from governance.review.settings import ReviewSettings

    assert isinstance(console, Console) and isinstance(alerts, pd.DataFrame)
    sla = ReviewSettings().sla_hours_by_priority()
    with review_session(None, data_dir) as session:
        opened = open_alert_escalations(session, alerts, sla_hours=sla)
    console.print(
        f"escalations: {opened.opened} opened, {opened.already_open} already open "
        f"({opened.actor} raised them)"
    )


def load(
    path: Annotated[Path, typer.Option("--path", help="alerts.parquet from `govrisk monitor`.")],
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Review-service data directory (its database).")
    ] = Path("."),
) -> None:
    """Open one escalation (kind `alert`) per alert not opened before; idempotent."""
    import pandas as pd
    from rich.console import Console

    from governance.monitoring.tables import ALERTS, check_frame

    console = Console()
    alerts = pd.read_parquet(path)
    problems = check_frame(alerts, ALERTS)
    if problems:
        raise click.ClickException(f"{path}: " + "; ".join(problems))
    _open(console, alerts, data_dir)


def register(app: typer.Typer) -> None:
    """Add `govrisk monitor` and `govrisk alerts` to the root app."""
    app.command("monitor")(monitor)
    alerts_app.command("load")(load)
    app.add_typer(alerts_app, name="alerts")
