"""Training against PostgreSQL as the MLflow backend store (a throwaway database)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from features.vocabulary import Entity
from models.registry import CHALLENGER, use_tracking_uri, version_for_alias
from training.dataset import EntityData
from training.pipeline import train
from training.spec import ExperimentSpec

pytestmark = [pytest.mark.postgres, pytest.mark.xdist_group("training-mlflow")]

_ADMIN_DSN = os.environ.get(
    "GOVRISK_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def postgres_tracking_uri() -> Iterator[str]:
    """A fresh database for MLflow's backend store, dropped afterwards; MLflow points back
    at the store it used before, so later tests in this process do not read a dropped one."""
    import mlflow
    import psycopg

    try:
        admin = psycopg.connect(_ADMIN_DSN, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI but unreachable: {err}")
        pytest.skip(f"PostgreSQL unreachable on 127.0.0.1:5432 ({err})")
    name = f"govrisk_mlflow_{secrets.token_hex(6)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        base = _ADMIN_DSN.rsplit("/", 1)[0]
        before = (mlflow.get_tracking_uri(), mlflow.get_registry_uri())
        try:
            yield f"{base}/{name}"
        finally:
            mlflow.set_tracking_uri(before[0])
            mlflow.set_registry_uri(before[1])
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_training_logs_and_registers_on_postgres(
    postgres_tracking_uri: str,
    entity_data: EntityData,
    make_spec: Callable[..., ExperimentSpec],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    spec = make_spec(
        targets=[{"entity": "listing", "policies": ["any"]}],
        mlflow={"experiment": "postgres"},
    )
    result = train(spec, tracking_uri=postgres_tracking_uri, data={Entity.LISTING: entity_data})
    assert result.tracking_uri.startswith("postgresql")
    (target,) = result.targets
    assert target.status == "trained"
    use_tracking_uri(postgres_tracking_uri)
    runs = mlflow.search_runs(experiment_ids=[result.experiment_id])
    row = runs.set_index("run_id").loc[target.run_id]
    assert row["metrics.pr_auc"] == pytest.approx(target.metrics["pr_auc"])
    assert "metrics.pr_auc__slice__channel.shop_tab" in runs.columns
    version = version_for_alias(target.model_name, CHALLENGER)
    assert version is not None and str(version.version) == target.model_version
