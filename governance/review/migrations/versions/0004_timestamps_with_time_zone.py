"""Timestamps carry their zone: every PostgreSQL `timestamp` column becomes `timestamptz`.

Stored values were UTC wall times (`timestamp without time zone`); `AT TIME ZONE 'UTC'` reads
them as UTC, so no instant moves. SQLite has no zone type: its rows already hold UTC wall times
and the ORM's `UtcDateTime` puts the zone back on read, so nothing changes there.

Revision ID: 0004
Revises: 0003_experiments_5e1b
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003_experiments_5e1b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp_columns(*, with_zone: bool) -> Iterator[tuple[str, str]]:
    """(table, column) of every timestamp column with or without a zone, in table order."""
    inspector = sa.inspect(op.get_bind())
    for table in inspector.get_table_names():
        for column in inspector.get_columns(table):
            kind = column["type"]
            if isinstance(kind, sa.DateTime) and bool(kind.timezone) == with_zone:
                yield table, column["name"]


def _convert(target: str, *, from_zone: bool) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column in list(_timestamp_columns(with_zone=from_zone)):
        op.execute(
            f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE {target} '
            f"USING \"{column}\" AT TIME ZONE 'UTC'"
        )


def upgrade() -> None:
    """Apply this revision."""
    _convert("timestamp with time zone", from_zone=False)


def downgrade() -> None:
    """Revert this revision."""
    _convert("timestamp without time zone", from_zone=True)
