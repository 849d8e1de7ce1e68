"""Batch scoring of a Parquet feature frame: chunked, resumable, optionally on Dask.

The input is read in chunks of `chunk_rows` rows, so memory stays bounded whatever its size.
Each chunk is validated against the bundle's feature declaration; rows that cannot be scored go
to `OUTPUT/_quarantine/part-NNNNN.parquet` with the reason, the rest are scored (and explained)
into `OUTPUT/part-NNNNN.parquet`. A chunk's files are written under temporary names and renamed
into place, then the chunk is recorded in `OUTPUT/_manifest.json` (also replaced atomically), so
a run that crashes can be re-run: completed chunks are skipped and a half-written chunk is
written again under the same name, never twice. Names starting with `_` keep the quarantine
and the manifest out of `pd.read_parquet(OUTPUT)`.

With the Dask engine every chunk is a task that reads its own row range and writes its own
files; the parts are byte-for-byte the same as the local engine's.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.bundle import TEXT_PHRASES_PER_REASON, ModelBundle
from models.encoding import EncodingError
from serving.risk_bands import BandTable, RiskBandError, assign_bands, bundle_bands
from serving.scoring_contract import frame_problems, model_inputs

Engine = Literal["local", "dask"]
#: What batch scoring does with a category the model never saw.
UnknownCategories = Literal["quarantine", "missing"]

MANIFEST_NAME = "_manifest.json"
QUARANTINE_DIR = "_quarantine"
_MANIFEST_VERSION = 1
_READ_BATCH_ROWS = 16_384

REASON_TYPE = pa.struct(
    [
        ("feature", pa.string()),
        ("description", pa.string()),
        ("value", pa.float64()),
        ("category", pa.string()),
        ("contribution", pa.float64()),
    ]
)
#: A phrase of a text score reason (`models.text_model.Phrase.to_dict`).
PHRASE_TYPE = pa.struct(
    [
        ("text", pa.string()),
        ("contribution", pa.float64()),
        ("field", pa.string()),
        (
            "spans",
            pa.list_(
                pa.struct([("field", pa.string()), ("start", pa.int64()), ("end", pa.int64())])
            ),
        ),
    ]
)
#: Reasons of a bundle with text models: REASON_TYPE plus the text model's phrases.
TEXT_REASON_TYPE = pa.struct([*REASON_TYPE, ("phrases", pa.list_(PHRASE_TYPE))])


class BatchError(ValueError):
    """The batch cannot run as asked; the message says why and what to change."""


@dataclass(frozen=True)
class ChunkResult:
    """Counts of one finished chunk."""

    index: int
    rows_read: int
    rows_scored: int
    rows_quarantined: int
    skipped: bool = False


@dataclass(frozen=True)
class _ChunkRecord(ChunkResult):
    """A chunk's counts plus its risk band counts (kept in the manifest)."""

    band_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchSummary:
    """What a batch run read, scored and quarantined, and where it wrote."""

    rows_read: int
    rows_scored: int
    rows_quarantined: int
    chunks: int
    chunks_resumed: int
    seconds: float
    output_path: Path
    quarantine_path: Path
    band_counts: dict[str, int] = field(default_factory=dict)

    @property
    def reconciles(self) -> bool:
        """Whether every row read was either scored or quarantined."""
        return self.rows_read == self.rows_scored + self.rows_quarantined


@dataclass(frozen=True)
class _Options:
    """Everything a chunk task needs besides the bundle and the rows."""

    id_column: str
    explain_k: int
    bands: tuple[tuple[str, float], ...]
    output_dir: str
    unknown_categories: UnknownCategories = "quarantine"
    #: Row number -> row number of the first row with the same id, for every later repeat.
    duplicates: Mapping[int, int] = field(default_factory=dict)


