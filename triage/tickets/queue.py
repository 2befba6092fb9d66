"""The prioritized queue assistants work from.

Order: breached tickets first (most overdue first), then by the time the next
deadline is due, then priority (urgent first), then age (oldest first). Tickets
waiting on the client (clock paused) and tickets without SLA come after those
with a running deadline.

The JSON form of a row is a fixed contract (``triage queue --json``, see DESIGN.md):
``ref``, ``queue``, ``priority``, ``status``, ``subject``, ``from``, ``assignee``,
``received_at`` and ``due_at`` (ISO 8601 UTC), ``breached`` and ``decided_by``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from json.encoder import encode_basestring
from typing import Any

from triage.domain import Priority, TicketStatus
from triage.refs import format_ref
from triage.sla.deadlines import SlaKind, SlaPolicy
from triage.sla.humanize import business_seconds_left, describe_left
from triage.sla.timeline import WorkingTimeline
from triage.store.models import Ticket
from triage.store.tickets import listing_time
from triage.tickets.audit import iso
from triage.tickets.deadlines import earliest_due

__all__ = ["QUEUE_STATUSES", "QueueListing", "QueueRow", "queue_order", "queue_row"]

QUEUE_STATUSES = (TicketStatus.NEW.value, TicketStatus.OPEN.value, TicketStatus.WAITING.value)
"""Statuses shown in the queue: everything not solved or closed."""

_FAR = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One ticket as the queue shows it.

    Attributes:
        due_at: the running deadline due first (UTC); None when waiting or without SLA.
        due_kind: which target that is.
        breached: ``now`` is past ``due_at``.
        due_seconds: business seconds until ``due_at`` (negative once breached);
            None when no deadline runs.
        due_text: ``"due in 2h 10m"``, ``"overdue by 35m"`` (business time),
            ``"paused (waiting)"`` or ``"no SLA"``.
        version: the ticket's version (``expected_version`` of an action on it).
        wait_until: a waiting ticket's alarm (UTC, when it wakes); None when it has
            none, and always None from :class:`QueueListing` (which does not read it).
    """

    ticket_id: int
    ref: int
    queue: str
    priority: str
    status: str
    subject: str
    client_addr: str
    client_name: str
    assignee: str | None
    decided_by: str
    tags: tuple[str, ...]
    received_at: datetime
    due_at: datetime | None
    due_kind: SlaKind | None
    breached: bool
    due_text: str
    due_seconds: float | None = None
    version: int = 0
    wait_until: datetime | None = None

    @property
    def ref_text(self) -> str:
        """``#1042``."""
        return format_ref(self.ref)

    @property
    def client(self) -> str:
        """``Name <addr>`` or the address alone."""
        return f"{self.client_name} <{self.client_addr}>" if self.client_name else self.client_addr

    def to_json(self) -> dict[str, Any]:
        """The row in the ``triage queue --json`` contract (plus a few extra keys)."""
        return {
            "ref": self.ref,
            "queue": self.queue,
            "priority": self.priority,
            "status": self.status,
            "subject": self.subject,
            "from": self.client_addr,
            "from_name": self.client_name,
            "assignee": self.assignee,
            "received_at": iso(self.received_at),
            "due_at": iso(self.due_at),
            "due_kind": self.due_kind.value if self.due_kind else None,
            "due": self.due_text,
            "breached": self.breached,
            "decided_by": self.decided_by,
            "tags": list(self.tags),
            "version": self.version,
        }


def _priority_rank(priority: str) -> int:
    try:
        return Priority(priority).rank
    except ValueError:
        return len(Priority)


def queue_order(row: QueueRow) -> tuple[bool, datetime, int, datetime, int]:
    """Sort key: breached first, then due time, priority, age (then reference)."""
    return (
        not row.breached,
        row.due_at or _FAR,
        _priority_rank(row.priority),
        row.received_at,
        row.ref,
    )


def queue_row(ticket: Ticket, policy: SlaPolicy, now: datetime) -> QueueRow:
    """``ticket`` as the queue shows it at ``now`` (aware)."""
    due = earliest_due(ticket)
    seconds: float | None = None
    if due is not None:
        kind, due_at = due
        breached = now > due_at
        seconds = business_seconds_left(policy.calendar, due_at, now)
        text = describe_left(abs(seconds), overdue=breached)
    else:
        kind, due_at, breached = None, None, False
        text = "paused (waiting)" if ticket.status == TicketStatus.WAITING.value else "no SLA"
    return QueueRow(
        ticket_id=ticket.id,
        ref=ticket.ref or 0,
        queue=ticket.queue,
        priority=ticket.priority,
        status=ticket.status,
        subject=ticket.subject,
        client_addr=ticket.client_addr,
        client_name=ticket.client_name,
        assignee=ticket.assignee,
        decided_by=ticket.decided_by,
        tags=tuple(str(t) for t in ticket.tags or ()),
        received_at=ticket.opened_at,
        due_at=due_at,
        due_kind=kind,
        breached=breached,
        due_text=text,
        due_seconds=seconds,
        version=ticket.version,
        wait_until=ticket.wait_until if ticket.status == TicketStatus.WAITING.value else None,
    )


_RUNNING = (TicketStatus.NEW.value, TicketStatus.OPEN.value)
_WAITING = TicketStatus.WAITING.value


_EPOCH = datetime(1970, 1, 1)  # noqa: DTZ001 - the naive UTC origin of _naive_utc values


