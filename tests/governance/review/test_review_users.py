"""Users: argon2 password hashes, hashed API tokens that expire and can be revoked."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from governance.review import users
from governance.review.db import ReviewSession
from governance.review.errors import ConflictError, InvalidInputError, NotFoundError
from governance.review.orm import ApiToken, User


def test_passwords_are_argon2_hashed_and_checked(
    session: ReviewSession, make_user: Callable[..., User]
) -> None:
    user = make_user("ana")
    assert user.password_hash.startswith("$argon2id$")
    assert "correct horse" not in user.password_hash
    assert users.authenticate(session, "ana", "correct horse battery") is user
    assert users.authenticate(session, "ana", "wrong password!") is None
    assert users.authenticate(session, "nobody", "correct horse battery") is None
    users.set_active(session, user, False, actor=None)
    assert users.authenticate(session, "ana", "correct horse battery") is None


def test_the_session_stamp_changes_with_the_password_disable_and_sign_out(
    session: ReviewSession, make_user: Callable[..., User]
) -> None:
    ana, bo = make_user("ana"), make_user("bo")
    stamp = users.session_stamp(ana)
    assert len(stamp) == 16 and int(stamp, 16) >= 0
    assert stamp != users.session_stamp(bo)  # same password, different salt
    users.set_active(session, ana, True, actor=None)  # already active: nothing ends
    assert users.session_stamp(ana) == stamp
    users.set_password(session, ana, "correct horse battery", actor=None)  # even the same one
    assert users.session_stamp(ana) != stamp
    stamp = users.session_stamp(ana)
    # Disabling ends sessions for good: enabling again does not bring the old stamp back.
    users.set_active(session, ana, False, actor=None)
    users.set_active(session, ana, True, actor=None)
    assert users.session_stamp(ana) != stamp
    stamp = users.session_stamp(ana)
    users.end_sessions(session, ana, actor=None)
    session.commit()
    assert users.session_stamp(ana) != stamp
    assert users.session_stamp(bo) == users.session_stamp(session.get(User, bo.id))  # untouched


def test_user_input_is_checked(session: ReviewSession, make_user: Callable[..., User]) -> None:
    make_user("ana")
    with pytest.raises(ConflictError, match="already exists"):
        make_user("ana")
    with pytest.raises(InvalidInputError, match="at least 10"):
        users.create_user(session, username="bo", role="pm", password="short")
    with pytest.raises(InvalidInputError, match="role 'boss' is unknown"):
        users.create_user(session, username="bo", role="boss", password="long enough pw")
    with pytest.raises(InvalidInputError, match="username"):
        users.create_user(session, username="Bo Smith", role="pm", password="long enough pw")


def test_tokens_are_stored_hashed_and_expire_or_get_revoked(
    session: ReviewSession, make_user: Callable[..., User]
) -> None:
    user = make_user("ana")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    token, secret = users.issue_token(session, user, name="laptop", ttl_days=1, now=now)
    session.commit()
    stored = session.scalars(sa.select(ApiToken.token_hash)).all()
    assert secret not in stored and secret.startswith("grk_")
    assert users.user_for_token(session, secret, now=now) is user
    assert users.user_for_token(session, secret, now=now + timedelta(days=2)) is None
    assert users.token_state(token, now=now) == "active"
    assert users.token_state(token, now=now + timedelta(days=2)) == "expired"
    assert users.user_for_token(session, secret + "x", now=now) is None
    users.revoke_token(session, token, actor=user)
    assert users.user_for_token(session, secret, now=now) is None
    assert users.token_state(token, now=now + timedelta(days=2)) == "revoked"  # wins over expiry
    revoked_at = token.revoked_at
    users.revoke_token(session, token, actor=user)  # again: keeps the first revocation
    assert token.revoked_at == revoked_at
    other, _ = users.issue_token(session, user, name="ci", now=now + timedelta(hours=1))
    assert [t.name for t in users.tokens_of(session, user)] == ["ci", "laptop"]
    assert users.token_by_id(session, other.id) is other
    with pytest.raises(NotFoundError, match="no API token with id"):
        users.token_by_id(session, 10_000)


def test_demo_accounts_are_idempotent_and_scoped(session: ReviewSession) -> None:
    from governance.review.demo import seed_demo_accounts
    from governance.review.users import visible_team_ids

    first = seed_demo_accounts(session)
    session.commit()
    assert all(a.password for a in first) and {a.role.value for a in first} == {
        "admin",
        "moderator",
        "pm",
        "ml_engineer",
    }
    again = seed_demo_accounts(session)
    assert [a.password for a in again] == [""] * len(first)
    login = next(a for a in first if a.username == "mod-brand")
    user = users.authenticate(session, login.username, login.password)
    assert user is not None and user.team is not None and user.team.name == "brand-protection"
    pm = users.user_by_username(session, "pm")
    assert visible_team_ids(pm) == {t.id for t in pm.granted_teams} and len(pm.granted_teams) == 3
