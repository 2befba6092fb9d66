"""SQLAlchemy 2.x models: the database schema of triage.

Every datetime column is timezone-aware and stored in UTC (:class:`UtcDateTime`
enforces it on SQLite too). The schema is changed only through alembic
migrations in ``triage/store/migrations``; a test checks the two agree.

Tables:
    folders            watched IMAP folders and their sync state (UIDVALIDITY, last UID)
    missing_uids       UIDs a server lists but left out of its FETCH answers: retries, placeholder
    messages           every message in or out: raw bytes, parsed fields, kind, parse error
    tickets            conversations, with queue, priority, status and SLA deadlines
    routing_decisions  how each message was routed, with its explanation
    outbox             outgoing mail (acknowledgments, replies, escalations), one row per mail
    ticket_events      the audit log: who did what to a ticket, when
    escalations        SLA breaches and rule escalations, one per ticket, kind and cycle
    ticket_notes       internal notes assistants write on a ticket (never mailed to the client)
    mentions           ``@name`` in a note: one row per assistant named, until notified
    training_labels    queue (and priority) labels set by people or imported, for training
    models             trained classifier models (skops bytes) and their metrics
    users              people who log in to the web page (assistants, owners)
    web_sessions       server-side login sessions (sha256 of the cookie's token)
    login_failures     failed logins, for throttling per user and per address
    alerts             standing problems a service reports until they clear (SMTP login refused)
    backup_runs        each `triage backup`: when, whether it worked, the archive or the error
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    inspect,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column, relationship

from triage.domain import PRIORITIES, TicketStatus
from triage.mail.parts import has_html_body

__all__ = [
    "NO_DUE",
    "SLA_CHECK_NOW",
    "Alert",
    "BackupRun",
    "Base",
    "Escalation",
    "Folder",
    "LoginFailure",
    "Mention",
    "Message",
    "MissingUid",
    "Model",
    "OutboxMail",
    "RoutingDecision",
    "Ticket",
    "TicketEvent",
    "TicketNote",
    "TrainingLabel",
    "User",
    "UtcDateTime",
    "WebSession",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored in UTC; naive datetimes are refused on write.

    SQLite keeps no zone, so values come back naive and are marked UTC here.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; convert aware ones to UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use a timezone-aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(
        self,
        value: datetime | None,
        dialect: Dialect,  # noqa: ARG002 - SQLAlchemy passes it
    ) -> datetime | None:
        """Return UTC-aware datetimes."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base with a constraint naming convention (stable migration names)."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: dict[Any, Any] = {  # noqa: RUF012 - SQLAlchemy's documented form
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class Folder(Base):
    """A watched IMAP folder and its progress: (UIDVALIDITY, highest UID stored)."""

    __tablename__ = "folders"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(500), unique=True)
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    last_poll_at: Mapped[datetime | None]
    """Last successful pass over the folder (UTC)."""
    last_error: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)
    lease_worker: Mapped[str] = mapped_column(String(200), default="", server_default="")
    """The worker (``workers.name``) that watches this folder now ("" when none; PostgreSQL)."""
    lease_until: Mapped[datetime | None]
    """Until when the lease holds unless renewed (UTC); a dead worker's lapses by then."""


class Worker(Base):
    """A running ``triage run`` (or ``poll --once``) process sharing the database.

    Written only on PostgreSQL, where several workers share the folders by lease
    (:mod:`triage.services.workers`); ``triage status`` lists them.
    """

    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    host: Mapped[str] = mapped_column(String(255), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime] = mapped_column(index=True)


