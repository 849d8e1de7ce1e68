"""Experiments in the review database: create, list, analyse, stop and ship, all audit-logged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from governance.experiments.analysis import analyze
from governance.experiments.declaration import ExperimentError
from governance.experiments.store import (
    ExperimentNotFoundError,
    ExperimentStateError,
    create_experiment,
    declaration,
    get_experiment,
    list_experiments,
    record_analysis,
    ship_experiment,
    stop_experiment,
)
from governance.experiments.vocabulary import ExperimentStatus
from governance.registry import StrategyRegistry
from governance.review import audit_log
from governance.review.db import make_engine, make_session_factory
from tests.governance.experiments.factories import make_experiment, make_registry
from tests.governance.experiments.test_analysis import make_units


@pytest.fixture
def session(review_db_url: str) -> Iterator[Session]:
    engine = make_engine(review_db_url, pool_size=2)
    with make_session_factory(engine)() as s:
        yield s
    engine.dispose()


def test_create_list_show(session: Session) -> None:
    experiment = make_experiment()
    create_experiment(session, experiment, registry=make_registry(), actor=None)
    session.commit()
    record = get_experiment(session, experiment.id)
    assert record.status is ExperimentStatus.RUNNING
    assert declaration(record) == experiment
    assert [r.experiment_id for r in list_experiments(session)] == [experiment.id]
    assert list_experiments(session, status=ExperimentStatus.STOPPED) == []
    (event,) = audit_log.entries(session, target_type="experiment")
    assert event.action == "experiment.create"


def test_create_refuses_unknown_versions_and_duplicates(session: Session) -> None:
    with pytest.raises(ExperimentError, match="not in the registry"):
        create_experiment(
            session, make_experiment(treatment="nope@v3"), registry=make_registry(), actor=None
        )
    create_experiment(session, make_experiment(), registry=make_registry(), actor=None)
    with pytest.raises(ExperimentStateError, match="already exists"):
        create_experiment(session, make_experiment(), registry=make_registry(), actor=None)


def test_analysis_kept_with_history(session: Session) -> None:
    experiment = make_experiment()
    create_experiment(session, experiment, registry=make_registry(), actor=None)
    for seed in (1, 2):
        record_analysis(
            session, experiment.id, analyze(experiment, make_units(seed=seed)), actor=None
        )
    session.commit()
    record = get_experiment(session, experiment.id)
    assert record.last_analysis["recommendation"] in ("ship", "keep_running", "stop")
    assert len(record.last_analysis["history"]) == 2
    assert record.last_analysis["config"]["sequential"] is True


def test_stop_is_final_and_needs_a_reason(session: Session) -> None:
    experiment = make_experiment()
    create_experiment(session, experiment, registry=make_registry(), actor=None)
    with pytest.raises(ValueError, match="reason"):
        stop_experiment(session, experiment.id, reason=" ", actor=None)
    stop_experiment(session, experiment.id, reason="guardrail broke", actor=None)
    session.commit()
    assert get_experiment(session, experiment.id).status is ExperimentStatus.STOPPED
    with pytest.raises(ExperimentStateError, match="cannot become"):
        stop_experiment(session, experiment.id, reason="again", actor=None)
    with pytest.raises(ExperimentNotFoundError):
        get_experiment(session, "missing")


def test_ship_promotes_the_treatment(session: Session, tmp_path: Path) -> None:
    directory = tmp_path / "strategies"
    registry = StrategyRegistry([], directory=directory)
    for strategy in make_registry():
        registry.add(strategy)
    experiment = make_experiment()
    create_experiment(session, experiment, registry=registry, actor=None)
    ship_experiment(session, experiment.id, reason="won", registry=registry, actor=None)
    session.commit()
    reloaded = StrategyRegistry.from_directory(directory)
    assert reloaded.get(experiment.treatment).status.value == "active"
    assert reloaded.get(experiment.control).status.value == "retired"
    actions = [e.action for e in audit_log.entries(session, target_type="experiment")]
    assert actions == ["experiment.ship", "experiment.create"]
