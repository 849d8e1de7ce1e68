"""Batch scoring: reconciled counts, quarantine, exact chunks, crash resume, Dask parity."""

from __future__ import annotations

import filecmp
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import serving.batch as batch
from models.bundle import ModelBundle
from serving.batch import (
    MANIFEST_NAME,
    BatchError,
    ChunkResult,
    read_output,
    read_quarantine,
    score_file,
)
from tests.models.bundle_factory import make_frame, train_bundle

N_ROWS = 2_300
BANDS = {"low": 0.0, "medium": 0.3, "high": 0.7}


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    frame, y = make_frame(600, seed=4)
    trained = train_bundle(frame, y, n_trees=30)
    trained.threads = 1
    return trained


@pytest.fixture(scope="module")
def input_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scoring frame with a few unscorable rows, written in uneven row groups."""
    frame, _ = make_frame(N_ROWS, seed=9)
    frame["seller_tenure_days"] = frame["seller_tenure_days"].astype("float64")
    frame.loc[5, "listing_discount_depth"] = np.inf
    frame.loc[17, "seller_tenure_days"] = -np.inf
    frame.loc[800, "item_id"] = None
    frame.loc[1500, "seller_tenure_days"] = np.nan  # never missing in training
    frame.loc[40:60, "listing_category"] = "category-never-seen"  # refused, as online
    frame.loc[70, "listing_price"] = -5.0  # below the declared domain
    frame.loc[[900, 2200], "item_id"] = frame.loc[3, "item_id"]  # repeats, chunks apart
    path = tmp_path_factory.mktemp("input") / "frame.parquet"
    frame.to_parquet(path, row_group_size=333)
    return path


def _files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*.parquet"))


def test_counts_reconcile_and_bad_rows_are_quarantined(
    bundle: ModelBundle, input_file: Path, tmp_path: Path
) -> None:
    seen: list[ChunkResult] = []
    summary = score_file(
        bundle,
        input_file,
        tmp_path / "out",
        explain_k=3,
        chunk_rows=500,
        risk_bands=BANDS,
        on_chunk=seen.append,
    )
    bad_rows = [5, 17, *range(40, 61), 70, 800, 900, 1500, 2200]
    assert summary.rows_read == N_ROWS
    assert summary.rows_quarantined == len(bad_rows)
    assert summary.rows_scored == N_ROWS - len(bad_rows)
    assert summary.reconciles
    assert summary.chunks == 5 and [c.index for c in seen] == [0, 1, 2, 3, 4]
    assert sum(summary.band_counts.values()) == summary.rows_scored

    quarantine = read_quarantine(tmp_path / "out").sort_values("row_number")
    assert quarantine["row_number"].tolist() == bad_rows
    assert quarantine["reason"].tolist() == [
        "listing_discount_depth: infinite value",
        "seller_tenure_days: infinite value",
        *["listing_category: unknown category 'category-never-seen'"] * 21,
        "listing_price: below its declared domain (>= 0)",
        "item_id: missing",
        "item_id: duplicate of row 3",
        "seller_tenure_days: missing (never missing in training)",
        "item_id: duplicate of row 3",
    ]
    assert "listing_price" in quarantine.columns, "quarantine keeps the row's values"

    scores = read_output(tmp_path / "out")
    source = pd.read_parquet(input_file)
    kept = source.drop(index=bad_rows)
    assert scores["item_id"].tolist() == kept["item_id"].tolist()
    raw, probability = bundle.predict(kept)
    np.testing.assert_array_equal(scores["raw_score"].to_numpy(), raw)
    np.testing.assert_array_equal(scores["probability"].to_numpy(), probability)
    expected_band = np.select([probability >= 0.7, probability >= 0.3], ["high", "medium"], "low")
    assert scores["risk_band"].tolist() == expected_band.tolist()

    first = scores["reasons"].iloc[0]
    assert len(first) == 3
    online = bundle.explain(kept.head(1), 3)[0]
    assert [r["feature"] for r in first] == [r.feature for r in online]
    for batch_reason, online_reason in zip(first, online, strict=True):
        # the same value as online: a number for numeric inputs, text for categories
        shown = (
            batch_reason["category"]
            if batch_reason["category"] is not None
            else batch_reason["value"]
        )
        assert shown == online_reason.value
        assert isinstance(shown, str | float | type(None))
    assert source.loc[3, "item_id"] in set(scores["item_id"]), "the first of repeats is scored"


@pytest.mark.parametrize(("chunk_rows", "chunks"), [(1, N_ROWS), (333, 7), (10_000, 1)])
def test_chunks_cover_every_row_once_in_order(
    bundle: ModelBundle, input_file: Path, tmp_path: Path, chunk_rows: int, chunks: int
) -> None:
    if chunk_rows == 1:
        frame, _ = make_frame(7, seed=2)
        input_file = tmp_path / "small.parquet"
        frame.to_parquet(input_file, row_group_size=3)
        expected_rows, chunks = 7, 7
    else:
        expected_rows = N_ROWS
    summary = score_file(bundle, input_file, tmp_path / "out", chunk_rows=chunk_rows)
    assert summary.chunks == chunks
    assert summary.rows_read == expected_rows
    out = read_output(tmp_path / "out")
    quarantined = set(read_quarantine(tmp_path / "out")["row_number"])
    ids = pd.read_parquet(input_file)["item_id"]
    assert out["item_id"].tolist() == [v for i, v in enumerate(ids) if i not in quarantined]
    assert "reasons" not in out.columns


def test_rerun_after_a_crash_resumes_without_duplicates(
    bundle: ModelBundle, input_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = tmp_path / "clean"
    score_file(bundle, input_file, clean, explain_k=2, chunk_rows=400)

    crashed = tmp_path / "crashed"
    real_record = batch._record_chunk
    calls = {"n": 0}

    def crash_on_third(output_dir: Path, manifest: dict[str, object], result: ChunkResult) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # chunk 2's files are written, the manifest does not know yet
            raise KeyboardInterrupt("simulated crash")
        real_record(output_dir, manifest, result)

    monkeypatch.setattr(batch, "_record_chunk", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        score_file(bundle, input_file, crashed, explain_k=2, chunk_rows=400)
    manifest = json.loads((crashed / MANIFEST_NAME).read_text())
    assert sorted(manifest["chunks"]) == ["00000", "00001"] and not manifest["completed"]
    monkeypatch.setattr(batch, "_record_chunk", real_record)

    resumed: list[ChunkResult] = []
    summary = score_file(
        bundle, input_file, crashed, explain_k=2, chunk_rows=400, on_chunk=resumed.append
    )
    assert summary.chunks_resumed == 2
    assert [c.index for c in resumed if not c.skipped] == [2, 3, 4, 5]
    assert summary.rows_read == N_ROWS and summary.reconciles
    out = read_output(crashed)
    assert out["item_id"].is_unique
    assert out.equals(read_output(clean))
    assert _files(crashed) == _files(clean)
    assert json.loads((crashed / MANIFEST_NAME).read_text())["completed"]


def test_a_different_run_in_the_same_output_is_refused(
    bundle: ModelBundle, input_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    score_file(bundle, input_file, out, chunk_rows=1000)
    with pytest.raises(BatchError, match="different options"):
        score_file(bundle, input_file, out, chunk_rows=1000, explain_k=2)
    summary = score_file(bundle, input_file, out, chunk_rows=1000, explain_k=2, overwrite=True)
    assert summary.chunks_resumed == 0 and "reasons" in read_output(out).columns
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(BatchError, match="not empty"):
        score_file(bundle, input_file, tmp_path / "other")


def test_input_not_matching_the_model_is_refused_up_front(
    bundle: ModelBundle, tmp_path: Path
) -> None:
    frame, _ = make_frame(50, seed=1)
    path = tmp_path / "bad.parquet"
    frame.drop(columns=["listing_price"]).assign(listing_discount_depth="high").to_parquet(path)
    with pytest.raises(BatchError) as info:
        score_file(bundle, path, tmp_path / "out")
    assert "'listing_price' is missing" in str(info.value)
    assert "'listing_discount_depth' must hold numbers" in str(info.value)
    assert not (tmp_path / "out").exists()
    with pytest.raises(BatchError, match="pass --id-column"):
        score_file(bundle, path, tmp_path / "out", id_column="listing_id")


@pytest.fixture()
def dask_scheduler() -> Iterator[str]:
    from distributed import LocalCluster

    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    )
    try:
        yield str(cluster.scheduler_address)
    finally:
        cluster.close()


def test_dask_engine_writes_identical_files(
    bundle: ModelBundle, input_file: Path, tmp_path: Path, dask_scheduler: str
) -> None:
    local = score_file(bundle, input_file, tmp_path / "local", explain_k=3, chunk_rows=450)
    remote = score_file(
        bundle,
        input_file,
        tmp_path / "dask",
        explain_k=3,
        chunk_rows=450,
        engine="dask",
        scheduler=dask_scheduler,
    )
    assert (remote.rows_read, remote.rows_scored, remote.rows_quarantined) == (
        local.rows_read,
        local.rows_scored,
        local.rows_quarantined,
    )
    assert _files(tmp_path / "local") == _files(tmp_path / "dask")
    for name in _files(tmp_path / "local"):
        assert filecmp.cmp(tmp_path / "local" / name, tmp_path / "dask" / name, shallow=False), name
    assert pq.read_schema(tmp_path / "dask" / "part-00000.parquet").names == [
        "item_id",
        "raw_score",
        "probability",
        "risk_band",
        "reasons",
    ]


def test_read_range_matches_a_full_read(input_file: Path) -> None:
    columns = ["item_id", "listing_price"]
    full = pq.read_table(input_file, columns=columns)
    for start, stop in [(0, 1), (330, 340), (333, 666), (2000, N_ROWS), (0, N_ROWS)]:
        part = batch._read_range(input_file, columns, start, stop)
        assert part.equals(full.slice(start, stop - start)), (start, stop)


@pytest.mark.slow
def test_dask_engine_on_a_process_cluster(
    bundle: ModelBundle, input_file: Path, tmp_path: Path
) -> None:
    score_file(bundle, input_file, tmp_path / "local", explain_k=2, chunk_rows=800)
    score_file(bundle, input_file, tmp_path / "dask", explain_k=2, chunk_rows=800, engine="dask")
    assert read_output(tmp_path / "dask").equals(read_output(tmp_path / "local"))
