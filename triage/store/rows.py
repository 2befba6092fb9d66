"""The intake's rows written with SQLAlchemy Core (issue 18.2): one INSERT each, no ORM.

The ORM's unit of work (``Session.flush``: change tracking, dependency sorting, the
identity map growing through a batch of 200 messages) was a third of the intake's
time. The intake's hot path writes its rows with these functions instead, on the
session's connection and inside its transaction (and savepoint): each is one
``INSERT ... RETURNING id`` (``ON CONFLICT DO NOTHING`` for the outbox's dedupe key).
They do what the ORM's insert hooks in :mod:`triage.store.models` do
(``messages.has_html``, the tickets' queue columns), with the same functions.
Nothing here decides anything: the values come from the callers' rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from triage.errors import StoreError
from triage.mail.parts import has_html_body
from triage.store.models import (
    Message,
    OutboxMail,
    RoutingDecision,
    Ticket,
    TicketEvent,
    queue_key,
)

__all__ = [
    "NewMessage",
    "insert_decision",
    "insert_event",
    "insert_message",
    "insert_outbox",
    "insert_ticket",
]

_messages = cast("Table", Message.__table__)
_tickets = cast("Table", Ticket.__table__)
_events = cast("Table", TicketEvent.__table__)
_decisions = cast("Table", RoutingDecision.__table__)
_outbox = cast("Table", OutboxMail.__table__)


_INSERT_MESSAGE = insert(_messages).returning(_messages.c.id)
_INSERT_EVENT = insert(_events)
_INSERT_DECISION = insert(_decisions)
_INSERT_OUTBOX = {
    "postgresql": postgresql.insert(_outbox)
    .on_conflict_do_nothing(index_elements=["dedupe_key"])
    .returning(_outbox.c.id),
    "sqlite": sqlite.insert(_outbox)
    .on_conflict_do_nothing(index_elements=["dedupe_key"])
    .returning(_outbox.c.id),
}
"""The statements, built once: executed with a dictionary of values, SQLAlchemy compiles
each once per set of columns and reuses it (``insert().values(row)`` per row rebuilt
the statement and its cache key every time: half of an INSERT's cost)."""
_INSERT_TICKET: dict[str, Any] = {}
"""Per dialect: the tickets INSERT with its ``ref`` expression (see :func:`insert_ticket`)."""


def insert_message(session: Session, values: Mapping[str, Any]) -> int:
    """INSERT one ``messages`` row from its column values; its id.

    ``has_html`` is worked out from ``raw`` when not given (as the ORM's insert hook
    does; left None for a row inserted without its raw bytes). Raises what the
    database raises (IntegrityError for a UID stored twice).
    """
    row = dict(values)
    if row.get("has_html") is None and row.get("raw"):
        row["has_html"] = has_html_body(row["raw"])
    return int(session.connection().execute(_INSERT_MESSAGE, row).scalar_one())


class NewMessage:
    """A ``messages`` row about to be inserted with SQLAlchemy Core: its column values
    (``values``, as for :func:`insert_message`), readable as the attributes the routing
    reads of a stored row, and its ``id`` once :meth:`insert` ran (None before).

    ``ticket_id`` and ``kind`` may be set before the insert (the intake inserts the
    message once, with its ticket: no UPDATE of the new row).
    """

    __slots__ = ("id", "values")

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.id: int | None = None

    @property
    def message_id(self) -> str:
        """``messages.message_id``."""
        return str(self.values["message_id"])

    @property
    def source(self) -> str:
        """``messages.source`` (``imap``, ``import``, ``sent``)."""
        return str(self.values["source"])

    @property
    def from_addr(self) -> str:
        """``messages.from_addr`` ("" when none)."""
        return str(self.values.get("from_addr", ""))

    @property
    def from_name(self) -> str:
        """``messages.from_name``."""
        return str(self.values.get("from_name", ""))

    @property
    def subject(self) -> str:
        """``messages.subject``."""
        return str(self.values.get("subject", ""))

    @property
    def received_at(self) -> datetime:
        """``messages.received_at`` (aware, UTC)."""
        value: datetime = self.values["received_at"]
        return value

    @property
    def kind(self) -> str:
        """``messages.kind``."""
        return str(self.values.get("kind", "normal"))

    @kind.setter
    def kind(self, value: str) -> None:
        self.values["kind"] = value

    @property
    def ticket_id(self) -> int | None:
        """``messages.ticket_id``."""
        value: int | None = self.values.get("ticket_id")
        return value

    @ticket_id.setter
    def ticket_id(self, value: int | None) -> None:
        self.values["ticket_id"] = value

    def insert(self, session: Session) -> int:
        """INSERT the row (:func:`insert_message`) and keep its id. Raises what the
        database raises."""
        self.id = insert_message(session, self.values)
        return self.id


def insert_ticket(session: Session, values: Mapping[str, Any], ref: Any) -> int:
    """INSERT one ``tickets`` row; its id.

    ``values`` holds every column the queue's sort key reads (``status``, ``priority``,
    ``first_response_at``, ``first_response_due``, ``awaiting_since``,
    ``next_response_due``, ``resolution_due``): ``in_queue``, ``queue_due`` and
    ``priority_rank`` are set from them by :func:`triage.store.models.queue_key`, as
    the ORM's insert hook does. ``ref``: the reference as a SQL expression evaluated by
    the INSERT, the same for every ticket of a dialect (it is built into the statement,
    which is kept per dialect).
    """
    in_queue, due, rank = queue_key(SimpleNamespace(**values))  # type: ignore[arg-type]
    row = {**values, "in_queue": in_queue, "queue_due": due, "priority_rank": rank}
    dialect = session.get_bind().dialect.name
    statement = _INSERT_TICKET.get(dialect)
    if statement is None:
        statement = insert(_tickets).values(ref=ref).returning(_tickets.c.id)
        _INSERT_TICKET[dialect] = statement
    return int(session.connection().execute(statement, row).scalar_one())


def insert_event(session: Session, values: Mapping[str, Any]) -> None:
    """INSERT one ``ticket_events`` row (values from :func:`triage.tickets.audit.event_values`)."""
    session.connection().execute(_INSERT_EVENT, dict(values))


def insert_decision(session: Session, values: Mapping[str, Any]) -> None:
    """INSERT one ``routing_decisions`` row."""
    session.connection().execute(_INSERT_DECISION, dict(values))


def insert_outbox(session: Session, values: Mapping[str, Any]) -> int | None:
    """INSERT one ``outbox`` row unless one with its ``dedupe_key`` exists (one statement:
    ``ON CONFLICT (dedupe_key) DO NOTHING``); the new id, None when it existed.

    Raises:
        StoreError: a database other than SQLite or PostgreSQL.
    """
    dialect = session.get_bind().dialect.name
    statement = _INSERT_OUTBOX.get(dialect)
    if statement is None:  # pragma: no cover - the store supports these two
        raise StoreError(f"unsupported database {dialect!r}")
    found = session.connection().execute(statement, dict(values)).scalar_one_or_none()
    return int(found) if found is not None else None
