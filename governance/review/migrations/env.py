"""Alembic environment of the review database; run through `governance.review.db.upgrade`."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from governance.review.orm import Base


def _run(connection: sa.Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Two services starting at once must not both create the tables.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7460251)")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from governance.review.db import make_engine

    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as own_connection:
            _run(own_connection)
    finally:
        engine.dispose()


_main()
