"""`govrisk demo`: the whole pipeline on a simulated marketplace, one `govrisk` command per step.

Each step runs the same command a user would type (shown as it starts), so the demo doubles as
a walkthrough; the closing table lists what each step wrote where.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from experiments import SPECS_DIR

if TYPE_CHECKING:
    from governance.experiments.declaration import Experiment

#: Demo accounts created for the review service (demo passwords, printed at the end).
DEMO_USERS: tuple[tuple[str, str, str], ...] = (
    ("admin", "admin", "admin-demo-pass"),
    ("mod1", "moderator", "mod1-demo-pass"),
    ("mod2", "moderator", "mod2-demo-pass"),
    ("pm1", "pm", "pm1-demo-pass"),
    ("mle1", "ml_engineer", "mle1-demo-pass"),
)

#: The model the demo batch-scores listings with (and the service serves).
CHAMPION_MODEL = "govrisk-listing-any"


@dataclass(frozen=True)
class Step:
    """One pipeline step: a `govrisk` command line and what it writes."""

    title: str
    args: tuple[str, ...]
    writes: str
    stdin: str | None = None


def demo_spec_path() -> Path:
    """The training spec the demo uses (shipped with the package)."""
    return SPECS_DIR / "demo.yaml"


#: The experiment the demo runs: the fix of the planted deep-discount threshold defect.
DEMO_EXPERIMENT_ID = "deep-discount-fix"


def demo_candidate_path() -> Path:
    """The candidate version the demo experiments with (shipped with the package)."""
    return SPECS_DIR / "campaign-deep-discount@v2.yaml"


def demo_experiment(*, days: int) -> Experiment:
    """campaign-deep-discount v1 vs v2 by seller on 50%, over the second half of the period."""
    from datetime import timedelta

    from experiments.simulator import SimulationConfig
    from governance.experiments.declaration import experiment_from_dict

    start = SimulationConfig().start
    half = days // 2
    return experiment_from_dict(
        {
            "id": DEMO_EXPERIMENT_ID,
            "name": "Raise the deep-discount threshold from 35% to 60%",
            "owner": "campaigns-ops",
            "hypothesis": "Fewer honest clearance discounts limited in campaigns; trust holds.",
            "control": "campaign-deep-discount@v1",
            "treatment": "campaign-deep-discount@v2",
            "channels": ["campaigns"],
            "start": start + timedelta(days=half),
            "end": start + timedelta(days=days),
            "primary_metric": "impressions",
            "guardrails": [
                {"metric": "complaint_rate", "margin": 0.10},
                {"metric": "nps", "margin": 0.03},
            ],
            "mde": 0.05,
            "pre_period_days": min(14, half),
        }
    )


def _promote_steps() -> list[Step]:
    """Promote every model the demo spec trains: the listing any-violation model (which the
    scoring step needs), then the others if their training ran (a small world may skip
    them) and they pass the gate (a model no better than chance is refused, and the demo
    goes on). The audit then scores each strategy's items with its policy's champion, else
    its entity's any-violation champion."""
    from models.registry import model_name
    from training.spec import load_spec

    spec = load_spec(demo_spec_path(), check_paths=False)
    names = [
        model_name(e.value, p, prefix=spec.mlflow.model_name_prefix) for e, p in spec.target_pairs()
    ]
    others = tuple(n for n in names if n != CHAMPION_MODEL)
    return [
        Step(
            f"Promote {CHAMPION_MODEL} to champion",
            ("models", "promote", CHAMPION_MODEL),
            "alias champion in the MLflow registry",
        ),
        Step(
            f"Promote the other {len(others)} models that trained to champion",
            ("models", "promote", "--if-trained", "--exit-zero", *others),
            "alias champion in the MLflow registry",
        ),
    ]


def plan_steps(out: Path, *, listings: int, days: int, seed: int) -> list[Step]:
    """The demo's steps, in order, writing under `out`."""
    service = out / "service"
    return [
        *_pipeline_steps(out, listings=listings, days=days, seed=seed),
        *_review_steps(out),
        *_experiment_steps(out, listings=listings, days=days, seed=seed),
        Step(
            "Open an escalation per monitoring alert",
            (
                "alerts",
                "load",
                "--path",
                str(out / "monitor" / "alerts.parquet"),
                "--data-dir",
                str(service),
            ),
            "escalations of kind alert",
        ),
    ]


