"""Strategy experiments: one row per experiment with its declaration, status and last analysis.

Revision ID: 0003_experiments_5e1b
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from governance.experiments.vocabulary import ExperimentStatus, RandomisationUnit

revision: str = "0003_experiments_5e1b"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _enum(name: str, values: list[str]) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=32)


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.String(length=80), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("control", sa.String(length=140), nullable=False),
        sa.Column("treatment", sa.String(length=140), nullable=False),
        sa.Column(
            "unit",
            _enum("randomisationunit", [u.value for u in RandomisationUnit]),
            nullable=False,
        ),
        sa.Column("traffic_share", sa.Double(), nullable=False),
        sa.Column("start", sa.DateTime(), nullable=False),
        sa.Column("end", sa.DateTime(), nullable=False),
        sa.Column("primary_metric", sa.String(length=32), nullable=False),
        sa.Column("definition_yaml", sa.Text(), nullable=False),
        sa.Column(
            "status",
            _enum("experimentstatus", [s.value for s in ExperimentStatus]),
            nullable=False,
        ),
        sa.Column("last_analysis", sa.JSON(), nullable=False),
        sa.Column("analysed_at", sa.DateTime(), nullable=True),
        sa.Column("stop_reason", sa.Text(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["users.id"], name=op.f("fk_experiments_created_by_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
        sa.UniqueConstraint("experiment_id", name=op.f("uq_experiments_experiment_id")),
    )
    op.create_index(op.f("ix_experiments_control"), "experiments", ["control"], unique=False)
    op.create_index(op.f("ix_experiments_treatment"), "experiments", ["treatment"], unique=False)
    op.create_index(op.f("ix_experiments_status"), "experiments", ["status"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(op.f("ix_experiments_status"), table_name="experiments")
    op.drop_index(op.f("ix_experiments_treatment"), table_name="experiments")
    op.drop_index(op.f("ix_experiments_control"), table_name="experiments")
    op.drop_table("experiments")
