"""`govrisk experiments create|list|show|analyze|stop` end to end on a tiny data directory."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from typer.testing import CliRunner

from governance.experiments.declaration import dump_experiment
from govrisk import build_app
from tests.governance.experiments.factories import make_experiment


def test_experiment_lifecycle(market_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner(env={"COLUMNS": "200"})
    app = build_app()
    db = ["--data-dir", str(market_dir), "--database-url", f"sqlite:///{tmp_path / 'r.db'}"]
    spec = tmp_path / "exp.yaml"
    experiment = make_experiment(
        start=datetime(2026, 1, 15), end=datetime(2026, 1, 26), channels=[], pre_period_days=7
    )
    spec.write_text(dump_experiment(experiment), encoding="utf-8")

    created = runner.invoke(app, ["experiments", "create", "--file", str(spec), *db])
    assert created.exit_code == 0, created.output
    assert "created (running)" in created.output
    again = runner.invoke(app, ["experiments", "create", "--file", str(spec), *db])
    assert again.exit_code == 2 and "already exists" in again.output

    analysed = runner.invoke(
        app, ["experiments", "analyze", experiment.id, "--data", str(market_dir), *db]
    )
    assert analysed.exit_code == 0, analysed.output
    assert "recommendation:" in analysed.output and "sample ratio" in analysed.output
    assert "gmv by channel" in analysed.output and "campaigns" in analysed.output
    assert "random audit" in analysed.output

    listed = runner.invoke(app, ["experiments", "list", *db])
    assert experiment.id in listed.output
    shown = runner.invoke(app, ["experiments", "show", experiment.id, *db])
    assert "primary_metric: gmv" in shown.output and "recommendation:" in shown.output

    stopped = runner.invoke(app, ["experiments", "stop", experiment.id, "--reason", "done", *db])
    assert stopped.exit_code == 0, stopped.output
    missing = runner.invoke(app, ["experiments", "show", "nope", *db])
    assert missing.exit_code == 2 and "no experiment" in missing.output


def test_create_reports_registry_problems(market_dir: Path, tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(dump_experiment(make_experiment(treatment="ghost@v1")), encoding="utf-8")
    result = CliRunner().invoke(
        build_app(),
        [
            "experiments",
            "create",
            "--file",
            str(spec),
            "--data-dir",
            str(market_dir),
            "--database-url",
            f"sqlite:///{tmp_path / 'r.db'}",
        ],
    )
    assert result.exit_code == 2
    assert "ghost@v1 is not in the registry" in result.output
