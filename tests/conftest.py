"""Shared fixtures: review-service databases on SQLite and PostgreSQL.

PostgreSQL tests use a throwaway database (`govrisk_test_<random>`) created once per test
session on 127.0.0.1:5432 and dropped at the end. They skip when the server is unreachable,
except under CI=true, where that is a failure.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

_PG_ADMIN_DSN = os.environ.get(
    "GOVRISK_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a migrated throwaway PostgreSQL database for this test session."""
    import psycopg

    from governance.review.db import make_engine, upgrade

    try:
        admin = psycopg.connect(_PG_ADMIN_DSN, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as err:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI but unreachable: {err}")
        pytest.skip(f"PostgreSQL unreachable on 127.0.0.1:5432 ({err})")
    name = f"govrisk_test_{secrets.token_hex(6)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        base = _PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        url = f"{base}/{name}"
        engine = make_engine(url, pool_size=2)
        upgrade(engine)
        engine.dispose()
        try:
            yield url
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating every time is slower)."""
    from governance.review.db import make_engine, upgrade

    path = tmp_path_factory.mktemp("review-template") / "template.db"
    engine = make_engine(f"sqlite:///{path}", pool_size=1)
    upgrade(engine)
    engine.dispose()
    return path


def _truncate_postgres(url: str) -> None:
    import sqlalchemy as sa

    from governance.review.orm import Base

    engine = sa.create_engine(url)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def review_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated review database: a SQLite file, or the session's PostgreSQL one."""
    if request.param == "sqlite":
        path = tmp_path / "review.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    _truncate_postgres(url)
    return url


@pytest.fixture
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 with minimal cost in tests (hashes stay valid argon2id; speed only)."""
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    from governance.review import users

    cheap = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
    monkeypatch.setattr(users, "password_hasher", lambda: cheap)


# -- review test data ------------------------------------------------------------------------

BASE_STRATEGY_YAML = """\
id: listing-counterfeit-terms
version: 1
name: Block listings with counterfeit wording
owner: brand-protection
description: Blocks listings whose text uses counterfeit vocabulary.
entity: listing
policy: counterfeit
channels: [shop_tab, campaigns]
action: block
status: active
condition:
  all:
    - {feature: listing_counterfeit_term_count, op: ">=", value: 1}
"""


def _make_flags(
    n: int = 20,
    *,
    seed: int = 0,
    random_share: float = 0.3,
    policies: tuple[str, ...] = ("counterfeit",),
    prefix: str = "L",
) -> Any:
    """A seeded flags.parquet-shaped frame of `n` listings."""
    import json

    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    kinds = np.where(
        rng.random(n) < random_share,
        "random_audit",
        rng.choice(["likely_false_positive", "likely_false_negative"], size=n),
    )
    hit = rng.random(n) < 0.6
    return pd.DataFrame(
        {
            "entity": "listing",
            "item_id": [f"{prefix}{i:05d}" for i in range(n)],
            "policy": rng.choice(list(policies), size=n),
            "channel": rng.choice(["shop_tab", "campaigns", "shop_ads"], size=n),
            "kind": kinds,
            "priority": rng.gamma(2.0, 10.0, size=n).round(3),
            "p_error": rng.uniform(0.05, 0.95, size=n).round(3),
            "inclusion_probability": np.where(kinds == "random_audit", 0.02, 1.0),
            "strategies": np.where(hit, "listing-counterfeit-terms@v1", ""),
            "reasons": [
                json.dumps(
                    [
                        {
                            "feature": "listing_counterfeit_term_count",
                            "description": "Counterfeit terms in the text",
                            "value": int(v),
                            "contribution": round(float(c), 4),
                        },
                        {
                            "feature": "seller_tenure_days",
                            "description": "Seller age",
                            "value": int(t),
                            "contribution": round(float(-c / 2), 4),
                        },
                    ]
                )
                for v, c, t in zip(
                    rng.integers(0, 4, size=n),
                    rng.normal(0.3, 0.2, size=n),
                    rng.integers(1, 900, size=n),
                    strict=True,
                )
            ],
        }
    )


def _proposed_yaml(threshold: int = 2) -> str:
    return BASE_STRATEGY_YAML.replace("status: active", "status: shadow").replace(
        "value: 1}", f"value: {threshold}}}"
    )


def _make_suggestions(n: int = 2) -> Any:
    """A suggestions.parquet-shaped frame of `n` threshold changes to the base strategy."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "suggestion_id": f"sg-{i}",
                "strategy_id": "listing-counterfeit-terms",
                "base_version": 1,
                "kind": "threshold",
                "summary": f"Require {i + 2} counterfeit terms instead of 1",
                "proposed_yaml": _proposed_yaml(i + 2),
                "delta_fp": -12.0 - i,
                "delta_fp_low": -18.0,
                "delta_fp_high": -6.0,
                "delta_fn": 3.0,
                "delta_fn_low": 1.0,
                "delta_fn_high": 5.0,
                "delta_impressions": -1500.0,
                "delta_gmv": -230.5,
                "labels_used": 140,
                "rank": i + 1,
            }
            for i in range(n)
        ]
    )


def _write_base_strategy(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "listing-counterfeit-terms@v1.yaml"
    path.write_text(BASE_STRATEGY_YAML, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def review_data() -> SimpleNamespace:
    """Seeded factories of review inputs: flags, suggestions and a base strategy file."""
    return SimpleNamespace(
        make_flags=_make_flags,
        make_suggestions=_make_suggestions,
        write_base_strategy=_write_base_strategy,
        proposed_yaml=_proposed_yaml,
    )
