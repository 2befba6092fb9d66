"""Writing mail into the outbox (in the caller's transaction); counting recent acknowledgments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, bindparam, func, select
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
compilation or autoflush on the intake's path): they read what the session flushed.
Their statements are built once, with bound parameters: building one per call (and its
cache key) cost about as much as running it."""

_RECENT_ACKS = select(func.count(_outbox.id)).where(
    _outbox.kind == "ack",
    _outbox.rcpt_key == bindparam("address"),
    _outbox.created_at >= bindparam("since"),
)
_ANSWERED_ACK = (
    select(_outbox.message_id)
    .where(_outbox.kind == "ack", _outbox.message_id.in_(bindparam("ids", expanding=True)))
    .limit(1)
)


def _repeat_query(*, before: bool) -> Select[Any]:
    m = _messages
    earlier = (m.id < bindparam("before_id"),) if before else ()
    return (
        select(m.id, m.received_at)
        .where(
            func.lower(m.from_addr) == bindparam("sender"),
            m.direction == "in",
            *earlier,
            m.received_at >= bindparam("since"),
            m.message_id != bindparam("message_id"),
            m.subject == bindparam("subject"),
            m.body_text == bindparam("body_text"),
        )
        .order_by(m.id)
        .limit(1)
    )


_REPEAT = {False: _repeat_query(before=False), True: _repeat_query(before=True)}


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
    found = session.connection().scalar(_RECENT_ACKS, {"address": address.lower(), "since": since})
    return int(found or 0)


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
    found = session.connection().scalar(_ANSWERED_ACK, {"ids": ids})
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
    parameters = {
        "sender": message.from_.key,
        "since": since,
        "message_id": message.message_id,
        "subject": message.subject,
        "body_text": message.body_text,
    }
    if before_id is not None:
        parameters["before_id"] = before_id
    row = session.connection().execute(_REPEAT[before_id is not None], parameters).first()
    if row is None:
        return ""
    return f"message {row.id} of {row.received_at:%Y-%m-%d %H:%M} UTC"
