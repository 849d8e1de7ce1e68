"""`govrisk serve`: the web service (review API and pages; scoring joins it later)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import click
import typer

from models.cli import TrackingUri, require_tracking_store

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from models.bundle import ModelBundle
    from serving.batch import BatchSummary


StrategiesDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--strategies-dir",
        help="Strategy YAML folder the pages show and approvals write new versions to "
        "(the audit's `DATA/strategies`); default GOVRISK_STRATEGIES_DIR or "
        "DATA_DIR/strategies.",
    ),
]

MarketplaceDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--marketplace-dir",
        help="Marketplace data folder (holding tables/) that item pages read to show the "
        "item, its seller and linked listing; default GOVRISK_MARKETPLACE_DIR or DATA_DIR.",
    ),
]

FeaturesDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--features-dir",
        help="Output of `govrisk features build`: strategy version comparisons measure "
        "what each version acts on there; default GOVRISK_FEATURES_DIR.",
    ),
]

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Model for POST /v1/score, e.g. models:/NAME@champion (followed as the alias "
        "moves); default GOVRISK_MODEL_URI.",
    ),
]

SnapshotOpt = Annotated[
    Path | None,
    typer.Option(
        "--snapshot",
        help="Feature snapshot (`govrisk features build` output) for scoring raw item "
        "fields; default GOVRISK_SNAPSHOT_DIR.",
    ),
]

AccessLogOpt = Annotated[
    bool,
    typer.Option(
        "--access-log/--no-access-log",
        help="Log one line per request (at --log-level info); off saves about 0.1 ms of "
        "CPU per scoring call.",
    ),
]


def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", help="Data directory (govrisk.db, strategies/); default GOVRISK_DATA_DIR."
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="SQLAlchemy URL; default GOVRISK_DATABASE_URL or the SQLite file.",
        ),
    ] = None,
    strategies_dir: StrategiesDirOpt = None,
    marketplace_dir: MarketplaceDirOpt = None,
    features_dir: FeaturesDirOpt = None,
    audit_dir: Annotated[
        Path | None,
        typer.Option("--audit-dir", help="Output of `govrisk audit`, shown on the dashboard."),
    ] = None,
    monitor_dir: Annotated[
        Path | None,
        typer.Option("--monitor-dir", help="Output of `govrisk monitor`, shown on /monitoring."),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
    access_log: AccessLogOpt = True,
    model: ModelOpt = None,
    snapshot: SnapshotOpt = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Serve the review pages, the JSON API (/api/review), scoring (/v1/score) and docs (/docs)."""
    import uvicorn

    from governance.review.settings import ReviewSettings
    from serving.app import create_app

    if model and model.startswith(("models:", "runs:")):
        require_tracking_store(tracking_uri)
    settings = ReviewSettings()
    given = {
        "data_dir": data_dir,
        "database_url": database_url or None,
        "audit_dir": audit_dir,
        "strategies_dir": strategies_dir,
        "marketplace_dir": marketplace_dir,
        "features_dir": features_dir,
        "monitor_dir": monitor_dir,
    }
    for name, value in given.items():  # options override the environment's settings
        if value is not None:
            setattr(settings, name, value)
    app = create_app(settings)
    if model:
        app.state.scoring_model_uri = model
    if snapshot is not None:
        app.state.scoring_snapshot_dir = snapshot
    typer.echo(f"govrisk review service on http://{host}:{port}/ (API docs at /docs)")
    # uvicorn's defaults pick httptools and uvloop (project dependencies) over the pure-Python
    # h11 parser and the stock asyncio loop: about 0.15 ms less server CPU per request.
    uvicorn.run(app, host=host, port=port, workers=1, log_level=log_level, access_log=access_log)


def score(
    input_path: Annotated[
        Path, typer.Option("--input", help="Parquet scoring frame (`govrisk features build`).")
    ],
    output_path: Annotated[
        Path, typer.Option("--output", help="Output folder of Parquet part files.")
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="models:/NAME@champion, models:/NAME/VERSION, runs:/ID/bundle or a bundle "
            "directory; default GOVRISK_MODEL_URI.",
        ),
    ] = None,
    explain: Annotated[int, typer.Option("--explain", help="Top-K reasons per row (0: none).")] = 0,
    chunk_rows: Annotated[
        int | None, typer.Option("--chunk-rows", help="Rows per chunk (bounds memory).")
    ] = None,
    engine: Annotated[str, typer.Option("--engine", help="local or dask.")] = "local",
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Dask scheduler address (default: a LocalCluster)."),
    ] = None,
    id_column: Annotated[str, typer.Option("--id-column", help="Item id column.")] = "item_id",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a previous run in --output.")
    ] = False,
    unknown_categories: Annotated[
        str,
        typer.Option(
            "--unknown-categories",
            help="quarantine: rows with a category the model never saw go to the quarantine; "
            "missing: score them as a missing category (a model trained on a small sample has "
            "not seen every value).",
        ),
    ] = "quarantine",
    frame: Annotated[
        str | None,
        typer.Option(
            "--frame",
            help="With a partitioned feature build as --input: the frame to score "
            "(listing, video, live, seller); runs on Dask into OUTPUT/part-*/.",
        ),
    ] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Score a Parquet feature frame in chunks: probabilities, risk bands, top-K reasons.

    Re-running after a crash resumes from the completed chunks; rows failing validation go to
    OUTPUT/_quarantine with the reason. A partitioned feature build (`--input` folder of
    part-*/, with `--frame`) is scored partition by partition on one Dask cluster.
    """
    uri = _checked_score_options(model, engine, unknown_categories)
    if input_path.is_dir() or frame is not None:
        _score_partitioned(
            input_path,
            output_path,
            uri,
            frame,
            explain,
            chunk_rows,
            scheduler,
            overwrite,
            unknown_categories,
            tracking_uri,
        )
        return
    _score_single(
        input_path,
        output_path,
        uri,
        explain=explain,
        chunk_rows=chunk_rows,
        engine=engine,
        scheduler=scheduler,
        id_column=id_column,
        overwrite=overwrite,
        unknown_categories=unknown_categories,
        tracking_uri=tracking_uri,
    )


def _checked_score_options(model: str | None, engine: str, unknown_categories: str) -> str:
    """The model URI to score with, after checking the options' values."""
    from serving.settings import get_settings

    uri = model or get_settings().model_uri
    if not uri:
        raise typer.BadParameter("give --model URI or set GOVRISK_MODEL_URI", param_hint="--model")
    if engine not in ("local", "dask"):
        raise typer.BadParameter("must be local or dask", param_hint="--engine")
    if unknown_categories not in ("quarantine", "missing"):
        raise typer.BadParameter("must be quarantine or missing", param_hint="--unknown-categories")
    return uri


