"""Engine, sessions and migrations of the review database (SQLite file or PostgreSQL).

SQLite runs in WAL mode with a busy timeout. Reads run in ordinary (deferred) transactions, which
in WAL mode neither block nor wait. A unit of work that writes starts with `begin_write(session)`:
on SQLite that ends any read transaction and begins `BEGIN IMMEDIATE`, taking the single write
lock up front, so a read-then-write unit (claiming a queue item) cannot interleave with another
writer and never fails half-way with "database is locked". Write transactions of one process
queue on a lock, and the lock is only ever held between `begin_write` and the commit in one
thread. PostgreSQL uses row locks (`FOR UPDATE SKIP LOCKED`) instead; `begin_write` only ends
the read transaction there.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from governance.review.orm import AuditEvent, Base

#: Seconds a SQLite connection waits for the write lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 30.0
_MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class ReviewSession(Session):
    """ORM session of the review service; refuses to change or delete audit log rows."""


@sa.event.listens_for(ReviewSession, "before_flush")
def _guard_audit_log_flush(session: Session, flush_context: Any, instances: Any) -> None:
    del flush_context, instances
    for obj in (*session.dirty, *session.deleted):
        if isinstance(obj, AuditEvent) and (obj in session.deleted or session.is_modified(obj)):
            raise PermissionError("audit_log is append-only: rows cannot be changed or deleted")


@sa.event.listens_for(ReviewSession, "do_orm_execute")
def _guard_audit_log_statements(state: ORMExecuteState) -> None:
    if (state.is_update or state.is_delete) and any(
        mapper.class_ is AuditEvent for mapper in state.all_mappers
    ):
        raise PermissionError("audit_log is append-only: rows cannot be changed or deleted")


def make_engine(url: str, *, pool_size: int = 20, echo: bool = False) -> Engine:
    """An engine for `url`, with SQLite set up for concurrent use (WAL, busy timeout)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            parsed,
            echo=echo,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=SQLITE_BUSY_TIMEOUT_S,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
        )
        sa.event.listen(engine, "connect", _configure_sqlite_connection)
        _WriterQueue().install(engine)
        return engine
    return sa.create_engine(
        parsed,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
    )


def _configure_sqlite_connection(dbapi_connection: Any, connection_record: Any) -> None:
    del connection_record
    # Hand transaction control to SQLAlchemy's "begin" event (pysqlite would BEGIN DEFERRED).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # FULL: a committed verdict survives power loss, not only a crash of the process.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


class _WriterQueue:
    """Queues this process's SQLite transactions on a lock before `BEGIN IMMEDIATE`.

    SQLite's own busy handler waits by sleeping and retrying, which under many concurrent
    requests wastes most of the time asleep; a lock hands the database over as soon as the
    previous transaction ends. Other processes (the CLI) still meet the busy timeout.
    """

    _KEY = "govrisk_writer_lock"
    #: Connection execution option that marks a write transaction.
    WRITE_OPTION = "govrisk_write"

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def install(self, engine: Engine) -> None:
        """Hook the engine's transaction and pool events."""
        sa.event.listen(engine, "begin", self._begin)
        sa.event.listen(engine, "commit", self._end)
        sa.event.listen(engine, "rollback", self._end)
        sa.event.listen(engine.pool, "checkin", self._checkin)

    def _begin(self, connection: sa.Connection) -> None:
        if not connection.get_execution_options().get(self.WRITE_OPTION):
            connection.exec_driver_sql("BEGIN")
            return
        if self._lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_S):
            connection.info[self._KEY] = True
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    def _end(self, connection: sa.Connection) -> None:
        # Fired just before COMMIT / ROLLBACK runs; the next BEGIN IMMEDIATE waits (briefly,
        # in SQLite's busy handler) for it to finish.
        if connection.info.pop(self._KEY, False):
            self._lock.release()

    def _checkin(self, dbapi_connection: Any, record: Any) -> None:
        del dbapi_connection
        if record.info.pop(self._KEY, False):  # safety net: never leak the lock
            self._lock.release()


def begin_write(session: Session) -> None:
    """Start a unit of work that writes: end the open read transaction, then take the write lock.

    Call it before the reads that decide a write (a claim, a verdict); commit to end it. Without
    it, SQLite may refuse the write with "database is locked" under concurrency.
    """
    if session.in_transaction():
        session.commit()
    session.connection(execution_options={_WriterQueue.WRITE_OPTION: True})


def make_session_factory(engine: Engine) -> sessionmaker[ReviewSession]:
    """Sessions bound to `engine` that keep objects usable after commit."""
    return sessionmaker(bind=engine, class_=ReviewSession, expire_on_commit=False)


def alembic_config(engine_or_url: Engine | str | None = None) -> Any:
    """The Alembic configuration of the review migrations (scripts inside this package)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS_DIR))
    if isinstance(engine_or_url, str):
        config.set_main_option("sqlalchemy.url", engine_or_url.replace("%", "%%"))
    return config


class DatabaseUnreachableError(RuntimeError):
    """The review database named by the settings cannot be connected to."""


def connect(engine: Engine) -> sa.Connection:
    """A connection to `engine`'s database; one clear error naming the URL when it fails."""
    try:
        return engine.connect()
    except sa.exc.OperationalError as err:
        reason = str(err.orig).strip().splitlines()[0] if err.orig is not None else str(err)
        url = engine.url.render_as_string(hide_password=True)
        raise DatabaseUnreachableError(
            f"cannot reach the review database {url} ({reason}); check --database-url "
            "or GOVRISK_DATABASE_URL"
        ) from err


def upgrade(engine: Engine, *, revision: str = "head") -> None:
    """Migrate the database behind `engine` to `revision` (idempotent, safe to run twice)."""
    from alembic import command

    config = alembic_config()
    with connect(engine) as connection:
        connection.execution_options(**{_WriterQueue.WRITE_OPTION: True})
        with connection.begin():
            config.attributes["connection"] = connection
            command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at (None when never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with connect(engine) as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_differences(engine: Engine) -> list[Any]:
    """Differences between the migrated schema and the ORM models (empty when they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))
