"""Who works a ticket and in which queue: claim, assign, move (a correction).

Functions work inside the caller's transaction and never commit.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.domain import Priority, TicketStatus
from triage.errors import ConflictError, NotFoundError
from triage.refs import format_ref
from triage.sla.deadlines import SlaKind, SlaPolicy
from triage.store.models import Message, Ticket, TrainingLabel
from triage.store.tickets import claim_ticket
from triage.tickets.audit import record_event
from triage.tickets.deadlines import cycles

__all__ = ["assign", "claim", "move"]

_CLOSED = (TicketStatus.SOLVED.value, TicketStatus.CLOSED.value)


def claim(
    session: Session,
    ticket: Ticket,
    who: str,
    *,
    now: datetime,
    expected_version: int | None = None,
) -> bool:
    """Take ``ticket`` for ``who``; False when it is already theirs.

    Atomic: one conditional ``UPDATE ... WHERE assignee IS NULL AND status NOT IN
    (solved, closed)`` (:func:`triage.store.tickets.claim_ticket`), so of two
    assistants claiming at once exactly one wins, on SQLite and PostgreSQL alike.
    A ``new`` ticket becomes ``open``.

    Raises:
        ConflictError: someone else has it (the message names them), the ticket is
            solved or closed (nothing to claim: a new message from the client reopens
            it), or it is no longer at ``expected_version``.
    """
    won = claim_ticket(session, ticket.id, who, now=now, expected_version=expected_version)
    session.refresh(ticket)
    shown = format_ref(ticket.ref or 0)
    if not won:
        if ticket.assignee == who:
            return False
        if ticket.status in _CLOSED:
            holder = f" (assigned to {ticket.assignee})" if ticket.assignee else ""
            raise ConflictError(
                f"{shown} is {ticket.status}{holder}: there is nothing to claim;"
                " a new message from the client reopens it",
                current_version=ticket.version,
            )
        if ticket.assignee is not None:
            raise ConflictError(
                f"{shown} is already claimed by {ticket.assignee}",
                current_version=ticket.version,
            )
        raise ConflictError(
            f"{shown} changed since version {expected_version}", current_version=ticket.version
        )
    record_event(session, ticket, actor=who, action="claimed", at=now, assignee=who)
    session.flush()
    return True


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
    queue: str | None = None,
    *,
    priority: str | None = None,
    actor: str,
    policy: SlaPolicy,
    now: datetime,
) -> bool:
    """Correct the ticket's queue and/or priority; False when both are already so.

    The correction becomes a training label (``source="correction"``) for the
    ticket's first message, with the queue and priority it has now, so the
    classifiers learn from it. Running deadlines are recomputed with the new SLA
    targets from their original start, keeping any time the clock was paused.

    Raises:
        NotFoundError: ``queue`` is not a configured queue, or ``priority`` no priority.
    """
    settings = policy.settings
    new_queue = ticket.queue if queue is None else queue
    new_priority = ticket.priority if priority is None else priority
    if new_queue not in settings.queues:
        known = ", ".join(sorted(settings.queues))
        raise NotFoundError(f"no queue {new_queue!r} (queues: {known})")
    if new_priority not in {p.value for p in Priority}:
        known = ", ".join(p.value for p in Priority)
        raise NotFoundError(f"no priority {new_priority!r} (priorities: {known})")
    if (ticket.queue, ticket.priority) == (new_queue, new_priority):
        return False
    old_queue, old_priority = ticket.queue, ticket.priority
    reopened_at = cycles(session, [ticket.id]).get(ticket.id)
    resolution_start = (reopened_at and reopened_at.reopened_at) or ticket.opened_at
    _retarget(
        ticket, (old_queue, old_priority), (new_queue, new_priority), policy, resolution_start
    )
    ticket.queue = new_queue
    ticket.priority = new_priority
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
            queue=new_queue,
            priority=new_priority,
            source="correction",
            actor=actor,
            created_at=now,
        )
    )
    changes: dict[str, object] = {}
    if old_queue != new_queue:
        changes.update({"from": old_queue, "to": new_queue})
    if old_priority != new_priority:
        changes.update({"priority_from": old_priority, "priority_to": new_priority})
    record_event(
        session,
        ticket,
        actor=actor,
        action="moved",
        at=now,
        first_response_due=ticket.first_response_due,
        next_response_due=ticket.next_response_due,
        resolution_due=ticket.resolution_due,
        **changes,
    )
    session.flush()
    return True


def _retarget(
    ticket: Ticket,
    old: tuple[str, str],
    new: tuple[str, str],
    policy: SlaPolicy,
    resolution_start: datetime,
) -> None:
    """Recompute running deadlines for (queue, priority) ``new``, keeping paused time
    already added."""

    def redo(kind: SlaKind, start: datetime | None, due: datetime | None) -> datetime | None:
        if start is None:
            return due
        fresh = policy.due(new[0], new[1], kind, start)
        if fresh is None or due is None:
            return fresh
        nominal = policy.due(old[0], old[1], kind, start)
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
