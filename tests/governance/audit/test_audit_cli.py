"""Tests of `govrisk audit`."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from features.vocabulary import Entity
from governance.audit import cli, pipeline
from tests.governance.audit.audit_world import World


def test_audit_command_prints_a_summary_and_the_paths(
    world: World, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    real = pipeline.run_audit

    def fake(data_dir, **kwargs):  # type: ignore[no-untyped-def]
        kwargs.update(
            tables=world.tables,
            strategies=world.strategies,
            frames={Entity.LISTING: world.frame},
            predictions=world.predictions,
        )
        assert kwargs["model_uri"] == ["models:/x-{entity}-{policy}@champion"]
        return real(data_dir, **kwargs)

    monkeypatch.setattr(pipeline, "run_audit", fake)
    monkeypatch.setattr(cli, "require_tracking_store", lambda uri: uri)  # the fake loads no model
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    app = typer.Typer()
    cli.register(app)

    @app.callback()
    def _root() -> None:
        """root"""

    out = tmp_path / "out"
    (tmp_path / "tables").mkdir()  # the command checks the data directory before the fake runs
    result = CliRunner().invoke(
        app,
        [
            "audit",
            "--data",
            str(tmp_path),
            "--model",
            "models:/x-{entity}-{policy}@champion",
            "--out",
            str(out),
            "--no-report",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "cf-terms@v1" in result.output and "flags.parquet" in result.output
    assert (out / "suggestions.parquet").exists() and not (out / "report.html").exists()
    assert "MLflow run" not in result.output


def test_model_and_predictions_are_exclusive(tmp_path: Path) -> None:
    app = typer.Typer()
    cli.register(app)

    @app.callback()
    def _root() -> None:
        """root"""

    preds = tmp_path / "p.parquet"
    result = CliRunner().invoke(
        app,
        [
            "audit",
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path),
            "--model",
            "m",
            "--predictions",
            str(preds),
        ],
    )
    assert result.exit_code == 2
    assert "either --model or --predictions" in result.output
