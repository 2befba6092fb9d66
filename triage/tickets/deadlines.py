"""Which SLA deadlines of a stored ticket are running, and in which cycle.

Cycles come from the audit log. The resolution cycle is the number of times the
ticket was reopened after being solved or closed. The response cycle is the number
of team replies plus reopenings: a next-response wait ends only with a reply or by
solving, so every wait has its own number (0 is the first response).
Escalations are unique per (ticket, kind, cycle), so a reopened ticket can breach
again but the same breach is never raised twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from triage.domain import TicketStatus
from triage.sla.deadlines import Deadline, SlaKind, SlaPolicy
from triage.store.models import Ticket, TicketEvent

__all__ = ["RUNNING_STATUSES", "Cycles", "cycles", "earliest_due", "running_deadlines"]

RUNNING_STATUSES = (TicketStatus.NEW.value, TicketStatus.OPEN.value)
"""Statuses in which the SLA clock runs (waiting pauses it; solved and closed stop it)."""


@dataclass(frozen=True, slots=True)
class Cycles:
    """A ticket's cycles, from its audit log.

    Attributes:
        replies: team replies recorded so far.
        resolution: reopenings after solved/closed.
        reopened_at: when it was last reopened (UTC), None if never.
    """

    replies: int = 0
    resolution: int = 0
    reopened_at: datetime | None = None

    @property
    def response(self) -> int:
        """The response cycle: replies plus reopenings."""
        return self.replies + self.resolution


def cycles(session: Session, ticket_ids: Iterable[int] | None = None) -> dict[int, Cycles]:
    """Cycles of the given tickets (all tickets with events when None), by ticket id.

    Tickets without replies or reopenings are absent: use ``.get(id, Cycles())``.
    """
    stmt = (
        select(
            TicketEvent.ticket_id,
            TicketEvent.action,
            func.count(TicketEvent.id),
            func.max(TicketEvent.at),
        )
        .where(TicketEvent.action.in_(("replied", "reopened")))
        .group_by(TicketEvent.ticket_id, TicketEvent.action)
    )
    if ticket_ids is not None:
        ids = list(ticket_ids)
        if not ids:
            return {}
        stmt = stmt.where(TicketEvent.ticket_id.in_(ids))
    counts: dict[int, dict[str, tuple[int, datetime | None]]] = {}
    for ticket_id, action, count, last in session.execute(stmt):
        counts.setdefault(ticket_id, {})[action] = (int(count), last)
    out: dict[int, Cycles] = {}
    for ticket_id, by_action in counts.items():
        replies = by_action.get("replied", (0, None))[0]
        reopens, reopened_at = by_action.get("reopened", (0, None))
        out[ticket_id] = Cycles(replies=replies, resolution=reopens, reopened_at=reopened_at)
    return out


def running_deadlines(
    ticket: Ticket, policy: SlaPolicy, cycle: Cycles | None = None
) -> list[Deadline]:
    """The ticket's deadlines whose clock is running now, with warning times.

    None while the ticket waits on the client (clock paused), is solved or closed,
    or its queue has no SLA. First response runs until the first reply, next response
    while a client's later message awaits an answer, resolution until solved.
    """
    if ticket.status not in RUNNING_STATUSES:
        return []
    cycle = cycle or Cycles()
    out: list[Deadline] = []

    def add(kind: SlaKind, start: datetime, due: datetime | None, number: int) -> None:
        if due is not None:
            out.append(
                policy.deadline(
                    ticket.queue, ticket.priority, kind, start=start, due=due, cycle=number
                )
            )

    if ticket.first_response_at is None:
        add(SlaKind.FIRST_RESPONSE, ticket.opened_at, ticket.first_response_due, 0)
    elif ticket.awaiting_since is not None:
        add(
            SlaKind.NEXT_RESPONSE,
            ticket.awaiting_since,
            ticket.next_response_due,
            cycle.response,
        )
    resolution_start = cycle.reopened_at or ticket.opened_at
    add(SlaKind.RESOLUTION, resolution_start, ticket.resolution_due, cycle.resolution)
    return out


def earliest_due(ticket: Ticket) -> tuple[SlaKind, datetime] | None:
    """The running deadline due first (kind, due) without warning times; None if none.

    Cheap (no calendar arithmetic): for ordering queues.
    """
    if ticket.status not in RUNNING_STATUSES:
        return None
    candidates: list[tuple[datetime, SlaKind]] = []
    if ticket.first_response_at is None and ticket.first_response_due is not None:
        candidates.append((ticket.first_response_due, SlaKind.FIRST_RESPONSE))
    elif ticket.awaiting_since is not None and ticket.next_response_due is not None:
        candidates.append((ticket.next_response_due, SlaKind.NEXT_RESPONSE))
    if ticket.resolution_due is not None:
        candidates.append((ticket.resolution_due, SlaKind.RESOLUTION))
    if not candidates:
        return None
    due, kind = min(candidates)
    return kind, due