def score_file(
    bundle: ModelBundle,
    input_path: Path | str,
    output_path: Path | str,
    *,
    explain_k: int = 0,
    chunk_rows: int = 100_000,
    engine: Engine = "local",
    scheduler: str | None = None,
    id_column: str = "item_id",
    risk_bands: Mapping[str, float] | None = None,
    unknown_categories: UnknownCategories = "quarantine",
    overwrite: bool = False,
    model_uri: str | None = None,
    on_chunk: Callable[[ChunkResult], None] | None = None,
) -> BatchSummary:
    """Score every row of a Parquet feature frame into a Parquet dataset at `output_path`.

    Re-running with the same input, model and options resumes an interrupted run. `risk_bands`
    maps band name -> lowest probability (default: the bundle's, else serving settings).
    `unknown_categories`: quarantine rows with a category the model never saw, or score them
    as missing (what the model does with a missing category).
    """

    bands = _check_options(
        bundle, explain_k=explain_k, chunk_rows=chunk_rows, engine=engine, risk_bands=risk_bands
    )
    plan = _plan_batch(
        bundle,
        Path(input_path),
        Path(output_path),
        chunk_rows=chunk_rows,
        id_column=id_column,
        explain_k=explain_k,
        bands=bands,
        unknown_categories=unknown_categories,
    )
    manifest = _open_batch_manifest(bundle, plan, overwrite=overwrite, model_uri=model_uri)
    started = time.perf_counter()
    done = _replay_done(manifest, on_chunk)
    if engine == "local":
        _run_local(bundle, plan, skip=done, manifest=manifest, on_chunk=on_chunk)
    else:
        _run_dask(
            bundle,
            plan.input_path,
            [i for i in range(plan.n_chunks) if i not in done],
            columns=plan.columns,
            chunk_rows=plan.chunk_rows,
            n_rows=plan.n_rows,
            options=plan.options,
            scheduler=scheduler,
            manifest=manifest,
            on_chunk=on_chunk,
        )
    summary = _reconciled_summary(manifest, plan, n_resumed=len(done), started=started)
    manifest["completed"] = True
    _write_json_atomic(plan.output_dir / MANIFEST_NAME, manifest)
    return summary


def partition_frames(features_dir: Path | str, frame: str) -> list[Path]:
    """The `frame` file of every partition of a partitioned feature build, in order."""
    from features.partitioned import PARTITION_GLOB

    root = Path(features_dir)
    found = sorted(root.glob(f"{PARTITION_GLOB}/{frame}.parquet"))
    if not found:
        raise BatchError(
            f"{root} holds no {PARTITION_GLOB}/{frame}.parquet; build it with "
            "`govrisk features build` on a partitioned data directory"
        )
    return found


def score_partitioned(
    bundle: ModelBundle,
    features_dir: Path | str,
    frame: str,
    output_path: Path | str,
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    **options: Any,
) -> BatchSummary:
    """`score_file` of every partition's `frame` into `output_path/<partition>/`, on one Dask
    cluster (`scheduler`, else a LocalCluster of `n_workers`); `options` go to `score_file`."""
    from features.cluster import dask_client

    inputs = partition_frames(features_dir, frame)
    out = Path(output_path)
    summaries = []
    started = time.perf_counter()
    with dask_client(scheduler, n_workers=n_workers) as client:
        for path in inputs:
            summaries.append(
                score_file(
                    bundle,
                    path,
                    out / path.parent.name,
                    engine="dask",
                    scheduler=client.scheduler.address,
                    **options,
                )
            )
    bands: dict[str, int] = {}
    for summary in summaries:
        for band, n in summary.band_counts.items():
            bands[band] = bands.get(band, 0) + n
    return BatchSummary(
        rows_read=sum(s.rows_read for s in summaries),
        rows_scored=sum(s.rows_scored for s in summaries),
        rows_quarantined=sum(s.rows_quarantined for s in summaries),
        chunks=sum(s.chunks for s in summaries),
        chunks_resumed=sum(s.chunks_resumed for s in summaries),
        seconds=time.perf_counter() - started,
        output_path=out,
        quarantine_path=out / f"part-*/{QUARANTINE_DIR}",
        band_counts=bands,
    )


