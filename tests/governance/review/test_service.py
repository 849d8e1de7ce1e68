"""The review service's unit of work: commit on success, roll back on error, write lock held."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import sessionmaker

from governance.review import service, users
from governance.review.db import ReviewSession
from governance.review.errors import NotFoundError
from governance.review.orm import Team, User
from governance.review.settings import ReviewSettings
from governance.review.throttle import SignInThrottle
from governance.review.vocabulary import EscalationPriority


def _team_names(factory: sessionmaker[ReviewSession]) -> list[str]:
    with factory() as other:
        return list(other.scalars(sa.select(Team.name).order_by(Team.name)))


def test_unit_of_work_commits_what_it_wrote(
    session: ReviewSession, factory: sessionmaker[ReviewSession]
) -> None:
    with service.unit_of_work(session):
        session.add(Team(name="kept", policies=[]))
    assert _team_names(factory) == ["kept"]  # visible to another session: committed
    assert not session.in_transaction()


def test_unit_of_work_rolls_back_when_the_use_case_fails(
    session: ReviewSession, factory: sessionmaker[ReviewSession]
) -> None:
    with pytest.raises(NotFoundError), service.unit_of_work(session):
        session.add(Team(name="lost", policies=[]))
        session.flush()
        raise NotFoundError("no such thing")
    assert not session.in_transaction()
    assert _team_names(factory) == []
    with service.unit_of_work(session):  # the session (and on SQLite the lock) is usable again
        session.add(Team(name="next", policies=[]))
    assert _team_names(factory) == ["next"]


def test_units_of_work_do_not_nest(
    session: ReviewSession, factory: sessionmaker[ReviewSession]
) -> None:
    with pytest.raises(RuntimeError, match="already open"), service.unit_of_work(session):
        session.add(Team(name="outer", policies=[]))
        with service.unit_of_work(session):  # would commit "outer" half-way
            pass
    assert _team_names(factory) == []  # the outer unit was rolled back, nothing committed
    with service.unit_of_work(session):  # and the session is usable again
        session.add(Team(name="after", policies=[]))
    assert _team_names(factory) == ["after"]


def test_a_guarded_session_writes_only_in_units_of_work(
    session: ReviewSession, factory: sessionmaker[ReviewSession]
) -> None:
    """The web app's sessions: a route that wrote without a use case fails loudly."""
    service.writes_in_units_only(session)
    session.add(Team(name="stray", policies=[]))
    with pytest.raises(RuntimeError, match="outside a unit of work"):
        session.flush()
    session.rollback()
    with service.unit_of_work(session):
        session.add(Team(name="kept", policies=[]))
    assert _team_names(factory) == ["kept"]


def test_unit_of_work_takes_the_write_lock_up_front(session: ReviewSession) -> None:
    with service.unit_of_work(session):
        options = session.connection().get_execution_options()
        assert options.get("govrisk_write") is True


def test_revoking_someone_elses_token_reads_as_unknown(
    session: ReviewSession, make_user: Callable[..., User]
) -> None:
    ana, bo = make_user("ana"), make_user("bo")
    token, _ = service.issue_token(
        session, ana, name="cli", ttl_days=None, settings=ReviewSettings()
    )
    with pytest.raises(NotFoundError, match=f"no API token with id {token.id}"):
        service.revoke_token(session, bo, token.id)
    assert token.revoked_at is None
    service.revoke_token(session, ana, token.id)
    assert token.revoked_at is not None


def _stored_hash(factory: sessionmaker[ReviewSession], username: str) -> str:
    with factory() as other:
        return other.scalars(sa.select(User.password_hash).where(User.username == username)).one()


def test_sign_in_is_throttled_and_saves_a_rehashed_password(
    session: ReviewSession,
    factory: sessionmaker[ReviewSession],
    make_user: Callable[..., User],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    make_user("ana")
    throttle = SignInThrottle(max_failures=3, window_seconds=60)

    def attempt(password: str) -> service.SignIn:
        return service.sign_in(
            session, throttle, username=" ana ", password=password, client="10.0.0.1"
        )

    assert attempt("wrong password!").user is None
    old_hash = _stored_hash(factory, "ana")
    stronger = PasswordHash((Argon2Hasher(time_cost=2, memory_cost=1024, parallelism=1),))
    monkeypatch.setattr(users, "password_hasher", lambda: stronger)
    signed_in = attempt("correct horse battery")
    assert signed_in.user is not None and signed_in.user.username == "ana"
    new_hash = _stored_hash(factory, "ana")
    assert new_hash != old_hash and "t=2" in new_hash  # committed, with the new parameters
    assert not session.in_transaction()
    # The success cleared the username's failure, not the address's: two more reach the limit.
    assert attempt("wrong again!!").retry_after_seconds == 0
    assert attempt("and again!!!").retry_after_seconds == 0
    refused = attempt("correct horse battery")  # the address's third failure: refused unchecked
    assert refused.user is None and refused.retry_after_seconds > 0


def test_one_sla_source_for_every_priority() -> None:
    settings = ReviewSettings(sla_hours_critical=1.5, sla_hours_low=500)
    hours = settings.sla_hours_by_priority()
    assert set(hours) == set(EscalationPriority)
    assert hours[EscalationPriority.CRITICAL] == 1.5
    assert hours[EscalationPriority.LOW] == 500


def test_only_the_service_layer_opens_write_transactions() -> None:
    """Outside `service.py` (and `db.py`, which defines `begin_write`), no module of the
    governance package calls `begin_write`, `commit` or `rollback`: CLIs and routes run their
    writes in `service.unit_of_work`."""
    import ast
    from pathlib import Path

    import governance

    root = Path(governance.__file__).resolve().parent
    allowed = {root / "review" / "service.py", root / "review" / "db.py"}
    found = []
    for path in sorted(root.rglob("*.py")):
        if path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            func = node.func if isinstance(node, ast.Call) else None
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in {"begin_write", "commit", "rollback"}:
                found.append(f"{path.relative_to(root)}:{node.lineno} {name}()")
    assert not found, "use governance.review.service.unit_of_work: " + "; ".join(found)
