"""`govrisk audit`: estimate every strategy's accuracy and write tables and the HTML report."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import click
import typer

from models.cli import TrackingUri, require_tracking_store

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from governance.audit.pipeline import AuditResult
    from governance.audit.settings import AuditSettings


DatasetOpt = Annotated[
    Path | None,
    typer.Option(
        "--dataset",
        help="Audit a bring-your-own dataset: the output folder of `govrisk features byo` "
        "(needs --scores and --labels; docs/byo-walkthrough.md).",
    ),
]

ScoresOpt = Annotated[
    Path | None,
    typer.Option(
        "--scores",
        help="With --dataset: the output folder of `govrisk score`. With a partitioned --data: "
        "a folder of score outputs, one per target, named ENTITY-POLICY (or ENTITY-any).",
    ),
]

LabelsOpt = Annotated[
    Path | None,
    typer.Option("--labels", help="With --dataset: audit labels (`govrisk labels draw --reveal`)."),
]

SampleSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--sample-size",
        min=0,
        help="Expected size of the audit slice to draw (default: the audit_sample_size "
        "setting, GOVRISK_AUDIT_AUDIT_SAMPLE_SIZE).",
    ),
]

FlipRateOpt = Annotated[
    float | None,
    typer.Option(
        "--flip-rate",
        min=0.0,
        max=0.45,
        help="With --dataset: reviewer flip rate (default: estimated or the setting); 0 "
        "when the verdicts are the dataset's own labels.",
    ),
]

PredictionsOpt = Annotated[
    Path | None,
    typer.Option(
        "--predictions",
        help="Parquet of calibrated predictions (entity, item_id, policy, p) instead of --model.",
    ),
]

OofOpt = Annotated[
    Path | None,
    typer.Option("--oof", help="Out-of-fold predictions parquet from `govrisk train` (oof_p)."),
]


def audit(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Data directory holding tables/ and strategies/ (with --dataset: strategies/).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Directory to write the audit into.")],
    dataset: DatasetOpt = None,
    scores: ScoresOpt = None,
    labels: LabelsOpt = None,
    sample_size: SampleSizeOpt = None,
    flip_rate: FlipRateOpt = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="Model bundle URI or path; `{entity}` and `{policy}` are filled per target. "
            "Repeat it to give fallbacks, tried in order (default: "
            "models:/govrisk-{entity}-{policy}@champion, then "
            "models:/govrisk-{entity}-any@champion).",
        ),
    ] = None,
    predictions: PredictionsOpt = None,
    oof: OofOpt = None,
    as_of: Annotated[
        datetime | None,
        typer.Option("--as-of", help="Audit the data before this time (default: period end)."),
    ] = None,
    tracking_uri: TrackingUri = None,
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip the HTML report.")] = False,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Partitioned --data only: Dask scheduler address (default: a LocalCluster).",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Partitioned --data: LocalCluster workers."),
    ] = None,
) -> None:
    """Audit every strategy: precision/recall with intervals, ranked likely errors, root-cause
    slices and suggested changes, written as Parquet tables and one offline HTML report.

    A partitioned --data (`govrisk data partition`) is audited on Dask, one task per
    partition: estimates and flags (not slices, suggestions or the report yet)."""
    import pandas as pd
    from rich.console import Console

    from features.loader import DataDirectoryNotFoundError
    from governance.audit.pipeline import run_audit
    from governance.audit.settings import get_settings

    console = Console()
    settings = get_settings()
    if sample_size is not None:
        settings = settings.model_copy(update={"audit_sample_size": sample_size})
    if dataset is not None:
        _audit_dataset(data, dataset, scores, labels, oof, flip_rate, out, settings, console)
        return
    from features.partitioned import is_partitioned

    if is_partitioned(data):
        _audit_partitioned(data, out, scores, scheduler, workers, settings, console)
        return
    if scheduler is not None or workers is not None:
        raise typer.BadParameter(
            f"{data} is one data directory, audited in one process; split it with "
            "`govrisk data partition` to audit it on Dask",
            param_hint="--scheduler/--workers",
        )
    if model is not None and predictions is not None:
        raise typer.BadParameter("pass either --model or --predictions, not both")
    if not (data / "tables").is_dir():
        raise DataDirectoryNotFoundError(data)
    if predictions is None and (
        not model or any(m.startswith(("models:", "runs:")) for m in model)
    ):
        require_tracking_store(tracking_uri)
    preds = pd.read_parquet(predictions) if predictions is not None else None
    oof_df = pd.read_parquet(oof) if oof is not None else None
    with _progress(console) as step:
        try:
            result = run_audit(
                data,
                out_dir=out,
                model_uri=model,
                predictions=preds,
                oof=oof_df,
                as_of=as_of,
                settings=settings,
                tracking_uri=tracking_uri,
                write_report=not no_report,
                on_progress=step,
            )
        except (ValueError, FileNotFoundError, KeyError) as err:
            raise click.ClickException(str(err)) from err

    _print_audit(result, console)


@contextmanager
def _progress(console: Console) -> Iterator[Callable[[str, int, int], None]]:
    """A transient bar of the audit's steps; yields the `on_progress` callback."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("loading", total=7)

        def step(name: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=name)

        yield step