class MissingUid(Base):
    """A UID the server lists (``UID SEARCH``) but left out of its FETCH answers.

    The folder's high-water mark stays below it while it is retried (each attempt
    counted, the next one due at ``next_attempt_at``). It is deleted when the
    message arrives or is expunged; after the configured number of attempts a
    placeholder message is stored for it (``message_id``), and the row stays as
    the record of that.
    """

    __tablename__ = "missing_uids"
    __table_args__ = (UniqueConstraint("folder_id", "uidvalidity", "uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    folder_id: Mapped[int] = mapped_column(ForeignKey("folders.id"))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    first_missed_at: Mapped[datetime]
    last_attempt_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text, default="")
    """Why the last attempt failed (left out of the answer, BODY[] NIL, ...)."""
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    """The placeholder stored after the last attempt; None while retrying."""


class Message(Base):
    """One message, inbound or outbound, with its raw bytes and parsed fields.

    ``(folder_id, uidvalidity, uid)`` is unique: fetching a message twice cannot
    store it twice. Imported and outbound messages have no folder.
    """

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("folder_id", "uidvalidity", "uid"),
        Index("ix_messages_message_id_sha", "message_id", "raw_sha256"),
        # the sender's recent mail (acknowledgment policy), migration 0014
        Index("ix_messages_sender_received", text("lower(from_addr)"), "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    folder_id: Mapped[int | None] = mapped_column(ForeignKey("folders.id"))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(16))
    """imap | import | sent (a team reply seen in the Sent folder) | outbox (sent by triage)."""
    direction: Mapped[str] = mapped_column(String(3))
    """in (from a client) | out (from the team)."""
    message_id: Mapped[str] = mapped_column(String(998))
    message_id_synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    raw_sha256: Mapped[str] = mapped_column(String(64))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    raw_size: Mapped[int] = mapped_column(BigInteger)
    internal_date: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    received_at: Mapped[datetime]
    from_addr: Mapped[str] = mapped_column(String(320), default="", index=True)
    from_name: Mapped[str] = mapped_column(String(500), default="")
    to_addrs: Mapped[list[Any]] = mapped_column(default=list)
    cc_addrs: Mapped[list[Any]] = mapped_column(default=list)
    reply_to: Mapped[list[Any]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    quoted_text: Mapped[str] = mapped_column(Text, default="")
    signature: Mapped[str] = mapped_column(Text, default="")
    attachments: Mapped[list[Any]] = mapped_column(default=list)
    inline_parts: Mapped[list[Any]] = mapped_column(default=list)
    """Parts the HTML body shows inline (``cid:`` images): like attachments, with
    ``content_id``; never counted or listed as attachments."""
    in_reply_to: Mapped[str] = mapped_column(String(998), default="", index=True)
    references: Mapped[list[Any]] = mapped_column(default=list)
    language: Mapped[str] = mapped_column(String(8), default="")
    kind: Mapped[str] = mapped_column(String(16), default="normal")
    list_id: Mapped[str] = mapped_column(String(500), default="")
    delivery_report: Mapped[dict[str, Any] | None]
    parse_status: Mapped[str] = mapped_column(String(20), default="ok")
    parse_error: Mapped[str] = mapped_column(Text, default="")
    defects: Mapped[list[Any]] = mapped_column(default=list)
    """What the parser found wrong but read anyway (an impossible Date, broken header
    lines, a charset guessed): sentences, shown with the message."""
    charset_fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    body_missing: Mapped[bool] = mapped_column(Boolean, default=False)
    has_html: Mapped[bool | None] = mapped_column(Boolean)
    """The mail has an HTML body (:func:`triage.mail.parts.has_html_body`): set from
    ``raw`` when the row is inserted (:func:`_note_html`), filled for older rows by
    migration 0016. None: not known (the raw bytes were written after the INSERT, as
    the intake does for SQLite mail of 1 MB or more, or a bulk Core insert)."""
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=_now)

    ticket: Mapped[Ticket | None] = relationship(back_populates="messages")
    decision: Mapped[RoutingDecision | None] = relationship(back_populates="message")


NO_DUE = datetime(9999, 12, 31, tzinfo=UTC)
"""``tickets.queue_due`` of a ticket whose clock does not run (waiting, solved, no SLA)."""

SLA_CHECK_NOW = datetime(1970, 1, 1, tzinfo=UTC)
"""``tickets.sla_check_at`` of a ticket the SLA watch must look at in its next pass."""

_DEADLINE_FIELDS = (
    "status",
    "queue",
    "priority",
    "opened_at",
    "first_response_due",
    "first_response_at",
    "next_response_due",
    "resolution_due",
    "awaiting_since",
)
"""Ticket columns whose change can move a deadline or start a new one."""

_IN_QUEUE = frozenset({TicketStatus.NEW.value, TicketStatus.OPEN.value, TicketStatus.WAITING.value})
_RUNNING = frozenset({TicketStatus.NEW.value, TicketStatus.OPEN.value})


class Ticket(Base):
    """A conversation with a client, in one queue, with SLA deadlines (UTC).

    ``ref`` is the short human reference shown as ``#1042``. ``version`` counts the
    changes recorded in the audit log: every ``ticket_events`` row raises it by one
    and carries the new value (:func:`triage.tickets.audit.record_event`), so "what
    changed since version 7" is the events with ``version > 7``. An UPDATE checks it
    too (``WHERE version = <read>``): a change made meanwhile by another transaction
    fails instead of being overwritten.

    ``in_queue``, ``queue_due`` and ``priority_rank`` are the queue's sort key, kept
    up to date from the other columns on every INSERT and UPDATE (:func:`queue_key`),
    so that listing a page of the queue is one indexed range scan at any table size.
    """

    __tablename__ = "tickets"
    __table_args__ = (
        Index(
            "ix_tickets_queue_order", "in_queue", "queue_due", "priority_rank", "opened_at", "id"
        ),
        Index(
            "ix_tickets_assignee_order",
            "in_queue",
            "assignee",
            "queue_due",
            "priority_rank",
            "opened_at",
            "id",
        ),
        Index(
            "ix_tickets_queue_name_order",
            "in_queue",
            "queue",
            "queue_due",
            "priority_rank",
            "opened_at",
            "id",
        ),
        Index(  # the Waiting view: its tickets' paused clocks sort last in the other orders
            "ix_tickets_status_order",
            "in_queue",
            "status",
            "queue_due",
            "priority_rank",
            "opened_at",
            "id",
        ),
        # covers the grouped query that counts every view (store.tickets.queue_tally)
        Index("ix_tickets_tally", "in_queue", "queue", "assignee", "status", "queue_due", "id"),
        # covers `triage status`'s backlog: how many await an answer, since when
        Index("ix_tickets_awaiting", "status", "awaiting_since"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[int | None] = mapped_column(Integer, unique=True)
    queue: Mapped[str] = mapped_column(String(100), index=True)
    priority: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10), index=True, default="new")
    subject: Mapped[str] = mapped_column(Text, default="")
    client_addr: Mapped[str] = mapped_column(String(320), default="", index=True)
    client_name: Mapped[str] = mapped_column(String(500), default="")
    assignee: Mapped[str | None] = mapped_column(String(200))
    decided_by: Mapped[str] = mapped_column(String(10), default="fallback")
    tags: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)
    opened_at: Mapped[datetime]
    """When the first message reached the mailbox: the SLA clock's start."""
    first_response_due: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    next_response_due: Mapped[datetime | None]
    """Set while a client's message awaits the team's answer after the first response."""
    resolution_due: Mapped[datetime | None]
    awaiting_since: Mapped[datetime | None]
    """When the oldest unanswered client message arrived (None when answered)."""
    waiting_since: Mapped[datetime | None]
    """When the ticket went to 'waiting' (clock paused), None otherwise."""
    solved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    wait_until: Mapped[datetime | None]
    """A waiting ticket wakes at this time (or when the client writes); None: no alarm."""
    in_queue: Mapped[bool] = mapped_column(Boolean, default=False)
    """new, open or waiting: listed in the queue."""
    queue_due: Mapped[datetime] = mapped_column(default=NO_DUE)
    """The running deadline due first; :data:`NO_DUE` when no clock runs."""
    priority_rank: Mapped[int] = mapped_column(Integer, default=len(PRIORITIES))
    """0 for urgent up to 3 for low (4 for an unknown priority)."""
    sla_check_at: Mapped[datetime] = mapped_column(default=SLA_CHECK_NOW, index=True)
    """When the SLA watch must next look at the ticket (its next warning time or
    deadline; :data:`NO_DUE` when nothing can fall due). Set back to
    :data:`SLA_CHECK_NOW` by every change to the ticket's deadlines (the update hook
    below), so a pass reads only the tickets with something due."""
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {  # noqa: RUF012 - SQLAlchemy's documented form
        "version_id_col": version,
        "version_id_generator": False,  # raised by record_event, once per audit row
    }

    messages: Mapped[list[Message]] = relationship(back_populates="ticket")
    events: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket", order_by="TicketEvent.id"
    )


