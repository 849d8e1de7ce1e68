"""`govrisk evaluate-audit`: the audit measured against simulated ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from experiments.options import parse_seeds

if TYPE_CHECKING:
    from rich.console import Console

    from experiments.audit_eval.config import AuditEvalConfig, AuditEvalResult

#: At least five worlds of the size the audit is meant for (issue 15); tests pass small sizes.
DEFAULT_SEEDS = (1, 2, 3, 4, 5)
DEFAULT_LISTINGS = 20_000


def evaluate_audit(
    seeds: Annotated[
        list[str] | None,
        typer.Option(
            "--seeds",
            help="Simulation seeds: `--seeds 1,2,3` or `--seeds 1 --seeds 2` (default 1-5).",
        ),
    ] = None,
    fresh: Annotated[
        int | None,
        typer.Option(
            "--fresh",
            min=1,
            help="Draw this many seeds never used in development (from the operating system's "
            "entropy; printed and recorded in run.json) instead of --seeds.",
        ),
    ] = None,
    listings: Annotated[
        int, typer.Option("--listings", min=200, help="Listings per simulated marketplace.")
    ] = DEFAULT_LISTINGS,
    days: Annotated[int, typer.Option("--days", min=14, help="Simulated days.")] = 56,
    labels: Annotated[
        int, typer.Option("--labels", min=100, help="Audit label budget per world.")
    ] = 2_000,
    apply: Annotated[
        int,
        typer.Option("--apply", min=0, help="Suggestions to apply by re-simulating, per world."),
    ] = 2,
    reps: Annotated[
        int, typer.Option("--reps", min=2, help="Repetitions per budget for labels needed.")
    ] = 20,
    out: Annotated[
        Path, typer.Option("--out", help="Work directory (worlds, models, audit, tables).")
    ] = Path("audit-eval"),
    rescore: Annotated[
        bool,
        typer.Option(
            "--rescore",
            help="Re-audit worlds an earlier run left in --out (no simulation or training; "
            "the recorded re-simulated deltas are kept and re-projected).",
        ),
    ] = False,
    fraud_base_dir: Annotated[
        Path | None,
        typer.Option(
            "--fraud-base-dir",
            help="Directory the fraud spec's paths resolve against (the repository root when "
            "../shared/data/ecommerce_fraud sits beside it); omit to skip the real-data run.",
        ),
    ] = None,
) -> None:
    """Run the strategy audit on simulated marketplaces and print how it compares with the
    ground truth: ranked-list precision vs cleanlab, estimate errors and interval coverage,
    labels needed vs uniform auditing, planted defects found, predicted vs realised deltas."""
    from rich.console import Console

    from experiments.audit_eval import run as eval_run
    from experiments.audit_eval.config import AuditEvalConfig, fresh_seeds

    console = Console()
    if fresh is not None and (seeds or rescore):
        raise typer.BadParameter(
            "--fresh draws new worlds: drop --seeds and --rescore", param_hint="--fresh"
        )
    chosen = fresh_seeds(fresh) if fresh is not None else parse_seeds(seeds, DEFAULT_SEEDS)
    if fresh is not None:
        console.print(f"fresh seeds (never used in development): {', '.join(map(str, chosen))}")
    cfg = AuditEvalConfig(
        work_dir=out,
        seeds=chosen,
        fresh=fresh is not None,
        n_listings=listings,
        days=days,
        label_budget=labels,
        suggestions_to_apply=apply,
        reps=reps,
        fraud_base_dir=fraud_base_dir,
        rescore=rescore,
    )
    with console.status("evaluating the audit") as status:
        result = eval_run.run_audit_eval(cfg, progress=lambda msg: status.update(msg))
    _print_result(result, cfg, console)


def _print_result(result: AuditEvalResult, cfg: AuditEvalConfig, console: Console) -> None:
    """The pooled table (misses in red), the per-world table and the files written."""
    from rich.table import Table

    table = Table(
        title=f"Strategy audit vs ground truth ({len(cfg.seeds)} "
        f"{'fresh ' if cfg.fresh else ''}worlds, "
        f"{cfg.n_listings:,} listings, {cfg.label_budget:,} labels)"
    )
    for col in result.table.columns:
        table.add_column(col, overflow="fold")
    for row in result.table.itertuples(index=False):
        style = "red" if row.met == "NO" else None
        table.add_row(*[str(x) for x in row], style=style)
    console.print(table)
    per_world = Table(
        title="Per world (pooled over every world; worst: the worst world and its seed; "
        "(of n): intervals, strategies or defects behind a figure)"
    )
    for col in result.per_world.columns:
        per_world.add_column(col, overflow="fold")
    for values in result.per_world.itertuples(index=False):
        per_world.add_row(*[str(x) for x in values])
    console.print(per_world)
    for name, path in result.paths.items():
        console.print(f"  {name}: {path}")


def register(app: typer.Typer) -> None:
    """Add `govrisk evaluate-audit` to the root app."""
    app.command("evaluate-audit")(evaluate_audit)