def _audit_dataset(
    strategies_data: Path,
    dataset_dir: Path,
    scores: Path | None,
    labels: Path | None,
    oof: Path | None,
    flip_rate: float | None,
    out: Path,
    settings: AuditSettings,
    console: Console,
) -> None:
    """`govrisk audit --dataset`: the BYO audit of a feature build, its scores and labels."""
    import pandas as pd

    from features.byo import SpecError
    from features.store import read_dataset
    from governance.audit.byo import load_byo_strategies, run_byo_audit
    from governance.strategy import StrategyError

    if scores is None or labels is None:
        raise typer.BadParameter("--dataset needs --scores and --labels", param_hint="--dataset")
    try:
        ds = read_dataset(dataset_dir)
        with console.status(f"auditing {ds.spec.name}"):
            result = run_byo_audit(
                ds,
                load_byo_strategies(strategies_data, ds),
                pd.read_parquet(scores),
                pd.read_parquet(labels),
                out_dir=out,
                oof=pd.read_parquet(oof) if oof is not None else None,
                flip_rate=flip_rate,
                settings=settings,
            )
    except (SpecError, StrategyError, ValueError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from err
    _print_audit(result, console)


def _audit_partitioned(
    data: Path,
    out: Path,
    scores: Path | None,
    scheduler: str | None,
    workers: int | None,
    settings: AuditSettings,
    console: Console,
) -> None:
    """`govrisk audit` of a partitioned data directory on Dask."""
    from features.cluster import dask_client
    from features.contract import ContractError
    from features.partitioned import partitions
    from governance.audit.partitioned import audit_partitioned, write_outputs
    from governance.registry import StrategyRegistry

    if scores is None:
        raise typer.BadParameter(
            "a partitioned --data needs --scores: a folder of `govrisk score` outputs, one per "
            "target, named <entity>-<policy> (or <entity>-any)",
            param_hint="--scores",
        )
    try:
        parts = partitions(data)
        strategies = list(StrategyRegistry.load(data))
        with dask_client(scheduler, n_workers=workers) as client, _progress(console) as step:
            stages = ("summaries", "units", "estimate", "flags")
            result = audit_partitioned(
                parts,
                strategies,
                scores,
                client=client,
                settings=settings,
                on_stage=lambda name: step(name, stages.index(name), len(stages)),
            )
    except (ValueError, FileNotFoundError, KeyError, ContractError, OSError) as err:
        raise click.ClickException(str(err)) from err
    console.print(
        _metrics_table(result.metrics, settings, f"Strategy audit of {len(parts)} partitions")
    )
    console.print(f"{len(result.flags):,} flags")
    for key, path in write_outputs(result, out).items():
        console.print(f"  {key}: {path}")


def _print_audit(result: AuditResult, console: Console) -> None:
    """Each strategy's estimates (the interval level the run used) and where files went."""
    console.print(
        _metrics_table(
            result.metrics, result.settings, f"Strategy audit as of {result.as_of:%Y-%m-%d}"
        )
    )
    console.print(
        f"flip rate {result.flip_rate:.3f} ({result.flip_rate_source}); "
        f"{len(result.flags):,} flags, {len(result.slices):,} slices, "
        f"{len(result.suggestions):,} suggestions"
    )
    for key, path in result.paths.items():
        console.print(f"  {key}: {path}")
    if result.run_id:
        console.print(f"  MLflow run: {result.run_id}")


def _metrics_table(m: pd.DataFrame, settings: AuditSettings, title: str) -> Table:
    """Each strategy's estimates over all channels, at the interval level the run used."""
    from rich.table import Table

    ci = f"{settings.confidence:.0%} CI"
    rows = m[(m["channel"] == "all") & (m["strategy"] != "*")]
    table = Table(title=title)
    for col in (
        "strategy",
        "actioned",
        f"precision [{ci}]",
        f"recall [{ci}]",
        "est. FP",
        "est. FN",
        "labels",
    ):
        table.add_column(col, justify="left" if col == "strategy" else "right")
    for _, r in rows.sort_values("precision").iterrows():
        table.add_row(
            str(r["strategy"]),
            f"{int(r['n_actioned']):,}",
            _pct(r["precision"], r["precision_low"], r["precision_high"]),
            _pct(r["recall"], r["recall_low"], r["recall_high"]),
            f"{r['fp']:,.0f}",
            f"{r['fn']:,.0f}",
            f"{int(r['n_labels'])}",
        )
    return table


def _pct(p: float, lo: float, hi: float) -> str:
    if p != p:  # NaN: nothing actioned
        return "–"
    return f"{p:.1%} [{lo:.1%}, {hi:.1%}]"


def register(app: typer.Typer) -> None:
    """Add `govrisk audit` to the root app."""
    app.command("audit")(audit)
