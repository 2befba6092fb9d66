"""Row helpers for tickets: the queries the ticket desk and the SLA watch run.

Every function works inside the caller's session and never commits. The queue
is read by keyset (the index ``ix_tickets_*_order`` on ``(in_queue, ...,
queue_due, priority_rank, opened_at, id)``): a page costs the same at ticket 20
as at ticket 100,000, and no query loads the whole table.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Row,
    String,
    Text,
    case,
    func,
    or_,
    select,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from triage.domain import TicketStatus
from triage.store.models import (
    Escalation,
    Mention,
    Message,
    RoutingDecision,
    Ticket,
    TicketEvent,
    TicketNote,
    TrainingLabel,
)

__all__ = [
    "LISTING_COLUMNS",
    "QueueFilter",
    "QueueKey",
    "QueueTally",
    "claim_ticket",
    "count_queue",
    "due_snoozes",
    "events_since",
    "listing_time",
    "lock_ticket",
    "queue_batches",
    "queue_listing",
    "queue_page",
    "queue_tally",
    "ticket_by_ref",
    "ticket_corrections",
    "ticket_decisions",
    "ticket_escalations",
    "ticket_events",
    "ticket_message",
    "ticket_messages",
    "ticket_notes",
    "unnotified_mentions",
]

_CLOSED = (TicketStatus.SOLVED.value, TicketStatus.CLOSED.value)


@dataclass(frozen=True, slots=True)
class QueueKey:
    """A ticket's place in the queue order: ``(queue_due, priority_rank, opened_at, id)``."""

    queue_due: datetime
    priority_rank: int
    opened_at: datetime
    id: int

    @classmethod
    def of(cls, ticket: Ticket) -> QueueKey:
        """The key of a loaded ticket."""
        return cls(ticket.queue_due, ticket.priority_rank, ticket.opened_at, ticket.id)


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """Which open tickets a queue view lists (all conditions together).

    Attributes:
        queue: only this queue.
        assignee: only tickets assigned to this name.
        unassigned: only tickets nobody has and that do not wait on the client (the
            ones to pick up).
        waiting: only tickets waiting on the client; False lists every open status.
        escalated: only tickets escalated to the owners (a missed deadline or a rule;
            not the assistants' warnings): what an owner needs to see.
    """

    queue: str | None = None
    assignee: str | None = None
    unassigned: bool = False
    waiting: bool = False
    escalated: bool = False

    def lists(self, tally: QueueTally) -> bool:
        """Whether this view lists the open tickets of one :class:`QueueTally` group.

        The same conditions as :meth:`where`, in Python: every view's count is summed
        from one grouped query (:func:`queue_tally`) instead of one COUNT per view.
        """
        return (
            (self.queue is None or tally.queue == self.queue)
            and (self.assignee is None or tally.assignee == self.assignee)
            and (not self.unassigned or (tally.assignee is None and not tally.waiting))
            and (not self.waiting or tally.waiting)
            and (not self.escalated or tally.escalated)
        )

    def where(self) -> list[ColumnElement[bool]]:
        """The WHERE terms (the first one is always ``in_queue``, the index's prefix)."""
        terms: list[ColumnElement[bool]] = [Ticket.in_queue.is_(True)]
        if self.queue is not None:
            terms.append(Ticket.queue == self.queue)
        if self.assignee is not None:
            terms.append(Ticket.assignee == self.assignee)
        if self.unassigned:
            terms.append(Ticket.assignee.is_(None))
            terms.append(Ticket.status != TicketStatus.WAITING.value)
        if self.waiting:
            terms.append(Ticket.status == TicketStatus.WAITING.value)
        if self.escalated:
            terms.append(_escalated())
        return terms


def _escalated() -> ColumnElement[bool]:
    """The ticket was escalated to the owners (a breach or a rule; warnings are not)."""
    owners = select(Escalation.ticket_id).where(~Escalation.kind.startswith("warning"))
    return Ticket.id.in_(owners)


@dataclass(frozen=True, slots=True)
class QueueTally:
    """One group of open tickets alike in everything a queue view selects on.

    Attributes:
        queue: the queue name.
        assignee: who has them (None: nobody).
        waiting: status ``waiting`` (else ``new`` or ``open``).
        escalated: escalated to the owners.
        tickets: how many tickets the group holds (>= 1).
        breached: how many of them are past their running deadline at the ``now`` of
            :func:`queue_tally` (``queue_due < now``).
    """

    queue: str
    assignee: str | None
    waiting: bool
    escalated: bool
    tickets: int
    breached: int