def _pipeline_steps(out: Path, *, listings: int, days: int, seed: int) -> list[Step]:
    """Simulate, validate, build features, train, promote, score, audit, monitor."""
    data = out / "data"
    service = out / "service"
    model_uri = f"models:/{CHAMPION_MODEL}@champion"
    return [
        Step(
            "Simulate a marketplace with ground truth",
            (
                "simulate",
                "--out",
                str(out),
                "--listings",
                str(listings),
                "--days",
                str(days),
                "--seed",
                str(seed),
            ),
            f"{data}/tables, {data}/strategies, {out}/ground_truth",
        ),
        Step(
            "Check the tables against the data contract",
            ("data", "validate", "--data", str(data)),
            "nothing (read only)",
        ),
        Step(
            "Build point-in-time features",
            ("features", "build", "--data", str(data), "--out", str(out / "features")),
            f"{out}/features",
        ),
        Step(
            "Train calibrated risk models, log to MLflow, register challengers",
            (
                "train",
                "--spec",
                str(demo_spec_path()),
                "--data",
                str(data),
                "--out",
                str(out / "training"),
            ),
            f"{out}/training, {out}/mlflow.db",
        ),
        *_promote_steps(),
        Step(
            "Batch-score listings with top-5 SHAP reasons",
            (
                "score",
                "--model",
                model_uri,
                "--input",
                str(out / "features" / "listing.parquet"),
                "--output",
                str(out / "scores"),
                "--explain",
                "5",
                "--overwrite",
            ),
            f"{out}/scores",
        ),
        Step(
            "Audit every strategy against labels and the model",
            (
                "audit",
                "--data",
                str(data),
                "--oof",
                str(out / "training" / "oof_predictions.parquet"),
                "--out",
                str(out / "audit"),
            ),
            f"{out}/audit (report.html, *.parquet)",
        ),
        Step(
            "Monitor trust per channel, strategy health and drift",
            (
                "monitor",
                "--data",
                str(data),
                "--predictions",
                str(out / "audit" / "predictions.parquet"),
                "--out",
                str(out / "monitor"),
            ),
            f"{out}/monitor (monitoring.html, *.parquet)",
        ),
        Step(
            "Create the review database",
            ("db", "upgrade", "--data-dir", str(service)),
            f"{service}/govrisk.db",
        ),
    ]


def _review_steps(out: Path) -> list[Step]:
    """Demo users, then the audit's flags and suggestions into the review service."""
    data = out / "data"
    service = out / "service"
    steps = []
    for username, role, password in DEMO_USERS:
        steps.append(
            Step(
                f"Create demo user {username} ({role})",
                (
                    "users",
                    "create",
                    "--username",
                    username,
                    "--role",
                    role,
                    "--password-stdin",
                    "--data-dir",
                    str(service),
                ),
                "a user row",
                stdin=password + "\n",
            )
        )
    return [
        *steps,
        Step(
            "Load the audit's flags into the review queue",
            (
                "queue",
                "load",
                "--flags",
                str(out / "audit" / "flags.parquet"),
                "--data",
                str(data),
                "--data-dir",
                str(service),
            ),
            "queue items",
        ),
        Step(
            "Load suggested strategy adjustments for PM review",
            (
                "suggestions",
                "load",
                "--path",
                str(out / "audit" / "suggestions.parquet"),
                "--data-dir",
                str(service),
            ),
            "suggestions",
        ),
    ]


def _experiment_steps(out: Path, *, listings: int, days: int, seed: int) -> list[Step]:
    """A second world running the A/B test of the deep-discount fix, registered and analysed."""
    service = out / "service"
    return [
        Step(
            "Simulate the marketplace again with an A/B test of the deep-discount fix",
            (
                "simulate",
                "--out",
                str(out / "experiment-world"),
                "--listings",
                str(listings),
                "--days",
                str(days),
                "--seed",
                str(seed),
                "--candidate",
                str(demo_candidate_path()),
                "--experiment",
                str(out / "experiment.yaml"),
            ),
            f"{out}/experiment-world",
        ),
        Step(
            "Register the experiment in the review database",
            (
                "experiments",
                "create",
                "--file",
                str(out / "experiment.yaml"),
                "--strategies",
                str(out / "data" / "strategies"),
                "--candidate",
                str(demo_candidate_path()),
                "--data-dir",
                str(service),
            ),
            "an experiments row; the candidate joins the served strategy set as shadow",
        ),
        Step(
            "Analyse the experiment: effects, SRM, guardrails, recommendation",
            (
                "experiments",
                "analyze",
                DEMO_EXPERIMENT_ID,
                "--data",
                str(out / "experiment-world" / "data"),
                "--data-dir",
                str(service),
            ),
            f"its analysis (page /experiments/{DEMO_EXPERIMENT_ID})",
        ),
    ]


def serve_step(out: Path, *, host: str, port: int) -> Step:
    """`govrisk serve` over the demo's review database, strategy set, audit and champion."""
    return Step(
        "Serve the review pages and the scoring API",
        (
            "serve",
            "--host",
            host,
            "--port",
            str(port),
            "--data-dir",
            str(out / "service"),
            "--strategies-dir",
            str(out / "data" / "strategies"),
            "--marketplace-dir",
            str(out / "data"),
            "--features-dir",
            str(out / "features"),
            "--audit-dir",
            str(out / "audit"),
            "--monitor-dir",
            str(out / "monitor"),
            "--model",
            f"models:/{CHAMPION_MODEL}@champion",
        ),
        "",
    )


