"""A ticket's life: opened from a client's message, answered, waiting, solved, reopened.

Every function works inside the caller's transaction (a SQLAlchemy ``Session``):
it adds and changes rows, flushes when it needs ids, and never commits. The
intake pipeline calls :func:`open_ticket` and :func:`add_client_message` inside
its per-message transaction; the CLI calls the others in its own.

SLA clocks (all times UTC, deadlines computed in business time by
:class:`~triage.sla.deadlines.SlaPolicy`):

- The clock starts when the message reached the mailbox (``Message.received_at``).
- First response: due ``first_response`` after the first message; stopped by the
  team's first reply. A client writing again before it keeps the same deadline.
- Next response: after the first response, a client's message starts a new cycle
  due ``next_response`` after it; the team's reply clears it.
- Resolution: due ``resolution`` after the first message (or after reopening a
  solved ticket); solving stops it.
- Waiting on the client pauses every clock; when it runs again the deadlines move
  later by the business time spent waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, func, inspect, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from triage.domain import DecidedBy, Priority, TicketStatus
from triage.handling import NOTE_KINDS, STORED_ONLY_KINDS
from triage.refs import REF_OFFSET, normalize_subject, ref_for
from triage.sla.deadlines import SlaKind, SlaPolicy
from triage.store.models import Message, RoutingDecision, Ticket
from triage.store.rows import NewMessage, insert_event, insert_ticket
from triage.tickets.audit import SERVICE_ACTOR, event_values, record_event

__all__ = [
    "NOTE_KINDS",
    "STORED_ONLY_KINDS",
    "Joined",
    "OpenedTicket",
    "add_client_message",
    "open_ticket",
    "open_ticket_row",
    "record_team_reply",
    "set_status",
    "status_after_reopen",
    "wake",
]

_CLOSED = (TicketStatus.SOLVED.value, TicketStatus.CLOSED.value)


class Joined(StrEnum):
    """What a client's message did to the ticket it joined."""

    NOTE = "note"
    """An auto-reply or bounce: linked only."""
    FOLLOW_UP = "follow_up"
    """Another message on a ticket in progress."""
    RESUMED = "resumed"
    """The ticket was waiting on the client: the clock runs again."""
    REOPENED = "reopened"
    """The ticket was solved or closed: it is open again with a new resolution deadline."""


def status_after_reopen(ticket: Ticket) -> str:
    """``open`` when someone has the ticket, else ``new``."""
    return TicketStatus.OPEN.value if ticket.assignee else TicketStatus.NEW.value


def open_ticket(
    session: Session,
    message: Message,
    *,
    policy: SlaPolicy,
    queue: str,
    priority: Priority | str,
    decided_by: DecidedBy | str,
    now: datetime,
    tags: tuple[str, ...] | list[str] = (),
    assignee: str | None = None,
    actor: str = SERVICE_ACTOR,
) -> Ticket:
    """Open a ticket for a stored client ``message`` (which must have been added to the session).

    The ticket gets its reference (``1000 + id``), status ``open`` when an assignee
    is given (``new`` otherwise), the first-response and resolution deadlines counted
    from ``message.received_at`` (none for a queue without SLA), and an ``opened``
    audit row. The message (and its routing decision, if any) is linked to it.
    Does not commit.
    """
    values, detail = _opening(
        message,
        policy=policy,
        queue=queue,
        priority=priority,
        decided_by=decided_by,
        now=now,
        tags=tags,
        assignee=assignee,
    )
    ticket = Ticket(**values)
    ticket.ref = _ref_at_insert(session)  # SQL, evaluated by the INSERT
    session.add(ticket)
    # the audit row before the flush: the ticket is INSERTed with its version and its
    # reference, and the row after it in the same flush (no UPDATE of the new ticket)
    record_event(session, ticket, actor=actor, action="opened", at=now, **detail)
    session.flush()
    # the value the INSERT computed (see _ref_at_insert), known without reading it back
    set_committed_value(ticket, "ref", ref_for(ticket.id))
    message.ticket_id = ticket.id
    _link_decision(session, message, ticket)
    return ticket


