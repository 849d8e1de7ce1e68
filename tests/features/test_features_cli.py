"""`govrisk features ...`: build writes frames, snapshot and manifest — or nothing on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.catalog import feature_names, feature_set_versions
from features.feature_docs import render_features_markdown
from features.loader import table_path, write_tables
from features.snapshot import FeatureSnapshot
from features.text_source import text_source
from features.vocabulary import Entity
from govrisk import build_app
from tests.factories import make_tables

STRATEGY = """\
id: listing-counterfeit-terms
version: 1
entity: listing
condition:
  all:
    - {feature: listing_counterfeit_term_count, op: ">=", value: 1}
"""


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    write_tables(data, make_tables(150, seed=9))
    (data / "strategies").mkdir()
    (data / "strategies" / "listing-counterfeit-terms@v1.yaml").write_text(STRATEGY)
    return data


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(build_app(), list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_build_writes_frames_snapshot_and_manifest(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "features"
    code, output = _invoke(
        "features",
        "build",
        "--data",
        str(data_dir),
        "--out",
        str(out),
        "--as-of",
        "2025-02-15",
        "--threads",
        "1",
    )
    assert code == 0, output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["as_of"].startswith("2025-02-15T00:00")
    assert manifest["feature_sets"] == feature_set_versions()
    assert len(manifest["data"]["sha256"]) == 64
    assert "audit_labels" not in manifest["data"]["tables"]
    for entity in Entity:
        frame = pd.read_parquet(out / f"{entity.value}.parquet")
        source = text_source(entity)
        fields = [] if source is None else list(source.fields)
        assert list(frame.columns) == ["item_id", *feature_names(entity), *fields]
        assert manifest["frames"][entity.value]["text_fields"] == fields
        assert manifest["frames"][entity.value]["rows"] == len(frame) > 0
    snapshot = FeatureSnapshot.load(out / "snapshot")
    assert snapshot.table("sellers").num_rows == manifest["snapshot"]["tables"]["sellers"]
    assert "wrote" in output and "manifest.json" in output


def test_build_defaults_to_the_end_of_the_data(data_dir: Path, tmp_path: Path) -> None:
    code, output = _invoke(
        "features",
        "build",
        "--data",
        str(data_dir),
        "--out",
        str(tmp_path / "o"),
        "--entity",
        "seller",
        "--threads",
        "1",
    )
    assert code == 0, output
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["as_of"].startswith("2025-03-02T00:00")  # the day after the 60-day window
    assert list(manifest["frames"]) == ["seller"]


def test_missing_table_stops_before_writing(data_dir: Path, tmp_path: Path) -> None:
    table_path(data_dir, "outcomes").unlink()
    out = tmp_path / "o"
    code, output = _invoke("features", "build", "--data", str(data_dir), "--out", str(out))
    assert code == 2
    assert "outcomes: table file not found" in output and "nothing was written" in output
    assert not out.exists()


def test_contract_violation_stops_before_writing(data_dir: Path, tmp_path: Path) -> None:
    path = table_path(data_dir, "listings")
    listings = pd.read_parquet(path)
    listings.loc[0, "price"] = -5.0
    listings.to_parquet(path)
    code, output = _invoke(
        "features", "build", "--data", str(data_dir), "--out", str(tmp_path / "o")
    )
    assert code == 2
    assert "listings.price" in output
    assert not (tmp_path / "o").exists()


def test_unknown_feature_in_a_strategy_stops_before_writing(data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "strategies" / "bad@v1.yaml").write_text(
        STRATEGY.replace("listing_counterfeit_term_count", "listing_fake_count")
    )
    code, output = _invoke(
        "features", "build", "--data", str(data_dir), "--out", str(tmp_path / "o")
    )
    assert code == 2
    assert "unknown feature 'listing_fake_count'" in output
    assert not (tmp_path / "o").exists()


def test_list_and_docs(tmp_path: Path) -> None:
    code, output = _invoke("features", "list", "--entity", "video")
    assert code == 0 and "linked_listing_category" in output and "seller_verification" in output
    assert "listing frame" not in output
    code, output = _invoke("features", "list", "--entity", "shop")
    assert code == 2 and "unknown entity" in output
    target = tmp_path / "features.md"
    code, _ = _invoke("features", "docs", "--out", str(target))
    assert code == 0 and target.read_text() == render_features_markdown()


def test_byo_command(tmp_path: Path) -> None:
    from tests.features.test_byo import _write

    spec = _write(tmp_path)
    out = tmp_path / "byo"
    code, output = _invoke(
        "features", "byo", "--spec", str(spec), "--out", str(out), "--base-dir", str(tmp_path)
    )
    assert code == 0, output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["frames"]["order"]["rows"] == 5
    assert manifest["frames"]["order"]["label"] == "label"
    assert len(pd.read_parquet(out / "order.parquet")) == 5
    code, output = _invoke(
        "features", "byo", "--spec", str(spec), "--out", str(out), "--table", "rows"
    )
    assert code != 0 and "NAME=PATH" in output
    code, output = _invoke(
        "features", "byo", "--spec", str(tmp_path / "nope.yaml"), "--out", str(out)
    )
    assert code == 2 and "spec file not found" in output


def test_validate_on_a_corrupt_table_is_one_line_and_exit_2(data_dir: Path) -> None:
    path = table_path(data_dir, "listings")
    path.write_bytes(path.read_bytes()[:100])  # truncated
    code, output = _invoke("data", "validate", "--data", str(data_dir))
    lines = [line for line in output.splitlines() if line.strip()]
    assert code == 2, output
    assert len(lines) == 1 and "listings.parquet" in lines[0] and "Parquet" in lines[0], output


def test_validate_flags_timestamps_in_the_future(data_dir: Path) -> None:
    code, output = _invoke("data", "validate", "--data", str(data_dir))
    assert code == 0, output
    path = table_path(data_dir, "listings")
    listings = pd.read_parquet(path)
    listings.loc[[2, 7], "created_at"] = pd.Timestamp("9999-12-31")
    listings.to_parquet(path, index=False)
    code, output = _invoke("data", "validate", "--data", str(data_dir))
    assert code == 1, output
    assert "listings.created_at: timestamp in the future" in output
    assert "2 rows" in output
    assert str(listings.loc[2, "listing_id"]) in output