_ORDER = (Ticket.queue_due, Ticket.priority_rank, Ticket.opened_at, Ticket.id)


def queue_page(
    session: Session, view: QueueFilter, *, after: QueueKey | None, limit: int | None
) -> Sequence[Ticket]:
    """Up to ``limit`` tickets of ``view`` in queue order, after ``after`` (None: from the top).

    ``limit=None`` returns every ticket of the view (the CLI's whole queue).
    """
    stmt = select(Ticket).where(*view.where()).order_by(*_ORDER)
    if after is not None:
        stmt = stmt.where(
            tuple_(*_ORDER)
            > tuple_(after.queue_due, after.priority_rank, after.opened_at, after.id)
        )
    if limit is not None:
        stmt = stmt.limit(limit)
    return session.scalars(stmt).all()


_LISTED = (
    Ticket.id,
    Ticket.ref,
    Ticket.queue,
    Ticket.priority,
    Ticket.status,
    Ticket.subject,
    Ticket.client_addr,
    Ticket.client_name,
    Ticket.assignee,
    Ticket.decided_by,
    Ticket.tags,
    Ticket.opened_at,
    Ticket.first_response_due,
    Ticket.first_response_at,
    Ticket.next_response_due,
    Ticket.resolution_due,
    Ticket.awaiting_since,
    Ticket.version,
    Ticket.queue_due,
    Ticket.priority_rank,
)


def queue_batches(
    session: Session, view: QueueFilter, *, size: int = 1000
) -> Iterator[Sequence[Row[Any]]]:
    """Every ticket of ``view`` in queue order, ``size`` rows at a time.

    Rows (not ORM objects) with the columns a queue row shows, under the ticket's
    attribute names: the whole queue of 100,000 tickets is streamed in keyset pages
    (each one indexed range scan) and never held at once.
    """
    after: tuple[Any, ...] | None = None
    while True:
        stmt = select(*_LISTED).where(*view.where()).order_by(*_ORDER).limit(size)
        if after is not None:
            stmt = stmt.where(tuple_(*_ORDER) > tuple_(*after))
        rows = session.execute(stmt).all()
        if not rows:
            return
        yield rows
        if len(rows) < size:
            return
        last = rows[-1]
        after = (last.queue_due, last.priority_rank, last.opened_at, last.id)


_PLAIN_TIME = String()
"""Datetimes read without SQLAlchemy's per-value Python step (for SQLite a regular
expression, then :class:`~triage.store.models.UtcDateTime`'s zone): SQLite gives its
stored text (``2026-03-16 09:00:00.000000``, UTC), PostgreSQL's driver an aware
datetime; :func:`listing_time` reads either."""

_LISTING = (
    Ticket.ref,
    Ticket.queue,
    Ticket.priority,
    Ticket.status,
    Ticket.subject,
    Ticket.client_addr,
    Ticket.client_name,
    Ticket.assignee,
    Ticket.decided_by,
    type_coerce(Ticket.tags, Text),
    type_coerce(Ticket.opened_at, _PLAIN_TIME),
    type_coerce(Ticket.first_response_due, _PLAIN_TIME),
    Ticket.first_response_at.is_(None),
    type_coerce(Ticket.next_response_due, _PLAIN_TIME),
    Ticket.awaiting_since.is_not(None),
    type_coerce(Ticket.resolution_due, _PLAIN_TIME),
    Ticket.version,
    Ticket.id,
    type_coerce(Ticket.queue_due, _PLAIN_TIME),
    Ticket.priority_rank,
)
LISTING_COLUMNS = (
    "ref",
    "queue",
    "priority",
    "status",
    "subject",
    "client_addr",
    "client_name",
    "assignee",
    "decided_by",
    "tags",
    "opened_at",
    "first_response_due",
    "unanswered",
    "next_response_due",
    "awaiting",
    "resolution_due",
    "version",
    "id",
    "queue_due",
    "priority_rank",
)
"""The fields of a :func:`queue_listing` tuple, in order (see there)."""


