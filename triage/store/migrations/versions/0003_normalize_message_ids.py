"""normalise stored Message-IDs (issue 12.2): brackets, white space, domain case

Rows stored before the parser normalised identifiers once (``triage.mail.ids``) may
hold a Message-ID, In-Reply-To or References entry whose id-right is not lowercased
(``<abc@Example.COM>``) or that the old parser kept in another form. Threading looks
ids up in their normalised form, so those rows are rewritten here, in batches of
1,000 (no table is held for long). Rows already in the normal form are not touched.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 12:40:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from triage.mail.ids import MAX_REFERENCES, msg_ids, normalize_msg_id

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000

messages = sa.table(
    "messages",
    sa.column("id", sa.Integer),
    sa.column("message_id", sa.String),
    sa.column("message_id_synthetic", sa.Boolean),
    sa.column("in_reply_to", sa.String),
    sa.column("references", sa.JSON),
    sa.column("delivery_report", sa.JSON),
)
outbox = sa.table("outbox", sa.column("id", sa.Integer), sa.column("message_id", sa.String))


def _one(value: str) -> str:
    return normalize_msg_id(value) or value if value else value


def _message_changes(row: Any) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if not row.message_id_synthetic and (new := _one(row.message_id)) != row.message_id:
        changes["message_id"] = new
    if (new := _one(row.in_reply_to or "")) != (row.in_reply_to or ""):
        changes["in_reply_to"] = new
    refs = row.references if isinstance(row.references, list) else []
    new_refs = msg_ids(" ".join(str(r) for r in refs))[-MAX_REFERENCES:]
    if new_refs != refs:
        changes["references"] = new_refs
    report = row.delivery_report
    if isinstance(report, dict) and report.get("original_message_id"):
        original = str(report["original_message_id"])
        if (new := _one(original)) != original:
            changes["delivery_report"] = {**report, "original_message_id": new}
    return changes


def _rewrite(table: Any, columns: Sequence[Any], changes_of: Any) -> None:
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(
            sa.select(table.c.id, *columns)
            .where(table.c.id > last)
            .order_by(table.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for row in rows:
            changes = changes_of(row)
            if changes:
                bind.execute(sa.update(table).where(table.c.id == row.id).values(**changes))
        last = rows[-1].id


def _outbox_changes(row: Any) -> dict[str, Any]:
    new = _one(row.message_id)
    return {"message_id": new} if new != row.message_id else {}


def upgrade() -> None:
    _rewrite(
        messages,
        [
            messages.c.message_id,
            messages.c.message_id_synthetic,
            messages.c.in_reply_to,
            messages.c.references,
            messages.c.delivery_report,
        ],
        _message_changes,
    )
    _rewrite(outbox, [outbox.c.message_id], _outbox_changes)


def downgrade() -> None:
    """Nothing to undo: the normalised ids are still valid ids for the older code."""