@dataclass(frozen=True)
class _Plan:
    """A batch run's input, output, chunking and chunk options, fixed before any chunk runs."""

    input_path: Path
    output_dir: Path
    parquet: pq.ParquetFile
    n_rows: int
    chunk_rows: int
    n_chunks: int
    columns: list[str]
    options: _Options


def _plan_batch(
    bundle: ModelBundle,
    input_path: Path,
    output_dir: Path,
    *,
    chunk_rows: int,
    id_column: str,
    explain_k: int,
    bands: BandTable,
    unknown_categories: UnknownCategories,
) -> _Plan:
    """Open the input, check its schema, count its chunks and find its repeated ids."""
    parquet = open_input(input_path)
    _check_schema(parquet.schema_arrow, bundle, id_column=id_column)
    n_rows = parquet.metadata.num_rows
    return _Plan(
        input_path=input_path,
        output_dir=output_dir,
        parquet=parquet,
        n_rows=n_rows,
        chunk_rows=chunk_rows,
        n_chunks=max(1, math.ceil(n_rows / chunk_rows)),
        columns=[id_column, *_input_columns(bundle)],
        options=_Options(
            id_column=id_column,
            explain_k=explain_k,
            bands=bands,
            output_dir=str(output_dir),
            unknown_categories=unknown_categories,
            duplicates=_duplicate_rows(parquet, id_column),
        ),
    )


def _open_batch_manifest(
    bundle: ModelBundle, plan: _Plan, *, overwrite: bool, model_uri: str | None
) -> dict[str, Any]:
    """The run's manifest: a new one, or the earlier run's when input, model and options match."""
    manifest = _open_manifest(
        plan.output_dir,
        expected={
            "input": _input_identity(plan.input_path, plan.parquet),
            "model": {"fingerprint": bundle.fingerprint},
            "options": {
                "chunk_rows": plan.chunk_rows,
                "explain_k": plan.options.explain_k,
                "id_column": plan.options.id_column,
                "unknown_categories": plan.options.unknown_categories,
            },
            "chunks_total": plan.n_chunks,
        },
        overwrite=overwrite,
    )
    manifest.setdefault("model_uri", model_uri)  # informative only: runs compare fingerprints
    return manifest


def _run_local(
    bundle: ModelBundle,
    plan: _Plan,
    *,
    skip: set[int],
    manifest: dict[str, Any],
    on_chunk: Callable[[ChunkResult], None] | None,
) -> None:
    """Score the chunks not in `skip` one after another in this process."""
    chunks = _iter_chunks(plan.parquet, plan.columns, chunk_rows=plan.chunk_rows, skip=skip)
    for index, table in chunks:
        result = _score_chunk(
            bundle, table, index=index, first_row=index * plan.chunk_rows, options=plan.options
        )
        _record_chunk(plan.output_dir, manifest, result)
        if on_chunk is not None:
            on_chunk(result)


def _check_options(
    bundle: ModelBundle,
    *,
    explain_k: int,
    chunk_rows: int,
    engine: Engine,
    risk_bands: Mapping[str, float] | None,
) -> BandTable:
    """Validate the batch options; returns the risk bands to assign."""
    if chunk_rows < 1:
        raise BatchError(f"chunk_rows must be >= 1, got {chunk_rows}")
    if not 0 <= explain_k <= len(bundle.feature_names):
        raise BatchError(f"explain_k must be between 0 and {len(bundle.feature_names)}")
    if engine not in ("local", "dask"):
        raise BatchError(f"engine must be 'local' or 'dask', got {engine!r}")
    try:
        return bundle_bands(bundle, risk_bands)
    except RiskBandError as err:
        raise BatchError(str(err)) from err


