"""Fixtures of the review service tests: an engine and sessions on each database."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from governance.review import users
from governance.review.db import ReviewSession, make_engine, make_session_factory
from governance.review.orm import Team, User


@pytest.fixture(autouse=True)
def _fast_hashing(cheap_password_hashing: None) -> None:
    """Every review test hashes passwords cheaply."""


@pytest.fixture
def engine(review_db_url: str) -> Iterator[Engine]:
    """An engine on an empty migrated database (SQLite and PostgreSQL)."""
    eng = make_engine(review_db_url, pool_size=12)
    yield eng
    eng.dispose()


@pytest.fixture
def factory(engine: Engine) -> sessionmaker[ReviewSession]:
    """Session factory on `engine`."""
    return make_session_factory(engine)


@pytest.fixture
def session(factory: sessionmaker[ReviewSession]) -> Iterator[ReviewSession]:
    """One session for the test body."""
    with factory() as s:
        yield s


@pytest.fixture
def make_user(session: ReviewSession) -> Callable[..., User]:
    """Create and commit a user: make_user('ana', 'moderator', team=None)."""

    def make(username: str, role: str = "moderator", *, team: Team | None = None) -> User:
        user = users.create_user(
            session, username=username, role=role, password="correct horse battery", team=team
        )
        session.commit()
        return user

    return make
