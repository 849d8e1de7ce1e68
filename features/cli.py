"""`govrisk features ...` and `govrisk data ...` subcommands owned by the `features` package."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

data_app = typer.Typer(help="Check input tables against the data contract.", no_args_is_help=True)


@data_app.command("validate")
def validate(
    data: Annotated[Path, typer.Option("--data", help="Data directory holding tables/*.parquet.")],
) -> None:
    """Load every contract table from DATA and report contract violations (exit 1 if any)."""
    from features.contract import ContractError, find_future_problems
    from features.loader import DataDirectoryNotFoundError, UnreadableTableError, load_tables

    console = Console()
    try:
        tables = load_tables(data)
    except ContractError as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(1) from err
    except (UnreadableTableError, DataDirectoryNotFoundError) as err:  # nothing to validate
        raise click.ClickException(str(err)) from None
    future = find_future_problems(tables, now=datetime.now(UTC))
    if future:
        console.print(f"[red]{ContractError(future)}[/red]")
        raise typer.Exit(1)
    summary = Table(title=f"Contract tables in {data}")
    summary.add_column("table")
    summary.add_column("rows", justify="right")
    for name, df in tables.items():
        summary.add_row(name, f"{len(df):,}")
    console.print(summary)
    console.print("[green]All tables conform to the data contract.[/green]")


@data_app.command("import")
def import_export(
    mapping: Annotated[
        Path,
        typer.Option(
            "--mapping",
            help="YAML mapping file: per contract table, the exported file, column names, "
            "category values and time zone (docs/data-contract.md: Importing an export).",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Data directory to write tables/ into.")],
) -> None:
    """Turn an export into contract tables: refused rows go to OUT/quarantine with reasons."""
    from features.importer import MappingError, import_tables, read_mapping, write_import

    console = Console()
    try:
        results = import_tables(read_mapping(mapping))
    except MappingError as err:
        Console(stderr=True).print(f"[red]error:[/red] {err}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    write_import(results, out)
    summary = Table(title=f"Imported into {out}")
    for col in ("table", "read", "imported", "quarantined", "note"):
        summary.add_column(col, justify="left" if col in ("table", "note") else "right")
    for name, r in results.items():
        summary.add_row(
            name,
            f"{r.rows_read:,}",
            f"{r.rows_imported:,}",
            f"{len(r.quarantined):,}",
            escape(r.note or _top_reason(r.quarantined)),
        )
    console.print(summary)
    console.print(f"Check them with `govrisk data validate --data {out}`.")


def _top_reason(quarantined: object) -> str:
    """The most frequent reason rows were refused, for the summary."""
    import pandas as pd

    assert isinstance(quarantined, pd.DataFrame)
    if not len(quarantined):
        return ""
    reasons = quarantined["reasons"].str.split("; ").explode()
    top = reasons.value_counts()
    return f"most often: {top.index[0]} ({top.iloc[0]:,})"


@data_app.command("partition")
def partition(
    data: Annotated[Path, typer.Option("--data", help="Data directory holding tables/*.parquet.")],
    out: Annotated[
        Path, typer.Option("--out", help="Partitioned data directory to write (part-*/tables/).")
    ],
    parts: Annotated[int, typer.Option("--parts", min=1, help="Number of partitions.")],
) -> None:
    """Split DATA into seller-closed partitions (each seller with everything it owns) that
    `govrisk features build`, `score` and `audit` run on Dask, one task per partition."""
    import shutil

    from features.contract import ContractError
    from features.loader import load_tables
    from features.partitioned import PartitionError, write_partitioned

    if out.exists() and any(out.iterdir()):
        raise click.ClickException(f"{out} is not empty; choose a new folder")
    try:
        tables = load_tables(data)
        folders = write_partitioned(out, tables, parts)
    except (ContractError, PartitionError) as err:
        raise click.ClickException(str(err)) from err
    if (data / "strategies").is_dir():
        shutil.copytree(data / "strategies", out / "strategies")
    summary = Table(title=f"{len(folders)} partitions of {data} in {out}")
    summary.add_column("partition")
    for name in ("sellers", "listings", "channel_exposure"):
        summary.add_column(name, justify="right")
    from features.loader import read_table

    for folder in folders:
        counts = [
            f"{len(read_table(folder, n)):,}" for n in ("sellers", "listings", "channel_exposure")
        ]
        summary.add_row(folder.name, *counts)
    Console().print(summary)


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


features_app = typer.Typer(
    help="Build feature frames, list and document features, featurize your own data.",
    no_args_is_help=True,
)


def _as_of(value: str | None) -> datetime | None:
    from features.columns import parse_time

    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as err:
        raise typer.BadParameter(f"--as-of {value!r} is not an ISO 8601 time") from err


@features_app.command("build")
def build(
    data: Annotated[
        Path,
        typer.Option("--data", help="Data directory: tables/*.parquet and strategies/*.yaml."),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Output directory for frames, snapshot and manifest.")
    ],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Cutoff (ISO 8601, UTC). Default: midnight after the latest input timestamp.",
        ),
    ] = None,
    entity: Annotated[
        list[str] | None,
        typer.Option("--entity", help="Build only this frame (repeatable). Default: all."),
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", help="DuckDB threads (default: settings).")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Partitioned DATA only: Dask scheduler address (default: a LocalCluster).",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Partitioned DATA: LocalCluster workers."),
    ] = None,
) -> None:
    """Build the scoring frames, the feature snapshot and a manifest from DATA into OUT.

    Every input is validated first (missing tables, contract violations, strategies naming
    unknown features); on any problem nothing is written. A partitioned DATA (`govrisk data
    partition`) is built on Dask, one task per partition, into OUT/part-*/.
    """
    from features.partitioned import is_partitioned

    if is_partitioned(data):
        _build_partitioned(data, out, _as_of(as_of), entity, scheduler, workers)
        return
    if scheduler is not None or workers is not None:
        raise typer.BadParameter(
            f"{data} is one data directory, built in one process; split it with "
            "`govrisk data partition` to build it on Dask",
            param_hint="--scheduler/--workers",
        )
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from features.contract import ContractError
    from features.job import JOB_STEPS, InputError, run_build
    from features.vocabulary import Entity

    console = Console()
    cutoff = _as_of(as_of)
    entities = tuple(entity) if entity else tuple(Entity)
    progress = Progress(
        TextColumn("{task.description:<32}"), BarColumn(), TimeElapsedColumn(), console=console
    )
    try:
        with progress:
            task = progress.add_task(JOB_STEPS[0], total=len(JOB_STEPS))

            def on_step(name: str) -> None:
                progress.update(task, description=name, completed=JOB_STEPS.index(name))

            result = run_build(
                data, out, as_of=cutoff, entities=entities, threads=threads, on_step=on_step
            )
            progress.update(task, completed=len(JOB_STEPS), description="done")
    except (InputError, ContractError, ValueError) as err:
        raise click.ClickException(f"{err} (nothing was written)") from err
    summary = Table(title=f"Feature frames as of {result.build.as_of}")
    summary.add_column("frame")
    summary.add_column("rows", justify="right")
    summary.add_column("features", justify="right")
    for ent, frame in result.build.frames.items():
        summary.add_row(ent.value, f"{len(frame):,}", str(frame.shape[1] - 1))
    console.print(summary)
    for path in result.paths:
        console.print(f"wrote {path}", soft_wrap=True)


def _build_partitioned(
    data: Path,
    out: Path,
    as_of: datetime | None,
    entity: list[str] | None,
    scheduler: str | None,
    workers: int | None,
) -> None:
    """`features build` of a partitioned data directory, with a bar over partitions."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from features.cluster import dask_client
    from features.contract import ContractError
    from features.job import InputError
    from features.partitioned import PartitionError, build_partitioned, partitions
    from features.vocabulary import Entity

    console = Console()
    try:
        n_parts = len(partitions(data))
        with (
            dask_client(scheduler, n_workers=workers) as client,
            Progress(
                "{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress,
        ):
            task = progress.add_task("building partitions", total=n_parts)
            built = build_partitioned(
                data,
                out,
                client=client,
                as_of=as_of,
                entities=tuple(entity) if entity else tuple(Entity),
                on_partition=lambda _b: progress.advance(task),
            )
    except (InputError, ContractError, PartitionError, ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    summary = Table(title=f"Feature frames of {len(built)} partitions in {out}")
    summary.add_column("partition")
    frames = sorted({name for b in built for name in b.rows})
    for name in frames:
        summary.add_column(name, justify="right")
    summary.add_column("seconds", justify="right")
    summary.add_column("worker peak GB", justify="right")
    for b in built:
        summary.add_row(
            b.partition,
            *(f"{b.rows.get(n, 0):,}" for n in frames),
            f"{b.seconds:.1f}",
            f"{b.worker_peak_bytes / 1e9:.2f}",
        )
    console.print(summary)


@features_app.command("list")
def list_features(
    entity: Annotated[
        str | None, typer.Option("--entity", help="Only this frame: listing, video, live, seller.")
    ] = None,
) -> None:
    """Print every feature of the scoring frames: name, kind, unit, set and description."""
    from features.catalog import FRAMES
    from features.vocabulary import Entity

    console = Console()
    if entity is not None and entity not in {e.value for e in Entity}:
        choices = ", ".join(e.value for e in Entity)
        raise typer.BadParameter(f"unknown entity {entity!r}; choose from {choices}")
    for ent, spec in FRAMES.items():
        if entity is not None and ent.value != entity:
            continue
        table = Table(title=f"{ent.value} frame ({len(spec.features())} features)")
        table.add_column("feature", no_wrap=True)
        for column in ("kind", "unit", "set", "description"):
            table.add_column(column)
        for part in spec.parts:
            for feature in part.features():
                table.add_row(
                    feature.name,
                    feature.kind,
                    feature.unit,
                    f"{part.feature_set.name} v{part.feature_set.version}",
                    feature.description,
                )
        console.print(table)


@features_app.command("docs")
def feature_docs(
    out: Annotated[
        Path, typer.Option("--out", help="Where to write the Markdown reference.")
    ] = Path("docs/features.md"),
) -> None:
    """Regenerate the feature reference (docs/features.md) from the declarations."""
    from features.feature_docs import render_features_markdown

    out.write_text(render_features_markdown())
    Console().print(f"wrote {out}")


def _overrides(values: list[str] | None) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for value in values or []:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise typer.BadParameter(f"--table expects NAME=PATH, got {value!r}")
        out[name] = Path(path)
    return out


@features_app.command("byo")
def byo(
    spec: Annotated[Path, typer.Option("--spec", help="Dataset spec (YAML).")],
    out: Annotated[Path, typer.Option("--out", help="Output directory.")],
    base_dir: Annotated[
        Path | None,
        typer.Option("--base-dir", help="Resolve the spec's relative paths here (default: cwd)."),
    ] = None,
    table: Annotated[
        list[str] | None,
        typer.Option("--table", help="Read table NAME from PATH instead (NAME=PATH, repeatable)."),
    ] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Keep only rows strictly before this time.")
    ] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", help="DuckDB threads (default: settings).")
    ] = None,
) -> None:
    """Featurize your own tables as declared in a dataset spec (bring your own data)."""
    from features.byo import SpecError, build_dataset, load_spec
    from features.store import write_dataset

    console = Console()
    try:
        dataset_spec = load_spec(spec)
        with console.status(f"building {dataset_spec.name} features"):
            dataset = build_dataset(
                dataset_spec,
                base_dir=base_dir,
                overrides=_overrides(table),
                as_of=_as_of(as_of),
                threads=threads,
            )
    except SpecError as err:
        raise click.ClickException(str(err)) from err
    paths = write_dataset(dataset, out)
    summary = Table(title=f"{dataset_spec.name}: {dataset_spec.entity} features")
    summary.add_column("rows", justify="right")
    summary.add_column("features", justify="right")
    summary.add_column("label")
    summary.add_column("governance")
    gov = dataset_spec.governance
    summary.add_row(
        f"{len(dataset.frame):,}",
        str(len(dataset.feature_set.features)),
        dataset_spec.rows.label or "-",
        "-" if gov is None else f"{gov.entity.value} / {gov.policy.value}",
    )
    console.print(summary)
    for path in paths:
        console.print(f"wrote {path}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add this package's subcommands to the root app."""
    app.add_typer(data_app, name="data")
    app.add_typer(features_app, name="features")