def _replay_done(
    manifest: dict[str, Any], on_chunk: Callable[[ChunkResult], None] | None
) -> set[int]:
    """Indexes of the chunks an earlier run completed, each reported to `on_chunk` as skipped."""
    done = {int(k) for k in manifest["chunks"]}
    for index in sorted(done):
        record = manifest["chunks"][f"{index:05d}"]
        if on_chunk is not None:
            on_chunk(
                ChunkResult(
                    index,
                    record["rows_read"],
                    record["rows_scored"],
                    record["rows_quarantined"],
                    skipped=True,
                )
            )
    return done


def _reconciled_summary(
    manifest: dict[str, Any], plan: _Plan, *, n_resumed: int, started: float
) -> BatchSummary:
    """Totals over every chunk in the manifest; raises unless each input row was read once
    and either scored or quarantined."""
    records = manifest["chunks"].values()
    summary = BatchSummary(
        rows_read=sum(r["rows_read"] for r in records),
        rows_scored=sum(r["rows_scored"] for r in records),
        rows_quarantined=sum(r["rows_quarantined"] for r in records),
        chunks=plan.n_chunks,
        chunks_resumed=n_resumed,
        seconds=time.perf_counter() - started,
        output_path=plan.output_dir,
        quarantine_path=plan.output_dir / QUARANTINE_DIR,
        band_counts=_sum_bands(records),
    )
    if summary.rows_read != plan.n_rows or not summary.reconciles:
        raise BatchError(
            f"counts do not reconcile: input has {plan.n_rows} rows, read {summary.rows_read}, "
            f"scored {summary.rows_scored}, quarantined {summary.rows_quarantined}"
        )
    return summary


# -- reading ------------------------------------------------------------------------------------


def _duplicate_rows(parquet: pq.ParquetFile, id_column: str) -> dict[int, int]:
    """Row number -> first row number with the same id, for every repeated id after its first.

    One pass over the id column alone, before any chunk is scored, so a repeat is found
    whichever chunk (or Dask task) holds it and a resumed run finds the same ones.
    """
    ids = parquet.read(columns=[id_column]).column(id_column).to_pandas()
    repeated = ids.duplicated(keep="first") & ids.notna()
    if not repeated.any():
        return {}
    first = ids[ids.notna() & ~ids.duplicated(keep="first")]
    first_row = pd.Series(first.index.to_numpy(), index=first.to_numpy())
    rows = np.flatnonzero(repeated.to_numpy())
    return {int(r): int(first_row[ids.iloc[r]]) for r in rows}


def _check_schema(schema: pa.Schema, bundle: ModelBundle, *, id_column: str) -> None:
    problems: list[str] = []
    names = set(schema.names)
    if id_column not in names:
        problems.append(f"column {id_column!r} (item id) is missing; pass --id-column")
    encoder = bundle.encoder
    for col in encoder.categorical:
        if col not in names:
            problems.append(f"column {col!r} is missing (categorical feature)")
        elif not _arrow_is_text(schema.field(col).type):
            problems.append(
                f"column {col!r} must hold text categories, got {schema.field(col).type}"
            )
    for col in bundle.text_fields:
        if col not in names:
            problems.append(
                f"column {col!r} is missing (raw text the model's text models read; add the "
                f"contract table's {col!r} column to the input, joined on the item id)"
            )
        elif not (
            _arrow_is_text(schema.field(col).type) or pa.types.is_null(schema.field(col).type)
        ):
            problems.append(f"column {col!r} must hold text, got {schema.field(col).type}")
    for col in encoder.numeric:
        if col in bundle.text_models:
            continue  # computed from the raw text fields
        if col not in names:
            problems.append(f"column {col!r} is missing (numeric feature)")
        else:
            kind = schema.field(col).type
            if not (
                pa.types.is_integer(kind)
                or pa.types.is_floating(kind)
                or pa.types.is_boolean(kind)
                or pa.types.is_null(kind)
                or pa.types.is_decimal(kind)
            ):
                problems.append(f"column {col!r} must hold numbers or booleans, got {kind}")
    if problems:
        raise BatchError(
            "the input does not match the model's feature declaration:\n  " + "\n  ".join(problems)
        )