class RoutingDecision(Base):
    """How a message was routed, and why: rule hits or class probabilities."""

    __tablename__ = "routing_decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), unique=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    queue: Mapped[str] = mapped_column(String(100))
    priority: Mapped[str] = mapped_column(String(10))
    decided_by: Mapped[str] = mapped_column(String(10))
    """rule | model | fallback."""
    confidence: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(100), default="")
    rules_matched: Mapped[list[Any]] = mapped_column(default=list)
    probabilities: Mapped[list[Any]] = mapped_column(default=list)
    """Top classes as [[queue, probability], ...], most likely first."""
    explanation: Mapped[list[Any]] = mapped_column(default=list)
    """Sentences an owner can read, e.g. "rule 'vip-client': from domain ... is in vip_clients"."""
    tags: Mapped[list[Any]] = mapped_column(default=list)
    escalate: Mapped[list[Any]] = mapped_column(default=list)
    """Reasons given by rules that escalate to owners at once."""
    ack: Mapped[str] = mapped_column(String(40), default="")
    """Why no acknowledgment was sent ("" when one was)."""
    ack_template: Mapped[str] = mapped_column(String(100), default="")
    assignee: Mapped[str] = mapped_column(String(200), default="")
    checks: Mapped[list[Any] | None] = mapped_column(default=None)
    """The rows of the decision tables looked at, ``[[table, check, matched], ...]``
    (:attr:`triage.handling.Decision.checks`); None for decisions older than them."""
    created_at: Mapped[datetime] = mapped_column(default=_now)

    message: Mapped[Message] = relationship(back_populates="decision")


