"""Answering a client through triage: the reply goes to the outbox and stops the clock.

:func:`queue_reply` writes, in the caller's transaction, the outbox row (``kind =
"reply"``) that the dispatcher sends, a ``messages`` row for the outgoing mail
(``source = "outbox"``, so threading and ``triage show`` see it) and the team's
reply on the ticket. Nothing is sent here.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from email import message_from_bytes
from email import policy as email_policy

from sqlalchemy import select
from sqlalchemy.orm import Session

from triage.config import Settings
from triage.domain import Address
from triage.errors import UserError
from triage.outbox.headers import (
    ascii_address,
    make_message_id,
    message_id_domain,
    parse_mailbox,
)
from triage.sla.deadlines import SlaPolicy
from triage.store.models import Message, OutboxMail, Ticket
from triage.tickets.compose import compose_reply
from triage.tickets.lifecycle import NOTE_KINDS, record_team_reply
from triage.tickets.stored import address_json, reply_address

__all__ = ["queue_reply"]


def _answered_message(session: Session, ticket: Ticket) -> Message | None:
    """The client's latest message on the ticket (auto-replies and bounces aside)."""
    return session.scalars(
        select(Message)
        .where(
            Message.ticket_id == ticket.id,
            Message.direction == "in",
            Message.kind.not_in(NOTE_KINDS),
        )
        .order_by(Message.received_at.desc(), Message.id.desc())
        .limit(1)
    ).first()


def queue_reply(
    session: Session,
    ticket: Ticket,
    body: str,
    *,
    actor: str,
    settings: Settings,
    policy: SlaPolicy,
    now: datetime,
) -> OutboxMail:
    """Write the reply ``body`` to the ticket's client into the outbox; record the reply.

    The mail is from ``smtp.from_address`` to the Reply-To (else From) of the client's
    latest message, answering it (In-Reply-To/References), with ``[#ref]`` in the
    subject and a Message-ID from our domain. Returns the outbox row (exactly one).
    Does not commit.

    Raises:
        UserError: no ``[smtp]`` section (no From address), an empty body, or no
            client address to answer.
    """
    if settings.smtp is None:
        raise UserError("triage reply needs [smtp] from_address in the config")
    if not body.strip():
        raise UserError("the reply is empty: nothing was sent")
    from_address = settings.smtp.from_address
    answered = _answered_message(session, ticket)
    to = reply_address(answered) if answered is not None else None
    if to is None and ticket.client_addr:
        to = Address(name=ticket.client_name, addr=ticket.client_addr)
    if to is None or "@" not in to.addr:
        raise UserError(f"ticket #{ticket.ref} has no client address to answer")
    plain = ascii_address(to.addr)
    if plain is None:
        raise UserError(
            f"cannot write a reply to {to.addr!r}: not an address plain SMTP can carry"
            " (a non-ASCII local part needs SMTPUTF8)"
        )
    to = Address(name=to.name, addr=plain)
    domain = message_id_domain(settings.team.message_id_domain, from_address)
    message_id = make_message_id(domain, "reply", ticket.ref)
    in_reply_to = answered.message_id if answered is not None else ""
    references = [str(r) for r in answered.references] if answered is not None else []
    try:
        raw = compose_reply(
            from_address=from_address,
            to=to,
            subject=ticket.subject,
            ref=ticket.ref or 0,
            body=body,
            in_reply_to=in_reply_to,
            references=references,
            message_id=message_id,
            date=now,
        )
    except (ValueError, TypeError) as exc:
        raise UserError(f"cannot write a reply to {to.addr!r}: {exc}") from None
    sender_name, sender = parse_mailbox(from_address)
    sent = message_from_bytes(raw, policy=email_policy.default)
    row = OutboxMail(
        kind="reply",
        dedupe_key=f"reply:{message_id}",
        ticket_id=ticket.id,
        cause_message_id=answered.id if answered is not None else None,
        message_id=message_id,
        mail_from=sender,
        rcpt_to=[to.addr],
        rcpt_key=to.addr.lower(),
        raw=raw,
        status="pending",
        next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    session.add(
        Message(
            source="outbox",
            direction="out",
            message_id=message_id,
            raw_sha256=hashlib.sha256(raw).hexdigest(),
            raw=raw,
            raw_size=len(raw),
            sent_at=now,
            received_at=now,
            from_addr=sender,
            from_name=sender_name,
            to_addrs=[address_json(to)],
            subject=str(sent["Subject"]),
            body_text=body,
            in_reply_to=in_reply_to,
            references=str(sent.get("References", "")).split(),
            ticket_id=ticket.id,
            created_at=now,
        )
    )
    session.flush()
    record_team_reply(
        session,
        ticket,
        at=now,
        actor=actor,
        policy=policy,
        now=now,
        via="triage",
        message_id=message_id,
    )
    return row
