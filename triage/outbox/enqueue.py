"""Writing mail into the outbox (in the caller's transaction); counting recent acknowledgments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from triage.config import Settings
from triage.domain import InboundMessage
from triage.outbox.compose import ComposedMail
from triage.outbox.policy import AckDecision, plan_ack
from triage.store.models import Message, OutboxMail
from triage.store.notify import OUTBOX_CHANNEL, notify
from triage.store.rows import insert_outbox

__all__ = [
    "ACK_WINDOW",
    "Enqueued",
    "answered_ack",
    "decide_ack",
    "earlier_repeat",
    "enqueue",
    "enqueue_row",
    "recent_ack_count",
]

ACK_WINDOW = timedelta(hours=1)
"""The window of acknowledgments.max_per_sender_per_hour."""

_messages = Message.__table__.c
_outbox = OutboxMail.__table__.c
"""The lookups below are SQLAlchemy Core on the session's connection (issue 18.2: no ORM
compilation or autoflush on the intake's path): they read what the session flushed."""


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The outbox row of a mail, and whether this call created it.

    ``created`` is False when a row with the same dedupe_key already existed: the
    mail was queued before (by an earlier attempt or another worker) and is not
    queued twice.
    """

    row: OutboxMail
    created: bool


def enqueue(
    session: Session,
    mail: ComposedMail,
    *,
    kind: str,
    now: datetime,
    dedupe_key: str | None,
    ticket_id: int | None = None,
    cause_message_id: int | None = None,
) -> Enqueued:
    """Add ``mail`` to the outbox in the caller's transaction (flushed, never committed).

    Args:
        session: the caller's session; the row commits or rolls back with the
            caller's change (the ticket, the message, the escalation).
        mail: the composed mail; its Message-ID is fixed from now on.
        kind: ``ack`` | ``reply`` | ``escalation`` | ``warning`` | ``digest``.
        now: the time it is queued (UTC-aware): created_at, and the first attempt is due.
        dedupe_key: unique key (``ack:<messages.id>``); a second call with the same
            key returns the existing row instead of queueing a copy.
        ticket_id: the ticket the mail belongs to.
        cause_message_id: messages.id of the mail that caused it (the client's mail).

    Returns:
        :class:`Enqueued` with the row (its ``id`` set) and whether it is new.
    """
    if dedupe_key is not None:
        existing = session.scalars(
            select(OutboxMail).where(OutboxMail.dedupe_key == dedupe_key)
        ).first()
        if existing is not None:
            return Enqueued(existing, created=False)
    row = OutboxMail(
        **_outbox_values(
            mail,
            kind=kind,
            now=now,
            dedupe_key=dedupe_key,
            ticket_id=ticket_id,
            cause_message_id=cause_message_id,
        )
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        # Another transaction queued the same dedupe_key between our SELECT and INSERT.
        if dedupe_key is None:
            raise
        existing = session.scalars(
            select(OutboxMail).where(OutboxMail.dedupe_key == dedupe_key)
        ).one()
        return Enqueued(existing, created=False)
    notify(session, OUTBOX_CHANNEL)  # wakes every worker's dispatcher when this commits
    return Enqueued(row, created=True)


def _outbox_values(
    mail: ComposedMail,
    *,
    kind: str,
    now: datetime,
    dedupe_key: str | None,
    ticket_id: int | None,
    cause_message_id: int | None,
) -> dict[str, Any]:
    """The column values of a new outbox row (pure): pending, first attempt due ``now``."""
    return {
        "kind": kind,
        "dedupe_key": dedupe_key,
        "ticket_id": ticket_id,
        "cause_message_id": cause_message_id,
        "message_id": mail.message_id,
        "mail_from": mail.mail_from,
        "rcpt_to": list(mail.rcpt_to),
        "rcpt_key": mail.rcpt_to[0].lower() if mail.rcpt_to else "",
        "raw": mail.raw,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "last_error": "",
    }


def enqueue_row(
    session: Session,
    mail: ComposedMail,
    *,
    kind: str,
    now: datetime,
    dedupe_key: str,
    ticket_id: int | None = None,
    cause_message_id: int | None = None,
) -> int | None:
    """:func:`enqueue` in SQLAlchemy Core, for the intake (issue 18.2): one INSERT that
    does nothing when a row with ``dedupe_key`` exists (no SELECT, no savepoint, no ORM
    object). The same row as :func:`enqueue`; committed with the caller's transaction,
    which wakes the dispatchers (PostgreSQL NOTIFY) when the row is new.

    Returns:
        The new row's id, None when the mail was queued before (same ``dedupe_key``).
    """
    new_id = insert_outbox(
        session,
        _outbox_values(
            mail,
            kind=kind,
            now=now,
            dedupe_key=dedupe_key,
            ticket_id=ticket_id,
            cause_message_id=cause_message_id,
        ),
    )
    if new_id is not None:
        notify(session, OUTBOX_CHANNEL)
    return new_id


def recent_ack_count(session: Session, address: str, since: datetime) -> int:
    """Acknowledgments queued to ``address`` (any status) at or after ``since``.

    Counts outbox rows with kind ``ack`` whose rcpt_key is ``address`` lowercased.
    """
    o = _outbox
    query = select(func.count(o.id)).where(
        o.kind == "ack", o.rcpt_key == address.lower(), o.created_at >= since
    )
    return int(session.connection().scalar(query) or 0)


def decide_ack(
    session: Session,
    message: InboundMessage,
    settings: Settings,
    *,
    now: datetime,
    follow_up: bool = False,
    rule_no_ack: bool = False,
) -> AckDecision:
    """:func:`~triage.outbox.policy.plan_ack` with what it needs read from the store.

    Counts acknowledgments to the message's reply address in the hour before
    ``now`` (RFC 3834 section 2); ``now`` also dates the ``too_old`` check. Looks up
    whether In-Reply-To/References name one of our acknowledgments, and whether the
    same sender sent the same subject and text in that hour (a repeat).
    """
    recipient = message.reply_address
    recent = recent_ack_count(session, recipient.addr, now - ACK_WINDOW) if recipient else 0
    return plan_ack(
        message,
        settings,
        follow_up=follow_up,
        rule_no_ack=rule_no_ack,
        recent_acks=recent,
        now=now,
        answers_ack=answered_ack(session, message),
        repeat_of=earlier_repeat(session, message, now - ACK_WINDOW),
    )


def answered_ack(session: Session, message: InboundMessage) -> str:
    """The Message-ID of our acknowledgment that ``message`` names in In-Reply-To or
    References (ids in their normal form, :mod:`triage.mail.ids`); "" when none."""
    ids = [i for i in (message.in_reply_to, *message.references) if i]
    if not ids:
        return ""
    o = _outbox
    found = session.connection().scalar(
        select(o.message_id).where(o.kind == "ack", o.message_id.in_(ids)).limit(1)
    )
    return found or ""


def earlier_repeat(
    session: Session, message: InboundMessage, since: datetime, *, before_id: int | None = None
) -> str:
    """An earlier message from the same sender with the same subject and text, received
    at or after ``since`` (with another Message-ID: the same one is a duplicate
    delivery, handled before); "" when none, else ``"message N of <time>"``.

    ``before_id``: only rows stored before that message row (a replay over stored
    mail, ``triage rules test``, asks as of when the message was decided).
    """
    if message.from_ is None or not (message.subject or message.body_text):
        return ""
    m = _messages
    earlier = (m.id < before_id,) if before_id is not None else ()
    row = (
        session.connection()
        .execute(
            select(m.id, m.received_at)
            .where(
                func.lower(m.from_addr) == message.from_.key,
                m.direction == "in",
                *earlier,
                m.received_at >= since,
                m.message_id != message.message_id,
                m.subject == message.subject,
                m.body_text == message.body_text,
            )
            .order_by(m.id)
            .limit(1)
        )
        .first()
    )
    if row is None:
        return ""
    return f"message {row.id} of {row.received_at:%Y-%m-%d %H:%M} UTC"
