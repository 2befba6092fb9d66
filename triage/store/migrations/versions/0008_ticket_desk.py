"""ticket desk: queue sort key, snooze, event versions, internal notes and mentions

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 13:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from triage.store.models import UtcDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NO_DUE = datetime(9999, 12, 31, tzinfo=UTC)
RANKS = {"urgent": 0, "high": 1, "normal": 2, "low": 3}


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("wait_until", UtcDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("in_queue", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column(
                "queue_due",
                UtcDateTime(),
                nullable=False,
                server_default=sa.text("'9999-12-31 00:00:00'"),
            )
        )
        batch_op.add_column(
            sa.Column("priority_rank", sa.Integer(), nullable=False, server_default="4")
        )
    _fill_queue_key()
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.alter_column("in_queue", server_default=None)
        batch_op.alter_column("queue_due", server_default=None)
        batch_op.alter_column("priority_rank", server_default=None)
        batch_op.create_index(
            "ix_tickets_queue_order",
            ["in_queue", "queue_due", "priority_rank", "opened_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_tickets_assignee_order",
            ["in_queue", "assignee", "queue_due", "priority_rank", "opened_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_tickets_queue_name_order",
            ["in_queue", "queue", "queue_due", "priority_rank", "opened_at", "id"],
            unique=False,
        )
    with op.batch_alter_table("ticket_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=True))
    op.create_table(
        "ticket_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("mentions", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_notes_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_notes")),
    )
    with op.batch_alter_table("ticket_notes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ticket_notes_ticket_id"), ["ticket_id"], unique=False)
    op.create_table(
        "mentions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("note_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("assistant", sa.String(length=200), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("notified_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["note_id"], ["ticket_notes.id"], name=op.f("fk_mentions_note_id_ticket_notes")
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_mentions_ticket_id_tickets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mentions")),
    )
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mentions_note_id"), ["note_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_mentions_notified_at"), ["notified_at"], unique=False)


def _fill_queue_key() -> None:
    """The sort key of existing tickets (the models keep it up to date from now on)."""
    tickets = sa.table(
        "tickets",
        sa.column("id", sa.Integer()),
        sa.column("status", sa.String()),
        sa.column("priority", sa.String()),
        sa.column("first_response_due", UtcDateTime()),
        sa.column("first_response_at", UtcDateTime()),
        sa.column("next_response_due", UtcDateTime()),
        sa.column("awaiting_since", UtcDateTime()),
        sa.column("resolution_due", UtcDateTime()),
        sa.column("in_queue", sa.Boolean()),
        sa.column("queue_due", UtcDateTime()),
        sa.column("priority_rank", sa.Integer()),
    )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(
            tickets.c.id,
            tickets.c.status,
            tickets.c.priority,
            tickets.c.first_response_due,
            tickets.c.first_response_at,
            tickets.c.next_response_due,
            tickets.c.awaiting_since,
            tickets.c.resolution_due,
        )
    ).all()
    updates = []
    for row in rows:
        due = NO_DUE
        if row.status in ("new", "open"):
            candidates = []
            if row.first_response_at is None:
                if row.first_response_due is not None:
                    candidates.append(row.first_response_due)
            elif row.awaiting_since is not None and row.next_response_due is not None:
                candidates.append(row.next_response_due)
            if row.resolution_due is not None:
                candidates.append(row.resolution_due)
            if candidates:
                due = min(candidates)
        updates.append(
            {
                "p_id": row.id,
                "p_in_queue": row.status in ("new", "open", "waiting"),
                "p_due": due,
                "p_rank": RANKS.get(row.priority, 4),
            }
        )
    if updates:
        conn.execute(
            tickets.update()
            .where(tickets.c.id == sa.bindparam("p_id"))
            .values(
                in_queue=sa.bindparam("p_in_queue"),
                queue_due=sa.bindparam("p_due"),
                priority_rank=sa.bindparam("p_rank"),
            ),
            updates,
        )


def downgrade() -> None:
    with op.batch_alter_table("mentions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mentions_notified_at"))
        batch_op.drop_index(batch_op.f("ix_mentions_note_id"))
    op.drop_table("mentions")
    with op.batch_alter_table("ticket_notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_notes_ticket_id"))
    op.drop_table("ticket_notes")
    with op.batch_alter_table("ticket_events", schema=None) as batch_op:
        batch_op.drop_column("version")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_queue_name_order")
        batch_op.drop_index("ix_tickets_assignee_order")
        batch_op.drop_index("ix_tickets_queue_order")
        batch_op.drop_column("priority_rank")
        batch_op.drop_column("queue_due")
        batch_op.drop_column("in_queue")
        batch_op.drop_column("wait_until")
