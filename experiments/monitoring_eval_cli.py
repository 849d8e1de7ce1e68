"""`govrisk evaluate-monitoring`: alerts measured against planted incidents."""

from __future__ import annotations

from typing import Annotated

import typer

from experiments.options import parse_seeds
from features.vocabulary import Channel


def evaluate_monitoring(
    seeds: Annotated[
        list[str] | None,
        typer.Option("--seeds", help="Simulation seeds: `--seeds 1,2` or `--seeds 1 --seeds 2`."),
    ] = None,
    listings: Annotated[
        int, typer.Option("--listings", min=500, help="Listings per simulated marketplace.")
    ] = 3_000,
    days: Annotated[int, typer.Option("--days", min=28, help="Simulated days.")] = 56,
) -> None:
    """Simulate worlds with and without planted incidents (a complaint flood in one channel,
    a returns surge in one category, a broken strategy deployment) and print the detection
    delay per incident and the false alarms per month on incident-free worlds."""
    from rich.console import Console
    from rich.table import Table

    from experiments.monitoring_eval import MonitoringEvalConfig, run_monitoring_eval

    console = Console()
    parsed = parse_seeds(seeds, (1, 2))
    cfg = MonitoringEvalConfig(seeds=parsed, listings=listings, days=days)
    with console.status("simulating") as status:
        result = run_monitoring_eval(cfg, on_step=lambda msg: status.update(msg))
    det = Table(
        title="Detection delay (days of data after the incident started on day "
        f"{int(days * cfg.start_fraction)})"
    )
    for col in ("incident", *(f"seed {s}" for s in parsed), "found", "other alerts by then"):
        det.add_column(col, justify="left" if col == "incident" else "right")
    for name, g in result.detections.groupby("scenario", sort=False):
        delays = [g.loc[g["seed"] == s, "delay_days"].iloc[0] for s in parsed]
        found = sum(d is not None and d == d for d in delays)
        det.add_row(
            str(name),
            *("–" if d is None or d != d else f"{int(d)}" for d in delays),
            f"{found}/{len(parsed)}",
            f"{int(g['other_alerts'].sum())}",
        )
    console.print(det)
    fa = result.false_alarms
    months = float(fa["months"].iloc[0]) if len(fa) else days / 30
    fat = Table(title="False alarms on incident-free worlds (alert episodes, launch excluded)")
    for col in ("kind", "alerts", "per month", "per month per channel"):
        fat.add_column(col, justify="left" if col == "kind" else "right")
    total = 0
    for kind, g in fa[fa["kind"] != "none"].groupby("kind"):
        n = int(g["alerts"].sum())
        total += n
        per = n / months / len(parsed)
        fat.add_row(str(kind), str(n), f"{per:.2f}", f"{per / len(Channel):.2f}")
    per = total / months / len(parsed)
    fat.add_row("all", str(total), f"{per:.2f}", f"{per / len(Channel):.2f}")
    console.print(fat)
    for _, r in result.launch.iterrows():
        first = r["first_alert_week"]
        console.print(
            f"seed {r['seed']}: new category launched {r['launch_week']:%Y-%m-%d}; first drift "
            f"alert week {'none' if pd_isna(first) else f'{first:%Y-%m-%d}'}"
        )


def pd_isna(x: object) -> bool:
    """Whether `x` is a missing value."""
    import pandas as pd

    return x is None or bool(pd.isna(pd.Series([x])).iloc[0])


def register(app: typer.Typer) -> None:
    """Add `govrisk evaluate-monitoring` to the root app."""
    app.command("evaluate-monitoring")(evaluate_monitoring)