def _input_columns(bundle: ModelBundle) -> list[str]:
    """Columns read from the input: the features, with raw text instead of text scores."""
    features = [n for n in bundle.feature_names if n not in bundle.text_models]
    return [*features, *(f for f in bundle.text_fields if f not in features)]


def open_input(path: Path | str) -> pq.ParquetFile:
    """A streaming reader of a Parquet input (BatchError naming the file when unreadable).

    Without pre-buffering a reader holds about one row group at a time.
    """
    path = Path(path)
    if not path.is_file():
        raise BatchError(f"input {path} does not exist or is not a Parquet file")
    try:
        return pq.ParquetFile(path, pre_buffer=False)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BatchError(
            f"input {path} is not a readable Parquet file ({str(exc).splitlines()[0]}); "
            "write it again with `govrisk features build` or pandas.DataFrame.to_parquet"
        ) from None


def _arrow_is_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_string_view(kind)
        or pa.types.is_null(kind)
    )


def _iter_chunks(
    parquet: pq.ParquetFile, columns: list[str], *, chunk_rows: int, skip: set[int]
) -> Iterator[tuple[int, pa.Table]]:
    """Consecutive chunks of exactly `chunk_rows` rows (the last may be shorter), streamed."""
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    index = 0
    batch_rows = min(_READ_BATCH_ROWS, chunk_rows)
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
        while batch.num_rows:
            take = min(batch.num_rows, chunk_rows - pending_rows)
            if index not in skip:
                pending.append(batch.slice(0, take))
            pending_rows += take
            batch = batch.slice(take)
            if pending_rows == chunk_rows:
                if index not in skip:
                    yield index, pa.Table.from_batches(pending)
                pending, pending_rows, index = [], 0, index + 1
    if pending_rows or index == 0:
        if index not in skip:
            table = (
                pa.Table.from_batches(pending)
                if pending
                else parquet.schema_arrow.empty_table().select(columns)
            )
            yield index, table


def _read_range(path: Path, columns: list[str], start: int, stop: int) -> pa.Table:
    """Rows [start, stop) of a Parquet file, reading only the row groups that hold them."""
    parquet = open_input(path)
    groups: list[int] = []
    offset = 0
    first = 0
    for g in range(parquet.metadata.num_row_groups):
        size = parquet.metadata.row_group(g).num_rows
        if offset + size > start and offset < stop:
            if not groups:
                first = offset
            groups.append(g)
        offset += size
    if not groups:
        return parquet.schema_arrow.empty_table().select(columns)
    pieces: list[pa.RecordBatch] = []
    position = first
    batch_rows = min(_READ_BATCH_ROWS, max(stop - start, 1))
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns, row_groups=groups):
        lo = max(start - position, 0)
        hi = min(stop - position, batch.num_rows)
        if hi > lo:
            pieces.append(batch.slice(lo, hi - lo))
        position += batch.num_rows
        if position >= stop:
            break
    return pa.Table.from_batches(pieces)


# -- scoring one chunk --------------------------------------------------------------------------


def _score_chunk(
    bundle: ModelBundle, table: pa.Table, *, index: int, first_row: int, options: _Options
) -> _ChunkRecord:
    """Validate, score, explain and write one chunk; returns its counts."""
    scored, quarantined, bands = _compute_chunk(bundle, table, first_row=first_row, options=options)
    output_dir = Path(options.output_dir)
    name = f"part-{index:05d}.parquet"
    _write_parquet_atomic(scored, output_dir / name)
    quarantine_file = output_dir / QUARANTINE_DIR / name
    if quarantined.num_rows:
        _write_parquet_atomic(quarantined, quarantine_file)
    elif quarantine_file.exists():
        quarantine_file.unlink()
    return _ChunkRecord(
        index=index,
        rows_read=table.num_rows,
        rows_scored=scored.num_rows,
        rows_quarantined=quarantined.num_rows,
        band_counts=bands,
    )