def queue_listing(
    session: Session, view: QueueFilter, *, limit: int | None = None, size: int = 2000
) -> Iterator[tuple[Any, ...]]:
    """The tickets of ``view`` in queue order as plain tuples (:data:`LISTING_COLUMNS`),
    read in keyset batches of ``size`` (each one indexed range scan), at most ``limit``.

    The cheap form of :func:`queue_batches` for long listings (``triage queue`` at
    100,000 tickets): only the columns a queue row shows, no ORM and no per-value
    Python type step. Datetimes are as the driver gives them (:data:`_PLAIN_TIME`;
    :func:`listing_time` makes them aware);
    ``unanswered`` is "no first response yet", ``awaiting`` "a client's later
    message awaits an answer"; ``tags`` is a list (or its JSON text).
    """
    after: tuple[Any, ...] | None = None
    left = limit
    connection = session.connection()  # Core rows: no ORM loading step per row
    while left is None or left > 0:
        take = size if left is None else min(size, left)
        stmt = select(*_LISTING).where(*view.where()).order_by(*_ORDER).limit(take)
        if after is not None:
            stmt = stmt.where(tuple_(*_ORDER) > tuple_(*after))
        rows = connection.execute(stmt).all()
        yield from (tuple(row) for row in rows)
        if len(rows) < take:
            return
        if left is not None:
            left -= len(rows)
        last = rows[-1]
        after = (listing_time(last[18]), last[19], listing_time(last[10]), last[17])


