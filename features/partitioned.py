"""The feature build of a marketplace stored as seller-closed partitions, one Dask task each.

A partitioned data directory holds `part-*/tables/*.parquet`, each partition a contract data
directory of its own sellers with everything they own (listings, videos, live sessions, their
exposure, decisions, outcomes and labels); creators and the lookups below may span partitions.

1. The lookups whose rows span sellers (`features.build.SHARED_LOOKUPS`: categories, prices per
   category, images) are computed once over every partition by DuckDB, from the same SQL a
   single build runs (`features.listing.listing_base_sql`).
2. Every partition is built by `features.job.run_build`, as a single data directory would be,
   with those lookups given, and written to `OUT/<partition>/` (frames, snapshot, manifest).

Point-in-time logic and every feature stay declared once: a partition's frames equal the rows
of a build over the whole marketplace, except creator aggregates, which count the creator's
content in the partition only (creators who work for sellers of several partitions).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from features.build import CUTS, INPUT_TABLES, SHARED_LOOKUPS
from features.engine import connect, timestamp_literal
from features.listing import listing_base_sql
from features.loader import DataDirectoryNotFoundError, table_path
from features.tables import TABLES
from features.vocabulary import Entity

#: Partition folders of a partitioned data directory.
PARTITION_GLOB = "part-*"
#: What the shared lookups read, and the lookups they need first.
_SHARED_INPUTS = ("listings", "strategy_decisions", "outcomes")
_SHARED_STEPS = ("image_sellers", *SHARED_LOOKUPS)


class PartitionError(ValueError):
    """The partitioned data directory cannot be built as asked."""


@dataclass(frozen=True)
class PartitionBuild:
    """One built partition: its rows per frame, seconds and the worker's peak memory."""

    partition: str
    rows: dict[str, int]
    seconds: float
    worker_peak_bytes: int


def partitions(data_dir: Path | str) -> list[Path]:
    """The partitions of a partitioned data directory, in name order."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataDirectoryNotFoundError(root)
    parts = sorted(p for p in root.glob(PARTITION_GLOB) if (p / "tables").is_dir())
    if not parts:
        raise PartitionError(
            f"{root} holds no partitions ({PARTITION_GLOB}/tables/*.parquet); "
            "write one data directory per group of sellers"
        )
    return parts


def _files(parts: Sequence[Path], table: str) -> list[str]:
    files = [table_path(p, table) for p in parts]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise PartitionError(f"table {table} missing in {len(missing)} partition(s): {missing[:3]}")
    return [str(f) for f in files]


def _connect_views(parts: Sequence[Path], tables: Iterable[str], threads: int | None) -> Any:
    con = connect(threads=threads)
    for name in tables:
        con.execute(
            f"CREATE TEMP VIEW raw_{name} AS SELECT * FROM read_parquet({_files(parts, name)!r})"
        )
    return con


def partitioned_as_of(parts: Sequence[Path], *, threads: int | None = None) -> datetime:
    """Midnight after the latest input timestamp of any partition (as `default_as_of`)."""
    con = _connect_views(parts, INPUT_TABLES, threads)
    try:
        latest = [
            con.execute(f"SELECT max({TABLES[n].time_column}) FROM raw_{n}").fetchall()[0][0]
            for n in INPUT_TABLES
            if TABLES[n].time_column is not None
        ]
    finally:
        con.close()
    values = [pd.Timestamp(v) for v in latest if v is not None]
    if not values:
        raise PartitionError("the partitions hold no timestamps; pass --as-of")
    return (max(values).normalize() + pd.Timedelta(days=1)).to_pydatetime()


def shared_lookups(
    parts: Sequence[Path], *, as_of: datetime, threads: int | None = None
) -> dict[str, pa.Table]:
    """The lookups spanning sellers, over every partition, cut at `as_of`."""
    cut = timestamp_literal(np.datetime64(as_of, "us"))
    con = _connect_views(parts, _SHARED_INPUTS, threads)
    try:
        for name in _SHARED_INPUTS:
            view, condition = CUTS[name]
            con.execute(
                f"CREATE TEMP VIEW {view} AS SELECT * FROM raw_{name} "
                f"WHERE {condition.format(as_of=cut)}"
            )
        sql = listing_base_sql()
        out: dict[str, pa.Table] = {}
        for name in _SHARED_STEPS:
            out[name] = con.sql(sql[name]).to_arrow_table()
            con.register(f"snap_{name}", out[name])
    finally:
        con.close()
    return {name: out[name] for name in SHARED_LOOKUPS}


def build_partition(
    part: Path,
    out_dir: Path,
    *,
    as_of: datetime,
    shared: Mapping[str, pa.Table],
    entities: Sequence[Entity],
    threads: int = 1,
) -> PartitionBuild:
    """Build one partition into `out_dir/<partition>` (a Dask task, or called in process)."""
    from features.cluster import peak_rss_bytes
    from features.job import run_build

    start = time.perf_counter()
    result = run_build(
        part, out_dir / part.name, as_of=as_of, entities=entities, threads=threads, shared=shared
    )
    rows = {e.value: len(f) for e, f in result.build.frames.items()}
    return PartitionBuild(part.name, rows, time.perf_counter() - start, peak_rss_bytes())


def build_partitioned(
    data_dir: Path | str,
    out_dir: Path | str,
    *,
    client: Any,
    as_of: datetime | None = None,
    entities: Iterable[Entity | str] = tuple(Entity),
    on_partition: Callable[[PartitionBuild], None] | None = None,
) -> list[PartitionBuild]:
    """Build every partition of `data_dir` on the Dask `client`'s workers into `out_dir`."""
    from distributed import as_completed  # type: ignore[attr-defined]

    from features.job import InputError
    from features.references import strategy_problems

    parts = partitions(data_dir)
    problems = strategy_problems(Path(data_dir) / "strategies")
    if problems:
        raise InputError([f"strategies/{p}" for p in problems])
    cutoff = as_of or partitioned_as_of(parts)
    shared = client.scatter(shared_lookups(parts, as_of=cutoff), broadcast=True)
    wanted = [Entity(e) for e in entities]
    futures = [
        client.submit(
            build_partition,
            part.resolve(),
            Path(out_dir).resolve(),
            as_of=cutoff,
            shared=shared,
            entities=wanted,
            key=f"govrisk-features-{part.name}-{time.time_ns()}",
            pure=False,
        )
        for part in parts
    ]
    done: list[PartitionBuild] = []
    for future in as_completed(futures):  # type: ignore[no-untyped-call]
        built: PartitionBuild = future.result()
        done.append(built)
        if on_partition is not None:
            on_partition(built)
    return sorted(done, key=lambda b: b.partition)


