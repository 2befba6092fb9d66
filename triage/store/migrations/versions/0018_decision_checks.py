"""routing_decisions.checks: the rows of the decision tables looked at (hits and misses)

``triage.handling.decide`` reads its tables top to bottom and records every row it
looked at; the trail is stored with the decision as JSON ``[[table, check, matched],
...]`` (``Decision.checks``), so ``triage show`` and a person debugging a decision can
see which checks ran. Null for decisions stored before this revision.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("routing_decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("checks", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("routing_decisions", schema=None) as batch_op:
        batch_op.drop_column("checks")
