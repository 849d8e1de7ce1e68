"""The partitioned journey with CLI commands only: partition, build, score, audit on Dask."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.loader import write_tables
from govrisk import build_app
from tests.factories import make_tables

_STARTERS = Path(__file__).resolve().parents[1] / "experiments/simulator/starter_strategies"


def _run(*args: str) -> str:
    result = CliRunner().invoke(build_app(), list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("partitioned") / "data"
    write_tables(root, make_tables(3000, seed=5))
    (root / "strategies").mkdir()
    for name in ("listing-counterfeit-terms@v1.yaml", "listing-counterfeit-terms@v2.yaml"):
        shutil.copy(_STARTERS / name, root / "strategies" / name)
    return root


def test_partition_build_score_and_audit_with_commands_only(data, tmp_path):
    from experiments.benchmarks.scale import train_bundle

    parts = tmp_path / "parts"
    _run("data", "partition", "--data", str(data), "--out", str(parts), "--parts", "3")
    assert sorted(p.name for p in parts.glob("part-*")) == [f"part-0000{k}" for k in range(3)]
    assert (parts / "strategies" / "listing-counterfeit-terms@v2.yaml").is_file()

    features = tmp_path / "features"
    out = _run("features", "build", "--data", str(parts), "--out", str(features), "--workers", "1")
    assert "worker peak GB" in out
    listing = pd.concat(pd.read_parquet(f) for f in sorted(features.glob("part-*/listing.parquet")))
    assert len(listing) == 3000 and listing["item_id"].is_unique

    single = tmp_path / "single"
    _run("features", "build", "--data", str(data), "--out", str(single))
    bundle = train_bundle(single, data, tmp_path / "bundle")

    scores = tmp_path / "scores"
    _run(
        "score",
        "--input",
        str(features),
        "--frame",
        "listing",
        "--model",
        str(bundle),
        "--output",
        str(scores / "listing-any"),
        "--explain",
        "5",
    )
    scored = pd.read_parquet(scores / "listing-any" / "part-00001")
    assert len(scored) == len(pd.read_parquet(features / "part-00001" / "listing.parquet"))
    assert scored["reasons"].map(len).eq(5).all()

    audit = tmp_path / "audit"
    _run(
        "audit",
        "--data",
        str(parts),
        "--scores",
        str(scores),
        "--out",
        str(audit),
        "--workers",
        "1",
    )
    metrics = pd.read_parquet(audit / "strategy_metrics.parquet")
    assert {"listing-counterfeit-terms@v1", "listing-counterfeit-terms@v2"} <= set(
        metrics["strategy"]
    )
    assert (metrics["n_actioned"] > 0).any()
    assert (audit / "flags.parquet").is_file()


def test_scheduler_on_a_single_data_directory_says_to_partition(data, tmp_path):
    result = CliRunner().invoke(
        build_app(),
        ["features", "build", "--data", str(data), "--out", str(tmp_path / "f"), "--workers", "2"],
    )
    assert result.exit_code == 2
    assert "govrisk data partition" in result.output


def test_partitioned_audit_without_scores_for_a_target_names_it(data, tmp_path):
    parts = tmp_path / "parts"
    _run("data", "partition", "--data", str(data), "--out", str(parts), "--parts", "2")
    (tmp_path / "scores").mkdir()
    result = CliRunner().invoke(
        build_app(),
        [
            "audit",
            "--data",
            str(parts),
            "--scores",
            str(tmp_path / "scores"),
            "--out",
            str(tmp_path / "a"),
            "--workers",
            "1",
        ],
    )
    assert result.exit_code == 2
    assert "listing-counterfeit" in result.output
