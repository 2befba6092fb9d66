"""The one rule for "history is not escalated". Pure.

Triage records an escalation of history (a rule's, an SLA breach) and shows it on the
ticket, but tells nobody: nothing was missed while triage watched. History is

- mail stored by ``triage import`` (a backfill);
- mail older than ``acknowledgments.max_age`` when triage first saw it (an inbox full
  of old mail at the first start);
- a deadline that had passed before triage created the ticket (either of the above,
  seen by the SLA watch).
"""

from __future__ import annotations

from datetime import datetime

__all__ = ["history_reason"]


def history_reason(
    *,
    seen_at: datetime,
    imported: bool = False,
    received_at: datetime | None = None,
    max_age: float = 0,
    due_at: datetime | None = None,
) -> str:
    """Why an escalation is history and so not notified; "" when it is not.

    Args:
        seen_at: when triage first saw the mail or created the ticket (aware).
        imported: the mail was stored by ``triage import``.
        received_at: when the mail reached the mailbox (aware), for ``max_age``.
        max_age: ``acknowledgments.max_age`` in seconds; 0 for no limit.
        due_at: the deadline that was breached (aware), for an SLA breach.

    Returns:
        "imported history", "older than max_age when first seen",
        "past due before triage saw the ticket", or "".
    """
    if imported:
        return "imported history"
    age = (seen_at - received_at).total_seconds() if received_at is not None else 0.0
    if max_age > 0 and age > max_age:
        return "older than max_age when first seen"
    if due_at is not None and due_at <= seen_at:
        return "past due before triage saw the ticket"
    return ""
