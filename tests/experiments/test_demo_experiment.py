"""The demo's experiment steps, run in order on a tiny world: simulate, create, analyse."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from experiments.demo import DEMO_EXPERIMENT_ID, demo_experiment, plan_steps
from governance.experiments.declaration import dump_experiment
from governance.experiments.store import get_experiment, ship_experiment
from governance.registry import StrategyRegistry
from governance.review.db import make_engine, make_session_factory
from govrisk import build_app

#: The demo's treatment version (experiments/specs/campaign-deep-discount@v2.yaml).
CANDIDATE = "campaign-deep-discount@v2"


def test_demo_runs_an_experiment_end_to_end(tmp_path: Path) -> None:
    days = 14
    (tmp_path / "experiment.yaml").write_text(
        dump_experiment(demo_experiment(days=days)), encoding="utf-8"
    )
    steps = plan_steps(tmp_path, listings=600, days=days, seed=2)
    first = next(i for i, s in enumerate(steps) if "--candidate" in s.args)
    experiment_steps = steps[first : first + 3]
    assert [s.args[0] for s in experiment_steps] == ["simulate", "experiments", "experiments"]
    runner = CliRunner(env={"COLUMNS": "200"})
    app = build_app()
    db = runner.invoke(app, ["db", "upgrade", "--data-dir", str(tmp_path / "service")])
    assert db.exit_code == 0, db.output
    for step in experiment_steps:
        result = runner.invoke(app, list(step.args))
        assert result.exit_code == 0, f"{step.title}: {result.output}"
        if step.args[0] == "simulate":
            _serve_the_main_worlds_strategies(tmp_path)
    assert "recommendation:" in result.output
    decisions = pd.read_parquet(
        tmp_path / "experiment-world" / "data" / "tables" / "strategy_decisions.parquet"
    )
    versions = decisions.loc[decisions["strategy_id"] == "campaign-deep-discount"]
    assert set(versions["strategy_version"]) == {1, 2}
    # The candidate joined the served strategy set, so the page's Ship button can promote it.
    served = StrategyRegistry.from_directory(tmp_path / "data" / "strategies")
    assert served.get(CANDIDATE).status.value == "shadow"
    engine = make_engine(f"sqlite:///{tmp_path / 'service' / 'govrisk.db'}", pool_size=1)
    with make_session_factory(engine)() as session:
        record = get_experiment(session, DEMO_EXPERIMENT_ID)
        assert record.last_analysis["recommendation"] in ("ship", "keep_running", "stop")
        assert record.treatment == CANDIDATE
        ship_experiment(session, DEMO_EXPERIMENT_ID, reason="test", registry=served, actor=None)
        session.commit()
    engine.dispose()
    after = StrategyRegistry.from_directory(tmp_path / "data" / "strategies")
    assert after.get("campaign-deep-discount@v2").status.value == "active"
    assert after.get("campaign-deep-discount@v1").status.value == "retired"


def _serve_the_main_worlds_strategies(out: Path) -> None:
    """What the demo's first simulation leaves in DATA/strategies: the same world's versions,
    without the candidate (the experiment world adds it)."""
    served = out / "data" / "strategies"
    served.mkdir(parents=True)
    for path in (out / "experiment-world" / "data" / "strategies").glob("*.yaml"):
        if path.name != "campaign-deep-discount@v2.yaml":
            shutil.copy(path, served / path.name)
