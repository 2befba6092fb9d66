"""messages.has_html: whether the mail has an HTML body, filled from the raw mail

The ticket page offered "Show the HTML version" under every client message, plain
text ones too, where it opened an empty frame (issue 15). New rows get the column
when they are inserted (``triage.store.models._note_html``); this fills it for the
rows already stored by walking each one's MIME structure
(``triage.mail.parts.has_html_body``, no part decoded), a batch of rows at a time.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from triage.mail.parts import has_html_body

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 100  # raw mails of up to tens of MB each


def upgrade() -> None:
    op.add_column("messages", sa.Column("has_html", sa.Boolean(), nullable=True))
    messages = sa.table(
        "messages",
        sa.column("id", sa.Integer),
        sa.column("raw", sa.LargeBinary),
        sa.column("has_html", sa.Boolean),
    )
    conn = op.get_bind()
    after = 0
    while True:
        rows = conn.execute(
            sa.select(messages.c.id, messages.c.raw)
            .where(messages.c.id > after)
            .order_by(messages.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        found = {
            flag: [
                {"key": row.id} for row in rows if row.raw and has_html_body(bytes(row.raw)) is flag
            ]
            for flag in (True, False)
        }
        for flag, keys in found.items():
            if keys:
                conn.execute(
                    messages.update()
                    .where(messages.c.id == sa.bindparam("key"))
                    .values(has_html=flag),
                    keys,
                )
        after = rows[-1].id


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("has_html")