def _score_single(
    input_path: Path,
    output_path: Path,
    uri: str,
    *,
    explain: int,
    chunk_rows: int | None,
    engine: str,
    scheduler: str | None,
    id_column: str,
    overwrite: bool,
    unknown_categories: str,
    tracking_uri: str | None,
) -> None:
    """`govrisk score` of one Parquet frame, with a progress bar over its rows."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from serving.batch import BatchError, open_input, score_file
    from serving.settings import get_settings

    console = Console(stderr=True)
    try:
        total = open_input(input_path).metadata.num_rows
    except BatchError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    bundle = _load_or_exit(uri, tracking_uri=tracking_uri, console=console)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("scoring rows", total=total)
        try:
            summary = score_file(
                bundle,
                input_path,
                output_path,
                explain_k=explain,
                chunk_rows=chunk_rows or get_settings().batch_chunk_rows,
                engine="dask" if engine == "dask" else "local",
                scheduler=scheduler,
                id_column=id_column,
                unknown_categories="missing" if unknown_categories == "missing" else "quarantine",
                overwrite=overwrite,
                model_uri=uri,
                on_chunk=lambda chunk: progress.advance(task, chunk.rows_read),
            )
        except BatchError as exc:
            console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
            raise typer.Exit(2) from None
    Console().print(_summary_table(summary, uri))


def _score_partitioned(
    features: Path,
    output: Path,
    uri: str,
    frame: str | None,
    explain: int,
    chunk_rows: int | None,
    scheduler: str | None,
    overwrite: bool,
    unknown_categories: str,
    tracking_uri: str | None,
) -> None:
    """`govrisk score` of a partitioned feature build."""
    from rich.console import Console

    from features.vocabulary import Entity
    from serving.batch import BatchError, partition_frames, score_partitioned
    from serving.settings import get_settings

    settings = get_settings()
    if frame not in {e.value for e in Entity}:
        raise typer.BadParameter(
            "a partitioned feature build needs --frame listing, video, live or seller",
            param_hint="--frame",
        )
    console = Console(stderr=True)
    try:
        n_parts = len(partition_frames(features, frame))
    except BatchError as exc:
        raise click.ClickException(str(exc)) from None
    bundle = _load_or_exit(uri, tracking_uri=tracking_uri, console=console)
    console.print(f"scoring {n_parts} partitions of {features} on Dask")
    try:
        summary = score_partitioned(
            bundle,
            features,
            frame,
            output,
            scheduler=scheduler,
            explain_k=explain,
            chunk_rows=chunk_rows or settings.batch_chunk_rows,
            unknown_categories="missing" if unknown_categories == "missing" else "quarantine",
            overwrite=overwrite,
            model_uri=uri,
        )
    except (BatchError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    Console().print(_summary_table(summary, uri))


def _summary_table(summary: BatchSummary, uri: str) -> Table:
    """What a scoring run did, for people: rows, reconciliation, bands, speed and outputs."""
    from rich.table import Table

    table = Table(title=f"govrisk score · {uri}")
    table.add_column("")
    table.add_column("value", justify="right")
    rate = summary.rows_read / summary.seconds if summary.seconds > 0 else 0.0
    for label, value in (
        ("rows read", f"{summary.rows_read:,}"),
        ("rows scored", f"{summary.rows_scored:,}"),
        ("rows quarantined", f"{summary.rows_quarantined:,}"),
        ("read = scored + quarantined", "yes" if summary.reconciles else "NO"),
        *((f"band {k}", f"{v:,}") for k, v in summary.band_counts.items()),
        ("chunks (resumed)", f"{summary.chunks} ({summary.chunks_resumed})"),
        ("seconds", f"{summary.seconds:.1f}"),
        ("rows/s", f"{rate:,.0f}"),
        ("scores", str(summary.output_path)),
        ("quarantine", str(summary.quarantine_path)),
    ):
        table.add_row(label, value)
    return table


def _load_or_exit(uri: str, *, tracking_uri: str | None, console: Console) -> ModelBundle:
    """The bundle at `uri`, or one line naming what is missing and exit code 2."""
    from models.bundle import BundleError
    from models.pyfunc import load_bundle

    if uri.startswith(("models:", "runs:")):
        require_tracking_store(tracking_uri)
    try:
        return load_bundle(uri)
    except BundleError as err:
        console.print(f"[red]error:[/red] {_first_line(err)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def register(app: typer.Typer) -> None:
    """Add this package's subcommands to the root app."""
    app.command("serve")(serve)
    app.command("score")(score)
