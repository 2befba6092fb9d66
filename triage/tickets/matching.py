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

from sqlalchemy import String, literal, select, union_all
from sqlalchemy.orm import Session

from triage.domain import InboundMessage, TicketStatus
from triage.mail.ids import normalize_msg_id
from triage.refs import extract_refs
from triage.store.models import Message, OutboxMail, Ticket

__all__ = ["ThreadMatch", "find_ticket", "find_ticket_for"]


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
    sent = select(
        OutboxMail.message_id,
        OutboxMail.ticket_id,
        literal("", String).label("from_addr"),
        literal(0).label("trust"),
        OutboxMail.id.label("seq"),
    ).where(OutboxMail.message_id.in_(ids), OutboxMail.ticket_id.is_not(None))
    stored = select(
        Message.message_id,
        Message.ticket_id,
        Message.from_addr,
        literal(1).label("trust"),
        Message.id.label("seq"),
    ).where(Message.message_id.in_(ids), Message.ticket_id.is_not(None))
    both = union_all(sent, stored).subquery()
    rows = session.execute(select(both).order_by(both.c.trust, both.c.seq))
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
    """The ticket a mail with these headers belongs to, or None for a new conversation.

    Message-IDs are compared in their normal form (:func:`triage.mail.ids.normalize_msg_id`:
    brackets added, white space and comments dropped, the domain part lowercased), the
    form the parser stores; an id that normalises to nothing is skipped.
    ``sender`` (the From address) breaks ties when stored mails share a Message-ID.
    """
    candidates: list[tuple[str, str]] = []
    candidates.append(("in_reply_to", normalize_msg_id(in_reply_to)))
    candidates.extend(("references", normalize_msg_id(r)) for r in reversed(list(references)))
    candidates.append(("delivery_report", normalize_msg_id(bounced_message_id)))
    candidates = [(via, mid) for via, mid in candidates if mid]
    by_id = _tickets_by_message_id(session, sorted({c for _, c in candidates}), sender)

    def usable(ticket: Ticket | None) -> Ticket | None:
        if ticket is None or (not include_closed and ticket.status == TicketStatus.CLOSED.value):
            return None
        return ticket

    for via, message_id in candidates:
        ticket_id = by_id.get(message_id)
        found = usable(session.get(Ticket, ticket_id)) if ticket_id is not None else None
        if found is not None:
            return ThreadMatch(ticket=found, via=via, matched=message_id)
    for ref in extract_refs(subject):
        found = usable(session.scalars(select(Ticket).where(Ticket.ref == ref)).first())
        if found is not None:
            return ThreadMatch(ticket=found, via="subject_ref", matched=f"#{ref}")
    return None


def find_ticket_for(
    session: Session, message: InboundMessage, *, include_closed: bool = False
) -> ThreadMatch | None:
    """:func:`find_ticket` with the headers of a parsed message."""
    report = message.delivery_report
    return find_ticket(
        session,
        in_reply_to=message.in_reply_to,
        references=message.references,
        subject=message.subject,
        bounced_message_id=report.original_message_id if report else "",
        include_closed=include_closed,
        sender=message.from_.addr if message.from_ is not None else "",
    )
