"""The prioritized queue assistants work from.

Order: breached tickets first (most overdue first), then by the time the next
deadline is due, then priority (urgent first), then age (oldest first). Tickets
waiting on the client (clock paused) and tickets without SLA come after those
with a running deadline.

The JSON form of a row is a fixed contract (``triage queue --json``, see DESIGN.md):
``ref``, ``queue``, ``priority``, ``status``, ``subject``, ``from``, ``assignee``,
``received_at`` and ``due_at`` (ISO 8601 UTC), ``breached`` and ``decided_by``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from triage.domain import Priority, TicketStatus
from triage.refs import format_ref
from triage.sla.deadlines import SlaKind, SlaPolicy
from triage.sla.humanize import business_seconds_left, describe_left
from triage.store.models import Ticket
from triage.tickets.audit import iso
from triage.tickets.deadlines import earliest_due

__all__ = ["QUEUE_STATUSES", "QueueRow", "queue_order", "queue_row"]

QUEUE_STATUSES = (TicketStatus.NEW.value, TicketStatus.OPEN.value, TicketStatus.WAITING.value)
"""Statuses shown in the queue: everything not solved or closed."""

_FAR = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One ticket as the queue shows it.

    Attributes:
        due_at: the running deadline due first (UTC); None when waiting or without SLA.
        due_kind: which target that is.
        breached: ``now`` is past ``due_at``.
        due_seconds: business seconds until ``due_at`` (negative once breached);
            None when no deadline runs.
        due_text: ``"due in 2h 10m"``, ``"overdue by 35m"`` (business time),
            ``"paused (waiting)"`` or ``"no SLA"``.
        version: the ticket's version (``expected_version`` of an action on it).
    """

    ticket_id: int
    ref: int
    queue: str
    priority: str
    status: str
    subject: str
    client_addr: str
    client_name: str
    assignee: str | None
    decided_by: str
    tags: tuple[str, ...]
    received_at: datetime
    due_at: datetime | None
    due_kind: SlaKind | None
    breached: bool
    due_text: str
    due_seconds: float | None = None
    version: int = 0

    @property
    def ref_text(self) -> str:
        """``#1042``."""
        return format_ref(self.ref)

    @property
    def client(self) -> str:
        """``Name <addr>`` or the address alone."""
        return f"{self.client_name} <{self.client_addr}>" if self.client_name else self.client_addr

    def to_json(self) -> dict[str, Any]:
        """The row in the ``triage queue --json`` contract (plus a few extra keys)."""
        return {
            "ref": self.ref,
            "queue": self.queue,
            "priority": self.priority,
            "status": self.status,
            "subject": self.subject,
            "from": self.client_addr,
            "from_name": self.client_name,
            "assignee": self.assignee,
            "received_at": iso(self.received_at),
            "due_at": iso(self.due_at),
            "due_kind": self.due_kind.value if self.due_kind else None,
            "due": self.due_text,
            "breached": self.breached,
            "decided_by": self.decided_by,
            "tags": list(self.tags),
            "version": self.version,
        }


def _priority_rank(priority: str) -> int:
    try:
        return Priority(priority).rank
    except ValueError:
        return len(Priority)


def queue_order(row: QueueRow) -> tuple[bool, datetime, int, datetime, int]:
    """Sort key: breached first, then due time, priority, age (then reference)."""
    return (
        not row.breached,
        row.due_at or _FAR,
        _priority_rank(row.priority),
        row.received_at,
        row.ref,
    )


def queue_row(ticket: Ticket, policy: SlaPolicy, now: datetime) -> QueueRow:
    """``ticket`` as the queue shows it at ``now`` (aware)."""
    due = earliest_due(ticket)
    seconds: float | None = None
    if due is not None:
        kind, due_at = due
        breached = now > due_at
        seconds = business_seconds_left(policy.calendar, due_at, now)
        text = describe_left(abs(seconds), overdue=breached)
    else:
        kind, due_at, breached = None, None, False
        text = "paused (waiting)" if ticket.status == TicketStatus.WAITING.value else "no SLA"
    return QueueRow(
        ticket_id=ticket.id,
        ref=ticket.ref or 0,
        queue=ticket.queue,
        priority=ticket.priority,
        status=ticket.status,
        subject=ticket.subject,
        client_addr=ticket.client_addr,
        client_name=ticket.client_name,
        assignee=ticket.assignee,
        decided_by=ticket.decided_by,
        tags=tuple(str(t) for t in ticket.tags or ()),
        received_at=ticket.opened_at,
        due_at=due_at,
        due_kind=kind,
        breached=breached,
        due_text=text,
        due_seconds=seconds,
        version=ticket.version,
    )