def _opening(
    message: Message | NewMessage,
    *,
    policy: SlaPolicy,
    queue: str,
    priority: Priority | str,
    decided_by: DecidedBy | str,
    now: datetime,
    tags: tuple[str, ...] | list[str],
    assignee: str | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The rules of a new ticket (pure): its column values (without ``ref``, ``version``)
    and its ``opened`` audit row's detail. Shared by :func:`open_ticket` (ORM) and
    :func:`open_ticket_row` (SQLAlchemy Core, the intake)."""
    start = message.received_at
    prio = str(Priority(priority)) if isinstance(priority, Priority) else priority
    first_due = policy.due(queue, prio, SlaKind.FIRST_RESPONSE, start)
    resolution_due = policy.due(queue, prio, SlaKind.RESOLUTION, start)
    values: dict[str, Any] = {
        "queue": queue,
        "priority": prio,
        "status": TicketStatus.OPEN.value if assignee else TicketStatus.NEW.value,
        "subject": normalize_subject(message.subject) or message.subject,
        "client_addr": message.from_addr.lower(),
        "client_name": message.from_name,
        "assignee": assignee or None,
        "decided_by": str(decided_by),
        "tags": list(tags),
        "created_at": now,
        "updated_at": now,
        "opened_at": start,
        "awaiting_since": start,
        "first_response_due": first_due,
        "resolution_due": resolution_due,
    }
    detail: dict[str, Any] = {
        "message_id": message.message_id,
        "queue": queue,
        "priority": prio,
        "decided_by": str(decided_by),
        "assignee": assignee,
        "tags": list(tags),
        "received_at": start,
        "first_response_due": first_due,
        "resolution_due": resolution_due,
    }
    return values, detail


@dataclass(frozen=True, slots=True)
class OpenedTicket:
    """A ticket :func:`open_ticket_row` inserted: what the intake needs of it next."""

    id: int
    ref: int
    queue: str
    priority: str
    first_response_due: datetime | None


def open_ticket_row(
    session: Session,
    message: Message | NewMessage,
    *,
    policy: SlaPolicy,
    queue: str,
    priority: Priority | str,
    decided_by: DecidedBy | str,
    now: datetime,
    tags: tuple[str, ...] | list[str] = (),
    assignee: str | None = None,
    actor: str = SERVICE_ACTOR,
) -> OpenedTicket:
    """:func:`open_ticket` in SQLAlchemy Core, for a message whose row is not inserted yet
    (the intake inserts it next, with the ticket's id): one INSERT of the ticket, with
    its reference and version, and one of its ``opened`` audit row. The same rules
    (:func:`_opening`); no ORM object. Does not commit. Raises what the database raises.
    """
    values, detail = _opening(
        message,
        policy=policy,
        queue=queue,
        priority=priority,
        decided_by=decided_by,
        now=now,
        tags=tags,
        assignee=assignee,
    )
    version = 2  # created at 1, raised by its one audit row (see record_event)
    ticket_id = insert_ticket(
        session,
        {**values, "version": version, "first_response_at": None, "next_response_due": None},
        ref=_ref_at_insert(session),
    )
    insert_event(
        session,
        event_values(
            ticket_id, version=version, actor=actor, action="opened", at=now, detail=detail
        ),
    )
    return OpenedTicket(
        id=ticket_id,
        ref=ref_for(ticket_id),
        queue=queue,
        priority=values["priority"],
        first_response_due=values["first_response_due"],
    )


def _ref_at_insert(session: Session) -> ColumnElement[int]:
    """The new ticket's reference (``1000 + id``, :func:`~triage.refs.ref_for`) as a SQL
    expression evaluated by its own INSERT, so that no UPDATE has to follow it.

    - SQLite: the new row's id is one above the table's highest (``INTEGER PRIMARY
      KEY`` without ``AUTOINCREMENT``: https://sqlite.org/autoinc.html), and the
      writer holds the database's write lock, so ``max(id) + 1 + 1000`` read by the
      INSERT itself is that id's reference.
    - PostgreSQL: the id's default ``nextval`` of the table's sequence is evaluated
      before the other columns of the row, so ``currval`` of that sequence (this
      session's last value: no other session can change it) is the new id.

    ``tests/test_tickets.py`` checks on both databases, with two writers, that every
    reference is ``1000 + id``; the unique key on ``ref`` refuses any other collision.
    """
    if session.get_bind().dialect.name == "postgresql":
        sequence = func.pg_get_serial_sequence(Ticket.__tablename__, "id")
        return func.currval(sequence) + REF_OFFSET
    highest = select(func.coalesce(func.max(Ticket.id), 0)).scalar_subquery()
    return highest + (REF_OFFSET + 1)


def _link_decision(session: Session, message: Message, ticket: Ticket) -> None:
    """Point the message's routing decision (if stored) at the ticket, without loading it."""
    if "decision" not in inspect(message).unloaded:
        if message.decision is not None:
            message.decision.ticket_id = ticket.id
        return
    session.execute(
        update(RoutingDecision)
        .where(RoutingDecision.message_id == message.id, RoutingDecision.ticket_id.is_(None))
        .values(ticket_id=ticket.id)
        .execution_options(synchronize_session=False)
    )


def _resume(ticket: Ticket, policy: SlaPolicy, at: datetime) -> float:
    """End a pause that began at ``ticket.waiting_since``; shift running deadlines.

    Returns the business seconds the clock was paused.
    """
    since = ticket.waiting_since
    ticket.waiting_since = None
    ticket.wait_until = None
    if since is None:
        return 0.0
    paused = max(0.0, policy.calendar.elapsed(since, at))
    if paused > 0:
        if ticket.first_response_at is None and ticket.first_response_due is not None:
            ticket.first_response_due = policy.shift(ticket.first_response_due, paused)
        if ticket.next_response_due is not None:
            ticket.next_response_due = policy.shift(ticket.next_response_due, paused)
        if ticket.resolution_due is not None:
            ticket.resolution_due = policy.shift(ticket.resolution_due, paused)
    return paused


def _reopen(ticket: Ticket, policy: SlaPolicy, at: datetime) -> None:
    ticket.solved_at = None
    ticket.closed_at = None
    ticket.waiting_since = None
    ticket.wait_until = None
    ticket.resolution_due = policy.due(ticket.queue, ticket.priority, SlaKind.RESOLUTION, at)


def _start_next_response(ticket: Ticket, policy: SlaPolicy, at: datetime) -> None:
    ticket.awaiting_since = at
    ticket.next_response_due = policy.due(ticket.queue, ticket.priority, SlaKind.NEXT_RESPONSE, at)


def add_client_message(
    session: Session,
    ticket: Ticket,
    message: Message | NewMessage,
    *,
    policy: SlaPolicy,
    now: datetime,
    actor: str = SERVICE_ACTOR,
) -> Joined:
    """Add a client's ``message`` to ``ticket`` and run the SLA clocks accordingly.

    - auto-replies and bounces (``message.kind``) are linked as notes: nothing else changes;
    - a waiting ticket resumes (deadlines shift by the paused business time, counted
      up to ``message.received_at``); a solved or closed one reopens with a new
      resolution deadline;
    - while the first response is pending its deadline stands; after it, the message
      starts a next-response deadline unless an earlier message still awaits an answer.

    ``message`` may be a row about to be inserted (the intake's :class:`NewMessage`):
    its ``ticket_id`` is set, for its INSERT. Writes one audit row; does not commit.
    """
    message.ticket_id = ticket.id
    at = message.received_at
    if message.kind in NOTE_KINDS:
        record_event(
            session,
            ticket,
            actor=actor,
            action="note_added",
            at=now,
            message_id=message.message_id,
            kind=message.kind,
        )
        return Joined.NOTE
    old = ticket.status
    detail: dict[str, object] = {"message_id": message.message_id, "received_at": at}
    if old == TicketStatus.WAITING.value:
        detail["paused_seconds"] = round(_resume(ticket, policy, at))
        ticket.status = status_after_reopen(ticket)
        outcome = Joined.RESUMED
    elif old in _CLOSED:
        _reopen(ticket, policy, at)
        ticket.status = status_after_reopen(ticket)
        outcome = Joined.REOPENED
    else:
        outcome = Joined.FOLLOW_UP
    if ticket.first_response_at is None:
        if ticket.awaiting_since is None:
            ticket.awaiting_since = at
    elif ticket.awaiting_since is None:
        _start_next_response(ticket, policy, at)
    ticket.updated_at = now
    action = {
        Joined.FOLLOW_UP: "message_added",
        Joined.RESUMED: "resumed",
        Joined.REOPENED: "reopened",
    }[outcome]
    if old != ticket.status:
        detail["from"] = old
        detail["to"] = ticket.status
    record_event(
        session,
        ticket,
        actor=actor,
        action=action,
        at=now,
        next_response_due=ticket.next_response_due,
        resolution_due=ticket.resolution_due,
        **detail,
    )
    session.flush()
    return outcome


def record_team_reply(
    session: Session,
    ticket: Ticket,
    *,
    at: datetime,
    actor: str,
    policy: SlaPolicy,
    now: datetime,
    via: str = "triage",
    message_id: str = "",
) -> None:
    """Record that the team answered the client at ``at`` (UTC).

    Stops the first-response clock (the first time), clears a pending next response,
    and starts a new one at once if a client's message arrived after ``at`` (a reply
    seen late in the Sent folder answers only what came before it). ``via`` says how
    it was seen (``triage`` for ``triage reply``, ``sent_folder``). Writes a ``replied``
    audit row; does not commit.
    """
    first = ticket.first_response_at is None
    if first:
        ticket.first_response_at = at
    ticket.awaiting_since = None
    ticket.next_response_due = None
    ticket.updated_at = now
    record_event(
        session,
        ticket,
        actor=actor,
        action="replied",
        at=now,
        replied_at=at,
        via=via,
        message_id=message_id,
        first_response=first,
    )
    later = session.scalars(
        select(Message)
        .where(
            Message.ticket_id == ticket.id,
            Message.direction == "in",
            Message.received_at > at,
            Message.kind.not_in(NOTE_KINDS),
        )
        .order_by(Message.received_at)
        .limit(1)
    ).first()
    if later is not None:
        _start_next_response(ticket, policy, later.received_at)
    session.flush()


def set_status(
    session: Session,
    ticket: Ticket,
    status: TicketStatus | str,
    *,
    actor: str,
    policy: SlaPolicy,
    now: datetime,
    until: datetime | None = None,
    **detail: Any,
) -> bool:
    """Change the ticket's status; False (and no audit row) when it already has it.

    - to ``waiting``: the SLA clock pauses from ``now``; ``until`` (aware) sets an
      alarm: the ticket wakes then (:func:`wake`) unless the client writes first.
      A waiting ticket given a new ``until`` keeps waiting with the new alarm
      (audit action ``snoozed``);
    - from ``waiting`` to ``new``/``open``: the clock runs again and the running
      deadlines move later by the business time spent waiting;
    - to ``solved`` / ``closed``: ``solved_at`` / ``closed_at`` set; the clocks stop and a
      pending next response is settled;
    - from ``solved``/``closed`` back to another status: reopened, with a new
      resolution deadline from ``now`` (audit action ``reopened``).

    ``detail`` is added to the audit row. Raises:
        ValueError: ``status`` is not a ticket status.
    """
    new = TicketStatus(status).value
    old = ticket.status
    if new == old:
        if new != TicketStatus.WAITING.value or until is None or until == ticket.wait_until:
            return False
        ticket.wait_until = until
        ticket.updated_at = now
        record_event(session, ticket, actor=actor, action="snoozed", at=now, until=until, **detail)
        session.flush()
        return True
    detail = {"from": old, "to": new, **detail}
    action = "status_changed"
    if old == TicketStatus.WAITING.value:
        if new in (TicketStatus.NEW.value, TicketStatus.OPEN.value):
            detail["paused_seconds"] = round(_resume(ticket, policy, now))
        else:
            ticket.waiting_since = None
            ticket.wait_until = None
    if old in _CLOSED and new not in _CLOSED:
        _reopen(ticket, policy, now)
        action = "reopened"
    if new == TicketStatus.WAITING.value:
        ticket.waiting_since = now
        ticket.wait_until = until
        if until is not None:
            detail["until"] = until
    elif new == TicketStatus.SOLVED.value:
        ticket.solved_at = now
        ticket.closed_at = None
    elif new == TicketStatus.CLOSED.value:
        ticket.closed_at = now
        if ticket.solved_at is None:
            ticket.solved_at = now
    if new in _CLOSED:
        # Solving settles what the client was waiting for; a later message starts afresh.
        ticket.awaiting_since = None
        ticket.next_response_due = None
    ticket.status = new
    ticket.updated_at = now
    if action == "reopened":
        detail["resolution_due"] = ticket.resolution_due
    record_event(session, ticket, actor=actor, action=action, at=now, **detail)
    session.flush()
    return True


def wake(session: Session, ticket: Ticket, *, policy: SlaPolicy, now: datetime) -> bool:
    """Wake a waiting ticket whose alarm (``wait_until``) has come: the clock runs again.

    Returns False when it is not waiting (the client wrote first) or its alarm is
    later than ``now``. Audit action ``status_changed`` with ``woke = "alarm"``.
    """
    if ticket.status != TicketStatus.WAITING.value or ticket.wait_until is None:
        return False
    if ticket.wait_until > now:
        return False
    return set_status(
        session,
        ticket,
        status_after_reopen(ticket),
        actor=SERVICE_ACTOR,
        policy=policy,
        now=now,
        woke="alarm",
    )