def listing_time(value: str | datetime) -> datetime:
    """A datetime column of a :func:`queue_listing` tuple as an aware UTC datetime."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.astimezone(UTC)


def count_queue(session: Session, view: QueueFilter, *, due_before: datetime | None = None) -> int:
    """How many tickets ``view`` lists (those due before ``due_before`` only, if given)."""
    stmt = select(func.count(Ticket.id)).where(*view.where())
    if due_before is not None:
        stmt = stmt.where(Ticket.queue_due < due_before)
    return int(session.scalar(stmt) or 0)


def queue_tally(session: Session, now: datetime) -> list[QueueTally]:
    """Every open ticket counted once, grouped by what the queue views select on.

    Two aggregate queries: every open ticket grouped by ``(queue, assignee, status)``
    in the order of the covering index ``ix_tickets_tally`` (``in_queue, queue,
    assignee, status, queue_due``: an index-only scan that streams into the groups,
    no table rows and no sort), and the same for the tickets escalated to the owners
    (driven from ``escalations``, usually few). Every view's and queue's count is then
    summed in Python from these few dozen groups (:meth:`QueueFilter.lists`).

    Args:
        now: aware; ``breached`` counts ``queue_due < now``.

    Returns:
        One :class:`QueueTally` per non-empty group, escalated and not apart.
    """
    breached = func.sum(case((Ticket.queue_due < now, 1), else_=0))
    groups = (Ticket.queue, Ticket.assignee, Ticket.status)
    listed = select(*groups, func.count(), breached).where(Ticket.in_queue.is_(True))
    everything = session.execute(listed.group_by(*groups)).all()
    escalated = {
        (queue, assignee, status): (int(n), int(b or 0))
        for queue, assignee, status, n, b in session.execute(
            listed.where(_escalated()).group_by(*groups)
        )
    }
    out: list[QueueTally] = []
    for queue, assignee, status, n, b in everything:
        waiting = status == TicketStatus.WAITING.value
        up_n, up_b = escalated.get((queue, assignee, status), (0, 0))
        if up_n:
            out.append(
                QueueTally(queue, assignee, waiting, escalated=True, tickets=up_n, breached=up_b)
            )
        if int(n) > up_n:
            out.append(
                QueueTally(
                    queue,
                    assignee,
                    waiting,
                    escalated=False,
                    tickets=int(n) - up_n,
                    breached=int(b or 0) - up_b,
                )
            )
    return out


def ticket_by_ref(session: Session, ref: int, *, lock: bool = False) -> Ticket | None:
    """The ticket with reference ``ref``; ``lock`` takes its row lock (PostgreSQL
    ``FOR UPDATE``; SQLite's writers already hold the database lock)."""
    stmt = select(Ticket).where(Ticket.ref == ref)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def lock_ticket(session: Session, ticket: Ticket) -> Ticket:
    """Re-read ``ticket`` under its row lock (see :func:`ticket_by_ref`)."""
    session.refresh(ticket, with_for_update=True)
    return ticket


def claim_ticket(
    session: Session,
    ticket_id: int,
    who: str,
    *,
    now: datetime,
    expected_version: int | None = None,
) -> bool:
    """Give the ticket to ``who`` if nobody has it and it is not solved or closed
    (and, when given, it is still at ``expected_version``).

    One conditional ``UPDATE``: of two claims at once exactly one matches, on SQLite
    and PostgreSQL alike. A ``new`` ticket becomes ``open``. Returns whether it matched.
    """
    stmt = (
        update(Ticket)
        .where(
            Ticket.id == ticket_id,
            Ticket.assignee.is_(None),
            Ticket.status.not_in(_CLOSED),
        )
        .values(
            assignee=who,
            status=case(
                (Ticket.status == TicketStatus.NEW.value, TicketStatus.OPEN.value),
                else_=Ticket.status,
            ),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if expected_version is not None:
        stmt = stmt.where(Ticket.version == expected_version)
    result = cast("CursorResult[Any]", session.execute(stmt))
    return result.rowcount == 1


def events_since(session: Session, ticket_id: int, version: int) -> Sequence[TicketEvent]:
    """Audit rows of the ticket written after it was at ``version`` (oldest first)."""
    return session.scalars(
        select(TicketEvent)
        .where(TicketEvent.ticket_id == ticket_id, TicketEvent.version > version)
        .order_by(TicketEvent.id)
    ).all()


def ticket_events(session: Session, ticket_id: int) -> Sequence[TicketEvent]:
    """The ticket's audit trail, oldest first."""
    return session.scalars(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket_id).order_by(TicketEvent.id)
    ).all()


def ticket_messages(session: Session, ticket_id: int) -> Sequence[Message]:
    """Every message of the ticket (in and out), newest first."""
    return session.scalars(
        select(Message)
        .where(Message.ticket_id == ticket_id)
        .order_by(Message.received_at.desc(), Message.id.desc())
    ).all()


def ticket_message(session: Session, ticket_id: int, message_id: int) -> Message | None:
    """Message ``message_id`` if it belongs to the ticket (None otherwise)."""
    return session.scalars(
        select(Message).where(Message.id == message_id, Message.ticket_id == ticket_id)
    ).first()


def ticket_decisions(
    session: Session, ticket_id: int, message_ids: Sequence[int]
) -> Sequence[RoutingDecision]:
    """Routing decisions of the ticket or of any of ``message_ids``, oldest first."""
    conditions = [RoutingDecision.ticket_id == ticket_id]
    if message_ids:
        conditions.append(RoutingDecision.message_id.in_(message_ids))
    return session.scalars(
        select(RoutingDecision).where(or_(*conditions)).order_by(RoutingDecision.id)
    ).all()


def ticket_escalations(session: Session, ticket_id: int) -> Sequence[Escalation]:
    """The ticket's escalations and warnings, oldest first."""
    return session.scalars(
        select(Escalation).where(Escalation.ticket_id == ticket_id).order_by(Escalation.id)
    ).all()


def ticket_corrections(session: Session, ticket_id: int) -> Sequence[TrainingLabel]:
    """The corrections (training labels with ``source = "correction"``) of the
    ticket's messages, oldest first."""
    return session.scalars(
        select(TrainingLabel)
        .join(Message, Message.id == TrainingLabel.message_id)
        .where(Message.ticket_id == ticket_id, TrainingLabel.source == "correction")
        .order_by(TrainingLabel.id)
    ).all()


def ticket_notes(session: Session, ticket_id: int) -> Sequence[TicketNote]:
    """The ticket's internal notes, newest first."""
    return session.scalars(
        select(TicketNote)
        .where(TicketNote.ticket_id == ticket_id)
        .order_by(TicketNote.created_at.desc(), TicketNote.id.desc())
    ).all()


def due_snoozes(session: Session, now: datetime) -> Sequence[Ticket]:
    """Waiting tickets whose alarm (``wait_until``) is at or before ``now``."""
    return session.scalars(
        select(Ticket)
        .where(
            Ticket.status == TicketStatus.WAITING.value,
            Ticket.wait_until.is_not(None),
            Ticket.wait_until <= now,
        )
        .order_by(Ticket.wait_until, Ticket.id)
    ).all()


def unnotified_mentions(session: Session, *, limit: int = 500) -> Sequence[Mention]:
    """Mentions nobody was told of yet, oldest first."""
    return session.scalars(
        select(Mention).where(Mention.notified_at.is_(None)).order_by(Mention.id).limit(limit)
    ).all()
