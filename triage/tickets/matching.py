"""Threading: which ticket an incoming mail belongs to.

Order of evidence, strongest first:

1. ``In-Reply-To`` (RFC 5322 section 3.6.4) naming a message we stored
   (``messages.message_id``) or sent (``outbox.message_id``: acknowledgments, replies);
2. ``References``, the most recent first;
3. for a bounce, the Message-ID of the mail that bounced (RFC 3464 report);
4. a ``[#1042]`` ticket reference in the subject.

Nothing else: a new subject from the same sender is a new ticket. A closed ticket
is not joined (a client writing to it again opens a new ticket) unless asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, literal, select, union_all
from sqlalchemy.orm import Session

from triage.domain import InboundMessage, TicketStatus
from triage.handling import TicketFact
from triage.mail.ids import normalize_msg_id
from triage.refs import extract_refs
from triage.store.models import Message, OutboxMail, Ticket

__all__ = [
    "ThreadHit",
    "ThreadMatch",
    "find_thread",
    "find_thread_for",
    "find_ticket",
    "find_ticket_for",
]

_messages = Message.__table__.c
_outbox = OutboxMail.__table__.c
_tickets = Ticket.__table__.c
_TICKET_FACT = (
    _tickets.id,
    _tickets.ref,
    _tickets.queue,
    _tickets.priority,
    _tickets.decided_by,
    _tickets.client_addr,
    _tickets.status,
)
"""The columns of a :class:`~triage.handling.TicketFact`, and the status."""


@dataclass(frozen=True, slots=True)
class ThreadMatch:
    """The ticket a message belongs to, and the evidence.

    Attributes:
        ticket: the ticket.
        via: ``in_reply_to``, ``references``, ``delivery_report`` or ``subject_ref``.
        matched: the Message-ID or ``#ref`` that matched.
    """

    ticket: Ticket
    via: str
    matched: str


@dataclass(frozen=True, slots=True)
class ThreadHit:
    """:class:`ThreadMatch` without loading the ticket: what the intake's tables need.

    Attributes:
        ticket: the ticket's columns the decision tables read.
        via, matched: as in :class:`ThreadMatch`.
    """

    ticket: TicketFact
    via: str
    matched: str


def _tickets_by_message_id(
    session: Session, ids: Sequence[str], sender: str = ""
) -> dict[str, int]:
    """Message-ID -> the ticket of the mail that carried it.

    A Message-ID is meant to be unique (RFC 5322 section 3.6.4); when two mails
    carry the same one, one of them is a duplicate or a forgery and must not take
    over the thread. In order of trust: the mail we sent (ours are unique); the
    earliest stored mail from ``sender`` (the client replying to her own mail);
    the earliest stored mail.
    """
    if not ids:
        return {}
    # one statement (issue 18.2: a round trip less per threaded mail): the mail we sent
    # (trust 0) before the stored mail (trust 1), each in the order it was stored
    # SQLAlchemy Core on the session's connection (issue 18.2): no ORM compilation, no
    # autoflush; the caller has flushed what it wrote (the intake flushes every message)
    sent = select(
        _outbox.message_id,
        _outbox.ticket_id,
        literal("", String).label("from_addr"),
        literal(0).label("trust"),
        _outbox.id.label("seq"),
    ).where(_outbox.message_id.in_(ids), _outbox.ticket_id.is_not(None))
    stored = select(
        _messages.message_id,
        _messages.ticket_id,
        _messages.from_addr,
        literal(1).label("trust"),
        _messages.id.label("seq"),
    ).where(_messages.message_id.in_(ids), _messages.ticket_id.is_not(None))
    both = union_all(sent, stored).subquery()
    rows = session.connection().execute(select(both).order_by(both.c.trust, both.c.seq))
    found: dict[str, int] = {}
    first: dict[str, int] = {}
    own: dict[str, int] = {}
    key = sender.lower()
    for message_id, ticket_id, from_addr, trust, _seq in rows:
        if ticket_id is None:
            continue
        if trust == 0:
            found.setdefault(message_id, ticket_id)
            continue
        first.setdefault(message_id, ticket_id)
        if key and (from_addr or "").lower() == key:
            own.setdefault(message_id, ticket_id)
    for message_id in ids:
        if message_id not in found:
            ticket_id = own.get(message_id, first.get(message_id))
            if ticket_id is not None:
                found[message_id] = ticket_id
    return found


def find_thread(
    session: Session,
    *,
    in_reply_to: str = "",
    references: Iterable[str] = (),
    subject: str = "",
    bounced_message_id: str = "",
    include_closed: bool = False,
    sender: str = "",
) -> ThreadHit | None:
    """The ticket a mail with these headers belongs to (its columns, read with SQLAlchemy
    Core: no ORM object loaded), or None for a new conversation.

    Message-IDs are compared in their normal form (:func:`triage.mail.ids.normalize_msg_id`:
    brackets added, white space and comments dropped, the domain part lowercased), the
    form the parser stores; an id that normalises to nothing is skipped.
    ``sender`` (the From address) breaks ties when stored mails share a Message-ID.
    Reads what was flushed: the caller flushes its pending ORM changes first.
    """
    candidates: list[tuple[str, str]] = []
    candidates.append(("in_reply_to", normalize_msg_id(in_reply_to)))
    candidates.extend(("references", normalize_msg_id(r)) for r in reversed(list(references)))
    candidates.append(("delivery_report", normalize_msg_id(bounced_message_id)))
    candidates = [(via, mid) for via, mid in candidates if mid]
    by_id = _tickets_by_message_id(session, sorted({c for _, c in candidates}), sender)
    refs = extract_refs(subject)
    if not by_id and not refs:
        return None
    connection = session.connection()
    closed = TicketStatus.CLOSED.value

    def usable(rows: Iterable[Any]) -> dict[int, TicketFact]:
        return {
            row.id: TicketFact(
                id=row.id,
                ref=row.ref,
                queue=row.queue,
                priority=row.priority,
                decided_by=row.decided_by,
                client_addr=row.client_addr or "",
            )
            for row in rows
            if include_closed or row.status != closed
        }

    if by_id:
        tickets = usable(
            connection.execute(select(*_TICKET_FACT).where(_tickets.id.in_(set(by_id.values()))))
        )
        for via, message_id in candidates:
            ticket_id = by_id.get(message_id)
            found = tickets.get(ticket_id) if ticket_id is not None else None
            if found is not None:
                return ThreadHit(ticket=found, via=via, matched=message_id)
    if refs:
        by_ref = {
            t.ref: t
            for t in usable(
                connection.execute(select(*_TICKET_FACT).where(_tickets.ref.in_(refs)))
            ).values()
        }
        for ref in refs:
            found = by_ref.get(ref)
            if found is not None:
                return ThreadHit(ticket=found, via="subject_ref", matched=f"#{ref}")
    return None


def find_ticket(
    session: Session,
    *,
    in_reply_to: str = "",
    references: Iterable[str] = (),
    subject: str = "",
    bounced_message_id: str = "",
    include_closed: bool = False,
    sender: str = "",
) -> ThreadMatch | None:
    """:func:`find_thread`, with the ticket loaded (an ORM object of ``session``).

    Flushes ``session`` first (the lookup reads what was flushed).
    """
    session.flush()
    hit = find_thread(
        session,
        in_reply_to=in_reply_to,
        references=references,
        subject=subject,
        bounced_message_id=bounced_message_id,
        include_closed=include_closed,
        sender=sender,
    )
    if hit is None:
        return None
    return ThreadMatch(
        ticket=session.get_one(Ticket, hit.ticket.id), via=hit.via, matched=hit.matched
    )


def find_thread_for(
    session: Session, message: InboundMessage, *, include_closed: bool = False
) -> ThreadHit | None:
    """:func:`find_thread` with the headers of a parsed message."""
    report = message.delivery_report
    return find_thread(
        session,
        in_reply_to=message.in_reply_to,
        references=message.references,
        subject=message.subject,
        bounced_message_id=report.original_message_id if report else "",
        include_closed=include_closed,
        sender=message.from_.addr if message.from_ is not None else "",
    )


def find_ticket_for(
    session: Session, message: InboundMessage, *, include_closed: bool = False
) -> ThreadMatch | None:
    """:func:`find_ticket` with the headers of a parsed message."""
    session.flush()
    hit = find_thread_for(session, message, include_closed=include_closed)
    if hit is None:
        return None
    return ThreadMatch(
        ticket=session.get_one(Ticket, hit.ticket.id), via=hit.via, matched=hit.matched
    )
