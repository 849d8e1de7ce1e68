"""Migrations match the models on both databases; the audit log is append-only."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from governance.review import audit_log
from governance.review.db import (
    ReviewSession,
    alembic_config,
    current_revision,
    schema_differences,
    upgrade,
)
from governance.review.orm import AuditEvent


def _head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations have more than one head; rechain them"
    return head


#: The newest migration, read from the scripts (one head: a second 0003 must be rechained).
HEAD = _head()


def test_migrations_produce_the_models_schema(engine: Engine) -> None:
    assert current_revision(engine) == HEAD
    assert schema_differences(engine) == []


def test_upgrade_twice_is_a_no_op(engine: Engine) -> None:
    upgrade(engine)
    assert current_revision(engine) == HEAD
    assert "queue_items" in sa.inspect(engine).get_table_names()


def test_sqlite_runs_in_wal_mode_with_busy_timeout(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def _one_entry(session: ReviewSession) -> AuditEvent:
    event = audit_log.record(
        session,
        actor=None,
        action="test.write",
        target_type="thing",
        target_id=1,
        before={"a": 1},
        after={"a": 2},
    )
    session.commit()
    return event


def test_orm_refuses_to_change_or_delete_audit_entries(session: ReviewSession) -> None:
    event = _one_entry(session)
    event.action = "tampered"
    with pytest.raises(PermissionError, match="append-only"):
        session.flush()
    session.rollback()
    session.delete(session.get(AuditEvent, event.id))
    with pytest.raises(PermissionError, match="append-only"):
        session.flush()
    session.rollback()
    with pytest.raises(PermissionError, match="append-only"):
        session.execute(sa.update(AuditEvent).values(action="x"))
    session.rollback()
    with pytest.raises(PermissionError, match="append-only"):
        session.execute(sa.delete(AuditEvent))
    session.rollback()
    assert session.get(AuditEvent, event.id).action == "test.write"  # type: ignore[union-attr]


def test_database_trigger_refuses_raw_updates_and_deletes(
    session: ReviewSession, engine: Engine
) -> None:
    _one_entry(session)
    for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.exec_driver_sql(statement)
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT action FROM audit_log").scalars().all()
    assert rows == ["test.write"]


def test_audit_entries_keep_before_and_after_json(session: ReviewSession) -> None:
    _one_entry(session)
    (entry,) = audit_log.entries(session, target_type="thing")
    assert (entry.actor, entry.before, entry.after) == ("cli", {"a": 1}, {"a": 2})


def test_existing_users_migrate_to_a_session_epoch(tmp_path: Path) -> None:
    """A database at 0001 with a user upgrades in place; the user's epoch starts at 0."""
    from governance.review.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}", pool_size=1)
    try:
        upgrade(engine, revision="0001")
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO users (username, display_name, role, password_hash, is_active, "
                "created_at) VALUES ('ana', '', 'moderator', 'x', 1, '2026-01-01 00:00:00')"
            )
        upgrade(engine)
        assert current_revision(engine) == HEAD
        with engine.connect() as connection:
            epoch = connection.exec_driver_sql("SELECT session_epoch FROM users").scalar()
        assert epoch == 0
        assert schema_differences(engine) == []
    finally:
        engine.dispose()
