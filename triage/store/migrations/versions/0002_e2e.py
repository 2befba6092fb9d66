"""index outbox.message_id

Threading looks up outgoing Message-IDs (a reply's In-Reply-To / References, a
bounce's original Message-ID) for every such inbound message; without an index
that was a scan of the whole outbox (about 15 ms per message at 20,000 rows).

Revision ID: 0002_e2e
Revises: 0001
Create Date: 2026-11-29 21:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002_e2e"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_message_id"), ["message_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_message_id"))
