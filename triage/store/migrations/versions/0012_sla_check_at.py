"""tickets.sla_check_at: when the SLA watch must next look at a ticket (issue 13.8)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 16:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from triage.store.models import UtcDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


SLA_CHECK_NOW = datetime(1970, 1, 1, tzinfo=UTC)  # the model's, as of this revision


def upgrade() -> None:
    # every ticket is looked at once by the next pass, which sets its next check
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sla_check_at", UtcDateTime(), nullable=True))
    tickets = sa.table("tickets", sa.column("sla_check_at", UtcDateTime()))
    op.execute(tickets.update().values(sla_check_at=SLA_CHECK_NOW))
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.alter_column("sla_check_at", existing_type=UtcDateTime(), nullable=False)
        batch_op.create_index(batch_op.f("ix_tickets_sla_check_at"), ["sla_check_at"])


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tickets_sla_check_at"))
        batch_op.drop_column("sla_check_at")
