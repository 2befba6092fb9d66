"""tickets: a covering index for `triage status`'s backlog (tickets awaiting an answer)

``triage status`` (and ``/health``, ``/metrics``) counts the open tickets whose client
waits for the team's answer and finds the oldest such wait: ``status IN ('new',
'open') AND awaiting_since IS NOT NULL``, ``count(*)``, ``min(awaiting_since)``. That
read every ticket row, 0.16 s at 100,000 tickets on a loaded machine (issue 13.8);
``(status, awaiting_since)`` answers it from the index alone.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 19:10:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tickets_awaiting", "tickets", ["status", "awaiting_since"])


def downgrade() -> None:
    op.drop_index("ix_tickets_awaiting", table_name="tickets")
