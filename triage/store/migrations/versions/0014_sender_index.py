"""messages: an index on (lower(from_addr), received_at) for the intake's sender look-ups

The acknowledgment policy asks, for every new message, whether the same sender
sent the same subject and text lately (``triage.outbox.enqueue.earlier_repeat``:
``lower(from_addr) = ? AND received_at >= ?``). Without this index that was a scan
of the whole messages table per message (EXPLAIN: ``SCAN messages`` on SQLite,
``Seq Scan`` on PostgreSQL): quadratic over a backlog (issue 18.2).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_messages_sender_received", "messages", [sa.text("lower(from_addr)"), "received_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_messages_sender_received", table_name="messages")
