"""tickets: a covering index for counting every queue view, and one for the Waiting view

The web page's tabs show how many tickets each view lists and how many of them are
breached (Open, Mine, Unassigned, Waiting, Escalated, every queue). That was two
COUNTs per view plus one per queue, and the Unassigned view's ``status != 'waiting'``
read the table rows: about 0.5 s a page at 100,000 tickets (issue 15). Now one
``GROUP BY queue, assignee, status = 'waiting', escalated`` over the open tickets
(``triage.store.tickets.queue_tally``) reads this index alone (an index-only scan on
PostgreSQL, a covering index on SQLite), and each view's count is summed from its
few dozen groups.

The Waiting view's first page scanned the whole queue order: a waiting ticket's
clock is paused, so it sorts after every running one (``queue_due`` far away), and
the order index had to be read past all of them (about 0.2-0.35 s at 100,000
tickets). ``ix_tickets_status_order`` starts with the status.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 19:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_tickets_status_order",
        "tickets",
        ["in_queue", "status", "queue_due", "priority_rank", "opened_at", "id"],
    )
    op.create_index(
        "ix_tickets_tally",
        "tickets",
        ["in_queue", "queue", "assignee", "status", "queue_due", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_tickets_tally", table_name="tickets")
    op.drop_index("ix_tickets_status_order", table_name="tickets")
