"""Fixtures of the review service HTTP tests: an app per database with one user per role."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from governance.review import approvals, queue, users
from governance.review.settings import ReviewSettings
from serving.app import create_app

ROLES = ("moderator", "pm", "ml_engineer", "admin")
PASSWORD = "correct horse battery"


@pytest.fixture(autouse=True)
def _fast_hashing(cheap_password_hashing: None) -> None:
    """Every serving test hashes passwords cheaply."""


@pytest.fixture
def review_settings(
    review_db_url: str, tmp_path: Path, review_data: SimpleNamespace
) -> ReviewSettings:
    """Settings of a service on the test database, with one base strategy on disk."""
    review_data.write_base_strategy(tmp_path / "strategies")
    return ReviewSettings(
        data_dir=tmp_path,
        database_url=review_db_url,
        secret_key="test-secret-" + "x" * 32,
        lease_seconds=120,
    )


@pytest.fixture
def review_app(
    review_settings: ReviewSettings, review_data: SimpleNamespace
) -> Iterator[SimpleNamespace]:
    """The app with a user and API token per role, 20 queued flags and 2 suggestions."""
    app = create_app(review_settings)
    state = app.state.review
    tokens: dict[str, str] = {}
    ids: dict[str, int] = {}
    with state.session_factory() as session:
        for role in ROLES:
            user = users.create_user(
                session, username=role.replace("_", "-"), role=role, password=PASSWORD
            )
            _, tokens[role] = users.issue_token(session, user, name="test")
            ids[role] = user.id
        queue.ingest_flags(session, review_data.make_flags(20, seed=21))
        approvals.ingest_suggestions(session, review_data.make_suggestions(2))
        session.commit()
    with TestClient(app) as client:
        yield SimpleNamespace(
            app=app,
            client=client,
            tokens=tokens,
            ids=ids,
            state=state,
            auth=lambda role: bearer(tokens[role]),
            login=login,
            csrf_of=csrf_of,
        )


def bearer(token: str) -> dict[str, str]:
    """Authorization header for an API token."""
    return {"Authorization": f"Bearer {token}"}


def csrf_of(html: str) -> str:
    """The CSRF token embedded in a rendered page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None, "page has no CSRF field"
    return match.group(1)


def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Sign in through the login form; returns the session's CSRF token."""
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/notifications").text)


@pytest.fixture
def advance_clock(review_app: SimpleNamespace) -> Callable[[float], None]:
    """Moves the clock of the app's sign-in throttle forward by some seconds (no sleeping)."""
    now = [1_000.0]
    review_app.state.throttle.clock = lambda: now[0]

    def advance(seconds: float) -> None:
        now[0] += seconds

    return advance


@pytest.fixture
def argon2_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every argon2 verification of a password (one entry per check)."""
    hasher = users.password_hasher()
    checks: list[str] = []
    for name in ("verify", "verify_and_update"):
        original = getattr(hasher, name)

        def counted(*args: Any, _name: str = name, _original: Any = original) -> Any:
            checks.append(_name)
            return _original(*args)

        monkeypatch.setattr(hasher, name, counted)
    return checks