def _naive_utc(value: str | datetime) -> datetime:
    """A datetime column of a listing tuple as a naive UTC datetime (cheapest to read,
    compare and print; see :func:`~triage.store.tickets.listing_time`)."""
    if isinstance(value, str):
        return datetime.fromisoformat(value)  # SQLite's text: UTC, no zone
    return value.astimezone(UTC).replace(tzinfo=None)


def _json_value(value: Any) -> str:
    if value is None:
        return "null"
    return encode_basestring(value) if isinstance(value, str) else json.dumps(value)


class QueueListing:
    """Queue rows at ``now`` from :func:`~triage.store.tickets.queue_listing` tuples, for
    long listings (``triage queue`` of 100,000 tickets).

    The calendar's work is done once per listing (:class:`WorkingTimeline`: the
    countdown of a row is a difference of two precomputed running totals), not once
    per row. :meth:`json_line` writes the row's JSON (the contract of
    :meth:`QueueRow.to_json`, byte for byte what ``json.dumps(row.to_json(),
    ensure_ascii=False)`` writes) without building the row or a dict; :meth:`row`
    builds the :class:`QueueRow` (for tables).

    Args:
        policy: the SLA policy (its calendar counts business time).
        now: the time of the listing (aware).
    """

    def __init__(self, policy: SlaPolicy, now: datetime) -> None:
        self.now = now
        self.timeline = WorkingTimeline(policy.calendar)
        self._now_naive = now.astimezone(UTC).replace(tzinfo=None)

    @cached_property
    def _now_working(self) -> float:
        """Working seconds up to ``now`` on the timeline: computed when the first row
        with a running deadline needs it (an empty queue builds no calendar)."""
        return self.timeline.working_at(self.now.timestamp())

    def _due(self, r: tuple[Any, ...]) -> tuple[SlaKind | None, datetime | None, float | None]:
        """(kind, due (naive UTC), business seconds left) of the running deadline due
        first; Nones when no clock runs (see :func:`earliest_due`)."""
        if r[3] not in _RUNNING:
            return None, None, None
        due: datetime | None = None
        kind: SlaKind | None = None
        if r[12]:  # no first response yet
            if r[11] is not None:
                due, kind = _naive_utc(r[11]), SlaKind.FIRST_RESPONSE
        elif r[14] and r[13] is not None:  # a later message awaits an answer
            due, kind = _naive_utc(r[13]), SlaKind.NEXT_RESPONSE
        if r[15] is not None:
            resolution = _naive_utc(r[15])
            if due is None or resolution < due:
                due, kind = resolution, SlaKind.RESOLUTION
        if due is None:
            return None, None, None
        # working_at(now) was taken once: the timeline's origin never moves
        epoch = (due - _EPOCH).total_seconds()
        return kind, due, self.timeline.working_at(epoch) - self._now_working

    def row(self, r: tuple[Any, ...]) -> QueueRow:
        """The :class:`QueueRow` of one listing tuple (what :func:`queue_row` gives)."""
        kind, due, seconds = self._due(r)
        if due is not None and seconds is not None:
            due_at: datetime | None = due.replace(tzinfo=UTC)
            breached = self._now_naive > due
            text = describe_left(abs(seconds), overdue=breached)
        else:
            due_at, breached = None, False
            text = "paused (waiting)" if r[3] == _WAITING else "no SLA"
        return QueueRow(
            ticket_id=r[17],
            ref=r[0] or 0,
            queue=r[1],
            priority=r[2],
            status=r[3],
            subject=r[4],
            client_addr=r[5],
            client_name=r[6],
            assignee=r[7],
            decided_by=r[8],
            tags=tuple(str(t) for t in _tags(r[9])),
            received_at=listing_time(r[10]),
            due_at=due_at,
            due_kind=kind,
            breached=breached,
            due_text=text,
            due_seconds=seconds,
            version=r[16],
        )

    def json_line(self, r: tuple[Any, ...]) -> str:
        """One row's JSON object (no newline): :meth:`QueueRow.to_json`'s keys and values."""
        kind, due, seconds = self._due(r)
        if due is not None and seconds is not None:
            breached = self._now_naive > due
            text = describe_left(abs(seconds), overdue=breached)
            due_json, kind_json = f'"{due.isoformat()}Z"', f'"{kind}"'
        else:
            breached = False
            text = "paused (waiting)" if r[3] == _WAITING else "no SLA"
            due_json = kind_json = "null"
        tags = _tags(r[9])
        enc = encode_basestring
        return (
            f'{{"ref": {r[0] or 0}, "queue": {enc(r[1])}, "priority": {enc(r[2])},'
            f' "status": {enc(r[3])}, "subject": {enc(r[4])}, "from": {enc(r[5])},'
            f' "from_name": {enc(r[6])}, "assignee": {_json_value(r[7])},'
            f' "received_at": "{_naive_utc(r[10]).isoformat()}Z", "due_at": {due_json},'
            f' "due_kind": {kind_json},'
            f' "due": "{text}", "breached": {"true" if breached else "false"},'
            f' "decided_by": {enc(r[8])},'
            f' "tags": {json.dumps([str(t) for t in tags], ensure_ascii=False) if tags else "[]"},'
            f' "version": {r[16]}}}'
        )


def _tags(value: Any) -> list[Any]:
    """The tags column as a list (its JSON text when the column's type was bypassed)."""
    if not value:
        return []
    if isinstance(value, str):
        return list(json.loads(value)) if value != "[]" else []
    return list(value)