class OutboxMail(Base):
    """One outgoing mail. Written with the change that causes it; sent by the dispatcher.

    ``message_id`` is fixed before the first attempt; ``dedupe_key`` (unique) makes
    writing the same mail twice impossible (``ack:<message>``, ``breach:<ticket>:...``).
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    """ack | reply | escalation | warning | digest."""
    dedupe_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    cause_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    message_id: Mapped[str] = mapped_column(String(998), index=True)
    """Replies and bounces name it (In-Reply-To, References, a DSN's headers): threading
    looks it up for every such message, so it is indexed (a scan of 20,000 rows took 15 ms)."""
    mail_from: Mapped[str] = mapped_column(String(320))
    rcpt_to: Mapped[list[Any]] = mapped_column(default=list)
    rcpt_key: Mapped[str] = mapped_column(String(320), default="", index=True)
    """First recipient, lowercased: for per-sender acknowledgment limits."""
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True)
    """pending | sent | failed."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=_now)
    lease_until: Mapped[datetime | None]
    """A worker sending the row holds it until then (several workers on PostgreSQL)."""
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=_now)
    sent_at: Mapped[datetime | None]


class TicketEvent(Base):
    """The audit log: one row per change to a ticket (who, when, what)."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    at: Mapped[datetime] = mapped_column(default=_now)
    actor: Mapped[str] = mapped_column(String(200))
    """An assistant's name, or ``triage`` for the service itself."""
    action: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    version: Mapped[int | None] = mapped_column(Integer)
    """The ticket's version after this change (None for rows written before versions)."""

    ticket: Mapped[Ticket] = relationship(back_populates="events")


class TicketNote(Base):
    """An internal note on a ticket: for the team only, never mailed to the client."""

    __tablename__ = "ticket_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    author: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    mentions: Mapped[list[Any]] = mapped_column(default=list)
    """Assistant names written as ``@name`` in the body."""
    created_at: Mapped[datetime] = mapped_column(default=_now)


class Mention(Base):
    """An assistant named with ``@name`` in a note; ``notified_at`` once they were told."""

    __tablename__ = "mentions"

    id: Mapped[int] = mapped_column(primary_key=True)
    note_id: Mapped[int] = mapped_column(ForeignKey("ticket_notes.id"), index=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    assistant: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=_now)
    notified_at: Mapped[datetime | None] = mapped_column(index=True)


class Escalation(Base):
    """A breach or rule escalation of a ticket; unique per (ticket, kind, cycle)."""

    __tablename__ = "escalations"
    __table_args__ = (UniqueConstraint("ticket_id", "kind", "cycle"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    """first_response | next_response | resolution | rule | warning_<target>."""
    cycle: Mapped[int] = mapped_column(Integer, default=0)
    """Which response cycle (0 = first); a reopened ticket can breach again."""
    reason: Mapped[str] = mapped_column(Text, default="")
    due_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=_now)
    notified_at: Mapped[datetime | None]


class TrainingLabel(Base):
    """A queue label for training: set by an assistant (``triage move``) or imported."""

    __tablename__ = "training_labels"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text, default="")
    sender: Mapped[str] = mapped_column(String(320), default="")
    queue: Mapped[str] = mapped_column(String(100))
    priority: Mapped[str | None] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(20))
    """correction | assistant | import."""
    actor: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=_now)


