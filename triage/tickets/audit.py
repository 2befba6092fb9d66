"""The audit log of tickets: one ``ticket_events`` row per change (who, when, what).

Actions written by :mod:`triage.tickets`:

=================  ==========================================================
``opened``         a ticket was opened from a client's message
``message_added``  a client's message joined an open ticket
``note_added``     an auto-reply or bounce was linked to the ticket (no SLA change)
``resumed``        a client's message came while waiting: the SLA clock runs again
``reopened``       a solved or closed ticket came back (new resolution deadline)
``replied``        the team answered (stops the first- or next-response clock)
``status_changed`` new / open / waiting / solved / closed (``from``, ``to``)
``claimed``        an assistant took the ticket
``assigned``       someone gave the ticket to an assistant
``moved``          the queue and/or priority was corrected (a training label was written)
``escalated``      a rule escalated the ticket to the owners
``duplicate_added`` a second copy of a stored mail was filed with the ticket
``snoozed``        a waiting ticket got a new alarm (``until``)
``note_written``   an assistant wrote an internal note (``note_id``, ``mentions``)
=================  ==========================================================

Every row raises the ticket's ``version`` by one and stores the new value, so the
changes since a version someone saw are the rows above it (a conflict names them).

Counting ``replied`` events gives a ticket's response cycle, counting ``reopened``
events its resolution cycle (see :func:`triage.tickets.deadlines.cycles`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from triage.store.models import Ticket, TicketEvent

__all__ = ["SERVICE_ACTOR", "event_values", "iso", "record_event"]

SERVICE_ACTOR = "triage"
"""The actor of changes the service makes on its own."""


def iso(t: datetime | None) -> str | None:
    """An aware datetime as ISO 8601 in UTC with a ``Z`` (None stays None)."""
    if t is None:
        return None
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def record_event(
    session: Session,
    ticket: Ticket,
    *,
    actor: str,
    action: str,
    at: datetime,
    **detail: Any,
) -> TicketEvent:
    """Add one audit row for ``ticket`` (flushed with the session; not committed).

    Raises the ticket's ``version`` by one; the row carries the new value, so the
    changes since a version a person saw are the rows above it. ``ticket`` may be
    pending (added, not yet flushed): the flush then inserts it and this row after it.
    ``detail`` values must be JSON-serializable;
    datetimes are written as ISO 8601 UTC.
    """
    clean = _clean(detail)
    ticket.version = (ticket.version or 1) + 1
    event = TicketEvent(
        # a ticket not yet flushed (no id): the flush inserts it first, then this row
        **({"ticket_id": ticket.id} if ticket.id is not None else {"ticket": ticket}),
        at=at,
        actor=actor,
        action=action,
        detail=clean,
        version=ticket.version,
    )
    session.add(event)
    return event


def _clean(detail: dict[str, Any]) -> dict[str, Any]:
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in detail.items()}


def event_values(
    ticket_id: int,
    *,
    version: int,
    actor: str,
    action: str,
    at: datetime,
    detail: dict[str, Any],
) -> dict[str, Any]:
    """The column values of one audit row for a SQLAlchemy Core INSERT (pure): the same
    row :func:`record_event` adds, for a ticket whose new ``version`` the caller set.
    Datetimes in ``detail`` are written as ISO 8601 UTC."""
    return {
        "ticket_id": ticket_id,
        "at": at,
        "actor": actor,
        "action": action,
        "detail": _clean(detail),
        "version": version,
    }