def _run(step: Step, *, env: dict[str, str], console: Console) -> float:
    command = [sys.executable, "-m", "govrisk", *step.args]
    console.rule(f"[bold]{step.title}")
    console.print(f"[dim]$ govrisk {shlex.join(step.args)}[/dim]")
    started = time.perf_counter()
    result = subprocess.run(command, env=env, input=step.stdin, text=True, check=False)
    if result.returncode != 0:
        console.print(f"[red]Step failed ({result.returncode}): govrisk {shlex.join(step.args)}")
        raise typer.Exit(result.returncode)
    return time.perf_counter() - started


#: How a service that was asked to stop ends: cleanly, or by the signal it was sent.
_STOPPED = frozenset({0, -signal.SIGTERM, -signal.SIGINT})


def serve_until_stopped(command: list[str], *, env: dict[str, str] | None = None) -> int:
    """Run a long-lived service until it exits; SIGTERM or Ctrl-C here stops it cleanly.

    A service manager or container runtime stops the demo with SIGTERM: it is passed on to the
    service, which shuts down, and the stop counts as success (0), not as a failed step.
    Returns 0 when the service stopped as asked, else its exit code.
    """
    child = subprocess.Popen(command, env=env)

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        while True:
            try:
                returncode = child.wait()
                break
            except KeyboardInterrupt:  # Ctrl-C reached the service too; wait for it to stop
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0 if returncode in _STOPPED else returncode


def demo(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for everything the demo writes.")
    ] = Path("demo-output"),
    listings: Annotated[
        int, typer.Option("--listings", min=200, help="Listings to simulate.")
    ] = 20_000,
    days: Annotated[int, typer.Option("--days", min=14, help="Days to simulate.")] = 56,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the simulation.")] = 1,
    serve: Annotated[
        bool,
        typer.Option("--serve/--no-serve", help="Start the service at the end and keep it up."),
    ] = True,
    host: Annotated[str, typer.Option("--host", help="Interface the service listens on.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", help="Port the service listens on.")] = 8000,
) -> None:
    """Run the whole pipeline on a simulated marketplace, then serve the review pages.

    Simulates a marketplace, validates it, builds features, trains and registers models,
    promotes a champion, scores with reasons, audits every strategy, fills the review queue,
    runs and analyses an A/B test of a strategy fix in a second simulation of the same world,
    and (unless --no-serve) starts the service on HOST:PORT with demo users.
    """
    console = Console()
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{out / 'mlflow.db'}")
    env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    env.setdefault("PYTHONUNBUFFERED", "1")
    from governance.experiments.declaration import dump_experiment

    (out / "experiment.yaml").write_text(dump_experiment(demo_experiment(days=days)), "utf-8")
    timings: list[tuple[Step, float]] = []
    for step in plan_steps(out, listings=listings, days=days, seed=seed):
        timings.append((step, _run(step, env=env, console=console)))

    summary = Table(title="govrisk demo: what each step wrote")
    summary.add_column("step")
    summary.add_column("seconds", justify="right")
    summary.add_column("wrote")
    for step, seconds in timings:
        if step.args[0] != "users":
            summary.add_row(step.title, f"{seconds:.1f}", step.writes)
    console.print(summary)
    console.print(f"MLflow: `mlflow ui --backend-store-uri {env['MLFLOW_TRACKING_URI']}`")
    console.print(f"Audit report: {out / 'audit' / 'report.html'}")
    console.print(f"Monitoring report: {out / 'monitor' / 'monitoring.html'}")
    if not serve:
        return
    users = Table(title="Demo users (demo passwords; change them for real use)")
    for column in ("username", "role", "password"):
        users.add_column(column)
    for row in DEMO_USERS:
        users.add_row(*row)
    console.print(users)
    console.print(
        f"[bold green]Review service: http://{host}:{port}/ — API docs at "
        f"http://{host}:{port}/docs. Ctrl-C stops it.[/bold green]"
    )
    server = serve_step(out, host=host, port=port)
    console.rule(f"[bold]{server.title}")
    returncode = serve_until_stopped([sys.executable, "-m", "govrisk", *server.args], env=env)
    if returncode != 0:
        console.print(f"[red]The service failed ({returncode}): govrisk {shlex.join(server.args)}")
        raise typer.Exit(2)
    console.print("service stopped")


def register(app: typer.Typer) -> None:
    """Add `govrisk demo` to the root app."""
    app.command("demo")(demo)
