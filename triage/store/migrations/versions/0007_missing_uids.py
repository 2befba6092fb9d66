"""missing_uids: UIDs a server lists but leaves out of its FETCH answers

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 12:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import triage.store.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "missing_uids",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("folder_id", sa.Integer(), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "first_missed_at", triage.store.models.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "last_attempt_at", triage.store.models.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "next_attempt_at", triage.store.models.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["folder_id"], ["folders.id"], name=op.f("fk_missing_uids_folder_id_folders")
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_missing_uids_message_id_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_missing_uids")),
        sa.UniqueConstraint(
            "folder_id",
            "uidvalidity",
            "uid",
            name=op.f("uq_missing_uids_folder_id_uidvalidity_uid"),
        ),
    )


def downgrade() -> None:
    op.drop_table("missing_uids")