def _compute_chunk(
    bundle: ModelBundle, table: pa.Table, *, first_row: int, options: _Options
) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    frame = bundle.with_text_scores(table.to_pandas())
    ids = frame[options.id_column]
    reasons = bundle.encoder.row_problems(frame).to_numpy(dtype=object)
    contract = frame_problems(
        model_inputs(bundle),
        frame,
        unknown_categories=options.unknown_categories == "quarantine",
    )
    reasons = np.array(
        [f"{a}; {b}" if a and b else a or b for a, b in zip(reasons, contract, strict=True)],
        dtype=object,
    )
    for row in range(first_row, first_row + len(frame)):
        if row in options.duplicates:
            i = row - first_row
            repeat = f"{options.id_column}: duplicate of row {options.duplicates[row]}"
            reasons[i] = f"{repeat}; {reasons[i]}" if reasons[i] else repeat
    missing_id = ids.isna().to_numpy()
    reasons[missing_id] = np.where(
        reasons[missing_id] == "",
        f"{options.id_column}: missing",
        [f"{options.id_column}: missing; {r}" for r in reasons[missing_id]],
    )
    bad = reasons != ""
    good = ~bad
    row_number = np.arange(first_row, first_row + len(frame), dtype=np.int64)
    quarantined = pa.table(
        {
            "row_number": pa.array(row_number[bad]),
            "reason": pa.array(reasons[bad].astype(str), pa.string()),
        }
    )
    for col in table.column_names:
        quarantined = quarantined.append_column(
            col, table.column(col).take(pa.array(np.flatnonzero(bad)))
        )
    kept = frame.loc[good]
    if len(kept):
        try:
            X = bundle.encoder.transform(kept)
        except EncodingError as exc:  # column-level problems were checked up front
            raise BatchError(f"chunk starting at row {first_row}: {exc}") from exc
        raw, probability = bundle.predict_matrix(X)
    else:
        X = np.empty((0, len(bundle.feature_names)))
        raw = probability = np.empty(0)
    bands = assign_bands(options.bands, probability)
    columns: dict[str, pa.Array] = {
        "item_id": pa.array(kept[options.id_column].astype("str").to_numpy(), pa.string()),
        "raw_score": pa.array(raw, pa.float64()),
        "probability": pa.array(probability, pa.float64()),
        "risk_band": pa.array(bands.astype(str), pa.string()),
    }
    if options.explain_k:
        columns["reasons"] = _reasons_array(bundle, X, options.explain_k, kept)
    counts = {name: int(np.sum(bands == name)) for name, _ in options.bands}
    return pa.table(columns), quarantined, counts


def _reasons_array(
    bundle: ModelBundle, X: np.ndarray, k: int, frame: pd.DataFrame | None = None
) -> pa.Array:
    """list<struct<feature, description, value, contribution>> of each row's top-k reasons.

    A bundle with text models adds `phrases` to each reason: the text model's top phrases for
    a text score reason (`TEXT_REASON_TYPE`), empty otherwise.
    """
    n = X.shape[0]
    if n == 0:
        return pa.array([], pa.list_(TEXT_REASON_TYPE if bundle.text_models else REASON_TYPE))
    index, values = bundle.top_reasons(X, k)
    flat_index = index.reshape(-1)
    names = np.array(bundle.feature_names, dtype=object)
    descriptions = np.array([bundle.features[f] for f in bundle.feature_names], dtype=object)
    cells = X[np.repeat(np.arange(n), k), flat_index]
    numbers, categories = _display_values(bundle, flat_index, cells)
    return pa.ListArray.from_arrays(
        pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)),
        pa.StructArray.from_arrays(
            [
                pa.array(names[flat_index], pa.string()),
                pa.array(descriptions[flat_index], pa.string()),
                numbers,
                categories,
                pa.array(values.reshape(-1), pa.float64()),
                *(
                    [_phrases_array(bundle, names[flat_index], frame, k)]
                    if bundle.text_models
                    else []
                ),
            ],
            fields=list(TEXT_REASON_TYPE if bundle.text_models else REASON_TYPE),
        ),
    )


