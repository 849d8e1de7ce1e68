"""`govrisk simulate` end to end on a tiny world."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from features.loader import load_tables
from govrisk import build_app


def test_simulate_writes_validated_tables_and_truth(tmp_path: Path) -> None:
    out = tmp_path / "world"
    args = [
        "simulate",
        "--out",
        str(out),
        "--listings",
        "300",
        "--days",
        "7",
        "--seed",
        "3",
        "--audit-labels",
        "150",
    ]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    assert "channel_exposure" in result.output and "Written" in result.output
    tables = load_tables(out / "data")
    assert len(tables["listings"]) == 300
    assert len(list((out / "data" / "strategies").glob("*@v*.yaml"))) >= 15
    config = json.loads((out / "ground_truth" / "config.json").read_text())
    assert config["seed"] == 3 and config["label_budget"] == 150


def test_simulate_rejects_bad_options(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        build_app(), ["simulate", "--out", str(tmp_path), "--listings", "10"]
    )
    assert result.exit_code == 2, result.output
    assert "--listings" in result.output and "200" in result.output
    assert not (tmp_path / "data").exists()