def seller_part(seller_ids: pd.Series | np.ndarray, n_parts: int) -> np.ndarray:
    """The partition of each seller: a stable hash of its id modulo `n_parts`."""
    hashed = pd.util.hash_array(np.asarray(seller_ids, dtype=object))
    return (hashed % np.uint64(n_parts)).astype(np.int64)


def _item_parts(tables: Mapping[str, pd.DataFrame], n_parts: int) -> pd.Series:
    """Partition of every (entity, item_id), indexed by 'entity/item_id'."""
    listings = tables["listings"]
    listing_part = pd.Series(
        seller_part(listings["seller_id"], n_parts), index=listings["listing_id"].astype(str)
    )
    sellers = tables["sellers"]["seller_id"].astype(str)
    pieces = {
        Entity.LISTING: listing_part,
        Entity.SELLER: pd.Series(seller_part(sellers, n_parts), index=sellers),
    }
    for entity, table, key in (
        (Entity.VIDEO, "videos", "video_id"),
        (Entity.LIVE, "live_sessions", "live_id"),
    ):
        df = tables[table]
        parts = listing_part.reindex(df["listing_id"].astype(str)).to_numpy()
        pieces[entity] = pd.Series(parts, index=df[key].astype(str))
    return pd.concat([s.set_axis(f"{e.value}/" + s.index.astype(str)) for e, s in pieces.items()])


def split_tables(tables: Mapping[str, pd.DataFrame], n_parts: int) -> list[dict[str, pd.DataFrame]]:
    """Contract tables cut into `n_parts` seller-closed partitions (creators: those referenced)."""
    if n_parts < 1:
        raise PartitionError("need at least one partition")
    item_part = _item_parts(tables, n_parts)
    owner = {
        "sellers": seller_part(tables["sellers"]["seller_id"], n_parts),
        "listings": seller_part(tables["listings"]["seller_id"], n_parts),
    }
    for name in ("videos", "live_sessions"):
        ids = "listing/" + tables[name]["listing_id"].astype(str)
        owner[name] = item_part.reindex(ids).to_numpy()
    for name, df in tables.items():
        if name not in owner and {"entity", "item_id"} <= set(df.columns):
            keys = df["entity"].astype(str) + "/" + df["item_id"].astype(str)
            owner[name] = item_part.reindex(keys).to_numpy()
    lost = {n: int(pd.isna(o).sum()) for n, o in owner.items() if pd.isna(o).any()}
    if lost:
        raise PartitionError(f"rows whose item or seller is unknown, per table: {lost}")
    out: list[dict[str, pd.DataFrame]] = []
    for k in range(n_parts):
        part = {n: tables[n][owner[n] == k].reset_index(drop=True) for n in owner}
        if "creators" in tables:
            used = pd.concat([part[t]["creator_id"] for t in ("videos", "live_sessions")])
            creators = tables["creators"]
            part["creators"] = creators[creators["creator_id"].isin(used)].reset_index(drop=True)
        out.append(part)
    return out


def write_partitioned(
    data_dir: Path | str, tables: Mapping[str, pd.DataFrame], n_parts: int
) -> list[Path]:
    """Write `tables` as a partitioned data directory of `n_parts` partitions."""
    from features.loader import write_tables

    root = Path(data_dir)
    paths = []
    for k, part in enumerate(split_tables(tables, n_parts)):
        folder = root / f"part-{k:05d}"
        write_tables(folder, part)
        paths.append(folder)
    return paths


def is_partitioned(data_dir: Path | str) -> bool:
    """Whether `data_dir` is a partitioned data directory (`part-*/tables/`)."""
    root = Path(data_dir)
    return root.is_dir() and any((p / "tables").is_dir() for p in root.glob(PARTITION_GLOB))
