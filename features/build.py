"""Batch feature build: contract tables -> one scoring frame per target entity + a snapshot.

Point in time: every input row is cut at `as_of` first (created / registered / started /
decided / occurred strictly before it; exposure days only once complete), and nothing after
the cut is read again. `audit_labels` is never read. All aggregation runs as DuckDB SQL over
Arrow; item-level features run as vectorised numpy/Arrow functions shared with the online path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from features.catalog import feature_set_versions, frame_features, frame_spec
from features.columns import Columns, arrow_to_columns, columns_to_arrow, to_datetime64, to_frame
from features.contract import ContractError, Problem, find_column_problems
from features.creator import content_sql, creators_sql
from features.engine import connect, timestamp_literal
from features.exposure import activity_sql, activity_table, item_aggregates_sql
from features.frames import JOINS, LISTINGS_TABLE, SNAPSHOT_TABLES, compute_frame
from features.listing import ITEM_AGGREGATE_INPUTS, listing_base_sql, listing_columns
from features.seller import sellers_sql
from features.snapshot import (
    FeatureSnapshot,
    Lookup,
    LookupJoin,
    TableInfo,
    context_name,
    sorted_category_prices,
)
from features.tables import ITEM_TABLES, TABLES, ColumnSpec
from features.vocabulary import Entity

_log = logging.getLogger(__name__)

#: Contract tables a build reads (audit_labels is deliberately absent).
INPUT_TABLES = (
    "sellers",
    "creators",
    "listings",
    "videos",
    "live_sessions",
    "channel_exposure",
    "strategy_decisions",
    "outcomes",
)

#: Steps reported to `on_step`, in order.
BUILD_STEPS = (
    "register tables",
    "aggregate history",
    "listing features",
    "seller and creator aggregates",
    "listing frame",
    "video frame",
    "live frame",
    "seller frame",
)

#: View name and the cut applied to each input table.
CUTS = {
    "sellers": ("sellers", "registered_at < {as_of}"),
    "creators": ("creators", "registered_at < {as_of}"),
    "listings": ("listings", "created_at < {as_of}"),
    "videos": ("videos", "created_at < {as_of}"),
    "live_sessions": ("live_sessions", "started_at < {as_of}"),
    "channel_exposure": ("exposure", "day + INTERVAL 1 DAY <= {as_of}"),
    "strategy_decisions": ("decisions", "decided_at < {as_of}"),
    "outcomes": ("outcomes", "occurred_at < {as_of}"),
}

#: Lookup tables whose rows span sellers (categories, prices per category, images shared by
#: sellers): a build over a seller-closed partition takes them from the whole marketplace.
SHARED_LOOKUPS = ("categories", "category_prices", "images")

# Listing features are computed before seller aggregates exist, from the seller profile only.
_SELLER_PROFILES = "seller_profiles"
_LISTING_ITEM_JOINS = (
    *JOINS[Entity.LISTING][:3],
    LookupJoin(_SELLER_PROFILES, "seller", ("seller_id",)),
)
_LISTING_FRAME_JOINS = JOINS[Entity.LISTING][3:]
_LOOKUP_INFOS = {**SNAPSHOT_TABLES, _SELLER_PROFILES: TableInfo(key=("seller_id",))}


@dataclass(frozen=True)
class FeatureBuild:
    """What a build produces: the frames asked for and the snapshot online lookups read."""

    as_of: np.datetime64
    frames: dict[Entity, pd.DataFrame]
    snapshot: FeatureSnapshot


def build_frames(
    tables: Mapping[str, pd.DataFrame],
    *,
    as_of: datetime | np.datetime64,
    entities: Iterable[Entity | str] = tuple(Entity),
    threads: int | None = None,
) -> dict[Entity, pd.DataFrame]:
    """One scoring frame per target entity as of `as_of`: `item_id`, then declared features.

    Rows are the items created strictly before `as_of`, sorted by `item_id`; only input rows
    strictly before `as_of` are used; `audit_labels` is never read.
    """
    return build_features(tables, as_of=as_of, entities=entities, threads=threads).frames


def build_features(
    tables: Mapping[str, pd.DataFrame],
    *,
    as_of: datetime | np.datetime64,
    entities: Iterable[Entity | str] = tuple(Entity),
    threads: int | None = None,
    on_step: Callable[[str], None] | None = None,
    shared: Mapping[str, pa.Table] | None = None,
) -> FeatureBuild:
    """`build_frames` plus the feature snapshot; `on_step` is called as each step starts.

    `shared` gives lookup tables (names of `SHARED_LOOKUPS`) computed elsewhere over a larger
    marketplace than `tables`: a partition of it built on its own (`features.partitioned`)."""
    wanted = _entities(entities)
    problems = check_tables(tables)
    if problems:
        raise ContractError(problems)
    return _compute_build(
        {name: tables[name] for name in INPUT_TABLES},
        as_of=to_datetime64(as_of),
        entities=wanted,
        threads=threads,
        on_step=on_step or (lambda _step: None),
        shared=_checked_shared(shared or {}),
    )


def _checked_shared(shared: Mapping[str, pa.Table]) -> Mapping[str, pa.Table]:
    unknown = sorted(set(shared) - set(SHARED_LOOKUPS))
    if unknown:
        raise ValueError(f"shared lookup tables {unknown} unknown; expected {list(SHARED_LOOKUPS)}")
    return shared


def check_tables(tables: Mapping[str, pd.DataFrame]) -> list[Problem]:
    """Missing input tables and missing or wrongly typed columns (no value checks)."""
    problems: list[Problem] = []
    for name in INPUT_TABLES:
        if name not in tables:
            problems.append(Problem(name, None, "table missing from the build input", 0, ()))
            continue
        problems.extend(find_column_problems(name, tables[name]))
    return problems


def _entities(entities: Iterable[Entity | str]) -> tuple[Entity, ...]:
    out = []
    for entity in entities:
        try:
            out.append(Entity(entity))
        except ValueError:
            raise ValueError(
                f"unknown entity {entity!r}; choose from {[e.value for e in Entity]}"
            ) from None
    return tuple(dict.fromkeys(out))


def _arrow_type(col: ColumnSpec) -> pa.DataType:
    return {
        "string": pa.string(),
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("us"),
        "date": pa.timestamp("us"),
    }[col.kind]


def _to_arrow(name: str, df: pd.DataFrame) -> pa.Table:
    spec = TABLES[name]
    table = pa.Table.from_pandas(df[spec.column_names], preserve_index=False)
    columns = []
    for col, column in zip(spec.columns, table.columns, strict=True):
        target = _arrow_type(col)
        text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        # Text stays as it came (string or large_string: DuckDB scans both without a copy).
        columns.append(column if text and col.kind == "string" else column.cast(target, safe=False))
    return pa.table(columns, names=spec.column_names)


def _fetch(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    return con.sql(sql).to_arrow_table()


def _duck_name(table: str) -> str:
    return f"snap_{table}" if table in SNAPSHOT_TABLES else table


def _chained_columns(joins: Iterable[LookupJoin]) -> dict[str, set[str]]:
    """Columns of looked-up tables that later joins use as keys (e.g. the linked seller)."""
    tables: dict[str, str] = {}
    out: dict[str, set[str]] = {}
    for join in joins:
        for on in join.on:
            if "." in on:
                prefix, column = on.split(".", 1)
                out.setdefault(tables[prefix], set()).add(column)
        tables[join.prefix] = join.table
    return out


_CHAINED = _chained_columns(
    [*_LISTING_ITEM_JOINS, *(join for joins in JOINS.values() for join in joins)]
)


def _register_keys(
    con: duckdb.DuckDBPyConnection, name: str, table: pa.Table, info: TableInfo
) -> None:
    # Key columns (views of the snapshot table) plus each row's position: joins against this
    # find rows; `Lookup.take_positions` then gathers the values, as online lookups do.
    columns = [*info.key, *sorted(_CHAINED.get(name, set()) - set(info.key))]
    positions = pa.array(np.arange(table.num_rows, dtype=np.int64))
    con.register(f"keys_{name}", table.select(columns).append_column("__pos", positions))


def _positions_sql(
    *,
    items: str,
    item_columns: Sequence[str],
    key: str,
    joins: Sequence[LookupJoin],
    infos: Mapping[str, TableInfo],
) -> str:
    select = [f'i."{c}"' for c in item_columns]
    sources = [f"{items} AS i"]
    aliases: dict[str, str] = {}
    for n, join in enumerate(joins):
        alias = f"k{n}"
        conditions = []
        for key_column, on in zip(infos[join.table].key, join.on, strict=True):
            if "." in on:
                prefix, column = on.split(".", 1)
                source = f'{aliases[prefix]}."{column}"'
            else:
                source = f'i."{on}"'
            conditions.append(f'{alias}."{key_column}" = {source}')
        sources.append(f"LEFT JOIN keys_{join.table} AS {alias} ON {' AND '.join(conditions)}")
        aliases[join.prefix] = alias
        select.append(f'{alias}.__pos AS "{context_name(join.prefix, "__pos")}"')
    return f'SELECT {", ".join(select)} FROM {" ".join(sources)} ORDER BY i."{key}"'


def _context(
    con: duckdb.DuckDBPyConnection,
    entity: Entity,
    joins: Sequence[LookupJoin],
    lookups: Mapping[str, Lookup],
) -> Columns:
    sql = _positions_sql(
        items=ITEM_TABLES[entity].name,
        item_columns=ITEM_TABLES[entity].column_names,
        key=frame_spec(entity).key,
        joins=joins,
        infos={name: lookup.info for name, lookup in lookups.items()},
    )
    ctx = arrow_to_columns(_fetch(con, sql))
    for join in joins:
        found = ctx.pop(context_name(join.prefix, "__pos"))
        pos = np.where(np.isnan(found), -1, found).astype(np.int64)
        ctx.update(lookups[join.table].take_positions(pos, join.prefix))
    return ctx


def _materialize(
    con: duckdb.DuckDBPyConnection,
    name: str,
    select: str,
    snap: dict[str, pa.Table],
    lookups: dict[str, Lookup],
    *,
    given: pa.Table | None = None,
) -> None:
    # Lookup tables live once, as Arrow (DuckDB scans them in place); the rest are temp tables
    # DuckDB may spill. A `given` lookup table replaces its SELECT.
    start, cpu = time.perf_counter(), time.process_time()
    if name in _LOOKUP_INFOS:
        table = given if given is not None else _fetch(con, select)
        con.register(_duck_name(name), table)
        _register_keys(con, name, table, _LOOKUP_INFOS[name])
        lookups[name] = Lookup(table, _LOOKUP_INFOS[name])
        if name in SNAPSHOT_TABLES:
            snap[name] = table
    else:
        con.execute(f"CREATE TEMP TABLE {name} AS {select}")
    _log.debug(
        "built %s in %.2f s (%.2f s CPU)",
        name,
        time.perf_counter() - start,
        time.process_time() - cpu,
    )


def _compute_build(
    tables: Mapping[str, pd.DataFrame],
    *,
    as_of: np.datetime64,
    entities: tuple[Entity, ...],
    threads: int | None,
    on_step: Callable[[str], None],
    shared: Mapping[str, pa.Table],
) -> FeatureBuild:
    cut = timestamp_literal(as_of)
    snap: dict[str, pa.Table] = {}
    lookups: dict[str, Lookup] = {}
    frames: dict[Entity, pd.DataFrame] = {}
    con = connect(threads=threads)
    try:
        on_step(BUILD_STEPS[0])
        _register_cut_views(con, tables, cut)

        on_step(BUILD_STEPS[1])
        base = {**listing_base_sql(), **item_aggregates_sql(cut), "content": content_sql()}
        for name, select in base.items():
            _materialize(con, name, select, snap, lookups, given=shared.get(name))

        snapshot, listings = _build_listings(
            con,
            as_of=as_of,
            cut=cut,
            snap=snap,
            lookups=lookups,
            keep_frame=Entity.LISTING in entities,
            on_step=on_step,
        )
        if listings is not None:
            frames[Entity.LISTING] = listings
        del listings

        for step, entity in zip(
            BUILD_STEPS[5:], (Entity.VIDEO, Entity.LIVE, Entity.SELLER), strict=True
        ):
            on_step(step)
            if entity not in entities:
                continue
            frames[entity] = _entity_frame(
                con, entity, as_of=as_of, snapshot=snapshot, lookups=lookups
            )
    finally:
        con.close()

    snapshot = FeatureSnapshot(
        as_of=as_of, tables=snap, infos=SNAPSHOT_TABLES, versions=feature_set_versions()
    )
    return FeatureBuild(
        as_of=as_of,
        frames={e: frames[e] for e in entities if e in frames},
        snapshot=snapshot,
    )


def _register_cut_views(
    con: duckdb.DuckDBPyConnection, tables: Mapping[str, pd.DataFrame], cut: str
) -> None:
    """Register each raw table and a view of it keeping only rows known before the cut."""
    for name, df in tables.items():
        view, condition = CUTS[name]
        con.register(f"raw_{name}", _to_arrow(name, df))
        con.execute(
            f"CREATE TEMP VIEW {view} AS SELECT * FROM raw_{name} "
            f"WHERE {condition.format(as_of=cut)}"
        )


def _build_listings(
    con: duckdb.DuckDBPyConnection,
    *,
    as_of: np.datetime64,
    cut: str,
    snap: dict[str, pa.Table],
    lookups: dict[str, Lookup],
    keep_frame: bool,
    on_step: Callable[[str], None],
) -> tuple[FeatureSnapshot, pd.DataFrame | None]:
    """Listing features (steps 2-4), with the seller, creator and activity tables built in
    between from the listings' item aggregates; registers the listings snapshot table.

    Returns the snapshot the other entities are computed against and the listing frame (None
    unless `keep_frame`)."""
    on_step(BUILD_STEPS[2])
    ctx = _context(con, Entity.LISTING, _LISTING_ITEM_JOINS, lookups)
    listing_set = listing_columns(
        ctx, as_of=as_of, sorted_prices=sorted_category_prices(snap["category_prices"])
    )
    for column in ("title", "description", "brand"):
        del ctx[column]  # the largest columns; nothing after the listing set reads them
    items = {
        "listing_id": ctx["listing_id"],
        "seller_id": ctx["seller_id"],
        "category": ctx["category"],
        "created_at": ctx["created_at"],
        **{column: listing_set[name] for column, name in ITEM_AGGREGATE_INPUTS.items()},
    }
    con.register("listing_items", columns_to_arrow(items))
    del items

    on_step(BUILD_STEPS[3])
    snapshot = _materialize_aggregates(con, as_of=as_of, cut=cut, snap=snap, lookups=lookups)

    on_step(BUILD_STEPS[4])
    ctx.update(_context(con, Entity.LISTING, _LISTING_FRAME_JOINS, lookups))
    listing_frame = compute_frame(
        Entity.LISTING,
        ctx,
        as_of=as_of,
        snapshot=snapshot,
        precomputed={"listing": listing_set},
    )
    del listing_set
    snap[LISTINGS_TABLE] = columns_to_arrow(
        {"listing_id": ctx["listing_id"], "seller_id": ctx["seller_id"], **listing_frame}
    )
    info = SNAPSHOT_TABLES[LISTINGS_TABLE]
    _register_keys(con, LISTINGS_TABLE, snap[LISTINGS_TABLE], info)
    lookups[LISTINGS_TABLE] = Lookup(snap[LISTINGS_TABLE], info)
    if not keep_frame:
        return snapshot, None
    return snapshot, to_frame(
        "item_id", ctx["listing_id"], listing_frame, frame_features(Entity.LISTING)
    )


def _materialize_aggregates(
    con: duckdb.DuckDBPyConnection,
    *,
    as_of: np.datetime64,
    cut: str,
    snap: dict[str, pa.Table],
    lookups: dict[str, Lookup],
) -> FeatureSnapshot:
    """Build the seller, creator and activity tables, drop the intermediate ones, and return
    the snapshot so far."""
    _materialize(con, "sellers", sellers_sql(cut), snap, lookups)
    _materialize(con, "creators", creators_sql(cut), snap, lookups)
    for entity in Entity:
        _materialize(con, activity_table(entity), activity_sql(entity), snap, lookups)
    for name in ("exp_item", "exp_daily", "dec_item", "out_item", "item_seller", "content"):
        con.execute(f"DROP TABLE {name}")
    con.unregister("listing_items")
    return FeatureSnapshot(
        as_of=as_of, tables=snap, infos=SNAPSHOT_TABLES, versions=feature_set_versions()
    )


def _entity_frame(
    con: duckdb.DuckDBPyConnection,
    entity: Entity,
    *,
    as_of: np.datetime64,
    snapshot: FeatureSnapshot,
    lookups: Mapping[str, Lookup],
) -> pd.DataFrame:
    """The feature frame of a non-listing entity."""
    ctx = _context(con, entity, JOINS[entity], lookups)
    columns = compute_frame(entity, ctx, as_of=as_of, snapshot=snapshot)
    return to_frame("item_id", ctx[frame_spec(entity).key], columns, frame_features(entity))