def _phrases_array(
    bundle: ModelBundle, features: np.ndarray, frame: pd.DataFrame | None, k: int
) -> pa.Array:
    """The phrases of each (row, reason) whose feature is a text score; empty lists otherwise."""
    rows: list[list[dict[str, Any]]] = []
    for position, name in enumerate(features):
        if frame is None or name not in bundle.text_models:
            rows.append([])
            continue
        i = position // k
        fields = {f: frame[f].iat[i] for f in bundle.text_fields}
        rows.append([p.to_dict() for p in bundle.phrases(name, fields, k=TEXT_PHRASES_PER_REASON)])
    return pa.array(rows, pa.list_(PHRASE_TYPE))


def _display_values(
    bundle: ModelBundle, columns: np.ndarray, cells: np.ndarray
) -> tuple[pa.Array, pa.Array]:
    """The original value of each (column, encoded cell): a number for numeric inputs and the
    category's text for categorical ones (the other null), as `FeatureEncoder.decode_value`."""
    encoder = bundle.encoder
    n_cat = len(encoder.categorical)
    missing = np.isnan(cells)
    is_cat = columns < n_cat
    numbers = pa.array(cells, pa.float64(), mask=missing | is_cat)
    text = np.full(len(cells), None, dtype=object)
    present = is_cat & ~missing
    if present.any():
        vocab = [encoder.categories_[c] for c in encoder.categorical]
        offsets = np.cumsum([0, *[len(v) for v in vocab]])
        flat_vocab = np.array([v for values in vocab for v in values], dtype=object)
        text[present] = flat_vocab[offsets[columns[present]] + cells[present].astype(np.int64)]
    return numbers, pa.array(text, pa.string())


# -- dask ---------------------------------------------------------------------------------------


