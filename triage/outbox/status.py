"""A summary of the outbox for health checks (``triage status``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from triage.store.models import OutboxMail

__all__ = ["OutboxSummary", "outbox_summary"]


@dataclass(frozen=True, slots=True)
class OutboxSummary:
    """Counts of outgoing mail by status, and the oldest mail still waiting.

    Attributes:
        pending: waiting to be sent (including ones being retried).
        failed: given up: a permanent error or too many temporary ones.
        sent: delivered to the SMTP server (or written, in folder mode).
        retrying: pending mail that failed at least once.
        oldest_pending_at: when the oldest pending mail was queued (UTC), None if none.
        last_error: the error of the most recently retried pending mail ("" if none),
            e.g. the SMTP server's 535 when the password is wrong.
    """

    pending: int = 0
    failed: int = 0
    sent: int = 0
    retrying: int = 0
    oldest_pending_at: datetime | None = None
    last_error: str = ""


def outbox_summary(session: Session) -> OutboxSummary:
    """Count the outbox rows by status (one query per figure; indexed on status)."""
    counts: dict[str, int] = {
        status: int(count)
        for status, count in session.execute(
            select(OutboxMail.status, func.count(OutboxMail.id)).group_by(OutboxMail.status)
        )
    }
    retrying = session.scalar(
        select(func.count(OutboxMail.id)).where(
            OutboxMail.status == "pending", OutboxMail.attempts > 0
        )
    )
    oldest = session.scalar(
        select(func.min(OutboxMail.created_at)).where(OutboxMail.status == "pending")
    )
    last_error = session.scalar(
        select(OutboxMail.last_error)
        .where(OutboxMail.status == "pending", OutboxMail.attempts > 0)
        .order_by(OutboxMail.next_attempt_at.desc())
        .limit(1)
    )
    return OutboxSummary(
        last_error=last_error or "",
        pending=int(counts.get("pending", 0)),
        failed=int(counts.get("failed", 0)),
        sent=int(counts.get("sent", 0)),
        retrying=int(retrying or 0),
        oldest_pending_at=oldest,
    )