class Model(Base):
    """A trained classifier (skops bytes) with what it was trained on and how it scored."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(100), unique=True)
    target: Mapped[str] = mapped_column(String(20), default="queue")
    """queue | priority."""
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    sklearn_version: Mapped[str] = mapped_column(String(40))
    trained_at: Mapped[datetime]
    n_train: Mapped[int] = mapped_column(Integer)
    classes: Mapped[list[Any]] = mapped_column(default=list)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))


def queue_key(ticket: Ticket) -> tuple[bool, datetime, int]:
    """``(in_queue, queue_due, priority_rank)`` of ``ticket`` from its other columns.

    The queue's order is breached first (most overdue first), then due time, priority
    and age: since a breached deadline is earlier than any running one, that is the
    running deadline due first, ascending (first response until answered, else a
    pending next response, and resolution), then the rank, the opening time and the
    id. A ticket whose clock does not run sorts after every running one.
    """
    status = ticket.status or TicketStatus.NEW.value
    due = NO_DUE
    if status in _RUNNING:
        candidates = []
        if ticket.first_response_at is None:
            if ticket.first_response_due is not None:
                candidates.append(ticket.first_response_due)
        elif ticket.awaiting_since is not None and ticket.next_response_due is not None:
            candidates.append(ticket.next_response_due)
        if ticket.resolution_due is not None:
            candidates.append(ticket.resolution_due)
        if candidates:
            due = min(candidates)
    ranks = {p.value: n for n, p in enumerate(PRIORITIES)}
    return status in _IN_QUEUE, due, ranks.get(ticket.priority, len(PRIORITIES))


@event.listens_for(Message, "before_insert")
def _note_html(_mapper: Mapper[Message], _connection: Any, message: Message) -> None:
    """Record whether the mail has an HTML body, from its raw bytes (when it has them)."""
    if message.has_html is None and message.raw:
        message.has_html = has_html_body(message.raw)


@event.listens_for(Ticket, "before_insert")
@event.listens_for(Ticket, "before_update")
def _keep_queue_key(_mapper: Mapper[Ticket], _connection: Any, ticket: Ticket) -> None:
    """Keep the queue's sort columns in step with the ticket (every INSERT and UPDATE),
    and have the SLA watch look again at a ticket whose deadlines changed."""
    state = inspect(ticket)
    if state.persistent and not state.attrs.sla_check_at.history.has_changes():
        attrs = state.attrs
        if any(attrs[name].history.has_changes() for name in _DEADLINE_FIELDS):
            ticket.sla_check_at = SLA_CHECK_NOW
    in_queue, due, rank = queue_key(ticket)
    if ticket.in_queue != in_queue:
        ticket.in_queue = in_queue
    if ticket.queue_due != due:
        ticket.queue_due = due
    if ticket.priority_rank != rank:
        ticket.priority_rank = rank


class User(Base):
    """A person who logs in to the web page.

    ``name`` is an assistant's key in ``[team.assistants]`` (the name tickets are
    assigned to) or an owner's login. ``password_hash`` is an argon2id hash
    (:mod:`triage.accounts.passwords`); a disabled user cannot log in and has no sessions.
    """

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    """assistant | owner."""
    password_hash: Mapped[str] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[str] = mapped_column(String(8), default="")
    """hu | en; "" follows ``[web] default_language``."""
    shortcuts: Mapped[bool] = mapped_column(Boolean, default=True)
    """Single-key keyboard shortcuts on the page."""
    created_at: Mapped[datetime] = mapped_column(default=_now)
    password_changed_at: Mapped[datetime] = mapped_column(default=_now)


class WebSession(Base):
    """A login: the cookie holds a random token, the table only its sha256.

    Revoked by logging out, by a password change and by disabling the user
    (the rows are deleted); expires after ``[web] session_hours`` without use.
    """

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    last_seen_at: Mapped[datetime] = mapped_column(default=_now)
    expires_at: Mapped[datetime]
    address: Mapped[str] = mapped_column(String(64), default="")


class LoginFailure(Base):
    """One failed login, kept a short while for throttling (per name and per address)."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    """The name typed, lowercased (it need not exist)."""
    address: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(default=_now, index=True)


class Alert(Base):
    """A standing problem a service found that needs a person, until it clears itself.

    ``name`` says which part (``smtp``: the server refused the login, sending has
    stopped until the configuration is reloaded). ``triage status`` and ``/health``
    list every row as a problem; the part deletes its row once it works again.
    """

    __tablename__ = "alerts"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    problem: Mapped[str] = mapped_column(Text)
    """One line for the person: what happened and what to do; never a secret."""
    since: Mapped[datetime] = mapped_column(default=_now)


class BackupRun(Base):
    """One ``triage backup``: when it ran, whether it worked, the archive or the error.

    ``triage status``, ``/health`` and ``/metrics`` show the newest run (a failed one
    is a problem) and the time of the newest successful one.
    """

    __tablename__ = "backup_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=_now, index=True)
    """When the backup finished or failed (UTC)."""
    ok: Mapped[bool] = mapped_column(Boolean)
    archive: Mapped[str] = mapped_column(String(1000), default="")
    """The archive written (empty when it failed)."""
    error: Mapped[str] = mapped_column(Text, default="")
    """Why it failed, one line (empty when it worked); never a secret."""