def _run_dask(
    bundle: ModelBundle,
    input_path: Path,
    todo: list[int],
    *,
    columns: list[str],
    chunk_rows: int,
    n_rows: int,
    options: _Options,
    scheduler: str | None,
    manifest: dict[str, Any],
    on_chunk: Callable[[ChunkResult], None] | None,
) -> None:
    import distributed

    from features.settings import thread_count

    dask: Any = distributed  # distributed ships without type hints

    cluster = None
    if scheduler is None:
        cluster = dask.LocalCluster(
            n_workers=thread_count(),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
    client = dask.Client(cluster if cluster is not None else scheduler)
    try:
        files = client.scatter(bundle.to_files(), broadcast=True)
        futures = [
            client.submit(
                _dask_chunk,
                files,
                str(input_path.resolve()),
                columns,
                index,
                index * chunk_rows,
                min((index + 1) * chunk_rows, n_rows),
                options,
                key=f"govrisk-score-{bundle.fingerprint[:12]}-{index:05d}-{time.time_ns()}",
                pure=False,
            )
            for index in todo
        ]
        for future in dask.as_completed(futures):
            record: _ChunkRecord = future.result()
            _record_chunk(Path(options.output_dir), manifest, record)
            if on_chunk is not None:
                on_chunk(record)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


_WORKER_BUNDLES: dict[str, ModelBundle] = {}
_WORKER_LOCK = threading.Lock()


def _dask_chunk(
    files: Mapping[str, bytes],
    input_path: str,
    columns: list[str],
    index: int,
    start: int,
    stop: int,
    options: _Options,
) -> _ChunkRecord:
    """A Dask task: read rows [start, stop), score them, write the chunk's files."""
    from models.bundle import MANIFEST_FILE

    key = str(hash(files[MANIFEST_FILE]))
    with _WORKER_LOCK:
        bundle = _WORKER_BUNDLES.get(key)
        if bundle is None:
            bundle = ModelBundle.from_files(files, threads=1, where="scattered bundle")
            _WORKER_BUNDLES.clear()
            _WORKER_BUNDLES[key] = bundle
    table = _read_range(Path(input_path), columns, start, stop)
    return _score_chunk(bundle, table, index=index, first_row=start, options=options)


# -- manifest -----------------------------------------------------------------------------------


def _open_manifest(
    output_dir: Path, *, expected: dict[str, Any], overwrite: bool
) -> dict[str, Any]:
    path = output_dir / MANIFEST_NAME
    if output_dir.exists() and overwrite:
        _clear_output(output_dir)
    if path.is_file():
        manifest: dict[str, Any] = json.loads(path.read_text())
        mismatched = [
            key for key, value in expected.items() if manifest.get(key) != _jsonable(value)
        ]
        if manifest.get("format_version") != _MANIFEST_VERSION or mismatched:
            raise BatchError(
                f"{output_dir} holds a run with a different {', '.join(mismatched) or 'format'}; "
                "pass --overwrite to replace it or choose another output path"
            )
        return manifest
    if output_dir.exists() and any(output_dir.iterdir()):
        raise BatchError(
            f"{output_dir} is not empty and has no {MANIFEST_NAME}; choose an empty output path"
        )
    manifest = {
        "format_version": _MANIFEST_VERSION,
        **_jsonable(expected),
        "chunks": {},
        "completed": False,
    }
    output_dir.mkdir(parents=True, exist_ok=True)
    _write_json_atomic(path, manifest)
    return manifest


def _clear_output(output_dir: Path) -> None:
    """Remove what a previous run wrote (only our own file names)."""
    for part in output_dir.glob("part-*.parquet"):
        part.unlink()
    quarantine = output_dir / QUARANTINE_DIR
    if quarantine.is_dir():
        for part in quarantine.glob("part-*.parquet"):
            part.unlink()
        if not any(quarantine.iterdir()):
            quarantine.rmdir()
    (output_dir / MANIFEST_NAME).unlink(missing_ok=True)


def _record_chunk(output_dir: Path, manifest: dict[str, Any], result: ChunkResult) -> None:
    record = asdict(result)
    record.pop("index")
    record.pop("skipped")
    manifest["chunks"][f"{result.index:05d}"] = record
    manifest["chunks"] = dict(sorted(manifest["chunks"].items()))
    _write_json_atomic(output_dir / MANIFEST_NAME, manifest)


def _input_identity(path: Path, parquet: pq.ParquetFile) -> dict[str, Any]:
    stat = path.stat()
    return {
        "path": str(path.resolve()),
        "bytes": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "rows": parquet.metadata.num_rows,
        "row_groups": parquet.metadata.num_row_groups,
    }


def _sum_bands(records: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for record in records:
        for name, count in record.get("band_counts", {}).items():
            out[name] = out.get(name, 0) + int(count)
    return out


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _write_json_atomic(path: Path, doc: Mapping[str, Any]) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _write_parquet_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def read_output(output_path: Path | str) -> pd.DataFrame:
    """The scored rows of a batch output, in input order."""
    return pd.read_parquet(Path(output_path))


def read_quarantine(output_path: Path | str) -> pd.DataFrame:
    """The quarantined rows of a batch output with their reasons (empty when none)."""
    folder = Path(output_path) / QUARANTINE_DIR
    if not folder.is_dir() or not any(folder.glob("part-*.parquet")):
        return pd.DataFrame(columns=["row_number", "reason"])
    return pd.read_parquet(folder)
