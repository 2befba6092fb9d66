"""The team's replies seen in a watched Sent folder.

When an assistant answers a client from their own mail program as the shared
address, the reply lands in the Sent folder; the IMAP side parses it and hands it
here. It is matched to its ticket like a client's mail (In-Reply-To, References,
the ``[#1042]`` in the subject) and recorded as the team's reply.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.domain import InboundMessage
from triage.sla.deadlines import SlaPolicy
from triage.store.models import Message, OutboxMail, Ticket, TicketEvent
from triage.tickets.lifecycle import record_team_reply
from triage.tickets.matching import find_ticket_for

__all__ = ["SENT_FOLDER_ACTOR", "record_sent_reply"]

SENT_FOLDER_ACTOR = "sent-folder"
"""Audit actor of replies seen in the Sent folder (all are from the shared address)."""


def record_sent_reply(
    session: Session,
    message: InboundMessage,
    *,
    policy: SlaPolicy,
    now: datetime,
    stored: Message | None = None,
) -> Ticket | None:
    """Record an outgoing ``message`` from the Sent folder as the team's reply.

    Returns the ticket it answers, or None when it matches no ticket or is not
    addressed (To/Cc) to that ticket's client (an internal forward, say). The reply
    counts from ``message.received_at`` (the Sent folder's INTERNALDATE). Seeing the
    same reply again, or a reply that ``triage reply`` sent itself (its Message-ID is
    in the outbox), records nothing new. ``stored``, the message's row if the caller
    keeps one, is linked to the ticket. Does not commit.
    """
    own = session.scalars(
        select(OutboxMail.ticket_id).where(OutboxMail.message_id == message.message_id)
    ).first()
    if own is not None:
        return session.get(Ticket, own)
    match = find_ticket_for(session, message, include_closed=True)
    if match is None:
        return None
    ticket = match.ticket
    recipients = {a.key for a in (*message.to, *message.cc)}
    if ticket.client_addr.lower() not in recipients:
        return None
    if stored is not None:
        stored.ticket_id = ticket.id
    seen = session.scalars(
        select(TicketEvent.detail).where(
            TicketEvent.ticket_id == ticket.id, TicketEvent.action == "replied"
        )
    ).all()
    if any(detail.get("message_id") == message.message_id for detail in seen):
        return ticket
    record_team_reply(
        session,
        ticket,
        at=message.received_at,
        actor=SENT_FOLDER_ACTOR,
        policy=policy,
        now=now,
        via="sent_folder",
        message_id=message.message_id,
    )
    return ticket
