"""Who works a ticket and in which queue: claim, assign, move (a correction).

Functions work inside the caller's transaction and never commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, case, select, update
from sqlalchemy.orm import Session

from triage.domain import TicketStatus
from triage.errors import ConflictError, NotFoundError
from triage.refs import format_ref
from triage.sla.deadlines import SlaKind, SlaPolicy
from triage.store.models import Message, Ticket, TrainingLabel
from triage.tickets.audit import record_event
from triage.tickets.deadlines import cycles

__all__ = ["assign", "claim", "move"]


def claim(session: Session, ticket: Ticket, who: str, *, now: datetime) -> bool:
    """Take ``ticket`` for ``who``; False when it is already theirs.

    Atomic: one conditional ``UPDATE ... WHERE assignee IS NULL``, so of two
    assistants claiming at once exactly one wins, on SQLite and PostgreSQL alike.
    A ``new`` ticket becomes ``open``.

    Raises:
        ConflictError: someone else has it (the message names them).
    """
    result = session.execute(
        update(Ticket)
        .where(Ticket.id == ticket.id, Ticket.assignee.is_(None))
        .values(
            assignee=who,
            status=_claimed_status(),
            version=Ticket.version + 1,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    session.refresh(ticket)
    if getattr(result, "rowcount", 0) != 1:
        if ticket.assignee == who:
            return False
        raise ConflictError(
            f"{format_ref(ticket.ref or 0)} is already claimed by {ticket.assignee}"
        )
    record_event(session, ticket, actor=who, action="claimed", at=now, assignee=who)
    session.flush()
    return True


def _claimed_status() -> ColumnElement[str]:
    return case(
        (Ticket.status == TicketStatus.NEW.value, TicketStatus.OPEN.value),
        else_=Ticket.status,
    )


def assign(session: Session, ticket: Ticket, assignee: str, *, actor: str, now: datetime) -> bool:
    """Give ``ticket`` to ``assignee`` (replacing anyone); False when already theirs.

    A ``new`` ticket becomes ``open``. Writes an ``assigned`` audit row with the
    previous assignee.
    """
    if ticket.assignee == assignee:
        return False
    previous = ticket.assignee
    ticket.assignee = assignee
    if ticket.status == TicketStatus.NEW.value:
        ticket.status = TicketStatus.OPEN.value
    ticket.updated_at = now
    record_event(
        session,
        ticket,
        actor=actor,
        action="assigned",
        at=now,
        **{"from": previous, "to": assignee},
    )
    session.flush()
    return True


def move(
    session: Session,
    ticket: Ticket,
    queue: str,
    *,
    actor: str,
    policy: SlaPolicy,
    now: datetime,
) -> bool:
    """Correct the ticket's queue; False when it is already there.

    The correction becomes a training label (``source="correction"``) for the
    ticket's first message, so the classifier learns from it. Running deadlines are
    recomputed with the new queue's SLA targets from their original start, keeping
    any time the clock was paused.

    Raises:
        NotFoundError: ``queue`` is not a configured queue.
    """
    if queue not in policy.settings.queues:
        known = ", ".join(sorted(policy.settings.queues))
        raise NotFoundError(f"no queue {queue!r} (queues: {known})")
    if ticket.queue == queue:
        return False
    old = ticket.queue
    reopened_at = cycles(session, [ticket.id]).get(ticket.id)
    resolution_start = (reopened_at and reopened_at.reopened_at) or ticket.opened_at
    _retarget(ticket, old, queue, policy, resolution_start)
    ticket.queue = queue
    ticket.updated_at = now
    first = session.scalars(
        select(Message)
        .where(Message.ticket_id == ticket.id, Message.direction == "in")
        .order_by(Message.received_at, Message.id)
        .limit(1)
    ).first()
    session.add(
        TrainingLabel(
            message_id=first.id if first else None,
            subject=first.subject if first else ticket.subject,
            body=first.body_text if first else "",
            sender=first.from_addr if first else ticket.client_addr,
            queue=queue,
            priority=ticket.priority,
            source="correction",
            actor=actor,
            created_at=now,
        )
    )
    record_event(
        session,
        ticket,
        actor=actor,
        action="moved",
        at=now,
        first_response_due=ticket.first_response_due,
        next_response_due=ticket.next_response_due,
        resolution_due=ticket.resolution_due,
        **{"from": old, "to": queue},
    )
    session.flush()
    return True


def _retarget(
    ticket: Ticket, old: str, new: str, policy: SlaPolicy, resolution_start: datetime
) -> None:
    """Recompute running deadlines for queue ``new``, keeping paused time already added."""

    def redo(kind: SlaKind, start: datetime | None, due: datetime | None) -> datetime | None:
        if start is None:
            return due
        fresh = policy.due(new, ticket.priority, kind, start)
        if fresh is None or due is None:
            return fresh
        nominal = policy.due(old, ticket.priority, kind, start)
        paused = policy.calendar.elapsed(nominal, due) if nominal is not None else 0.0
        return policy.shift(fresh, paused)

    if ticket.first_response_at is None:
        ticket.first_response_due = redo(
            SlaKind.FIRST_RESPONSE, ticket.opened_at, ticket.first_response_due
        )
    if ticket.awaiting_since is not None and ticket.first_response_at is not None:
        ticket.next_response_due = redo(
            SlaKind.NEXT_RESPONSE, ticket.awaiting_since, ticket.next_response_due
        )
    if ticket.solved_at is None:
        ticket.resolution_due = redo(SlaKind.RESOLUTION, resolution_start, ticket.resolution_due)
