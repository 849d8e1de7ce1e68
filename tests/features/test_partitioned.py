"""The partitioned feature build: seller-closed partitions give the single build's rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.build import build_frames
from features.catalog import frame_features
from features.partitioned import (
    PartitionError,
    build_partition,
    build_partitioned,
    partitioned_as_of,
    partitions,
    shared_lookups,
    split_tables,
    write_partitioned,
)
from features.store import default_as_of
from features.vocabulary import Entity
from tests.factories import make_tables


@pytest.fixture(scope="module")
def world() -> dict[str, pd.DataFrame]:
    return make_tables(1500, seed=7)


def _read(out: Path, parts: list[Path], entity: Entity) -> pd.DataFrame:
    frames = [pd.read_parquet(out / p.name / f"{entity.value}.parquet") for p in parts]
    return pd.concat(frames).sort_values("item_id").reset_index(drop=True)


def _creator_columns(entity: Entity) -> list[str]:
    return [f.name for f in frame_features(entity) if f.name.startswith("creator_")]


def test_split_keeps_every_row_and_each_seller_in_one_partition(world):
    parts = split_tables(world, 4)
    for name, df in world.items():
        if name == "creators":
            continue
        assert sum(len(p[name]) for p in parts) == len(df), name
    owners = pd.concat(
        [p["listings"][["seller_id"]].assign(part=k) for k, p in enumerate(parts)]
    ).drop_duplicates()
    assert owners["seller_id"].is_unique
    assert all(len(p["listings"]) for p in parts)


def test_split_refuses_rows_of_unknown_items(world):
    broken = dict(world)
    exposure = world["channel_exposure"].copy()
    exposure.loc[exposure.index[0], "item_id"] = "no-such-listing"
    broken["channel_exposure"] = exposure
    with pytest.raises(PartitionError, match="channel_exposure"):
        split_tables(broken, 2)


def test_partitions_equal_the_single_build(world, tmp_path):
    as_of = default_as_of(world)
    single = build_frames(world, as_of=as_of)
    parts = write_partitioned(tmp_path / "data", world, 3)
    assert partitioned_as_of(parts) == as_of
    shared = shared_lookups(parts, as_of=as_of)
    for part in parts:
        built = build_partition(
            part, tmp_path / "out", as_of=as_of, shared=shared, entities=list(Entity)
        )
        assert sum(built.rows.values()) > 0
    for entity in Entity:
        want = single[entity].sort_values("item_id").reset_index(drop=True)
        got = _read(tmp_path / "out", parts, entity)[want.columns]
        same = [c for c in want.columns if c not in _creator_columns(entity)]
        pd.testing.assert_frame_equal(got[same], want[same], check_exact=False, rtol=1e-12)
    # Images are shared across sellers: without the shared lookups a partition undercounts.
    alone = build_partition(
        parts[0], tmp_path / "alone", as_of=as_of, shared={}, entities=[Entity.LISTING]
    )
    assert alone.rows["listing"] > 0
    own = pd.read_parquet(tmp_path / "alone" / parts[0].name / "listing.parquet")
    joint = _read(tmp_path / "out", parts[:1], Entity.LISTING)
    image_columns = [c for c in own.columns if "image" in c]
    assert image_columns
    assert not np.allclose(
        own[image_columns].to_numpy(float), joint[image_columns].to_numpy(float), equal_nan=True
    )


def test_build_partitioned_on_a_local_cluster(world, tmp_path):
    from features.cluster import dask_client

    parts = write_partitioned(tmp_path / "data", world, 2)
    with dask_client(n_workers=1, memory_limit="2GB") as client:
        built = build_partitioned(
            tmp_path / "data", tmp_path / "out", client=client, entities=["listing"]
        )
    assert [b.partition for b in built] == [p.name for p in parts]
    assert sum(b.rows["listing"] for b in built) == len(world["listings"])
    assert all(0 < b.worker_peak_bytes < 2e9 for b in built)


def test_a_folder_without_partitions_is_one_clear_error(tmp_path):
    with pytest.raises(PartitionError, match="no partitions"):
        partitions(tmp_path)
