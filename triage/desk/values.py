"""What the ticket desk returns: frozen values, no terminal text, no ORM rows.

A front end renders these (the CLI as text, the web page as HTML in Hungarian or
English); times are UTC-aware datetimes and amounts of business time are
seconds, so each front end words them in its own language. Every value also
carries an English sentence (``text``) the CLI prints as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from triage.domain import Address
from triage.refs import format_ref
from triage.sla.deadlines import SlaKind
from triage.tickets.queue import QueueRow

__all__ = [
    "ActionResult",
    "AttachmentContent",
    "AttachmentView",
    "CorrectionView",
    "DeadlineState",
    "DeadlineView",
    "EscalationView",
    "EventView",
    "MessageView",
    "NoteView",
    "QueueCount",
    "QueueCounts",
    "QueuePage",
    "QueueRow",
    "RoutingView",
    "TicketView",
    "View",
]


def _frozen(mapping: Mapping[str, Any] | None = None) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping or {}))


class View(StrEnum):
    """A queue view: which open tickets (new, open, waiting) a page lists.

    ``ALL`` is ``triage queue``; ``MINE`` those assigned to the actor; ``UNASSIGNED``
    those nobody has, to pick up (not waiting); ``WAITING`` those waiting on the
    client; ``ESCALATED`` those escalated to the owners (a missed deadline or a
    rule), the owners' view. A queue name narrows any of them to one queue.
    """

    ALL = "all"
    MINE = "mine"
    UNASSIGNED = "unassigned"
    WAITING = "waiting"
    ESCALATED = "escalated"


@dataclass(frozen=True, slots=True)
class QueuePage:
    """One page of a queue view, in urgency order.

    Attributes:
        rows: the tickets of this page.
        total: how many tickets the whole view lists.
        breached: how many of those are past a deadline.
        next_cursor: pass it back for the next page; None on the last page.
        counts: every view's and queue's size, read with the page (the tabs of the
            web page; the same figures as :meth:`TicketDesk.counts
            <triage.desk.TicketDesk.counts>`); None when not read.
    """

    view: View
    queue: str | None
    rows: tuple[QueueRow, ...]
    total: int
    breached: int
    next_cursor: str | None
    counts: QueueCounts | None = None


@dataclass(frozen=True, slots=True)
class CorrectionView:
    """A person's correction of a ticket's routing, stored as a training label.

    Attributes:
        queue, priority: what it was corrected to (priority None when not given).
        actor: who corrected it; at: when (UTC).
        used_by: the active model of that target trained after the correction was
            stored (so with it), or "" while none is.
    """

    queue: str
    priority: str | None
    actor: str
    at: datetime
    used_by: str


@dataclass(frozen=True, slots=True)
class QueueCount:
    """Open tickets of one view and how many of them are breached."""

    total: int
    breached: int = 0


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """The size of every view for one actor (the tabs of the web page).

    Attributes:
        views: ``View`` -> count (``MINE`` counts the actor's tickets).
        queues: configured queue name -> its open tickets (0 when none).
    """

    views: Mapping[View, QueueCount]
    queues: Mapping[str, QueueCount]


class DeadlineState(StrEnum):
    """Where an SLA target of a ticket stands."""

    RUNNING = "running"
    """Counting down (``seconds`` left; negative once overdue)."""
    PAUSED = "paused"
    """The ticket waits on the client: the clock stands still."""
    MET = "met"
    """Done in time (``done_at``)."""
    LATE = "late"
    """Done after the deadline (``done_at``)."""
    STOPPED = "stopped"
    """The ticket was solved or closed before this target was met."""


@dataclass(frozen=True, slots=True)
class DeadlineView:
    """One SLA target of a ticket, explained in business time.

    Attributes:
        kind: first response, next response or resolution.
        due_at: when it is due (UTC).
        state: see :class:`DeadlineState`.
        seconds: business seconds left (negative: overdue by that much); None unless running.
        overdue: running and past ``due_at`` (even when no business time has passed
            since, e.g. due on Friday at closing time and now it is Saturday).
        done_at: when it was met (UTC), for ``MET`` and ``LATE``.
        local_due: ``due_at`` on the business's clock, e.g. ``Mon 2026-03-09 14:00 CET``.
        text: the whole state as one English sentence (the CLI's).
    """

    kind: SlaKind
    due_at: datetime
    state: DeadlineState
    seconds: float | None
    overdue: bool
    done_at: datetime | None
    local_due: str
    text: str

    @property
    def label(self) -> str:
        """``first response``, ``next response`` or ``resolution``."""
        return self.kind.label


@dataclass(frozen=True, slots=True)
class AttachmentView:
    """An attachment (or inline part) of a stored message, as the parser recorded it.

    Attributes:
        index: its position among the message's attachments (for downloading it).
        inline: shown inside the HTML body (``Content-Disposition: inline`` with a
            ``Content-ID``), e.g. a logo; False for a file attached.
        content_id: the ``Content-ID`` without angle brackets ("" when none), what a
            ``cid:`` URL in the HTML names.
    """

    index: int
    filename: str
    content_type: str
    size: int | None
    inline: bool = False
    content_id: str = ""

    @property
    def size_text(self) -> str:
        """The size for people: ``"512 B"``, ``"13 KB"``, ``"2.4 MB"`` (1 KB = 1,024 bytes;
        a decimal point, which the Hungarian page turns into a comma); "" when unknown.
        Never "0 KB" for a small part."""
        if self.size is None:
            return ""
        if self.size < 1024:
            return f"{self.size} B"
        if self.size < 1024 * 1024:
            return f"{self.size / 1024:.0f} KB"
        return f"{self.size / (1024 * 1024):.1f} MB"


@dataclass(frozen=True, slots=True)
class AttachmentContent:
    """An attachment's (or inline part's) bytes, for a download or an inline image.

    ``filename`` and ``content_type`` are as the sender wrote them: serve a download
    with ``Content-Disposition: attachment`` whatever the type claims, never as a
    page of our own origin.
    """

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class MessageView:
    """One message of a ticket: the client's, or ours (a reply, an acknowledgment).

    Attributes:
        id: ``messages.id``.
        direction: ``in`` (from the client) or ``out`` (from the team).
        source: ``imap``, ``import``, ``sent`` (seen in the Sent folder) or ``outbox``.
        kind: a :class:`~triage.domain.MessageKind` value (``normal``, ``auto_reply``,
            ``bounce``, ``mailing_list``, ``feedback_report``, ``read_receipt``,
            ``notification``).
        body: the new text (the parser's clean text: quoted history and signature apart).
        quoted: the quoted history ("" when none).
        signature: the sender's signature block ("" when none recognized).
        attachments: the files the sender attached.
        inline_parts: parts the HTML body shows through ``cid:`` URLs (images), not
            attachments (``inline`` True, ``content_id`` set).
        parse_error: why the message could not be parsed (then ``body`` may be empty).
        defects: what the parser found wrong but read anyway (an impossible Date,
            broken header lines, a guessed charset).
        delivery_status: a bounce's RFC 3464 status code (``5.1.1``), "" otherwise.
        failed_recipients: the addresses a bounce says could not be delivered to.
        has_html: the mail has an HTML body to show on request; None when not known.
    """

    id: int
    direction: str
    source: str
    kind: str
    sender: Address
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    subject: str
    received_at: datetime
    body: str
    quoted: str
    signature: str
    attachments: tuple[AttachmentView, ...]
    inline_parts: tuple[AttachmentView, ...]
    language: str
    parse_error: str
    defects: tuple[str, ...] = ()
    delivery_status: str = ""
    failed_recipients: tuple[str, ...] = ()
    has_html: bool | None = None


@dataclass(frozen=True, slots=True)
class RoutingView:
    """How one message of the ticket was routed, and whether it was acknowledged.

    Attributes:
        message_id: ``messages.id`` of the message decided.
        decided_by: ``rule``, ``model`` or ``fallback``.
        confidence: the model's probability for its top queue (None when none ran).
        probabilities: the model's top (queue, probability) pairs, best first.
        explanation: sentences a person can read, in the order things were decided.
        acknowledged: an acknowledgment was queued.
        ack_reason: why not ("" when one was): an ``AckReason`` value.
        ack_template: the template a rule asked for ("" for the queue's default).
    """

    message_id: int
    queue: str
    priority: str
    decided_by: str
    confidence: float | None
    model_version: str
    rules_matched: tuple[str, ...]
    probabilities: tuple[tuple[str, float], ...]
    explanation: tuple[str, ...]
    tags: tuple[str, ...]
    escalate: tuple[str, ...]
    acknowledged: bool
    ack_reason: str
    ack_template: str
    assignee: str


@dataclass(frozen=True, slots=True)
class EscalationView:
    """A warning or escalation raised for the ticket.

    Attributes:
        kind: ``first_response``, ``next_response``, ``resolution``, ``rule`` or
            ``warning_<target>``.
        cycle: which response cycle (0 for the first).
        notified_at: when the mail went out (None: not yet, or never for history).
    """

    kind: str
    cycle: int
    reason: str
    due_at: datetime | None
    created_at: datetime
    notified_at: datetime | None


@dataclass(frozen=True, slots=True)
class NoteView:
    """An internal note: for the team only, never mailed to the client."""

    id: int
    author: str
    body: str
    mentions: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class EventView:
    """One row of the audit trail.

    Attributes:
        version: the ticket's version after this change (None for rows older
            than versions).
        detail: what changed (``from``/``to``, deadlines as ISO 8601 UTC text, ...).
    """

    id: int
    at: datetime
    actor: str
    action: str
    version: int | None
    detail: Mapping[str, Any] = field(default_factory=_frozen)


@dataclass(frozen=True, slots=True)
class TicketView:
    """A whole ticket as a person reads it (``triage show``, the web page's ticket).

    Attributes:
        version: pass it back as ``expected_version`` to act on what was seen.
        wait_until: a waiting ticket's alarm (UTC), None when none.
        deadlines: first response, next response (while one is pending) and
            resolution, in business time.
        next_deadline: the running deadline due first (None when no clock runs).
        routing: the routing decisions of the ticket's messages, oldest first.
        messages: newest first.
        notes: internal notes, newest first.
        events: the audit trail, oldest first.
    """

    id: int
    ref: int
    subject: str
    queue: str
    priority: str
    status: str
    assignee: str | None
    client: Address
    decided_by: str
    tags: tuple[str, ...]
    opened_at: datetime
    updated_at: datetime
    wait_until: datetime | None
    version: int
    deadlines: tuple[DeadlineView, ...]
    next_deadline: DeadlineView | None
    routing: tuple[RoutingView, ...]
    escalations: tuple[EscalationView, ...]
    messages: tuple[MessageView, ...]
    notes: tuple[NoteView, ...]
    events: tuple[EventView, ...]

    @property
    def ref_text(self) -> str:
        """``#1042``."""
        return format_ref(self.ref)


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What one desk action did.

    Attributes:
        ref: the ticket's reference.
        version: the ticket's version now (pass it as the next ``expected_version``).
        changed: False when there was nothing to do (already claimed by the actor,
            already in that queue, ...): no audit row was written.
        events: the audit rows this action wrote, oldest first.
        recipient: for a reply, the address it is queued for.
        note_id: for a note, its ``ticket_notes.id``.
        mentions: for a note, the assistants it names (each is told once).
        unknown_mentions: for a note, the ``@name`` words that name no assistant (as
            written, without ``@``): nobody was told of them.
    """

    ref: int
    version: int
    changed: bool
    events: tuple[EventView, ...] = ()
    recipient: str = ""
    note_id: int | None = None
    mentions: tuple[str, ...] = ()
    unknown_mentions: tuple[str, ...] = ()

    @property
    def ref_text(self) -> str:
        """``#1042``."""
        return format_ref(self.ref)
