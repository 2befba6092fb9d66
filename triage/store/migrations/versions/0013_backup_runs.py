"""backup_runs: each `triage backup`, for status, /health and /metrics

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 16:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import triage.store.models

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "backup_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", triage.store.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("archive", sa.String(length=1000), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backup_runs")),
    )
    op.create_index(op.f("ix_backup_runs_at"), "backup_runs", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_backup_runs_at"), table_name="backup_runs")
    op.drop_table("backup_runs")
